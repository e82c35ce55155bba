//! Command transforms (issue 23): a migration script in Python, fed the source as an Arrow
//! IPC stream on stdin, its Arrow IPC output staged, verified and published like a SQL
//! transform's; and each way a script fails, named with its status and stderr.

use std::process::{Command, Output};

use serde_json::Value;

use crate::util::{Workspace, copy_dir, repo_root, text};

/// The example `examples/python-transform` in a workspace.
fn example(ws: &Workspace) {
    copy_dir(&repo_root().join("examples/python-transform"), ws.path());
}

/// `skein ARGS` in the workspace, with the project's Python (pyarrow) first on PATH.
fn skein(ws: &Workspace, args: &[&str]) -> Output {
    let venv = repo_root().join(".venv/bin");
    let path = format!(
        "{}:{}",
        venv.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new(env!("CARGO_BIN_EXE_skein"))
        .args(args)
        .current_dir(ws.path())
        .env("SKEIN_CATALOG", ws.path().join(".skein"))
        .env("PATH", path)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

/// Rows of a DuckDB query run in the workspace.
fn duckdb(ws: &Workspace, sql: &str) -> Value {
    let out = Command::new(repo_root().join(".venv/bin/python"))
        .arg(repo_root().join("tests/python/duckdb_query.py"))
        .arg(sql)
        .current_dir(ws.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The example's published rows, and what its script does computed independently by
/// DuckDB from the whole CSV.
fn published_and_expected(ws: &Workspace) -> (Value, Value) {
    let published = duckdb(
        ws,
        "SELECT id, country, amount_cents, currency FROM 'lake/payments-eur/*.parquet' ORDER BY id",
    );
    let expected = duckdb(
        ws,
        "SELECT id, upper(trim(country)), CAST(round(amount * 100) AS BIGINT), 'EUR' \
         FROM read_csv('data/payments.csv') ORDER BY id",
    );
    (published, expected)
}

#[test]
fn a_python_script_transforms_the_source_and_its_output_is_verified_and_published() {
    let ws = Workspace::new();
    example(&ws);
    // Sample queries re-run the script over the source: both sides must agree.
    let spec = std::fs::read_to_string(ws.path().join("payments.yaml")).unwrap();
    ws.write(
        "payments.yaml",
        &spec.replace(
            "  verify:\n",
            "  verify:\n    sampleQueries: [\"SELECT country, count(*), sum(amount_cents) FROM {} GROUP BY country\"]\n",
        ),
    );
    let out = skein(&ws, &["validate", "payments.yaml"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = skein(&ws, &["migrate", "payments.yaml", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let d = &json["datasets"][0];
    assert_eq!(d["outcome"], "completed", "{json:#}");
    assert_eq!(d["rows"], 2000, "{json:#}");
    let checks: Vec<&str> = d["verification"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert!(
        checks.iter().any(|c| c.starts_with("sample[0]")),
        "{checks:?}"
    );
    // What the script did, computed independently by DuckDB from the CSV.
    let (published, expected) = published_and_expected(&ws);
    assert_eq!(published.as_array().map(Vec::len), Some(2000));
    assert_eq!(published, expected);
    // `skein verify` re-runs the script for the source side.
    let out = skein(&ws, &["verify", "payments.yaml"]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn a_failing_script_fails_the_dataset_naming_its_status_and_stderr_and_publishes_nothing() {
    let ws = Workspace::new();
    example(&ws);
    let scripts = [
        (
            "exit3",
            "import os, sys\nsys.stdin.buffer.read(16)\n\
             print('loading rates for', os.environ['SKEIN_DATASET'], 'in', os.environ['SKEIN_RUN_ID'], file=sys.stderr)\n\
             print(\"KeyError: 'SEK' not in rates\", file=sys.stderr)\nsys.exit(3)\n",
            // the environment names the dataset and the run
            vec![
                "exited with status 3",
                "KeyError: 'SEK' not in rates",
                "loading rates for exit3 in run-",
            ],
        ),
        (
            "garbage",
            "import sys\nsys.stdout.write('hello, this is not arrow\\n' * 50)\n",
            vec!["not an Arrow IPC stream", "hello, t"],
        ),
        (
            "slow",
            "import time\ntime.sleep(120)\n",
            vec!["within 2 s", "spec.transform.timeout"],
        ),
        (
            // fails after some output: the batches already written are not published
            "midway",
            "import sys, pyarrow as pa\nr = pa.ipc.open_stream(sys.stdin.buffer)\n\
             w = pa.ipc.new_stream(sys.stdout.buffer, r.schema)\nw.write_batch(r.read_next_batch())\n\
             sys.stdout.flush()\nprint('ran out of memory', file=sys.stderr)\nsys.exit(7)\n",
            vec!["exited with status 7", "ran out of memory"],
        ),
    ];
    let spec = std::fs::read_to_string(ws.path().join("payments.yaml")).unwrap();
    for (name, script, _) in &scripts {
        ws.write(&format!("scripts/{name}.py"), script);
        ws.write(
            &format!("{name}.yaml"),
            &spec
                .replace("scripts/to_cents.py", &format!("scripts/{name}.py"))
                .replace("timeout: 10m", "timeout: 2s")
                .replace("name: payments-eur", &format!("name: {name}"))
                .replace("lake/payments-eur", &format!("lake/{name}")),
        );
    }
    for (name, _, says) in &scripts {
        let out = skein(&ws, &["migrate", &format!("{name}.yaml")]);
        assert_eq!(out.status.code(), Some(1), "{name}: {}", text(&out));
        let all = text(&out);
        assert!(all.contains(&format!("scripts/{name}.py")), "{name}: {all}");
        for s in says {
            assert!(all.contains(s), "{name}: `{s}` missing in {all}");
        }
        // A published plain Parquet target is the link `lake/<name>`: none.
        assert!(
            std::fs::symlink_metadata(ws.path().join(format!("lake/{name}"))).is_err(),
            "{name}: nothing published"
        );
    }
}

#[test]
fn a_command_spec_is_checked_before_anything_runs() {
    let ws = Workspace::new();
    example(&ws);
    let spec = std::fs::read_to_string(ws.path().join("payments.yaml")).unwrap();
    for (body, says) in [
        (
            spec.replace("scripts/to_cents.py", "scripts/missing.py")
                .replace("command: [python3,", "command: [./no-such-program,"),
            "spec.transform.command",
        ),
        (
            spec.replace(
                "    command:",
                "    sql: SELECT * FROM source\n    command:",
            ),
            "both `sql` and `command`",
        ),
        (
            spec.replace("timeout: 10m", "timeout: soon"),
            "spec.transform.timeout",
        ),
    ] {
        ws.write("bad.yaml", &body);
        let out = skein(&ws, &["validate", "bad.yaml"]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert!(
            text(&out).contains(says),
            "`{says}` missing: {}",
            text(&out)
        );
    }
}

#[test]
fn a_row_wise_command_runs_once_per_chunk_and_another_is_not_chunked() {
    let ws = Workspace::new();
    example(&ws);
    // The source as four files of ~1 MB, chunked (chunkSize is at least 1 MiB).
    let countries = ["se", " de", "fr ", "Es", "it", "nl"];
    for f in 0..4 {
        let mut csv = String::from("id,country,amount\n");
        for i in f * 60_000..(f + 1) * 60_000 {
            csv.push_str(&format!(
                "{i},{},{}.{:02}\n",
                countries[i % 6],
                i % 9_973,
                i % 100
            ));
        }
        ws.write(&format!("parts/p{f}.csv"), &csv);
    }
    let size = std::fs::metadata(ws.path().join("parts/p0.csv"))
        .unwrap()
        .len();
    let spec = std::fs::read_to_string(ws.path().join("payments.yaml"))
        .unwrap()
        .replace(
            "source: {uri: data/payments.csv, format: csv}",
            &format!(
                "source: {{uri: parts, format: csv, chunkSize: {}}}",
                size * 2 + 10
            ),
        );
    ws.write("payments.yaml", &spec);
    let out = skein(&ws, &["migrate", "payments.yaml", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let chunks = json["datasets"][0]["chunks"].as_u64().unwrap_or(0);
    assert!(chunks >= 2, "one process a chunk: {json:#}");
    let published = duckdb(
        &ws,
        "SELECT count(*), sum(amount_cents), count(DISTINCT id) FROM 'lake/payments-eur/*.parquet'",
    );
    let expected = duckdb(
        &ws,
        "SELECT count(*), sum(CAST(round(amount * 100) AS BIGINT)), count(DISTINCT id) FROM read_csv('parts/*.csv')",
    );
    assert_eq!(published, expected);
    // Without rowWise the command is not split: the dataset says why.
    ws.write("payments.yaml", &spec.replace("    rowWise: true\n", ""));
    let out = skein(&ws, &["migrate", "payments.yaml"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("rowWise: true"), "{}", text(&out));
}

// A row-wise command on an incremental source: the second run sends only the new month
// through the script, and the published version is what the script makes of both months.
#[test]
fn a_row_wise_command_on_an_incremental_source_sees_only_the_new_files() {
    let ws = Workspace::new();
    example(&ws);
    let all = std::fs::read_to_string(ws.path().join("data/payments.csv")).unwrap();
    let (header, rows) = all.split_once('\n').unwrap();
    let rows: Vec<&str> = rows.lines().collect();
    let (jan, feb) = rows.split_at(1200);
    ws.write(
        "data/months/2024-01.csv",
        &format!("{header}\n{}\n", jan.join("\n")),
    );
    let spec = std::fs::read_to_string(ws.path().join("payments.yaml")).unwrap();
    ws.write(
        "payments.yaml",
        &spec.replace(
            "{uri: data/payments.csv, format: csv}",
            "{uri: data/months, format: csv, mode: incremental}",
        ),
    );
    let out = skein(&ws, &["migrate", "payments.yaml", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    ws.write(
        "data/months/2024-02.csv",
        &format!("{header}\n{}\n", feb.join("\n")),
    );
    let out = skein(&ws, &["migrate", "payments.yaml", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let d = &json["datasets"][0];
    assert_eq!(
        (d["version"].as_u64(), d["rows"].as_u64()),
        (Some(2), Some(2000))
    );
    assert!(
        d["incremental"]
            .as_str()
            .unwrap_or_default()
            .contains("1 new file(s), 800 new row(s), added to v1"),
        "{d:#}"
    );
    let (published, expected) = published_and_expected(&ws);
    assert_eq!(published, expected);
}
