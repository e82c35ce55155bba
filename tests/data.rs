//! The data plane on real files: CSV per RFC 4180, NDJSON, Parquet, multi-file sources,
//! idempotent re-runs, atomic publish, rollback byte for byte, bad values, corrupt sources.

use std::path::Path;

use crate::util::{Workspace, parquet_checksums, query_parquet, text};

/// A spec over `source` (relative to the spec) with `sql`, target `lake/<name>`.
fn spec(
    name: &str,
    source: &str,
    format: &str,
    extra_source: &str,
    sql: &str,
    verify: &str,
) -> String {
    format!(
        "apiVersion: skein/v1\nkind: Dataset\nmetadata: {{name: {name}}}\nspec:\n  source: {{uri: {source}, format: {format}{extra_source}}}\n  target: {{uri: lake/{name}}}\n  transform:\n    sql: \"{sql}\"\n{verify}"
    )
}

fn migrate(ws: &Workspace, spec: &str) -> (i32, serde_json::Value) {
    ws.skein_json(&["migrate", spec])
}

fn outcome(json: &serde_json::Value) -> String {
    json["datasets"][0]["outcome"]
        .as_str()
        .unwrap_or("?")
        .to_string()
}

#[test]
fn csv_quirks_quoted_newlines_commas_quotes_unicode_empty_fields_and_z_timestamps() {
    let ws = Workspace::new();
    std::fs::create_dir_all(ws.path().join("data")).unwrap();
    std::fs::copy(
        crate::util::repo_root().join("samples/data/customers.csv"),
        ws.path().join("data/customers.csv"),
    )
    .unwrap();
    ws.write(
        "c.yaml",
        &spec(
            "customers",
            "data/customers.csv",
            "csv",
            "",
            "SELECT CAST(id AS BIGINT) AS id, name, email, CAST(signup_ts AS TIMESTAMP) AS ts, notes FROM source",
            "  verify:\n    rules: [{unique: id}]\n",
        ),
    );
    let (code, json) = migrate(&ws, "c.yaml");
    assert_eq!(code, 0, "{json:#}");
    assert_eq!(outcome(&json), "completed");
    assert_eq!(json["datasets"][0]["rows"], 6);
    let rows = query_parquet(
        &ws.path().join("lake/customers"),
        "id, name, email IS NULL AS no_email, CAST(ts AS VARCHAR) AS ts, notes",
        "id",
    );
    let all = rows.join("\n");
    assert!(all.contains(r#"Grace "Amazing" Hopper"#), "{all}");
    assert!(
        all.contains("Zoë Ångström") && all.contains("李雷"),
        "{all}"
    );
    assert!(all.contains("O'Brien, Miles"), "{all}");
    assert!(
        all.contains("2024-01-03T09:15:00"),
        "timestamps with Z: {all}"
    );
    // row 5 has an empty email: a null; row 3's note has a quoted newline (pretty
    // printing shows it as two lines, with the comma after the line break)
    let five = rows.iter().find(|l| l.contains("Jean-Luc")).unwrap();
    assert!(five.contains("| true "), "{five}");
    assert!(
        all.contains("multi-line") && all.contains("note, with comma"),
        "{all}"
    );
}

#[test]
fn csv_without_header_and_with_another_delimiter() {
    let ws = Workspace::new();
    ws.write("d.csv", "1;x\n2;\"y;z\"\n");
    ws.write(
        "d.yaml",
        &spec(
            "semi",
            "d.csv",
            "csv",
            ", csv: {header: false, delimiter: ';'}",
            "SELECT column_1 AS id, column_2 AS v FROM source",
            "",
        ),
    );
    let (code, json) = migrate(&ws, "d.yaml");
    assert_eq!(code, 0, "{json:#}");
    let rows = query_parquet(&ws.path().join("lake/semi"), "id, v", "id").join("\n");
    assert!(rows.contains("| 2  | y;z |"), "{rows}");
}

#[test]
fn ndjson_with_nulls_and_nested_objects() {
    let ws = Workspace::new();
    std::fs::create_dir_all(ws.path().join("data")).unwrap();
    std::fs::copy(
        crate::util::repo_root().join("samples/data/events.ndjson"),
        ws.path().join("data/events.ndjson"),
    )
    .unwrap();
    ws.write(
        "e.yaml",
        &spec(
            "events",
            "data/events.ndjson",
            "ndjson",
            "",
            "SELECT event_id, customer_id, get_field(props, 'device') AS device FROM source",
            "",
        ),
    );
    let (code, json) = migrate(&ws, "e.yaml");
    assert_eq!(code, 0, "{json:#}");
    let rows = query_parquet(
        &ws.path().join("lake/events"),
        "event_id, customer_id IS NULL AS null_customer, device",
        "event_id",
    );
    let e4 = rows.iter().find(|l| l.contains("e-4")).unwrap();
    assert!(e4.contains("true") && e4.contains("android"), "{rows:#?}");
}

#[test]
fn multi_file_prefix_idempotent_rerun_and_rollback_byte_for_byte() {
    let ws = Workspace::new();
    ws.write("data/orders/a.csv", "id,amount\n1,1.50\n2,2.50\n");
    ws.write("data/orders/b.csv", "id,amount\n3,3.50\n");
    ws.write(
        "o.yaml",
        &spec(
            "orders",
            "data/orders/",
            "csv",
            "",
            "SELECT id, CAST(amount AS DECIMAL(10,2)) AS amount FROM source",
            "  verify:\n    sampleQueries: ['SELECT sum(amount) FROM {}']\n",
        ),
    );
    let (code, json) = migrate(&ws, "o.yaml");
    assert_eq!(code, 0, "{json:#}");
    assert_eq!(
        json["datasets"][0]["rows"], 3,
        "both files of the prefix are read"
    );
    assert_eq!(json["datasets"][0]["version"], 1);
    let target = ws.path().join("lake/orders");
    let v1 = parquet_checksums(&target);
    let store_files = count_files(&ws.path().join("lake/.orders.skein"));

    // the same spec over the same source: nothing new
    let (code, json) = migrate(&ws, "o.yaml");
    assert_eq!(code, 0);
    assert_eq!(outcome(&json), "up_to_date", "{json:#}");
    assert_eq!(
        count_files(&ws.path().join("lake/.orders.skein")),
        store_files,
        "no file duplicated"
    );
    let out = ws.skein(&["migrate", "o.yaml"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("up to date"),
        "{}",
        text(&out)
    );

    // a changed source publishes v2
    ws.write("data/orders/c.csv", "id,amount\n4,4.50\n");
    let (code, json) = migrate(&ws, "o.yaml");
    assert_eq!(code, 0, "{json:#}");
    assert_eq!(json["datasets"][0]["version"], 2);
    assert_ne!(parquet_checksums(&target), v1);

    // rollback restores v1's files byte for byte
    let (code, json) = ws.skein_json(&["rollback", "orders"]);
    assert_eq!(code, 0, "{json:#}");
    assert_eq!(json["datasets"][0]["outcome"], "rolled_back");
    assert_eq!(json["datasets"][0]["version"], 1);
    assert_eq!(parquet_checksums(&target), v1);
    // and again: nothing before v1
    let (code, json) = ws.skein_json(&["rollback", "orders"]);
    assert_eq!(code, 1);
    assert!(
        json["datasets"][0]["error"]
            .as_str()
            .unwrap()
            .contains("nothing to roll back to"),
        "{json:#}"
    );

    let (code, json) = ws.skein_json(&["history", "orders"]);
    assert_eq!(code, 0);
    let actions: Vec<&str> = json["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["published", "published", "restored"], "{json:#}");
}

fn count_files(dir: &Path) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            n += count_files(&e.path());
        } else {
            n += 1;
        }
    }
    n
}

#[test]
fn a_value_that_does_not_convert_names_column_and_value_and_keeps_the_old_target() {
    let ws = Workspace::new();
    ws.write("data/p.csv", "id,price\n1,10\n2,20\n");
    ws.write(
        "p.yaml",
        &spec(
            "prices",
            "data/p.csv",
            "csv",
            "",
            "SELECT id, CAST(price AS BIGINT) AS price FROM source",
            "",
        ),
    );
    let (code, _) = migrate(&ws, "p.yaml");
    assert_eq!(code, 0);
    let target = ws.path().join("lake/prices");
    let before = parquet_checksums(&target);

    // the column is now text because of one bad value; the CAST fails on it
    ws.write("data/p.csv", "id,price\n1,10\n2,not-a-number\n3,30\n");
    let (code, json) = migrate(&ws, "p.yaml");
    assert_eq!(code, 1, "{json:#}");
    let d = &json["datasets"][0];
    assert_eq!(d["outcome"], "failed");
    assert_eq!(d["errorName"], "Skein.BadValue");
    let error = d["error"].as_str().unwrap();
    assert!(
        error.contains("column `price`") && error.contains("`not-a-number`"),
        "{error}"
    );
    assert_eq!(
        parquet_checksums(&target),
        before,
        "the published target is untouched"
    );

    let (_, status) = ws.skein_json(&["status", "prices"]);
    assert_eq!(status["datasets"][0]["status"], "failed");
    assert!(
        status["datasets"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("not-a-number")
    );
}

#[test]
fn a_truncated_parquet_source_is_unreadable_with_its_name() {
    let ws = Workspace::new();
    ws.write("data/t.csv", "id,v\n1,a\n2,b\n");
    ws.write(
        "t.yaml",
        &spec(
            "tocopy",
            "data/t.csv",
            "csv",
            "",
            "SELECT * FROM source",
            "",
        ),
    );
    assert_eq!(migrate(&ws, "t.yaml").0, 0);
    let produced = std::fs::read_dir(ws.path().join("lake/tocopy"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let bytes = std::fs::read(&produced).unwrap();
    ws.write("data/broken.parquet", "");
    std::fs::write(
        ws.path().join("data/broken.parquet"),
        &bytes[..bytes.len() / 2],
    )
    .unwrap();
    ws.write(
        "b.yaml",
        &spec(
            "broken",
            "data/broken.parquet",
            "parquet",
            "",
            "SELECT * FROM source",
            "",
        ),
    );
    let (code, json) = migrate(&ws, "b.yaml");
    assert_eq!(code, 1, "{json:#}");
    assert_eq!(
        json["datasets"][0]["errorName"], "Skein.SourceUnreadable",
        "{json:#}"
    );
    assert!(
        json["datasets"][0]["error"]
            .as_str()
            .unwrap()
            .contains("broken.parquet"),
        "{json:#}"
    );
    assert!(!ws.path().join("lake/broken").exists());
}

#[test]
fn a_missing_source_fails_that_dataset_only() {
    let ws = Workspace::new();
    ws.write("specs/data/ok.csv", "id\n1\n");
    ws.write(
        "specs/ok.yaml",
        &spec("ok", "data/ok.csv", "csv", "", "SELECT * FROM source", ""),
    );
    ws.write(
        "specs/gone.yaml",
        &spec(
            "gone",
            "data/gone.csv",
            "csv",
            "",
            "SELECT * FROM source",
            "",
        ),
    );
    let (code, json) = ws.skein_json(&["migrate", "specs"]);
    assert_eq!(code, 1);
    let by_name = |n: &str| {
        json["datasets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["dataset"] == n)
            .unwrap()
            .clone()
    };
    assert_eq!(by_name("ok")["outcome"], "completed");
    assert_eq!(by_name("gone")["outcome"], "failed");
    assert!(
        by_name("gone")["error"]
            .as_str()
            .unwrap()
            .contains("gone.csv")
    );
}

#[test]
fn a_failed_verification_publishes_nothing() {
    let ws = Workspace::new();
    ws.write("data/v.csv", "id,email\n1,a@x\n2,\n3,c@x\n");
    ws.write(
        "v.yaml",
        &spec("mails", "data/v.csv", "csv", "", "SELECT * FROM source", "  verify:\n    rules: [{notNull: email}, {unique: id}, {regex: {column: email, pattern: '^[a-z]@x$'}}]\n"),
    );
    let (code, json) = migrate(&ws, "v.yaml");
    assert_eq!(code, 1, "{json:#}");
    let d = &json["datasets"][0];
    assert_eq!(d["outcome"], "verification_failed");
    let checks = d["verification"]["checks"].as_array().unwrap();
    let failed: Vec<&str> = checks
        .iter()
        .filter(|c| c["passed"] == false)
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["rule notNull(email)"], "{json:#}");
    assert!(!ws.path().join("lake/mails").exists(), "nothing published");
    let out = ws.skein(&["migrate", "v.yaml"]);
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("expected 0 violating rows, got 1 violating rows"),
        "{}",
        text(&out)
    );
}

#[test]
fn readers_of_the_target_never_see_a_mix_or_nothing_while_versions_swap() {
    use skein_core::load;
    use skein_data::TargetStore;

    let ws = Workspace::new();
    ws.write("data/s.csv", "id\n1\n2\n");
    ws.write(
        "s.yaml",
        &spec("swap", "data/s.csv", "csv", "", "SELECT * FROM source", ""),
    );
    assert_eq!(migrate(&ws, "s.yaml").0, 0);
    ws.write("data/s.csv", "id\n1\n2\n3\n");
    assert_eq!(migrate(&ws, "s.yaml").0, 0);
    let file = load::load_file(&ws.path().join("s.yaml")).unwrap();
    let store = TargetStore::open(&file).unwrap();
    let names = |v: u64| -> Vec<String> {
        let mut n: Vec<String> = std::fs::read_dir(store.version_dir(v))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .filter(|n| n.ends_with(".parquet"))
            .collect();
        n.sort();
        n
    };
    let (v1, v2) = (names(1), names(2));
    assert_ne!(v1, v2);
    let target = store.path().to_path_buf();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut seen = 0usize;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let mut listed: Vec<String> = std::fs::read_dir(&target)
                    .expect("the target always exists")
                    .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
                    .filter(|n| n.ends_with(".parquet"))
                    .collect();
                listed.sort();
                assert!(listed == v1 || listed == v2, "a reader saw {listed:?}");
                seen += 1;
            }
            seen
        })
    };
    for i in 0..300 {
        store.point_at(1 + (i % 2)).unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(reader.join().unwrap() > 0);
}

#[test]
fn no_publish_stops_at_verified() {
    let ws = Workspace::new();
    ws.write("data/n.csv", "id\n1\n");
    ws.write(
        "n.yaml",
        &spec(
            "staged-only",
            "data/n.csv",
            "csv",
            "",
            "SELECT * FROM source",
            "",
        ),
    );
    let (code, json) = ws.skein_json(&["migrate", "n.yaml", "--no-publish"]);
    assert_eq!(code, 0);
    assert_eq!(outcome(&json), "verified");
    assert!(!ws.path().join("lake/staged-only").exists());
    let (_, status) = ws.skein_json(&["status"]);
    assert_eq!(status["datasets"][0]["status"], "verified");
}

#[test]
fn verify_rechecks_the_published_version_against_the_source() {
    let ws = Workspace::new();
    ws.write("data/r.csv", "id,v\n1,a\n2,b\n");
    ws.write(
        "r.yaml",
        &spec(
            "recheck",
            "data/r.csv",
            "csv",
            "",
            "SELECT * FROM source",
            "",
        ),
    );
    assert_eq!(migrate(&ws, "r.yaml").0, 0);
    let (code, json) = ws.skein_json(&["verify", "recheck"]);
    assert_eq!(code, 0, "{json:#}");
    // the source changed since: the published version no longer matches it
    ws.write("data/r.csv", "id,v\n1,a\n2,c\n");
    let (code, json) = ws.skein_json(&["verify", "r.yaml"]);
    assert_eq!(code, 1, "{json:#}");
    let failed: Vec<&str> = json["datasets"][0]["verification"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["passed"] == false)
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["checksum"], "{json:#}");
}

