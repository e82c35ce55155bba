//! Partitioned targets (`target.partitionBy`): a Parquet target's files go into Hive-style
//! `col=value/` directories and a Delta table records its partition columns; external
//! readers (pyarrow datasets, DuckDB and Polars with Hive partitioning; delta-rs, Polars
//! and DuckDB's delta extension) see exactly the rows skein verified, locally and on
//! moto's S3; verification reads the partition values back from the paths, so checksums
//! agree; a column that cannot partition is refused naming the field.

use serde_json::Value;

use crate::delta::{csv, read, read_parquet_dir, rows, skein_json};
use crate::util::Workspace;

const SQL: &str = "SELECT CAST(id AS BIGINT) AS id, name, CAST(amount AS DECIMAL(12,2)) AS amount, ts, CAST(id % 3 AS BIGINT) AS bucket, CASE WHEN id % 2 = 0 THEN 'even' ELSE 'odd' END AS parity FROM source";

/// `NAME.yaml`: the CSV `in/orders.csv` into `target` as `format`, partitioned by `by`.
fn spec(ws: &Workspace, name: &str, target: &str, format: &str, by: &str, sql: &str) {
    ws.write(
        &format!("{name}.yaml"),
        &format!(
            "apiVersion: skein/v1\nkind: Dataset\nmetadata: {{name: {name}}}\nspec:\n  source: {{uri: in/orders.csv, format: csv}}\n  target: {{uri: '{target}', format: {format}, partitionBy: {by}}}\n  transform:\n    sql: \"{sql}\"\n  verify: {{key: id, checksum: true}}\n"
        ),
    );
}

/// `rows(ids, renamed)` with each row's `bucket` and `parity` appended.
fn partitioned_rows(ids: std::ops::RangeInclusive<i64>, renamed: Option<i64>) -> Value {
    let mut out: Vec<Value> = rows(ids, renamed)
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let mut r = r.as_array().unwrap().clone();
            let id = r[0].as_i64().unwrap();
            r.push((id % 3).into());
            r.push(if id % 2 == 0 { "even" } else { "odd" }.into());
            Value::Array(r)
        })
        .collect();
    out.sort_by_key(|r| r.to_string());
    Value::Array(out)
}

/// Migrates `name` and checks that it completed (verification passed, checksum included).
fn migrate(ws: &Workspace, name: &str, s3: bool) -> Value {
    let (code, json) = skein_json(ws, &["migrate", &format!("{name}.yaml")], s3);
    assert_eq!(code, 0, "{json:#}");
    assert_eq!(json["datasets"][0]["outcome"], "completed", "{json:#}");
    json
}

/// A published version's data files are all under `bucket=…/parity=…/` directories.
fn assert_hive_dirs(files: &Value, what: &str) {
    let files = files.as_array().unwrap();
    assert!(!files.is_empty(), "{what}: no files");
    for f in files {
        let f = f.as_str().unwrap();
        let dirs: Vec<&str> = f.split('/').collect();
        assert!(
            dirs.len() >= 3
                && dirs[dirs.len() - 3].starts_with("bucket=")
                && dirs[dirs.len() - 2].starts_with("parity="),
            "{what}: {f} is not in bucket=…/parity=…/"
        );
    }
}

#[test]
fn a_partitioned_parquet_target_is_read_with_hive_partitioning_and_verifies() {
    let ws = Workspace::new();
    spec(
        &ws,
        "porders",
        "lake/porders",
        "parquet",
        "[bucket, parity]",
        SQL,
    );
    ws.write("in/orders.csv", &csv(1..=20, None));
    migrate(&ws, "porders", false);
    let dir = ws.path().join("lake/porders").display().to_string();
    let seen = read_parquet_dir(&dir, "id,name,amount,ts,bucket,parity", false);
    assert_eq!(seen["pyarrow"], partitioned_rows(1..=20, None), "v1");
    assert_hive_dirs(&seen["files"], "v1");
    // verification of the published version reads the partition values from the paths
    let (code, json) = skein_json(&ws, &["verify", "porders.yaml"], false);
    assert_eq!(code, 0, "{json:#}");

    ws.write("in/orders.csv", &csv(1..=25, Some(4)));
    let json = migrate(&ws, "porders", false);
    assert_eq!(json["datasets"][0]["version"], 2, "{json:#}");
    let seen = read_parquet_dir(&dir, "id,name,amount,ts,bucket,parity", false);
    assert_eq!(seen["pyarrow"], partitioned_rows(1..=25, Some(4)), "v2");

    let (code, json) = skein_json(&ws, &["rollback", "porders.yaml"], false);
    assert_eq!(code, 0, "{json:#}");
    let seen = read_parquet_dir(&dir, "id,name,amount,ts,bucket,parity", false);
    assert_eq!(
        seen["pyarrow"],
        partitioned_rows(1..=20, None),
        "rolled back"
    );
}

