//! Incremental sources (issue 23): a directory of monthly exports that grows. Each run
//! migrates only the new files and publishes a version of the previous version's files
//! (hard links: no byte copied) plus the new ones; the published rows are compared with
//! what DuckDB reads from all the source files; a file that changed or disappeared is
//! refused by name, or migrated in full with `onChange: full`.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde_json::Value;

use crate::util::{Workspace, repo_root, text};

/// Rows of a DuckDB query run in `dir`, as JSON.
fn duckdb(dir: &Path, sql: &str) -> Value {
    crate::util::duckdb_rows(dir, "", sql)
}

/// One month's export as a real system writes it: a BOM, quoted line breaks and commas,
/// unicode, empty (null) values, timestamps with zones; `rows` rows from id `first`.
fn export(ws: &Workspace, month: &str, first: u64, rows: u64) {
    let mut csv = String::from("\u{feff}id,name,note,amount,at\n");
    for id in first..first + rows {
        let note = match id % 4 {
            0 => "\"line one\nline two, with a comma\"".to_string(),
            1 => String::new(),
            2 => format!("\"Grüße aus Köln 🎉 #{id}\""),
            _ => format!("plain {id}"),
        };
        let amount = if id % 7 == 0 {
            String::new()
        } else {
            format!("{}.{:02}", id * 3, id % 100)
        };
        let at = match id % 3 {
            0 => format!("2024-{month}-0{}T10:15:00+02:00", 1 + id % 9),
            1 => format!("2024-{month}-1{}T23:59:59Z", id % 9),
            _ => String::new(),
        };
        csv.push_str(&format!("{id},Zoë {id},{note},{amount},{at}\n"));
    }
    ws.write(&format!("exports/2024-{month}.csv"), &csv);
}

fn spec(ws: &Workspace, extra: &str) {
    ws.write(
        "orders.yaml",
        &format!(
            "apiVersion: skein/v1\nkind: Dataset\nmetadata: {{name: orders}}\nspec:\n  \
             source: {{uri: exports, format: csv, mode: incremental{extra}}}\n  target: {{uri: lake/orders}}\n  \
             transform:\n    sql: \"SELECT id, name, note, amount, at FROM source WHERE id % 10 <> 5\"\n  \
             verify:\n    rules: [{{unique: id}}, {{notNull: name}}]\n"
        ),
    );
}

/// `skein migrate orders.yaml --json`: the exit code and the dataset's result.
fn migrate(ws: &Workspace) -> (i32, Value) {
    let (code, json) = ws.skein_json(&["migrate", "orders.yaml"]);
    (code, json["datasets"][0].clone())
}

/// The published rows, and what DuckDB reads from every export through the same filter.
fn published_and_expected(ws: &Workspace) -> (Value, Value) {
    let published = duckdb(
        ws.path(),
        "SELECT id, name, note, amount, epoch_ms(\"at\") FROM 'lake/orders/*.parquet' ORDER BY id",
    );
    let expected = duckdb(
        ws.path(),
        "SELECT id, name, note, amount, epoch_ms(\"at\") FROM read_csv('exports/*.csv') \
         WHERE id % 10 <> 5 ORDER BY id",
    );
    (published, expected)
}