// unit tests of the SQL guard

mod sqlguard {
    use skein_data::sqlguard::check_transform;

    fn check(sql: &str, refused_with: Option<&str>) {
        match (check_transform(sql), refused_with) {
            (None, None) => {}
            (Some(reason), Some(needle)) => assert!(
                reason.contains(needle),
                "{sql}: `{reason}` lacks `{needle}`"
            ),
            (got, want) => panic!("{sql}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn guard_table() {
        check("SELECT * FROM source", None);
        check("SELECT a, CAST(b AS INT) FROM source WHERE c <> 'x'", None);
        check(
            "WITH s AS (SELECT * FROM source) SELECT * FROM s JOIN source USING (id)",
            None,
        );
        check("SELECT * FROM (SELECT id FROM source) t", None);
        check("SELECT * FROM other", Some("reads `other`"));
        check(
            "SELECT * FROM source; DROP TABLE source",
            Some("2 statements"),
        );
        check("DROP TABLE source", Some("not a query"));
        check("INSERT INTO source VALUES (1)", Some("not a query"));
        check(
            "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '/etc/passwd'",
            Some("CREATE EXTERNAL TABLE"),
        );
        check("COPY source TO '/tmp/x.parquet'", Some("COPY"));
        check(
            "SELECT * FROM read_csv('/etc/passwd')",
            Some("table function"),
        );
        check(
            "SELECT * FROM generate_series(1, 10)",
            Some("table function"),
        );
        check("SELEC * FROM source", Some("does not parse"));
        check(
            "SELECT * FROM source WHERE id IN (SELECT id FROM secrets)",
            Some("reads `secrets`"),
        );
    }
}

mod checksum {
    use std::sync::Arc;

    use datafusion::arrow::array::{Int64Array, StringArray, StringViewArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use datafusion::arrow::array::{ArrayRef, RecordBatch};
    use skein_core::manifest::ContentChecksum;
    use skein_data::checksum::{Checksum, combine};

    fn batch(ids: Vec<Option<i64>>, names: Vec<Option<&str>>, view: bool) -> RecordBatch {
        let name_type = if view {
            DataType::Utf8View
        } else {
            DataType::Utf8
        };
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", name_type, true),
        ]));
        let names: ArrayRef = if view {
            Arc::new(StringViewArray::from(names))
        } else {
            Arc::new(StringArray::from(names))
        };
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(ids)), names]).unwrap()
    }

    fn sum_of(batches: &[RecordBatch]) -> ContentChecksum {
        let mut c = Checksum::new(&batches[0].schema()).unwrap();
        for b in batches {
            c.update(b).unwrap();
        }
        c.value()
    }

    #[test]
    fn order_and_batching_do_not_matter_but_content_does() {
        let a = sum_of(&[batch(
            vec![Some(1), Some(2), None],
            vec![Some("x"), None, Some("z")],
            false,
        )]);
        let b = sum_of(&[
            batch(vec![None], vec![Some("z")], true),
            batch(vec![Some(2), Some(1)], vec![None, Some("x")], true),
        ]);
        assert_eq!(
            a, b,
            "row order, batch split and string representation must not matter"
        );
        let changed = sum_of(&[batch(
            vec![Some(1), Some(2), None],
            vec![Some("x"), None, Some("y")],
            false,
        )]);
        assert_ne!(a.sum, changed.sum);
        let duplicated = sum_of(&[batch(
            vec![Some(1), Some(1)],
            vec![Some("x"), Some("x")],
            false,
        )]);
        let single = sum_of(&[batch(vec![Some(1)], vec![Some("x")], false)]);
        assert_ne!(duplicated.sum, single.sum);
        assert_eq!(combine(&[single.clone(), single]), duplicated);
    }
}

