//! `skein run` end to end: the real ASL files through the embedded engine, real files,
//! real SQLite (catalog, queue, engine store).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::util::{Workspace, copy_dir, parquet_checksums, repo_root, text};

fn samples(ws: &Workspace) {
    copy_dir(&repo_root().join("samples"), &ws.path().join("samples"));
}

fn skein_cmd(ws: &Workspace, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_skein"));
    c.args(args)
        .current_dir(ws.path())
        .env("SKEIN_CATALOG", ws.path().join(".skein"))
        .env_remove("SKEIN_STATES_CRASH_AFTER");
    c
}

fn last_json(out: &std::process::Output) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(out)))
}

/// dataset → (status, version, reason) from `skein status --json`.
fn catalog(ws: &Workspace) -> BTreeMap<String, (String, Option<u64>, String)> {
    let (_, json) = ws.skein_json(&["status"]);
    json["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["name"].as_str().unwrap().to_string(),
                (
                    d["status"].as_str().unwrap().to_string(),
                    d["currentVersion"].as_u64(),
                    d["reason"].as_str().unwrap_or("").to_string(),
                ),
            )
        })
        .collect()
}

fn status_of(ws: &Workspace, name: &str) -> String {
    catalog(ws)
        .get(name)
        .map(|s| s.0.clone())
        .unwrap_or_default()
}

fn assert_caps_held(json: &Value) {
    for kind in ["groups", "systems"] {
        for (name, c) in json["caps"][kind].as_object().unwrap() {
            let (cap, peak) = (c["cap"].as_u64().unwrap(), c["peak"].as_u64().unwrap());
            assert!(peak <= cap, "{kind} {name}: peak {peak} over cap {cap}");
        }
    }
}

#[test]
fn the_sample_run_migrates_skips_rolls_back_and_holds_the_caps() {
    let ws = Workspace::new();
    samples(&ws);
    let (code, json) = ws.skein_json(&["run", "samples", "--auto-approve"]);
    assert_eq!(
        code, 1,
        "tickets, payments and refunds fail on purpose: {json:#}"
    );
    let c = catalog(&ws);
    for name in [
        "products",
        "events",
        "customers",
        "stores",
        "suppliers",
        "orders",
        "addresses",
        "inventory",
        "invoices",
    ] {
        assert_eq!(c[name].0, "completed", "{name}: {c:#?}");
        assert_eq!(c[name].1, Some(1));
    }
    assert_eq!(c["tickets"].0, "failed");
    assert!(
        c["tickets"].2.contains("`priority`") && c["tickets"].2.contains("urgent!"),
        "{:?}",
        c["tickets"]
    );
    assert_eq!(c["payments"].0, "rolled_back");
    assert!(
        c["payments"].2.contains("notNull(method)"),
        "{:?}",
        c["payments"]
    );
    assert!(
        !ws.path().join("samples/lake/payments").exists(),
        "a failed verification publishes nothing"
    );
    assert_eq!(c["refunds"].0, "failed");
    assert!(
        c["refunds"]
            .2
            .contains("dependency `payments` ended rolled_back"),
        "{:?}",
        c["refunds"]
    );
    assert_caps_held(&json);
    assert!(json["caps"]["groups"]["bulk-eu"]["peak"].as_u64().unwrap() >= 1);
    assert_eq!(json["summary"]["completed"], 9, "{json:#}");

    // Again: completed datasets stay at v1 (nothing published twice), failures retried.
    let (_, again) = ws.skein_json(&["run", "samples", "--auto-approve"]);
    assert_eq!(again["summary"]["completed"], 9, "{again:#}");
    let c2 = catalog(&ws);
    assert!(c2.values().all(|s| s.1.is_none_or(|v| v == 1)), "{c2:#?}");
    let (_, runs) = ws.skein_json(&["runs"]);
    assert_eq!(runs["runs"].as_array().unwrap().len(), 2);
}

