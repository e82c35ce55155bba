//! The CLI as a person meets it: pipes, colour, widths, messages, cleanup, path policy.

use std::io::Read;
use std::process::{Command, Stdio};

use crate::util::{Workspace, copy_dir, repo_root, text};

/// A workspace holding a copy of the samples.
fn samples() -> Workspace {
    let ws = Workspace::new();
    copy_dir(&repo_root().join("samples"), &ws.path().join("samples"));
    ws
}

/// Runs `skein ARGS` with stdout into a pipe whose reader closes after `keep` bytes (0:
/// at once, before skein has started writing, so the write certainly meets a closed pipe).
fn skein_into_closed_pipe(ws: &Workspace, args: &[&str], keep: usize) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_skein"))
        .args(args)
        .current_dir(ws.path())
        .env("SKEIN_CATALOG", ws.path().join(".skein"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run skein");
    let mut stdout = child.stdout.take().unwrap();
    if keep > 0 {
        let mut first = vec![0u8; keep];
        let _ = stdout.read_exact(&mut first);
    }
    drop(stdout); // the reader goes away, as `| head -c N` does
    child.wait_with_output().expect("wait skein")
}

#[test]
fn a_closed_pipe_ends_quietly_with_exit_0() {
    let ws = samples();
    let out = ws.skein(&["migrate", "samples", "-q"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    // enough history lines that the writer meets the closed pipe
    for _ in 0..3 {
        let out = ws.skein(&["migrate", "samples/customers.yaml", "-q"]);
        assert!(out.status.code().is_some(), "{}", text(&out));
    }
    for args in [
        vec!["history", "customers"],
        vec!["status"],
        vec!["runs"],
        vec!["plan", "samples"],
        vec!["history", "customers", "--json"],
    ] {
        let out = skein_into_closed_pipe(&ws, &args, 0);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "skein {args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "skein {args:?}: {stderr}");
    }
}

#[test]
fn logs_to_a_file_carry_no_colour_codes() {
    let ws = samples();
    let out = ws.skein(&["-vv", "migrate", "samples/customers.yaml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("DEBUG"),
        "-vv logs at debug: {}",
        text(&out)
    );
    assert!(
        !stderr.contains('\u{1b}'),
        "escape codes in a redirected log: {stderr:?}"
    );
}

#[test]
fn status_lines_fit_the_width_and_say_where_the_whole_text_is() {
    let ws = samples();
    let _ = ws.skein(&["migrate", "samples", "-q"]);
    let out = Command::new(env!("CARGO_BIN_EXE_skein"))
        .arg("status")
        .current_dir(ws.path())
        .env("SKEIN_CATALOG", ws.path().join(".skein"))
        .env("COLUMNS", "120")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let widest = stdout.lines().map(|l| l.chars().count()).max().unwrap_or(0);
    assert!(widest <= 120, "a line of {widest} characters:\n{stdout}");
    assert!(stdout.contains("payments"), "{stdout}");
    assert!(stdout.contains("skein history NAME"), "the hint: {stdout}");
    // --json keeps every reason whole
    let (_, json) = ws.skein_json(&["status"]);
    let tickets = json["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "tickets")
        .unwrap();
    assert!(
        tickets["reason"].as_str().unwrap().contains("urgent!"),
        "{tickets:#}"
    );
}

#[test]
fn verify_and_diff_of_an_unpublished_dataset_say_so_and_the_others_are_still_checked() {
    let ws = samples();
    let _ = ws.skein(&["migrate", "samples", "-q"]);
    let out = ws.skein(&["verify", "samples/tickets.yaml"]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("has no published version yet"), "{all}");
    assert!(!all.contains("(published)"), "{all}");

    // diff carries on past datasets with nothing published, as verify does
    let (code, json) = ws.skein_json(&["diff", "samples"]);
    assert_eq!(code, 1, "{json:#}");
    let compared = json["reports"].as_array().unwrap().len();
    let not = json["errors"].as_array().unwrap();
    assert_eq!(
        compared + not.len(),
        12,
        "every dataset is accounted for: {json:#}"
    );
    assert!(compared >= 8, "the published ones are compared: {json:#}");
    assert!(
        not.iter()
            .any(|e| e["dataset"] == "tickets" && e["error"] == "Skein.NotPublished"),
        "{json:#}"
    );
}

#[test]
fn failed_attempts_leave_no_staged_copy_and_gc_removes_abandoned_ones() {
    let ws = samples();
    let staging = |name: &str| {
        let dir = ws
            .path()
            .join(format!("samples/lake/.{name}.skein/staging"));
        std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0)
    };
    let out = ws.skein(&["migrate", "samples", "-q"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    for _ in 0..3 {
        let (code, json) = ws.skein_json(&["migrate", "samples/payments.yaml", "-q"]);
        assert_eq!(code, 1, "{json:#}");
        assert_eq!(
            json["datasets"][0]["outcome"], "verification_failed",
            "{json:#}"
        );
    }
    assert!(
        ws.path().join("samples/lake/.payments.skein").exists(),
        "the attempts staged"
    );
    assert_eq!(staging("payments"), 0, "four failed attempts, no copy left");

    // an abandoned staging (a killed process left it) is removed by gc, a live one kept
    // invoices waits for approval: its staging is live
    let abandoned = ws
        .path()
        .join("samples/lake/.invoices.skein/staging/run-abandoned");
    std::fs::create_dir_all(&abandoned).unwrap();
    std::fs::write(abandoned.join("part-0.parquet"), b"half written").unwrap();
    assert_eq!(staging("invoices"), 2);
    let (code, json) = ws.skein_json(&["gc", "--dry-run"]);
    assert_eq!(code, 0, "{json:#}");
    assert_eq!(json["removed"].as_array().unwrap().len(), 1, "{json:#}");
    assert_eq!(staging("invoices"), 2, "a dry run removes nothing");
    let (code, json) = ws.skein_json(&["gc"]);
    assert_eq!(code, 0, "{json:#}");
    assert_eq!(json["removed"][0]["run"], "run-abandoned", "{json:#}");
    assert_eq!(
        json["kept"][0]["dataset"], "invoices",
        "the attempt awaiting approval: {json:#}"
    );
    assert!(!abandoned.exists());
    assert_eq!(staging("invoices"), 1);
    // and it can still be approved and published
    let out = ws.skein(&["migrate", "samples/invoices.yaml", "--approve", "-q"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn report_latest_is_the_newest_run() {
    let ws = samples();
    let out = ws.skein(&["report", "latest", "--html", "r.html"]);
    assert_eq!(out.status.code(), Some(2), "no run yet: {}", text(&out));
    assert!(text(&out).contains("no run"), "{}", text(&out));
    let out = ws.skein(&["run", "samples", "--auto-approve", "-q"]);
    assert!(out.status.code().is_some(), "{}", text(&out));
    let (code, json) = ws.skein_json(&["report", "latest", "--html", "r.html"]);
    assert_eq!(code, 0, "{json:#}");
    assert!(
        json["run"].as_str().unwrap().starts_with("run-"),
        "{json:#}"
    );
    let html = std::fs::read_to_string(ws.path().join("r.html")).unwrap();
    assert!(html.contains(json["run"].as_str().unwrap()));
}

#[test]
fn a_rerun_says_up_to_date_and_the_summary_counts_agree_with_the_rows() {
    let ws = samples();
    let out = ws.skein(&["run", "samples", "--auto-approve", "-q"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let out = ws.skein(&["run", "samples", "--auto-approve", "-q", "--new"]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let products = stdout.lines().find(|l| l.starts_with("products ")).unwrap();
    assert!(products.contains("up to date (v1)"), "{stdout}");
    assert!(!products.contains("published v1"), "{stdout}");
    // the summary counts are the rows' statuses
    let rows = |status: &str| {
        stdout
            .lines()
            .filter(|l| l.split_whitespace().nth(2) == Some(status))
            .count()
    };
    let summary = stdout.lines().last().unwrap();
    for (status, word) in [
        ("completed", "completed"),
        ("failed", "failed"),
        ("rolled_back", "rolled back"),
    ] {
        assert!(
            summary.contains(&format!("{} {word}", rows(status))),
            "{status}: {summary}\n{stdout}"
        );
    }

    // one dataset that rolls back: the row and the summary agree
    let one = Workspace::new();
    copy_dir(&repo_root().join("samples"), &one.path().join("all"));
    std::fs::create_dir_all(one.path().join("one/data")).unwrap();
    let alone = std::fs::read_to_string(one.path().join("all/payments.yaml"))
        .unwrap()
        .replace("  dependsOn: [orders]\n", "");
    std::fs::write(one.path().join("one/payments.yaml"), alone).unwrap();
    copy_dir(&one.path().join("all/data"), &one.path().join("one/data"));
    let out = Command::new(env!("CARGO_BIN_EXE_skein"))
        .args(["run", ".", "-q"])
        .current_dir(one.path().join("one"))
        .env("SKEIN_CATALOG", one.path().join(".skein"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("rolled_back"), "{}", text(&out));
    assert!(stdout.contains("1 rolled back"), "{}", text(&out));
}

#[test]
fn catalog_export_writes_paths_relative_to_the_exported_file() {
    let ws = samples();
    let _ = ws.skein(&["migrate", "samples/customers.yaml", "-q"]);
    let out = ws.skein(&["catalog", "export", "exported"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let yaml = std::fs::read_to_string(ws.path().join("exported/catalog-info.yaml")).unwrap();
    let root = ws.path().to_string_lossy().to_string();
    assert!(!yaml.contains(&root), "an absolute path in:\n{yaml}");
    assert!(yaml.contains("../samples/"), "{yaml}");
    // and it imports back to the same places
    let (code, json) = ws.skein_json(&["catalog", "import", "exported/catalog-info.yaml"]);
    assert_eq!(code, 0, "{json:#}");
}

#[test]
fn local_paths_must_stay_inside_the_spec_directory_or_a_root() {
    let ws = Workspace::new();
    ws.write("elsewhere/data/x.csv", "id\n1\n");
    ws.write("project/data/x.csv", "id\n1\n");
    let spec = |source: &str, target: &str| {
        format!(
            "apiVersion: skein/v1\nkind: Dataset\nmetadata: {{name: x}}\nspec:\n  source: {{uri: {source}, format: csv}}\n  target: {{uri: {target}}}\n  transform:\n    sql: SELECT id FROM source\n"
        )
    };
    let cases = [
        (
            spec("data/x.csv", "../../elsewhere/out"),
            "spec.target.uri",
            "not under the spec's directory",
        ),
        (
            spec("../elsewhere/data/x.csv", "lake/x"),
            "spec.source.uri",
            "not under the spec's directory",
        ),
        (
            spec("data/", "data/out"),
            "spec.target.uri",
            "inside the source",
        ),
        (
            spec("lake/x/data", "lake/x"),
            "spec.target.uri",
            "contains the source",
        ),
    ];
    for (text_, field, message) in cases {
        ws.write("project/x.yaml", &text_);
        let (code, json) = ws.skein_json(&["validate", "project/x.yaml", "--no-source"]);
        assert_eq!(code, 2, "{text_}\n{json:#}");
        let p = &json["problems"][0];
        assert_eq!(p["field"], field, "{json:#}");
        assert!(p["message"].as_str().unwrap().contains(message), "{json:#}");
        assert!(
            p["message"].as_str().unwrap().contains('/'),
            "names the resolved path: {json:#}"
        );
    }
    // nothing was written outside
    assert!(!ws.path().join("elsewhere/out").exists());

    // a root in skein.yaml allows the sibling directory
    ws.write("project/x.yaml", &spec("../elsewhere/data/x.csv", "lake/x"));
    ws.write(
        "project/skein.yaml",
        "apiVersion: skein/v1\nkind: Fleet\nspec:\n  roots: [../elsewhere]\n",
    );
    let (code, json) = ws.skein_json(&["validate", "project/x.yaml", "--no-source"]);
    assert_eq!(code, 0, "{json:#}");
    // S3 URIs are not affected
    ws.write(
        "project/x.yaml",
        &spec("s3://bucket/data/", "s3://bucket/lake/x/"),
    );
    let (code, json) = ws.skein_json(&["validate", "project/x.yaml", "--no-source"]);
    assert_eq!(code, 0, "{json:#}");
}

#[test]
fn timestamps_have_one_precision() {
    let ws = samples();
    let _ = ws.skein(&["migrate", "samples/customers.yaml", "-q"]);
    let (_, json) = ws.skein_json(&["history", "customers"]);
    let (_, runs) = ws.skein_json(&["runs"]);
    let stamp = regex_lite(&json.to_string()) + &regex_lite(&runs.to_string());
    assert!(
        stamp.is_empty(),
        "timestamps not in the one format: {stamp}"
    );
}

/// Every RFC 3339 timestamp in `s` that is not `YYYY-MM-DDTHH:MM:SS.mmmZ`, joined.
fn regex_lite(s: &str) -> String {
    let re = regex::Regex::new(r#"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[^"]*"#).unwrap();
    let one = regex::Regex::new(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$").unwrap();
    re.find_iter(s)
        .map(|m| m.as_str())
        .filter(|t| !one.is_match(t))
        .collect::<Vec<_>>()
        .join(", ")
}

#[test]
fn a_panicking_migration_fails_its_dataset_and_the_run_goes_on() {
    // a bug stands in: a panic in the middle of staging `customers`
    let ws = samples();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_skein"))
            .args(args)
            .current_dir(ws.path())
            .env("SKEIN_CATALOG", ws.path().join(".skein"))
            .env("SKEIN_PANIC_AT", "stage.parts@customers")
            .output()
            .unwrap()
    };
    let out = run(&["migrate", "samples", "--json", "-q"]);
    assert_eq!(out.status.code(), Some(1), "not 101: {}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let result = |n: &str| {
        json["datasets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["dataset"] == n)
            .cloned()
            .unwrap()
    };
    let customers = result("customers");
    assert_eq!(customers["errorName"], "Skein.Internal", "{customers:#}");
    assert!(
        customers["error"].as_str().unwrap().contains("panicked"),
        "{customers:#}"
    );
    assert_eq!(
        result("products")["outcome"],
        "completed",
        "the others go on"
    );

    // under the state machines: the worker's panic fails the dataset, the run ends
    let out = run(&["run", "samples", "--auto-approve", "--json", "-q", "--new"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let customers = json["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["dataset"] == "customers")
        .cloned()
        .unwrap();
    assert!(
        matches!(customers["status"].as_str(), Some("failed" | "rolled_back")),
        "{customers:#}"
    );
    assert!(
        customers["reason"].as_str().unwrap().contains("panicked"),
        "{customers:#}"
    );
}

#[test]
fn a_resumed_run_reports_the_whole_runs_time_and_peaks() {
    let ws = samples();
    let out = Command::new(env!("CARGO_BIN_EXE_skein"))
        .args(["run", "samples", "--auto-approve", "-q"])
        .current_dir(ws.path())
        .env("SKEIN_CATALOG", ws.path().join(".skein"))
        .env("SKEIN_STATES_CRASH_AFTER", "120")
        .output()
        .unwrap();
    assert!(
        out.status.code().is_none(),
        "killed mid-run: {}",
        text(&out)
    );
    let peaks_dir = ws.path().join(".skein/peaks");
    let saved: std::collections::BTreeMap<String, u32> = std::fs::read_dir(&peaks_dir)
        .unwrap()
        .map(|e| serde_json::from_slice(&std::fs::read(e.unwrap().path()).unwrap()).unwrap())
        .next()
        .expect("the killed process kept its peaks");
    assert!(!saved.is_empty());
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let out = ws.skein(&["run", "samples", "--auto-approve"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary = stdout.lines().last().unwrap();
    assert!(summary.contains("in this process)"), "{summary}");
    // the peaks cover both processes: none is below what the killed one saw
    for line in stdout.lines().filter(|l| l.starts_with("peak concurrency")) {
        for (key, peak) in &saved {
            let (kind, name) = key.split_once(':').unwrap();
            let _ = kind;
            let shown = line
                .split([';', ','])
                .find_map(|part| {
                    let part = part
                        .trim()
                        .trim_start_matches("peak concurrency: groups ")
                        .trim_start_matches("readers ");
                    part.strip_prefix(&format!("{name} "))
                        .and_then(|r| r.split('/').next())
                        .and_then(|n| n.parse::<u32>().ok())
                })
                .unwrap_or_else(|| panic!("{name} in {line}"));
            assert!(shown >= *peak, "{key}: {shown} < {peak} in {line}");
        }
    }
}