/// The inode of each data file of version `n`, by name.
fn inodes(ws: &Workspace, n: u64) -> Vec<(String, u64)> {
    let dir = ws.path().join(format!("lake/.orders.skein/versions/v{n}"));
    let mut out: Vec<(String, u64)> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".parquet"))
        .map(|e| {
            (
                e.file_name().to_string_lossy().to_string(),
                e.metadata().unwrap().ino(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn a_growing_source_publishes_one_version_per_run_made_of_the_old_files_and_the_new() {
    let ws = Workspace::new();
    spec(&ws, "");
    export(&ws, "01", 1, 400);
    let (code, d) = migrate(&ws);
    assert_eq!(code, 0, "{d:#}");
    assert_eq!(
        (d["outcome"].as_str(), d["version"].as_u64()),
        (Some("completed"), Some(1))
    );
    assert_eq!(d["rows"], 360, "{d:#}");
    let (published, expected) = published_and_expected(&ws);
    assert_eq!(published, expected);

    // Grown three times: one month, then two at once, then one more.
    let growths: [&[(&str, u64, u64)]; 3] = [
        &[("02", 401, 300)],
        &[("03", 701, 250), ("04", 951, 50)],
        &[("05", 1001, 500)],
    ];
    let mut rows_before = 360u64;
    for (i, months) in growths.iter().enumerate() {
        let version = i as u64 + 2;
        let before = inodes(&ws, version - 1);
        for (month, first, rows) in months.iter() {
            export(&ws, month, *first, *rows);
        }
        let (code, d) = migrate(&ws);
        assert_eq!(code, 0, "{d:#}");
        assert_eq!(d["version"].as_u64(), Some(version), "{d:#}");
        let new_rows: u64 = months.iter().map(|(_, _, r)| r * 9 / 10).sum();
        assert_eq!(d["rows"].as_u64(), Some(rows_before + new_rows), "{d:#}");
        let note = d["incremental"].as_str().unwrap_or_default();
        assert!(
            note.contains(&format!(
                "{} new file(s), {new_rows} new row(s), added to v{}",
                months.len(),
                version - 1
            )),
            "{note}"
        );
        rows_before += new_rows;
        // The right rows: all the exports' so far, as DuckDB reads them.
        let (published, expected) = published_and_expected(&ws);
        assert_eq!(
            published.as_array().map(Vec::len),
            Some(rows_before as usize)
        );
        assert_eq!(published, expected, "v{version}");
        // No copy: the previous version's files are the very same inodes in this one.
        let now = inodes(&ws, version);
        for old in &before {
            assert!(now.contains(old), "v{version} lacks {old:?}: {now:?}");
        }
        assert!(now.len() > before.len(), "{now:?}");
    }

    // Nothing new: up to date, no version made.
    let (code, d) = migrate(&ws);
    assert_eq!(code, 0, "{d:#}");
    assert_eq!(d["outcome"], "up_to_date", "{d:#}");
    assert_eq!(d["version"].as_u64(), Some(4));

    // `skein verify` reads the whole version back against the whole source.
    let out = ws.skein(&["verify", "orders.yaml"]);
    assert!(out.status.success(), "{}", text(&out));

    // A duplicate id in a new month fails `unique` across the whole version, and the
    // published version stays.
    ws.write(
        "exports/2024-06.csv",
        "id,name,note,amount,at\n7,again,,1.00,\n",
    );
    let (code, d) = migrate(&ws);
    assert_eq!(code, 1, "{d:#}");
    assert_eq!(d["outcome"], "verification_failed", "{d:#}");
    assert!(d.to_string().contains("unique(id)"), "{d:#}");
    std::fs::remove_file(ws.path().join("exports/2024-06.csv")).unwrap();

    // Rollback returns to the previous version: v3's rows.
    let out = ws.skein(&["rollback", "orders.yaml"]);
    assert!(out.status.success(), "{}", text(&out));
    let count = duckdb(ws.path(), "SELECT count(*) FROM 'lake/orders/*.parquet'");
    assert_eq!(count, serde_json::json!([[rows_before - 450]]));
}

#[test]
fn a_changed_or_missing_old_file_is_refused_by_name_or_migrated_in_full_with_on_change_full() {
    let ws = Workspace::new();
    spec(&ws, "");
    export(&ws, "01", 1, 100);
    export(&ws, "02", 101, 100);
    let (code, d) = migrate(&ws);
    assert_eq!(code, 0, "{d:#}");
    assert_eq!(d["rows"], 180);

    // January re-exported with a corrected row: refused naming the file; v1 stays.
    let jan = ws.path().join("exports/2024-01.csv");
    let text_jan = std::fs::read_to_string(&jan).unwrap();
    std::fs::write(&jan, text_jan.replace("Zoë 2,", "Zoe 2 (fixed),")).unwrap();
    export(&ws, "03", 201, 100);
    let (code, d) = migrate(&ws);
    assert_eq!(code, 1, "{d:#}");
    let error = d["error"].as_str().unwrap_or_default();
    for says in [
        "2024-01.csv` changed (its size went from",
        "since v1",
        "onChange: full",
    ] {
        assert!(error.contains(says), "`{says}` missing in {error}");
    }
    assert_eq!(d["errorName"], "Skein.SourceChanged", "{d:#}");
    let count = duckdb(ws.path(), "SELECT count(*) FROM 'lake/orders/*.parquet'");
    assert_eq!(count, serde_json::json!([[180]]));

    // A month that disappeared is named the same way.
    std::fs::write(&jan, &text_jan).unwrap(); // same bytes, but a new modification time
    std::fs::rename(
        ws.path().join("exports/2024-02.csv"),
        ws.path().join("2024-02.csv.away"),
    )
    .unwrap();
    let (code, d) = migrate(&ws);
    assert_eq!(code, 1, "{d:#}");
    let error = d["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("2024-01.csv` changed (it was modified)")
            || error.contains("2024-02.csv` disappeared"),
        "{error}"
    );
    std::fs::rename(
        ws.path().join("2024-02.csv.away"),
        ws.path().join("exports/2024-02.csv"),
    )
    .unwrap();

    // With `onChange: full` the whole source is migrated again, the fix included.
    std::fs::write(&jan, text_jan.replace("Zoë 2,", "Zoe 2 (fixed),")).unwrap();
    spec(&ws, ", onChange: full");
    let (code, d) = migrate(&ws);
    assert_eq!(code, 0, "{d:#}");
    assert_eq!(d["rows"], 270, "{d:#}");
    let fixed = duckdb(
        ws.path(),
        "SELECT name FROM 'lake/orders/*.parquet' WHERE id = 2",
    );
    assert_eq!(fixed, serde_json::json!([["Zoe 2 (fixed)"]]));
    // then it adds again: April only
    export(&ws, "04", 301, 100);
    let (code, d) = migrate(&ws);
    assert_eq!(code, 0, "{d:#}");
    assert!(
        d["incremental"]
            .as_str()
            .unwrap_or_default()
            .contains("1 new file(s), 90 new row(s), added to v2"),
        "{d:#}"
    );
    let (published, expected) = published_and_expected(&ws);
    assert_eq!(published, expected);
}

#[test]
fn what_cannot_run_incrementally_is_refused_with_the_reason() {
    let ws = Workspace::new();
    export(&ws, "01", 1, 20);
    let spec_with = |source: &str, transform: &str| {
        format!(
            "apiVersion: skein/v1\nkind: Dataset\nmetadata: {{name: orders}}\nspec:\n  \
             source: {source}\n  target: {{uri: lake/orders}}\n  transform: {transform}\n"
        )
    };
    // Checked before any data is read.
    ws.write(
        "chunked.yaml",
        &spec_with(
            "{uri: exports, format: csv, mode: incremental, chunkSize: 64MiB}",
            "{sql: 'SELECT * FROM source'}",
        ),
    );
    ws.write(
        "command.yaml",
        &spec_with(
            "{uri: exports, format: csv, mode: incremental}",
            "{command: [python3, x.py]}",
        ),
    );
    ws.write(
        "onchange.yaml",
        &spec_with(
            "{uri: exports, format: csv, onChange: full}",
            "{sql: 'SELECT * FROM source'}",
        ),
    );
    for (file, says) in [
        ("chunked.yaml", "spec.source.chunkSize"),
        ("command.yaml", "rowWise: true"),
        ("onchange.yaml", "spec.source.onChange"),
    ] {
        let out = ws.skein(&["validate", file]);
        assert_eq!(out.status.code(), Some(2), "{file}: {}", text(&out));
        assert!(text(&out).contains(says), "{file}: {}", text(&out));
    }
    // Needs the plan: an aggregate sees only the new files, so it is refused.
    ws.write(
        "agg.yaml",
        &spec_with(
            "{uri: exports, format: csv, mode: incremental}",
            "{sql: 'SELECT name, count(*) AS n FROM source GROUP BY name'}",
        ),
    );
    // One file is not a growing source.
    ws.write(
        "one.yaml",
        &spec_with(
            "{uri: exports/2024-01.csv, format: csv, mode: incremental}",
            "{sql: 'SELECT * FROM source'}",
        ),
    );
    for (file, says) in [
        ("agg.yaml", "the transform aggregates"),
        ("one.yaml", "is one file"),
    ] {
        let out = ws.skein(&["migrate", file]);
        assert_eq!(out.status.code(), Some(1), "{file}: {}", text(&out));
        assert!(text(&out).contains(says), "{file}: {}", text(&out));
    }
    // A key that appears in a later NDJSON file would be dropped by a read with the
    // version's recorded types: refused, naming it and the file.
    ws.write(
        "events/2024-01.ndjson",
        "{\"id\": 1, \"kind\": \"click\"}\n{\"id\": 2, \"kind\": \"view\"}\n",
    );
    ws.write(
        "events.yaml",
        &spec_with(
            "{uri: events, format: ndjson, mode: incremental}",
            "{sql: 'SELECT * FROM source'}",
        ),
    );
    let out = ws.skein(&["migrate", "events.yaml"]);
    assert!(out.status.success(), "{}", text(&out));
    ws.write(
        "events/2024-02.ndjson",
        "{\"id\": 3, \"kind\": \"click\", \"campaign\": \"black-friday\"}\n",
    );
    let out = ws.skein(&["migrate", "events.yaml"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    for says in ["2024-02.ndjson", "column(s) `campaign`", "mode: full"] {
        assert!(text(&out).contains(says), "`{says}`: {}", text(&out));
    }
    let rows = duckdb(ws.path(), "SELECT count(*) FROM 'lake/orders/*.parquet'");
    assert_eq!(rows, serde_json::json!([[2]]));
}

#[test]
fn an_incremental_delta_table_gets_one_commit_per_run_and_rolls_back() {
    let ws = Workspace::new();
    export(&ws, "01", 1, 100);
    ws.write(
        "orders.yaml",
        "apiVersion: skein/v1\nkind: Dataset\nmetadata: {name: orders}\nspec:\n  \
         source: {uri: exports, format: csv, mode: incremental}\n  \
         target: {uri: lake/orders, format: delta}\n",
    );
    let (code, d) = migrate(&ws);
    assert_eq!(code, 0, "{d:#}");
    export(&ws, "02", 101, 40);
    let (code, d) = migrate(&ws);
    assert_eq!(code, 0, "{d:#}");
    assert_eq!(d["rows"], 140, "{d:#}");
    // delta-rs reads the table's newest commit: both months, row for row DuckDB's CSV.
    let read = || -> Value {
        let script = "import json\nfrom deltalake import DeltaTable\nt = DeltaTable('lake/orders')\n\
             rows = sorted(t.to_pyarrow_table().select(['id', 'name', 'note']).to_pylist(), key=lambda r: r['id'])\n\
             print(json.dumps([[r['id'], r['name'], r['note']] for r in rows]), flush=True)\n\
             import os; os._exit(0)  # delta-rs' runtime threads can abort a normal exit\n";
        let out = std::process::Command::new(repo_root().join(".venv/bin/python"))
            .arg("-c")
            .arg(script)
            .current_dir(ws.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let expected = duckdb(
        ws.path(),
        "SELECT id, name, note FROM read_csv('exports/*.csv') ORDER BY id",
    );
    assert_eq!(read(), expected);
    // Rollback: a commit that restores January alone.
    let out = ws.skein(&["rollback", "orders.yaml"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(read().as_array().map(Vec::len), Some(100));
}

fn entered(ws: &Workspace, run: &str, dataset: &str) -> Vec<String> {
    ws.states_entered(&format!("{run}-{dataset}"))
}

// The fleet's large-job threshold weighs what a run reads: the whole first export goes to
// the container worker, a small month added later stays on the queue's workers.
#[test]
fn only_the_new_files_count_against_the_large_job_threshold() {
    let ws = Workspace::new();
    spec(&ws, "");
    export(&ws, "01", 1, 2_000);
    ws.write(
        "skein.yaml",
        "apiVersion: skein/v1\nkind: Fleet\nspec:\n  canary: {size: 0}\n  \
         largeJobs: {threshold: 64KiB}\n",
    );
    let (code, json) = ws.skein_json(&["run", "."]);
    assert_eq!(code, 0, "{json:#}");
    let run = json["runId"].as_str().unwrap().to_string();
    assert!(entered(&ws, &run, "orders").contains(&"MigrateOnFargate".to_string()));
    export(&ws, "02", 2_001, 100);
    let (code, json) = ws.skein_json(&["run", "."]);
    assert_eq!(code, 0, "{json:#}");
    let run = json["runId"].as_str().unwrap().to_string();
    let states = entered(&ws, &run, "orders");
    assert!(
        !states.contains(&"MigrateOnFargate".to_string()),
        "{states:?}"
    );
    assert!(states.contains(&"Publish".to_string()), "{states:?}");
    let (published, expected) = published_and_expected(&ws);
    assert_eq!(published.as_array().map(Vec::len), Some(1_890));
    assert_eq!(published, expected);
}

#[test]
fn a_partitioned_target_grows_by_the_new_files_partitions() {
    let ws = Workspace::new();
    export(&ws, "01", 1, 300);
    ws.write(
        "orders.yaml",
        "apiVersion: skein/v1\nkind: Dataset\nmetadata: {name: orders}\nspec:\n  \
         source: {uri: exports, format: csv, mode: incremental}\n  \
         target: {uri: lake/orders, partitionBy: [parity]}\n  \
         transform:\n    sql: \"SELECT id, name, note, CASE WHEN id % 2 = 0 THEN 'even' ELSE 'odd' END AS parity FROM source\"\n  \
         verify:\n    rules: [{unique: id}, {notNull: parity}]\n",
    );
    let (code, d) = migrate(&ws);
    assert_eq!(code, 0, "{d:#}");
    export(&ws, "02", 301, 200);
    let (code, d) = migrate(&ws);
    assert_eq!(code, 0, "{d:#}");
    assert_eq!(
        (d["version"].as_u64(), d["rows"].as_u64()),
        (Some(2), Some(500))
    );
    assert!(
        d["incremental"]
            .as_str()
            .unwrap_or_default()
            .contains("1 new file(s), 200 new row(s), added to v1"),
        "{d:#}"
    );
    // Both months in each partition directory, as DuckDB reads a hive-partitioned tree.
    let published = duckdb(
        ws.path(),
        "SELECT id, name, note, parity FROM read_parquet('lake/orders/*/*.parquet', hive_partitioning = true) ORDER BY id",
    );
    let expected = duckdb(
        ws.path(),
        "SELECT id, name, note, CASE WHEN id % 2 = 0 THEN 'even' ELSE 'odd' END FROM read_csv('exports/*.csv') ORDER BY id",
    );
    assert_eq!(published.as_array().map(Vec::len), Some(500));
    assert_eq!(published, expected);
}
