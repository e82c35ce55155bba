//! Dataset specs: strict parsing and validation. Every problem names the file, the line
//! where it can be found, the field, and what to do; all problems of all files at once.

use skein_core::load;

use crate::util::{Workspace, text};

const GOOD: &str = "apiVersion: skein/v1
kind: Dataset
metadata: {name: good, owner: team-a}
spec:
  source: {uri: data/good.csv, format: csv}
  target: {uri: lake/good}
  transform:
    sql: SELECT id, name FROM source
  verify:
    rules: [{notNull: id}]
";

/// Loads `yaml` as the only spec of a directory and returns its problems as
/// `(line, field, message)`.
fn problems_of(yaml: &str) -> Vec<(Option<usize>, String, String)> {
    let ws = Workspace::new();
    ws.write("specs/x.yaml", yaml);
    let loaded = load::load(&ws.path().join("specs"));
    loaded
        .problems
        .into_iter()
        .map(|p| (p.line, p.field, p.message))
        .collect()
}

/// Asserts that `yaml` has a problem at `field` (on `line`, when given) whose message
/// contains `needle`.
fn check(yaml: &str, line: Option<usize>, field: &str, needle: &str) {
    let problems = problems_of(yaml);
    assert!(
        problems
            .iter()
            .any(|(l, f, m)| f == field && m.contains(needle) && (line.is_none() || *l == line)),
        "expected a problem at {field} (line {line:?}) containing `{needle}`, got {problems:#?}"
    );
}

#[test]
fn a_good_spec_has_no_problems() {
    assert_eq!(problems_of(GOOD), vec![]);
}

#[test]
fn each_kind_of_spec_error_names_field_and_line() {
    // an unknown field (typo) is rejected, not ignored
    check(
        &GOOD.replace("format: csv}", "format: csv, delimitr: ';'}"),
        Some(5),
        "spec.source",
        "unknown field `delimitr`",
    );
    // a bad name
    check(
        &GOOD.replace("name: good", "name: Bad_Name"),
        Some(3),
        "metadata.name",
        "not a valid dataset name",
    );
    // an unknown format
    check(
        &GOOD.replace("format: csv", "format: xlsx"),
        Some(5),
        "spec.source.format",
        "unknown variant `xlsx`",
    );
    // a missing required field
    check(
        &GOOD.replace("  target: {uri: lake/good}\n", ""),
        None,
        "spec",
        "missing field `target`",
    );
    // a URI scheme skein does not read
    check(
        &GOOD.replace("uri: data/good.csv", "uri: ftp://host/x.csv"),
        Some(5),
        "spec.source.uri",
        "not supported",
    );
    // wrong apiVersion and kind
    check(
        &GOOD.replace("skein/v1", "skein/v2"),
        Some(1),
        "apiVersion",
        "not supported",
    );
    check(
        &GOOD.replace("kind: Dataset", "kind: Table"),
        Some(2),
        "kind",
        "not a dataset spec",
    );
    // target equal to source
    check(
        &GOOD.replace("lake/good", "data/good.csv"),
        Some(6),
        "spec.target.uri",
        "the target is the source",
    );
    // csv options on a non-csv source, and a multi-character delimiter
    check(
        &GOOD.replace("format: csv}", "format: ndjson, csv: {header: false}}"),
        Some(5),
        "spec.source.csv",
        "csv options given",
    );
    check(
        &GOOD.replace("format: csv}", "format: csv, csv: {delimiter: ';;'}}"),
        Some(5),
        "spec.source.csv.delimiter",
        "not one ASCII character",
    );
    // a regex that does not compile, an empty accepted list, a range without bounds
    check(
        &GOOD.replace("{notNull: id}", "{regex: {column: name, pattern: '(['}}"),
        Some(10),
        "spec.verify.rules[0].pattern",
        "does not compile",
    );
    check(
        &GOOD.replace(
            "{notNull: id}",
            "{acceptedValues: {column: name, values: []}}",
        ),
        Some(10),
        "spec.verify.rules[0].values",
        "empty",
    );
    check(
        &GOOD.replace("{notNull: id}", "{range: {column: id}}"),
        Some(10),
        "spec.verify.rules[0]",
        "needs `min`, `max`",
    );
    // a sample query without the table placeholder
    check(
        &GOOD.replace(
            "    rules: [{notNull: id}]",
            "    sampleQueries: ['SELECT 1']",
        ),
        Some(10),
        "spec.verify.sampleQueries[0]",
        "does not contain `{}`",
    );
    // a dependency on itself and on an unknown dataset
    check(
        &GOOD.replace("spec:\n", "spec:\n  dependsOn: [good]\n"),
        Some(5),
        "spec.dependsOn[0]",
        "cannot depend on itself",
    );
    check(
        &GOOD.replace("spec:\n", "spec:\n  dependsOn: [ghost]\n"),
        Some(5),
        "spec.dependsOn[0]",
        "no dataset named `ghost`",
    );
}

