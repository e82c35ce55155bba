//! The `skein` binary end to end: the samples, exit codes, JSON output, catalog commands.

use crate::util::{Workspace, copy_dir, repo_root, text};

#[test]
fn the_samples_migrate_with_their_planned_failures() {
    let ws = Workspace::new();
    copy_dir(&repo_root().join("samples"), &ws.path().join("samples"));
    let (code, json) = ws.skein_json(&["migrate", "samples"]);
    assert_eq!(
        code, 1,
        "tickets, payments and refunds fail on purpose: {json:#}"
    );
    let outcome = |n: &str| {
        json["datasets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["dataset"] == n)
            .unwrap_or_else(|| panic!("{n} missing: {json:#}"))["outcome"]
            .as_str()
            .unwrap()
            .to_string()
    };
    for name in [
        "customers",
        "orders",
        "events",
        "products",
        "stores",
        "suppliers",
        "addresses",
        "inventory",
    ] {
        assert_eq!(outcome(name), "completed", "{name}: {json:#}");
    }
    assert_eq!(outcome("payments"), "verification_failed");
    assert_eq!(outcome("tickets"), "failed");
    assert_eq!(outcome("refunds"), "skipped");
    assert_eq!(
        outcome("invoices"),
        "awaiting_approval",
        "critical: waits without --approve"
    );
    // dependencies ran first
    let order: Vec<&str> = json["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["dataset"].as_str().unwrap())
        .collect();
    let pos = |n: &str| order.iter().position(|o| *o == n).unwrap();
    assert!(
        pos("customers") < pos("orders")
            && pos("orders") < pos("payments")
            && pos("payments") < pos("refunds"),
        "{order:?}"
    );

    let (code, status) = ws.skein_json(&["status"]);
    assert_eq!(
        code, 0,
        "status is a report: it exits 0 whatever the datasets' state"
    );
    let statuses: Vec<(String, String)> = status["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["name"].as_str().unwrap().to_string(),
                d["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        statuses.contains(&("payments".into(), "failed".into())),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&("orders".into(), "completed".into())),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&("invoices".into(), "awaiting_approval".into())),
        "{statuses:?}"
    );

    // a second run: everything that completed is up to date
    let (_, again) = ws.skein_json(&["migrate", "samples"]);
    let ups = again["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["outcome"] == "up_to_date")
        .count();
    assert_eq!(ups, 8, "{again:#}");

    // human output: one line per dataset, the failed check, a summary
    let out = ws.skein(&["migrate", "samples"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("✓ orders") && stdout.contains("✗ payments"),
        "{}",
        text(&out)
    );
    assert!(
        stdout.contains(
            "check rule notNull(method) failed: expected 0 violating rows, got 2 violating rows"
        ),
        "{}",
        text(&out)
    );
    assert!(stdout.contains("12 dataset(s): "), "{}", text(&out));
    assert!(stdout.contains("8 up to date"), "{}", text(&out));
}

#[test]
fn history_lists_status_changes_versions_and_attempts() {
    let ws = Workspace::new();
    copy_dir(&repo_root().join("samples"), &ws.path().join("samples"));
    ws.skein(&["migrate", "samples/customers.yaml"]);
    let (code, json) = ws.skein_json(&["history", "customers"]);
    assert_eq!(code, 0);
    let path: Vec<&str> = json["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["to"].as_str().unwrap())
        .collect();
    assert_eq!(
        path,
        [
            "pending",
            "in_progress",
            "migrated",
            "verified",
            "completed"
        ]
    );
    assert_eq!(json["versions"][0]["manifest"]["rows"], 6);
    assert_eq!(json["attempts"][0]["outcome"], "completed");
    let out = ws.skein(&["history", "customers"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("published v1"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_dependency_that_fails_skips_its_dependents_with_the_reason() {
    let ws = Workspace::new();
    copy_dir(&repo_root().join("samples"), &ws.path().join("samples"));
    std::fs::write(
        ws.path().join("samples/data/customers.csv"),
        "id,name\nx,y\n",
    )
    .unwrap();
    let (code, json) = ws.skein_json(&["migrate", "samples"]);
    assert_eq!(code, 1);
    let find = |n: &str| {
        json["datasets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["dataset"] == n)
            .unwrap()
            .clone()
    };
    assert_eq!(find("customers")["outcome"], "failed");
    assert_eq!(find("orders")["outcome"], "skipped");
    assert!(
        find("orders")["error"]
            .as_str()
            .unwrap()
            .contains("dependency `customers` ended failed")
    );
    assert_eq!(find("payments")["outcome"], "skipped");
    assert_eq!(
        find("events")["outcome"],
        "completed",
        "independent datasets still run"
    );
}

#[test]
fn usage_and_spec_errors_exit_2_and_run_nothing() {
    let ws = Workspace::new();
    let out = ws.skein(&["migrate", "no-such-thing"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("not a spec file, a directory of specs, nor a dataset in the catalog")
    );
    let out = ws.skein(&["migrate"]);
    assert_eq!(out.status.code(), Some(2));
    let out = ws.skein(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
    ws.write("bad.yaml", "apiVersion: skein/v1\nkind: Dataset\nmetadata: {name: x}\nspec:\n  source: {uri: a.csv, format: csv}\n  target: {uri: out}\n  transform: {sql: 'DROP TABLE source'}\n");
    let out = ws.skein(&["migrate", "bad.yaml"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bad.yaml:7: spec.transform.sql: refused"),
        "{}",
        text(&out)
    );
    assert!(
        !ws.path().join(".skein/catalog.db").exists() || {
            let (_, s) = ws.skein_json(&["status"]);
            s["datasets"].as_array().unwrap().is_empty()
        }
    );
    for cmd in [
        "migrate", "verify", "rollback", "status", "history", "validate", "bench", "states",
    ] {
        let out = ws.skein(&[cmd, "--help"]);
        assert_eq!(out.status.code(), Some(0), "{cmd} --help: {}", text(&out));
    }
}

#[test]
fn a_target_that_skein_does_not_manage_is_left_alone() {
    let ws = Workspace::new();
    ws.write("data/a.csv", "id\n1\n");
    ws.write("lake/mine/precious.parquet", "not ours");
    ws.write(
        "a.yaml",
        "apiVersion: skein/v1\nkind: Dataset\nmetadata: {name: mine}\nspec:\n  source: {uri: data/a.csv, format: csv}\n  target: {uri: lake/mine}\n",
    );
    let (code, json) = ws.skein_json(&["migrate", "a.yaml"]);
    assert_eq!(code, 1);
    assert!(
        json["datasets"][0]["error"]
            .as_str()
            .unwrap()
            .contains("is not managed by skein"),
        "{json:#}"
    );
    assert_eq!(
        std::fs::read_to_string(ws.path().join("lake/mine/precious.parquet")).unwrap(),
        "not ours"
    );
}

#[test]
fn bench_prints_its_figures() {
    let ws = Workspace::new();
    let out = ws.skein(&[
        "bench",
        "--rows",
        "20000",
        "--dir",
        ws.path().to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    // the tests run a debug build: it says its figures are meaningless
    assert_eq!(json["debugBuild"], cfg!(debug_assertions), "{json:#}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.contains("debug build; its figures are meaningless"),
        cfg!(debug_assertions),
        "{stderr}"
    );
    // the generated CSV looks like a real export: quoted line breaks, quotes, unicode
    let csv = std::fs::read_to_string(ws.path().join("orders-20000.csv")).unwrap();
    for quirk in [
        "\"left at the door\nring",
        "\r\nthen deliver",
        "\"\"hi\"\"",
        "李雷",
        ",\r\n",
    ] {
        assert!(csv.contains(quirk), "{quirk:?}");
    }
    assert_eq!(json["rows"], 20000);
    assert!(
        json["outputRows"].as_u64().unwrap() > 10000,
        "test events are filtered out: {json:#}"
    );
    assert!(json["migrate"]["rowsPerSec"].as_f64().unwrap() > 0.0);
    assert!(json["verify"]["peakRssBytes"].as_u64().unwrap() > 0);
}