#[test]
fn plan_shows_canary_waves_and_caps_without_running() {
    let ws = Workspace::new();
    samples(&ws);
    let (code, plan) = ws.skein_json(&["plan", "samples"]);
    assert_eq!(code, 0);
    let canary: Vec<&str> = plan["canary"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["dataset"].as_str().unwrap())
        .collect();
    assert_eq!(
        canary,
        ["products", "events"],
        "the two least critical datasets of the first wave"
    );
    let wave_of = |name: &str| {
        plan["waves"].as_array().unwrap().iter().position(|w| {
            w["datasets"]
                .as_array()
                .unwrap()
                .iter()
                .any(|d| d["dataset"] == name)
        })
    };
    assert!(
        wave_of("customers") < wave_of("orders")
            && wave_of("orders") < wave_of("payments")
            && wave_of("payments") < wave_of("refunds")
    );
    assert_eq!(plan["groups"]["finance"], 1);
    assert_eq!(plan["systems"]["legacy-crm"], 1);
    assert!(
        !ws.path().join(".skein/catalog.db").exists() || catalog(&ws).is_empty(),
        "plan runs nothing"
    );
}

/// A fleet of `n` tiny datasets in one group, all reading one system.
fn tiny_fleet(ws: &Workspace, n: usize, group_cap: u32, readers: u32, canary: usize) {
    for i in 0..n {
        ws.write(
            &format!("fleet/data/t{i}.csv"),
            &format!("id,v\n{i},x\n{},y\n", i + 1000),
        );
        ws.write(
            &format!("fleet/t{i}.yaml"),
            &format!(
                "apiVersion: skein/v1\nkind: Dataset\nmetadata: {{name: t{i}, owner: team}}\nspec:\n  criticality: low\n  group: g\n  \
                 source: {{uri: data/t{i}.csv, format: csv, system: old-db}}\n  target: {{uri: lake/t{i}}}\n"
            ),
        );
    }
    ws.write(
        "fleet/skein.yaml",
        &format!(
            "apiVersion: skein/v1\nkind: Fleet\nspec:\n  maxConcurrency: 8\n  canary: {{size: {canary}}}\n  \
             groups: {{g: {{concurrency: {group_cap}}}}}\n  systems: {{old-db: {{readers: {readers}}}}}\n"
        ),
    );
}

#[test]
fn no_group_and_no_source_system_exceeds_its_cap() {
    let ws = Workspace::new();
    tiny_fleet(&ws, 10, 3, 2, 0);
    let (code, json) = ws.skein_json(&["run", "fleet"]);
    assert_eq!(code, 0, "{json:#}");
    assert_eq!(json["summary"]["completed"], 10);
    assert_caps_held(&json);
    assert_eq!(json["caps"]["groups"]["g"]["cap"], 3);
    assert_eq!(json["caps"]["systems"]["old-db"]["cap"], 2);
}

#[test]
fn a_failing_canary_stops_the_run_before_any_other_dataset_starts() {
    let ws = Workspace::new();
    tiny_fleet(&ws, 4, 2, 2, 1);
    // t0 is the canary (least critical, then priority, then name); its source is gone.
    std::fs::remove_file(ws.path().join("fleet/data/t0.csv")).unwrap();
    let (code, json) = ws.skein_json(&["run", "fleet"]);
    assert_eq!(code, 1, "{json:#}");
    assert_eq!(json["execution"]["error"], "Skein.CanaryFailed", "{json:#}");
    let c = catalog(&ws);
    assert_eq!(c["t0"].0, "failed");
    for name in ["t1", "t2", "t3"] {
        assert_eq!(
            c[name].0, "pending",
            "{name} must not start after a failed canary: {c:#?}"
        );
        assert!(!ws.path().join(format!("fleet/lake/{name}")).exists());
    }
}

#[test]
fn a_verification_mismatch_rolls_back_and_leaves_the_earlier_target_intact() {
    let ws = Workspace::new();
    tiny_fleet(&ws, 1, 1, 1, 0);
    let (code, json) = ws.skein_json(&["run", "fleet"]);
    assert_eq!(code, 0, "{json:#}");
    let target = ws.path().join("fleet/lake/t0");
    let v1 = parquet_checksums(&target);
    // A new spec version whose rule the data breaks.
    let spec = std::fs::read_to_string(ws.path().join("fleet/t0.yaml")).unwrap();
    ws.write(
        "fleet/t0.yaml",
        &format!("{spec}  verify:\n    rules: [{{acceptedValues: {{column: v, values: [x]}}}}]\n"),
    );
    let (code, json) = ws.skein_json(&["run", "fleet"]);
    assert_eq!(code, 1, "{json:#}");
    let c = catalog(&ws);
    assert_eq!(c["t0"].0, "rolled_back", "{c:#?}");
    assert!(c["t0"].2.contains("acceptedValues(v)"), "{:?}", c["t0"]);
    assert!(
        c["t0"].2.contains("staged files discarded"),
        "{:?}",
        c["t0"]
    );
    assert_eq!(c["t0"].1, Some(1), "v1 stays current");
    assert_eq!(
        parquet_checksums(&target),
        v1,
        "the published files are untouched"
    );
}