#[test]
fn a_partitioned_delta_table_has_partition_columns_and_is_read_by_delta_readers() {
    let ws = Workspace::new();
    spec(
        &ws,
        "dorders",
        "lake/dorders",
        "delta",
        "[bucket, parity]",
        SQL,
    );
    ws.write("in/orders.csv", &csv(1..=20, None));
    migrate(&ws, "dorders", false);
    let table = ws.path().join("lake/dorders");
    let first =
        std::fs::read_to_string(table.join("_delta_log/00000000000000000000.json")).unwrap();
    let metadata: Value = first
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find_map(|a| a.get("metaData").cloned())
        .expect("a metaData action");
    assert_eq!(
        metadata["partitionColumns"],
        serde_json::json!(["bucket", "parity"])
    );
    let uri = table.display().to_string();
    let seen = read(&uri, None, false);
    for engine in ["deltalake", "polars", "duckdb"] {
        assert_eq!(seen[engine], rows(1..=20, None), "v1: {engine}");
    }
    assert_hive_dirs(&seen["files"], "delta v1");
    let (code, json) = skein_json(&ws, &["verify", "dorders.yaml"], false);
    assert_eq!(code, 0, "{json:#}");

    ws.write("in/orders.csv", &csv(1..=25, Some(4)));
    migrate(&ws, "dorders", false);
    let seen = read(&uri, None, false);
    for engine in ["deltalake", "polars", "duckdb"] {
        assert_eq!(seen[engine], rows(1..=25, Some(4)), "v2: {engine}");
    }
}

#[test]
fn partitioned_parquet_and_delta_targets_on_s3_are_read_by_external_readers() {
    let b = crate::s3::bucket();
    let ws = Workspace::new();
    let target = format!("s3://{b}/lake/porders/");
    spec(&ws, "porders", &target, "parquet", "[bucket, parity]", SQL);
    ws.write("in/orders.csv", &csv(1..=20, None));
    migrate(&ws, "porders", true);
    let seen = read_parquet_dir(
        &format!("{target}versions/v1/"),
        "id,name,amount,ts,bucket,parity",
        true,
    );
    assert_eq!(seen["pyarrow"], partitioned_rows(1..=20, None));
    assert_hive_dirs(&seen["files"], "s3 v1");
    let (code, json) = skein_json(&ws, &["verify", "porders.yaml"], true);
    assert_eq!(code, 0, "{json:#}");

    // The same as a Delta table on S3: delta-rs, Polars and DuckDB read its partitions.
    let table = format!("s3://{b}/lake/dorders/");
    spec(&ws, "dorders", &table, "delta", "[bucket, parity]", SQL);
    migrate(&ws, "dorders", true);
    let seen = read(&table, None, true);
    for engine in ["deltalake", "polars", "duckdb"] {
        assert_eq!(seen[engine], rows(1..=20, None), "s3 delta: {engine}");
    }
    assert_hive_dirs(&seen["files"], "s3 delta");
}

