//! Delta Lake targets (`target.format: delta`) read back by engines that share no code
//! with skein: delta-rs (the `deltalake` package), Polars and DuckDB's delta extension, all
//! from `.venv/` (`scripts/setup`). For a dataset migrated to v1, then v2, then rolled
//! back, each reader sees exactly the rows skein verified for that version, locally and on
//! moto's S3; time travel reaches every published version; a re-run commits nothing; the
//! rollback is a RESTORE whose files are v1's, byte for byte. Also: a reader polling during
//! a publish sees v1 or v2, never a mix; a publish killed after its Delta commit is
//! finished without a second one; an allowed schema change evolves the table's schema and
//! a refused one commits nothing; Glue tables in moto follow publish and rollback for
//! both formats.

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::util::{Workspace, repo_root, text};

/// The source rows `ids` as CSV (`id,name,amount,ts`); `renamed` changes one name.
pub(crate) fn csv(ids: std::ops::RangeInclusive<i64>, renamed: Option<i64>) -> String {
    let mut out = String::from("id,name,amount,ts\n");
    for id in ids {
        let name = if Some(id) == renamed {
            format!("renamed-{id}")
        } else {
            format!("name-{id}")
        };
        out.push_str(&format!(
            "{id},{name},{}.{:02},2024-01-{:02} 10:{:02}:00\n",
            id * 3,
            id % 100,
            1 + id % 28,
            id % 60
        ));
    }
    out
}

/// The rows a reader must see for `csv(ids, renamed)`, as `read_delta.py` prints them.
pub(crate) fn rows(ids: std::ops::RangeInclusive<i64>, renamed: Option<i64>) -> Value {
    let rows: Vec<Value> = ids
        .map(|id| {
            let name = if Some(id) == renamed {
                format!("renamed-{id}")
            } else {
                format!("name-{id}")
            };
            serde_json::json!([
                id,
                name,
                format!("{}.{:02}", id * 3, id % 100),
                format!("2024-01-{:02}T10:{:02}:00", 1 + id % 28, id % 60)
            ])
        })
        .collect();
    Value::Array(rows)
}

const SQL: &str = "SELECT CAST(id AS BIGINT) AS id, name, CAST(amount AS DECIMAL(12,2)) AS amount, ts FROM source";

/// `orders.yaml`: the CSV at `source` into the Delta table at `target`.
fn spec(ws: &Workspace, source: &str, target: &str) {
    ws.write(
        "orders.yaml",
        &format!(
            "apiVersion: skein/v1\nkind: Dataset\nmetadata: {{name: orders}}\nspec:\n  source: {{uri: '{source}', format: csv}}\n  target: {{uri: '{target}', format: delta}}\n  transform:\n    sql: \"{SQL}\"\n  verify: {{key: id, checksum: true}}\n"
        ),
    );
}

/// `skein ARGS --json` in `ws` (with moto's AWS environment when `s3`).
pub(crate) fn skein_json(ws: &Workspace, args: &[&str], s3: bool) -> (i32, Value) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_skein"));
    cmd.args(args)
        .arg("--json")
        .current_dir(ws.path())
        .env("SKEIN_CATALOG", ws.path().join(".skein"))
        .env_remove("SKEIN_LOG");
    if s3 {
        cmd.envs(crate::moto::env());
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let last = stdout.lines().last().unwrap_or("null").to_string();
    let json = serde_json::from_str(&last)
        .unwrap_or_else(|e| panic!("skein {args:?}: {e}: {}", text(&out)));
    (out.status.code().unwrap_or(-1), json)
}

/// What the three readers see of the table at `uri` (`version`: a table version, or the
/// newest); DuckDB reads the newest only.
pub(crate) fn read(uri: &str, version: Option<u64>, s3: bool) -> Value {
    let python = repo_root().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing; run scripts/setup (it installs deltalake, polars and duckdb with its delta extension into .venv/)",
        python.display()
    );
    let mut cmd = Command::new(python);
    cmd.arg(repo_root().join("tests/python/read_delta.py"))
        .arg(uri)
        .arg(version.map_or("latest".to_string(), |v| v.to_string()));
    if s3 {
        cmd.envs(crate::moto::env());
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "read_delta.py {uri}: {}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)))
}

/// Every reader of the newest table version sees `want`, and the table version is `table`.
fn assert_readers(uri: &str, s3: bool, table: u64, want: &Value, what: &str) -> Value {
    let seen = read(uri, None, s3);
    assert_eq!(seen["version"], table, "{what}: table version");
    for engine in ["deltalake", "polars", "duckdb"] {
        assert_eq!(&seen[engine], want, "{what}: {engine}");
    }
    seen
}