fn wait_for(ws: &Workspace, name: &str, status: &str, child: &mut std::process::Child) {
    for _ in 0..600 {
        if status_of(ws, name) == status {
            return;
        }
        if let Ok(Some(exit)) = child.try_wait() {
            let mut err = String::new();
            if let Some(e) = child.stderr.as_mut() {
                use std::io::Read;
                let _ = e.read_to_string(&mut err);
            }
            panic!(
                "the run ended ({exit}) before {name} became {status}: {err}\n{:#?}",
                catalog(ws)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("{name} never became {status}: {:#?}", catalog(ws));
}

#[test]
fn approval_and_rejection_answer_the_waiting_run() {
    for (verb, want) in [("approve", "completed"), ("reject", "rolled_back")] {
        let ws = Workspace::new();
        samples(&ws);
        let mut child = skein_cmd(&ws, &["run", "samples", "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_for(&ws, "invoices", "awaiting_approval", &mut child);
        let (_, status) = ws.skein_json(&["status"]);
        let waiting = status["datasets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["name"] == "invoices")
            .unwrap()
            .clone();
        assert!(
            waiting["approvalToken"].is_string(),
            "the task token is stored in the catalog: {waiting:#}"
        );
        let mut args = vec![verb, "invoices"];
        if verb == "reject" {
            args.extend(["--reason", "totals look wrong"]);
        }
        let out = ws.skein(&args);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let out = child.wait_with_output().unwrap();
        let json = last_json(&out);
        let c = catalog(&ws);
        assert_eq!(c["invoices"].0, want, "{verb}: {c:#?}\n{json:#}");
        if verb == "reject" {
            assert!(
                c["invoices"].2.contains("totals look wrong"),
                "{:?}",
                c["invoices"]
            );
            assert!(
                !ws.path().join("samples/lake/invoices").exists(),
                "a rejected dataset is not published"
            );
        }
        let again = ws.skein(&["approve", "invoices"]);
        assert_eq!(
            again.status.code(),
            Some(2),
            "nothing waits any more: {}",
            text(&again)
        );
    }
}

#[test]
fn a_run_killed_at_several_points_resumes_to_the_same_catalog() {
    let reference = Workspace::new();
    samples(&reference);
    let (_, json) = reference.skein_json(&["run", "samples", "--auto-approve"]);
    assert_eq!(json["summary"]["completed"], 9, "{json:#}");
    let want: BTreeMap<String, (String, Option<u64>)> = catalog(&reference)
        .into_iter()
        .map(|(k, v)| (k, (v.0, v.1)))
        .collect();
    let want_content = content(&reference);

    let mut crashed = 0;
    for k in [3, 15, 40, 90, 160] {
        let ws = Workspace::new();
        samples(&ws);
        let out = skein_cmd(&ws, &["run", "samples", "--auto-approve", "--json"])
            .env("SKEIN_STATES_CRASH_AFTER", k.to_string())
            .output()
            .unwrap();
        if out.status.code().is_some() {
            continue; // finished before its k-th commit
        }
        crashed += 1;
        // Killed while the run's execution ran (the usual case), the next `skein run`
        // continues that run; killed by a commit after the execution ended (on a loaded
        // machine more commits come earlier: polls, heartbeats), it starts a new one.
        let (_, runs) = ws.skein_json(&["runs"]);
        let (_, executions) = ws.skein_json(&["states", "list"]);
        let killed_run = runs["runs"][0]["runId"].clone();
        let was_running = executions["executions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == killed_run && e["status"] == "RUNNING");
        let (_, resumed) = ws.skein_json(&["run", "samples", "--auto-approve"]);
        assert_eq!(
            resumed["summary"]["completed"], 9,
            "killed after commit {k}: {resumed:#}"
        );
        let got: BTreeMap<String, (String, Option<u64>)> = catalog(&ws)
            .into_iter()
            .map(|(k, v)| (k, (v.0, v.1)))
            .collect();
        assert_eq!(
            got, want,
            "killed after commit {k}: the catalog differs from an uninterrupted run's"
        );
        assert_eq!(
            content(&ws),
            want_content,
            "killed after commit {k}: published content differs"
        );
        let (_, runs) = ws.skein_json(&["runs"]);
        if was_running {
            assert_eq!(
                runs["runs"].as_array().unwrap().len(),
                1,
                "the same run continued: {runs:#}"
            );
        }
        assert_eq!(
            count_versions(&ws.path().join("samples/lake/.orders.skein/versions")),
            1,
            "nothing published twice"
        );
    }
    assert!(
        crashed >= 4,
        "the run was killed at only {crashed} of the points"
    );
}

fn count_versions(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

/// Rows and order-independent content checksum of every published target (file names
/// and row placement vary with the run id and partitioning; the content does not).
fn content(ws: &Workspace) -> BTreeMap<String, Value> {
    let lake = ws.path().join("samples/lake");
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(&lake).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with('.') {
            continue;
        }
        // A Delta target (`format: delta`) keeps its current version inside the table.
        let current = match path.join("_skein/current") {
            delta if delta.exists() => delta,
            _ => path,
        };
        let manifest: Value =
            serde_json::from_slice(&std::fs::read(current.join("_manifest.json")).unwrap())
                .unwrap();
        out.insert(name, manifest["checksum"].clone());
    }
    out
}

// Issue 19, counts that do not lie: while a dataset waits for a person, the run's
// counters count it as neither succeeded nor failed; it counts once it completes.
#[test]
fn a_dataset_waiting_for_approval_is_not_counted_as_succeeded() {
    let ws = Workspace::new();
    for (name, criticality) in [("plain", "low"), ("gated", "critical")] {
        ws.write(&format!("fleet/data/{name}.csv"), "id,v\n1,a\n2,b\n");
        ws.write(
            &format!("fleet/{name}.yaml"),
            &format!(
                "apiVersion: skein/v1\nkind: Dataset\nmetadata: {{name: {name}, owner: team}}\nspec:\n  criticality: {criticality}\n  \
                 source: {{uri: data/{name}.csv, format: csv}}\n  target: {{uri: lake/{name}}}\n"
            ),
        );
    }
    let mut child = skein_cmd(&ws, &["run", "fleet", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(&ws, "gated", "awaiting_approval", &mut child);
    wait_for(&ws, "plain", "completed", &mut child);
    let (code, runs) = ws.skein_json(&["runs"]);
    assert_eq!(code, 0, "{runs:#}");
    let run = &runs["runs"][0];
    assert_eq!(
        (run["succeeded"].as_u64(), run["failed"].as_u64()),
        (Some(1), Some(0)),
        "the waiting dataset is not a success yet: {run:#}"
    );
    let out = ws.skein(&["approve", "gated"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let (_, runs) = ws.skein_json(&["runs"]);
    assert_eq!(runs["runs"][0]["succeeded"], 2, "{runs:#}");
}

// Issue 17: a dataset whose source is above the fleet's `largeJobs` threshold runs as the
// container's job, through the same state machine and worker use case as on AWS: its
// first job answers `large`, `MigrateOnFargate` (ecs:runTask.waitForTaskToken) starts
// `skein worker --job` (locally a subprocess on the same catalog), which stages, verifies
// and answers the token; the run publishes it. A dataset under the threshold stays on the
// queue path. Both read back equal to their sources.
#[test]
fn a_dataset_above_the_large_job_threshold_runs_in_the_container_worker() {
    let ws = Workspace::new();
    for (name, rows) in [("big", 3_000usize), ("small", 40)] {
        let csv = ws.path().join(format!("fleet/data/{name}.csv"));
        std::fs::create_dir_all(csv.parent().unwrap()).unwrap();
        let out =
            crate::sources::run_python("rfc4180_export.py", &[&csv, Path::new(&rows.to_string())]);
        assert!(out.status.success(), "{}", text(&out));
        ws.write(
            &format!("fleet/{name}.yaml"),
            &format!(
                "apiVersion: skein/v1\nkind: Dataset\nmetadata: {{name: {name}}}\nspec:\n  group: web\n  \
                 source: {{uri: data/{name}.csv, format: csv, system: old-db}}\n  target: {{uri: lake/{name}}}\n"
            ),
        );
    }
    let big = std::fs::metadata(ws.path().join("fleet/data/big.csv"))
        .unwrap()
        .len();
    let small = std::fs::metadata(ws.path().join("fleet/data/small.csv"))
        .unwrap()
        .len();
    assert!(small < 64 * 1024 && big > 64 * 1024, "{small} {big}");
    ws.write(
        "fleet/skein.yaml",
        "apiVersion: skein/v1\nkind: Fleet\nspec:\n  canary: {size: 0}\n  \
         largeJobs: {threshold: 64KiB, cpu: 2048, memory: 8192, ephemeralStorage: 50}\n  \
         groups: {web: {concurrency: 2}}\n  systems: {old-db: {readers: 1}}\n",
    );
    let out = skein_cmd(&ws, &["run", "fleet", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let json = last_json(&out);
    assert_eq!(json["summary"]["completed"], 2, "{json:#}");
    assert_caps_held(&json);
    let run = json["runId"].as_str().unwrap().to_string();
    let entered = |dataset: &str| ws.states_entered(&format!("{run}-{dataset}"));
    let big_states = entered("big");
    assert!(
        big_states.contains(&"MigrateOnFargate".to_string()),
        "{big_states:?}"
    );
    assert!(
        big_states.contains(&"Publish".to_string()),
        "{big_states:?}"
    );
    let small_states = entered("small");
    assert!(
        !small_states.contains(&"MigrateOnFargate".to_string()),
        "{small_states:?}"
    );
    // The Fargate task's size and the job it got came from the fleet's setting.
    let (_, history) = ws.skein_json(&["states", "history", &format!("{run}-big")]);
    let scheduled = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| {
            e["taskScheduledEventDetails"]["resource"]
                .as_str()
                .is_some_and(|r| r.contains("runTask"))
        })
        .unwrap_or_else(|| panic!("no runTask scheduled: {history:#}"));
    let params: Value = serde_json::from_str(
        scheduled["taskScheduledEventDetails"]["parameters"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(params["Overrides"]["Cpu"], "2048", "{params:#}");
    assert_eq!(params["Overrides"]["Memory"], "8192", "{params:#}");
    assert_eq!(
        params["Overrides"]["EphemeralStorage"]["SizeInGiB"], 50,
        "{params:#}"
    );
    let job: Value = serde_json::from_str(
        params["Overrides"]["ContainerOverrides"][0]["Environment"][0]["Value"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        job,
        serde_json::json!({"dataset": "big", "runId": run, "container": true})
    );
    // Both published, equal to their sources row for row (pyarrow).
    for (name, rows) in [("big", 3_000), ("small", 40)] {
        let out = crate::sources::run_python(
            "compare_csv_parquet.py",
            &[
                &ws.path().join(format!("fleet/data/{name}.csv")),
                &ws.path().join(format!("fleet/lake/{name}")),
            ],
        );
        assert!(out.status.success(), "{name}: {}", text(&out));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!("equal: {rows} rows")
        );
    }
    // A Fargate task size Fargate does not have is refused by name, before anything runs.
    ws.write(
        "fleet/skein.yaml",
        "apiVersion: skein/v1\nkind: Fleet\nspec:\n  \
         largeJobs: {threshold: 64KiB, cpu: 3000}\n  \
         groups: {web: {concurrency: 2, largeJobs: {threshold: 1GiB, memory: 1000000}}}\n",
    );
    let out = skein_cmd(&ws, &["plan", "fleet"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("spec.largeJobs.cpu"), "{err}");
    assert!(err.contains("spec.groups.web.largeJobs.memory"), "{err}");
    // A chunk size above the threshold would make Lambda jobs too large: refused by name.
    ws.write(
        "fleet/skein.yaml",
        "apiVersion: skein/v1\nkind: Fleet\nspec:\n  largeJobs: {threshold: 64KiB}\n",
    );
    let spec = std::fs::read_to_string(ws.path().join("fleet/big.yaml")).unwrap();
    ws.write(
        "fleet/big.yaml",
        &spec.replace("system: old-db}", "system: old-db, chunkSize: 2MiB}"),
    );
    let out = skein_cmd(&ws, &["plan", "fleet"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("big.yaml") && err.contains("spec.source.chunkSize"),
        "{err}"
    );
    // The worker refuses a job it cannot read, saying what it needs.
    for (args, says) in [
        (vec!["worker", "--job", "not json"], "not JSON"),
        (
            vec!["worker", "--job", r#"{"dataset": "big"}"#],
            "no task token",
        ),
        (vec!["worker"], "--job JSON"),
    ] {
        let out = skein_cmd(&ws, &args)
            .env_remove("SKEIN_JOB")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(says),
            "{}",
            text(&out)
        );
    }
}