#[test]
fn a_column_that_cannot_partition_is_refused_naming_the_field() {
    let ws = Workspace::new();
    ws.write("in/orders.csv", &csv(1..=5, None));
    for (by, sql, want) in [
        (
            "[bucket, nope]",
            SQL,
            "spec.target.partitionBy[1]: `nope` is not an output column",
        ),
        (
            "[amount]",
            "SELECT CAST(id AS BIGINT) AS id, CAST(amount AS DOUBLE) AS amount FROM source",
            "spec.target.partitionBy[0]: column `amount` is of type Float64, which cannot partition",
        ),
        (
            "[name]",
            "SELECT CAST(id AS BIGINT) AS id, CASE WHEN id = 3 THEN 'a/b' ELSE name END AS name FROM source",
            "partition column `name` (spec.target.partitionBy) has value `a/b`",
        ),
    ] {
        spec(&ws, "bad", "lake/bad", "parquet", by, sql);
        let (code, json) = skein_json(&ws, &["migrate", "bad.yaml"], false);
        assert_ne!(code, 0, "{by}: {json:#}");
        let text = json.to_string();
        assert!(text.contains(want), "{by}: want {want:?} in {json:#}");
        assert!(
            !ws.path().join("lake/bad").exists(),
            "{by}: nothing published"
        );
    }
}

// A partitioned Parquet target registered in Glue: the partition columns are the table's
// PartitionKeys, and each `col=value/` directory of the current version is a partition,
// registered anew on publish and rollback (Athena reads them without MSCK REPAIR TABLE).
#[test]
fn a_partitioned_parquet_target_registers_its_partitions_in_glue() {
    let b = crate::s3::bucket();
    let ws = Workspace::new();
    let db = crate::moto::unique("skein_parts").replace('-', "_");
    let target = format!("s3://{b}/lake/gorders/");
    ws.write(
        "gorders.yaml",
        &format!(
            "apiVersion: skein/v1\nkind: Dataset\nmetadata: {{name: gorders}}\nspec:\n  source: {{uri: in/orders.csv, format: csv}}\n  target: {{uri: '{target}', partitionBy: [bucket, parity], glue: {{database: {db}, table: gorders}}}}\n  transform:\n    sql: \"{SQL}\"\n"
        ),
    );
    let expect = |version: u64| -> Vec<Value> {
        let mut out = Vec::new();
        for bucket in 0..3 {
            for parity in ["even", "odd"] {
                out.push(serde_json::json!([
                    [bucket.to_string(), parity],
                    format!("{target}versions/v{version}/bucket={bucket}/parity={parity}/")
                ]));
            }
        }
        out.sort_by_key(|v| v.to_string());
        out
    };
    ws.write("in/orders.csv", &csv(1..=20, None));
    migrate(&ws, "gorders", true);
    let t = crate::delta::glue_table(&db, "gorders");
    assert_eq!(
        t["partitionKeys"],
        serde_json::json!([["bucket", "bigint"], ["parity", "string"]]),
        "{t:#}"
    );
    let columns: Vec<&str> = t["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c[0].as_str().unwrap())
        .collect();
    assert_eq!(columns, ["id", "name", "amount", "ts"], "{t:#}");
    let mut got: Vec<Value> = t["partitions"].as_array().unwrap().clone();
    got.sort_by_key(|v| v.to_string());
    assert_eq!(got, expect(1), "{t:#}");
    // Every row is in exactly one registered partition.
    let mut seen = 0;
    for p in &got {
        let dir = p[1].as_str().unwrap();
        let rows = read_parquet_dir(dir, "id,name,amount,ts", true);
        seen += rows["pyarrow"].as_array().unwrap().len();
    }
    assert_eq!(seen, 20);

    ws.write("in/orders.csv", &csv(1..=21, None));
    migrate(&ws, "gorders", true);
    let mut got: Vec<Value> = crate::delta::glue_table(&db, "gorders")["partitions"]
        .as_array()
        .unwrap()
        .clone();
    got.sort_by_key(|v| v.to_string());
    assert_eq!(got, expect(2), "v2's partitions replace v1's");

    let (code, json) = skein_json(&ws, &["rollback", "gorders.yaml"], true);
    assert_eq!(code, 0, "{json:#}");
    let mut got: Vec<Value> = crate::delta::glue_table(&db, "gorders")["partitions"]
        .as_array()
        .unwrap()
        .clone();
    got.sort_by_key(|v| v.to_string());
    assert_eq!(got, expect(1), "the rollback re-registers v1's partitions");
}