/// The Delta log's commit files of a local table, in order.
fn commits(table: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(table.join("_delta_log"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".json"))
        .collect();
    out.sort();
    out
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// v1, v2, a re-run, a rollback and a publish after it, each read by the three engines.
/// `target` is the table's URI in the spec, `s3` says whether it is on moto.
fn v1_v2_rollback(ws: &Workspace, uri: &str, s3: bool, put_source: &dyn Fn(&str)) -> Vec<Value> {
    put_source(&csv(1..=5, None));
    let (code, json) = skein_json(ws, &["migrate", "orders.yaml"], s3);
    assert_eq!(code, 0, "{json:#}");
    assert_eq!(json["datasets"][0]["outcome"], "completed", "{json:#}");
    let v1 = assert_readers(uri, s3, 0, &rows(1..=5, None), "v1");

    put_source(&csv(1..=7, Some(2)));
    let (code, json) = skein_json(ws, &["migrate", "orders.yaml"], s3);
    assert_eq!(code, 0, "{json:#}");
    assert_eq!(json["datasets"][0]["version"], 2, "{json:#}");
    assert_readers(uri, s3, 1, &rows(1..=7, Some(2)), "v2");
    // Time travel to the first table version is v1, for any Delta reader.
    let back = read(uri, Some(0), s3);
    assert_eq!(
        back["deltalake"],
        rows(1..=5, None),
        "time travel: deltalake"
    );
    assert_eq!(back["polars"], rows(1..=5, None), "time travel: polars");

    // The same spec and source again: nothing new is committed.
    let (code, json) = skein_json(ws, &["migrate", "orders.yaml"], s3);
    assert_eq!(code, 0, "{json:#}");
    assert_eq!(read(uri, None, s3)["version"], 1, "a re-run committed");

    let (code, json) = skein_json(ws, &["rollback", "orders.yaml"], s3);
    assert_eq!(code, 0, "{json:#}");
    assert_eq!(json["datasets"][0]["outcome"], "rolled_back", "{json:#}");
    let restored = assert_readers(uri, s3, 2, &rows(1..=5, None), "rollback");
    // RESTORE semantics: the very files v1 was published with.
    assert_eq!(restored["files"], v1["files"], "rollback files");

    let (code, json) = skein_json(ws, &["history", "orders"], s3);
    assert_eq!(code, 0, "{json:#}");
    vec![v1, restored, json]
}

#[test]
fn a_delta_target_is_read_by_deltalake_polars_and_duckdb_through_v1_v2_and_rollback() {
    let ws = Workspace::new();
    spec(&ws, "in/orders.csv", "lake/orders");
    let table = ws.path().join("lake/orders");
    let uri = table.display().to_string();
    let [v1, _, history] = <[Value; 3]>::try_from(v1_v2_rollback(&ws, &uri, false, &|csv| {
        ws.write("in/orders.csv", csv);
    }))
    .unwrap();
    // Three commits: create (v1), overwrite (v2), restore (rollback); the re-run none.
    assert_eq!(commits(&table).len(), 3, "{:?}", commits(&table));
    let log: Vec<Value> =
        std::fs::read_to_string(table.join("_delta_log/00000000000000000002.json"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    let info = log
        .iter()
        .find_map(|a| a.get("commitInfo"))
        .expect("commitInfo");
    assert_eq!(info["operation"], "RESTORE", "{info:#}");
    assert_eq!(info["skein"]["version"], 1, "{info:#}");
    assert_eq!(info["skein"]["action"], "rollback", "{info:#}");
    assert_eq!(info["skein"]["rows"], 5, "{info:#}");
    // The files read after the rollback are v1's files, byte for byte.
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(table.join("_skein/versions/v1/_manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        info["skein"]["checksum"], manifest["checksum"],
        "the commit carries the verified checksum"
    );
    for (path, entry) in v1["files"]
        .as_array()
        .unwrap()
        .iter()
        .zip(manifest["files"].as_array().unwrap())
    {
        let bytes = std::fs::read(table.join(path.as_str().unwrap())).unwrap();
        assert_eq!(sha256(&bytes), entry["sha256"].as_str().unwrap(), "{path}");
    }
    // `skein history` lists the table version beside skein's.
    let tables: Vec<(Option<u64>, Option<u64>)> = history["versions"]
        .as_array()
        .unwrap_or_else(|| panic!("{history:#}"))
        .iter()
        .map(|v| {
            (
                v["manifest"]["version"].as_u64(),
                v["tableVersion"].as_u64(),
            )
        })
        .collect();
    assert_eq!(
        tables,
        [(Some(1), Some(0)), (Some(2), Some(1)), (Some(1), Some(2))],
        "{history:#}"
    );
}

#[test]
fn a_delta_target_on_s3_is_read_by_deltalake_polars_and_duckdb_through_v1_v2_and_rollback() {
    let b = crate::s3::bucket();
    let ws = Workspace::new();
    spec(&ws, "in/orders.csv", &format!("s3://{b}/lake/orders/"));
    let uri = format!("s3://{b}/lake/orders");
    let [_, _, history] = <[Value; 3]>::try_from(v1_v2_rollback(&ws, &uri, true, &|csv| {
        ws.write("in/orders.csv", csv);
    }))
    .unwrap();
    let operations: Vec<&str> = history["delta"]
        .as_array()
        .unwrap_or_else(|| panic!("{history:#}"))
        .iter()
        .map(|c| c["operation"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        operations,
        ["CREATE TABLE", "WRITE", "RESTORE"],
        "{history:#}"
    );
}

#[test]
fn a_publish_killed_after_the_delta_commit_is_finished_without_a_second_commit() {
    let ws = Workspace::new();
    spec(&ws, "in/orders.csv", "lake/orders");
    let table = ws.path().join("lake/orders");
    let uri = table.display().to_string();
    ws.write("in/orders.csv", &csv(1..=5, None));
    let (code, json) = skein_json(&ws, &["migrate", "orders.yaml"], false);
    assert_eq!(code, 0, "{json:#}");
    ws.write("in/orders.csv", &csv(1..=7, Some(2)));
    let out = Command::new(env!("CARGO_BIN_EXE_skein"))
        .args(["migrate", "orders.yaml"])
        .current_dir(ws.path())
        .env("SKEIN_CATALOG", ws.path().join(".skein"))
        .env("SKEIN_CRASH_AT", "delta.committed")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        None,
        "never reached the point: {}",
        text(&out)
    );
    // Killed: readers see v2 (the commit is the publish), skein's pointer is still v1.
    assert_readers(
        &uri,
        false,
        1,
        &rows(1..=7, Some(2)),
        "killed after the commit",
    );
    let current = std::fs::read_link(table.join("_skein/current")).unwrap();
    assert_eq!(current, Path::new("versions/v1"));
    // The next attempt finishes the publish: no second commit, skein at v2.
    let (code, json) = skein_json(&ws, &["migrate", "orders.yaml"], false);
    assert_eq!(code, 0, "{json:#}");
    assert_eq!(json["datasets"][0]["version"], 2, "{json:#}");
    assert_eq!(commits(&table).len(), 2, "{:?}", commits(&table));
    let current = std::fs::read_link(table.join("_skein/current")).unwrap();
    assert_eq!(current, Path::new("versions/v2"));
    assert_readers(
        &uri,
        false,
        1,
        &rows(1..=7, Some(2)),
        "after the next attempt",
    );
}

/// What pyarrow's datasets (the Hive rule: `_` and `.` names hidden), DuckDB and Polars
/// read of the Parquet directory `location` (Hive partitions as columns), as `columns`;
/// each engine must see the same rows, which are returned.
pub(crate) fn read_parquet_dir(location: &str, columns: &str, s3: bool) -> Value {
    let mut cmd = Command::new(repo_root().join(".venv/bin/python"));
    cmd.arg(repo_root().join("tests/python/read_parquet.py"))
        .args([location, columns]);
    if s3 {
        cmd.envs(crate::moto::env());
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "read_parquet.py {location}: {}",
        text(&out)
    );
    let seen: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    for engine in ["polars", "duckdb"] {
        assert_eq!(
            seen[engine], seen["pyarrow"],
            "{location}: {engine} and pyarrow"
        );
    }
    seen
}

/// The Glue table `database.table` in moto's Glue, as boto3 reads it.
pub(crate) fn glue_table(database: &str, table: &str) -> Value {
    let script = r#"
import json, os, sys, boto3
g = boto3.client("glue", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name=os.environ["AWS_REGION"])
t = g.get_table(DatabaseName=sys.argv[1], Name=sys.argv[2])["Table"]
parts = []
for page in g.get_paginator("get_partitions").paginate(DatabaseName=sys.argv[1], TableName=sys.argv[2]):
    parts += [[p["Values"], p["StorageDescriptor"]["Location"]] for p in page["Partitions"]]
print(json.dumps({"location": t["StorageDescriptor"]["Location"], "parameters": t.get("Parameters", {}),
                  "columns": [[c["Name"], c["Type"]] for c in t["StorageDescriptor"].get("Columns", [])],
                  "partitionKeys": [[c["Name"], c["Type"]] for c in t.get("PartitionKeys", [])],
                  "partitions": sorted(parts)}))
"#;
    let out = Command::new(repo_root().join(".venv/bin/python"))
        .args(["-c", script, database, table])
        .envs(crate::moto::env())
        .output()
        .unwrap();
    assert!(out.status.success(), "glue get_table: {}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn publish_and_rollback_create_and_update_the_glue_table_for_both_formats() {
    let b = crate::s3::bucket();
    let db = crate::moto::unique("skein_glue").replace('-', "_");
    let ws = Workspace::new();
    for (name, format) in [("deltaorders", "delta"), ("plainorders", "parquet")] {
        ws.write(
            &format!("{name}.yaml"),
            &format!(
                "apiVersion: skein/v1\nkind: Dataset\nmetadata: {{name: {name}}}\nspec:\n  source: {{uri: in/orders.csv, format: csv}}\n  target: {{uri: 's3://{b}/lake/{name}/', format: {format}, glue: {{database: {db}, table: {name}}}}}\n  transform:\n    sql: \"{SQL}\"\n"
            ),
        );
    }
    let migrate = |what: &str| {
        for name in ["deltaorders", "plainorders"] {
            let (code, json) = skein_json(&ws, &[what, &format!("{name}.yaml")], true);
            assert_eq!(code, 0, "{what} {name}: {json:#}");
        }
    };
    let check = |version: u64| {
        let delta = glue_table(&db, "deltaorders");
        assert_eq!(
            delta["location"],
            format!("s3://{b}/lake/deltaorders/"),
            "{delta:#}"
        );
        assert_eq!(delta["parameters"]["table_type"], "DELTA", "{delta:#}");
        assert_eq!(
            delta["parameters"]["skein.version"],
            version.to_string(),
            "{delta:#}"
        );
        let plain = glue_table(&db, "plainorders");
        assert_eq!(
            plain["location"],
            format!("s3://{b}/lake/plainorders/versions/v{version}/"),
            "{plain:#}"
        );
        assert_eq!(
            plain["parameters"]["skein.version"],
            version.to_string(),
            "{plain:#}"
        );
        assert_eq!(
            plain["columns"],
            serde_json::json!([
                ["id", "bigint"],
                ["name", "string"],
                ["amount", "decimal(12,2)"],
                ["ts", "timestamp"]
            ]),
            "{plain:#}"
        );
    };
    // What an engine over the Glue table of the Parquet target reads at its location.
    let read_plain = |want: &Value, what: &str| {
        let location = glue_table(&db, "plainorders")["location"]
            .as_str()
            .unwrap()
            .to_string();
        let seen = read_parquet_dir(&location, "id,name,amount,ts", true);
        assert_eq!(&seen["pyarrow"], want, "{what}: rows at {location}");
        assert!(
            seen["files"]
                .as_array()
                .unwrap()
                .iter()
                .all(|f| f.as_str().unwrap().ends_with(".parquet")),
            "{what}: only data files are visible: {seen:#}"
        );
    };
    ws.write("in/orders.csv", &csv(1..=5, None));
    migrate("migrate");
    check(1);
    read_plain(&rows(1..=5, None), "v1");
    ws.write("in/orders.csv", &csv(1..=7, Some(2)));
    migrate("migrate");
    check(2);
    read_plain(&rows(1..=7, Some(2)), "v2");
    migrate("rollback");
    check(1);
    read_plain(&rows(1..=5, None), "rolled back to v1");
}

#[test]
fn a_reader_during_a_publish_sees_the_old_or_the_new_version_never_a_mix() {
    let ws = Workspace::new();
    spec(&ws, "in/orders.csv", "lake/orders");
    let uri = ws.path().join("lake/orders").display().to_string();
    ws.write("in/orders.csv", &csv(1..=300, None));
    let (code, json) = skein_json(&ws, &["migrate", "orders.yaml"], false);
    assert_eq!(code, 0, "{json:#}");
    let (ready, stop) = (ws.path().join("ready"), ws.path().join("stop"));
    let reader = Command::new(repo_root().join(".venv/bin/python"))
        .arg(repo_root().join("tests/python/watch_delta.py"))
        .args([
            &uri,
            &ready.display().to_string(),
            &stop.display().to_string(),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while !ready.exists() && started.elapsed() < std::time::Duration::from_secs(60) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(ready.exists(), "the reader never read the table");
    // v2 rewrites every name and adds rows: any mix of the two would show.
    ws.write(
        "in/orders.csv",
        &csv(1..=400, Some(7)).replace("name-", "new-"),
    );
    let (code, json) = skein_json(&ws, &["migrate", "orders.yaml"], false);
    assert_eq!(code, 0, "{json:#}");
    std::fs::write(&stop, "").unwrap();
    let out = reader.wait_with_output().unwrap();
    assert!(out.status.success(), "watch_delta.py: {}", text(&out));
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    let pairs = |rows: Value| -> Value {
        Value::Array(
            rows.as_array()
                .unwrap()
                .iter()
                .map(|r| serde_json::json!([r[0], r[1]]))
                .collect(),
        )
    };
    let v1 = pairs(rows(1..=300, None));
    let mut v2 = pairs(rows(1..=400, Some(7)));
    for r in v2.as_array_mut().unwrap() {
        r[1] = Value::String(r[1].as_str().unwrap().replace("name-", "new-"));
    }
    let results = seen["seen"].as_array().unwrap();
    assert!(seen["reads"].as_u64().unwrap() >= 2, "{}", seen["reads"]);
    assert_eq!(results.first(), Some(&v1), "the first read is v1");
    assert_eq!(
        results.last(),
        Some(&v2),
        "the last read (after the publish) is v2"
    );
    assert!(
        results.len() <= 2,
        "a reader saw {} different tables",
        results.len()
    );
}

/// The column names delta-rs sees at table version `version` (the newest when `None`).
fn columns(uri: &str, version: Option<u64>) -> Value {
    let script = "import json, sys, deltalake\nv = None if sys.argv[2] == 'latest' else int(sys.argv[2])\nt = deltalake.DeltaTable(sys.argv[1], version=v).to_pyarrow_table()\nprint(json.dumps({'columns': t.column_names, 'rows': t.num_rows}), flush=True)\nimport os; os._exit(0)  # delta-rs' runtime can abort at interpreter exit";
    let out = Command::new(repo_root().join(".venv/bin/python"))
        .args(["-c", script, uri])
        .arg(version.map_or("latest".to_string(), |v| v.to_string()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn an_allowed_schema_change_evolves_the_delta_schema_and_a_refused_one_commits_nothing() {
    let ws = Workspace::new();
    let uri = ws.path().join("lake/orders").display().to_string();
    let write = |sql: &str, change: &str| {
        ws.write(
            "orders.yaml",
            &format!(
                "apiVersion: skein/v1\nkind: Dataset\nmetadata: {{name: orders}}\nspec:\n  source: {{uri: in/orders.csv, format: csv}}\n  target: {{uri: lake/orders, format: delta}}\n  transform:\n    sql: \"{sql}\"\n  schemaChange: {change}\n"
            ),
        );
    };
    ws.write("in/orders.csv", &csv(1..=5, None));
    write(
        "SELECT CAST(id AS BIGINT) AS id, name FROM source",
        "refuse",
    );
    let (code, json) = skein_json(&ws, &["migrate", "orders.yaml"], false);
    assert_eq!(code, 0, "{json:#}");
    // A new column, refused: nothing is committed.
    write(SQL, "refuse");
    let (code, json) = skein_json(&ws, &["migrate", "orders.yaml"], false);
    assert_eq!(code, 1, "{json:#}");
    assert_eq!(
        columns(&uri, None)["columns"],
        serde_json::json!(["id", "name"])
    );
    assert_eq!(
        commits(&ws.path().join("lake/orders")).len(),
        1,
        "a refused change committed"
    );
    // Allowed: the table's schema evolves in the same commit; version 0 keeps the old one.
    write(SQL, "allow");
    let (code, json) = skein_json(&ws, &["migrate", "orders.yaml"], false);
    assert_eq!(code, 0, "{json:#}");
    assert_readers(&uri, false, 1, &rows(1..=5, None), "evolved");
    assert_eq!(
        columns(&uri, Some(0))["columns"],
        serde_json::json!(["id", "name"])
    );
}