#[test]
fn target_formats_and_glue_tables_are_checked_with_their_field() {
    let target = |t: &str| GOOD.replace("target: {uri: lake/good}", t);
    assert_eq!(
        problems_of(&target("target: {uri: lake/good, format: delta}")),
        vec![]
    );
    assert_eq!(
        problems_of(&target("target: {uri: lake/good, format: parquet}")),
        vec![]
    );
    check(
        &target("target: {uri: lake/good, format: iceberg}"),
        Some(6),
        "spec.target.format",
        "`iceberg` is not a target format",
    );
    let s3 = "target: {uri: 's3://lake/good/', format: delta, glue: {database: lake, table: good}}";
    assert_eq!(problems_of(&target(s3)), vec![]);
    check(
        &target("target: {uri: lake/good, glue: {database: lake, table: good}}"),
        Some(6),
        "spec.target.glue",
        "is not on S3",
    );
    check(
        &target(&s3.replace("table: good", "table: Good-Table")),
        Some(6),
        "spec.target.glue.table",
        "`Good-Table` is not a Glue name",
    );
    check(
        &target(&s3.replace("database: lake", "databse: lake")),
        Some(6),
        "spec.target.glue",
        "unknown field `databse`",
    );
    // partitionBy: plain column names, each once; not with Glue for plain Parquet
    assert_eq!(
        problems_of(&target(
            "target: {uri: lake/good, partitionBy: [region, day]}"
        )),
        vec![]
    );
    assert_eq!(
        problems_of(&target(
            &s3.replace("glue:", "partitionBy: [region], glue:")
        )),
        vec![]
    );
    check(
        &target("target: {uri: lake/good, partitionBy: [region, 'a/b']}"),
        Some(6),
        "spec.target.partitionBy[1]",
        "`a/b` is not a column name a path can hold",
    );
    check(
        &target("target: {uri: lake/good, partitionBy: [region, region]}"),
        Some(6),
        "spec.target.partitionBy[1]",
        "`region` is listed twice",
    );
    // A partitioned Parquet target registers its partitions in Glue (tests/partition.rs).
    assert_eq!(
        problems_of(&target(
            "target: {uri: 's3://lake/good/', partitionBy: [region], glue: {database: lake, table: good}}",
        )),
        vec![]
    );
}

#[test]
fn cycles_and_duplicates_across_files_are_found() {
    let ws = Workspace::new();
    let spec = |name: &str, dep: &str| {
        GOOD.replace("name: good", &format!("name: {name}"))
            .replace("spec:\n", &format!("spec:\n  dependsOn: [{dep}]\n"))
    };
    ws.write("specs/a.yaml", &spec("a", "b"));
    ws.write("specs/b.yaml", &spec("b", "c"));
    ws.write("specs/c.yaml", &spec("c", "a"));
    ws.write("specs/d.yaml", &spec("a", "b"));
    let loaded = load::load(&ws.path().join("specs"));
    let messages: Vec<String> = loaded.problems.iter().map(|p| p.to_string()).collect();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("dependency cycle: a -> b -> c -> a")),
        "{messages:#?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("d.yaml") && m.contains("also defined in")),
        "{messages:#?}"
    );
}

#[test]
fn validate_reports_every_problem_of_every_file_at_once() {
    let ws = Workspace::new();
    ws.write("data/good.csv", "id,name\n1,a\n2,b\n");
    // the data lives beside the specs' directory: a root (the path policy)
    ws.write(
        "specs/skein.yaml",
        "apiVersion: skein/v1\nkind: Fleet\nspec:\n  roots: [../data]\n",
    );
    ws.write(
        "specs/ok.yaml",
        &GOOD.replace("data/good.csv", "../data/good.csv"),
    );
    // the transform refuses DDL, other tables and table functions
    ws.write(
        "specs/ddl.yaml",
        &GOOD.replace("name: good", "name: ddl").replace(
            "SELECT id, name FROM source",
            "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '/etc/passwd'",
        ),
    );
    ws.write(
        "specs/other.yaml",
        &GOOD
            .replace("name: good", "name: other")
            .replace("FROM source", "FROM secrets"),
    );
    ws.write(
        "specs/fn.yaml",
        &GOOD
            .replace("name: good", "name: fn")
            .replace("FROM source", "FROM read_csv('/etc/passwd')"),
    );
    // a rule naming a column the transform does not output (needs the source's schema)
    ws.write(
        "specs/col.yaml",
        &GOOD
            .replace("name: good", "name: col")
            .replace("data/good.csv", "../data/good.csv")
            .replace("{notNull: id}", "{notNull: idd}"),
    );
    // SQL naming a column the source does not have
    ws.write(
        "specs/sql.yaml",
        &GOOD
            .replace("name: good", "name: sql")
            .replace("data/good.csv", "../data/good.csv")
            .replace("SELECT id, name", "SELECT id, nme"),
    );
    ws.write(
        "specs/broken.yaml",
        "apiVersion: skein/v1\nkind: Dataset\nmetadata: {name: broken\n",
    );
    let out = ws.skein(&["validate", "specs"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "ddl.yaml:8: spec.transform.sql: refused: CREATE EXTERNAL TABLE is not allowed",
        "other.yaml:8: spec.transform.sql: refused: it reads `secrets`",
        "fn.yaml:8: spec.transform.sql: refused: table function",
        "col.yaml:10: spec.verify.rules[0]: the notNull rule names `idd`, which is not an output column",
        "sql.yaml:8: spec.transform.sql:",
        "broken.yaml",
        "6 problem(s)",
    ] {
        assert!(
            stdout.contains(needle),
            "missing `{needle}` in:\n{}",
            text(&out)
        );
    }
    assert!(!stdout.contains("ok.yaml"), "{}", text(&out));

    let (code, json) = ws.skein_json(&["validate", "specs"]);
    assert_eq!(code, 2);
    assert_eq!(json["valid"], false);
    assert_eq!(json["problems"].as_array().unwrap().len(), 6, "{json:#}");
    assert!(json["problems"][0]["file"].is_string() && json["problems"][0]["hint"].is_string());
}

#[test]
fn the_samples_validate() {
    let ws = Workspace::new();
    let out = ws.skein(&[
        "validate",
        crate::util::repo_root().join("samples").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}