#[test]
fn a_changed_output_schema_is_refused_then_allowed() {
    let ws = Workspace::new();
    ws.write("data/p.csv", "id,name,price\n1,a,1.5\n2,b,2.5\n");
    let write = |sql: &str, extra: &str| {
        ws.write(
            "p.yaml",
            &format!(
                "{}{extra}",
                spec("prices", "data/p.csv", "csv", "", sql, "")
            ),
        );
    };
    write("SELECT id, name, price FROM source", "");
    let (code, json) = migrate(&ws, "p.yaml");
    assert_eq!(code, 0, "{json:#}");
    let v1 = parquet_checksums(&ws.path().join("lake/prices"));

    // A new column, a dropped one and a retyped one: reported, refused, v1 stays.
    write(
        "SELECT id, CAST(price AS VARCHAR) AS price, upper(name) AS label FROM source",
        "",
    );
    let (code, json) = migrate(&ws, "p.yaml");
    assert_eq!(code, 1, "{json:#}");
    let d = &json["datasets"][0];
    assert_eq!(d["errorName"], "Skein.SchemaChanged", "{json:#}");
    assert_eq!(
        d["schemaChange"]["added"],
        serde_json::json!(["label: Utf8"])
    );
    assert_eq!(
        d["schemaChange"]["removed"],
        serde_json::json!(["name: Utf8"])
    );
    assert_eq!(
        d["schemaChange"]["retyped"],
        serde_json::json!(["price: Float64 -> Utf8"])
    );
    assert!(
        d["error"]
            .as_str()
            .unwrap()
            .contains("--allow-schema-change"),
        "{json:#}"
    );
    assert_eq!(
        parquet_checksums(&ws.path().join("lake/prices")),
        v1,
        "the published version is untouched"
    );

    // Allowed by the flag…
    let (code, json) = ws.skein_json(&["migrate", "p.yaml", "--allow-schema-change"]);
    assert_eq!(
        (code, outcome(&json)),
        (0, "completed".to_string()),
        "{json:#}"
    );
    assert_eq!(json["datasets"][0]["version"], 2);
    // …or by the spec.
    write("SELECT id, price FROM source", "  schemaChange: allow\n");
    let (code, json) = migrate(&ws, "p.yaml");
    assert_eq!(
        (code, outcome(&json)),
        (0, "completed".to_string()),
        "{json:#}"
    );
    assert_eq!(json["datasets"][0]["version"], 3);
}
