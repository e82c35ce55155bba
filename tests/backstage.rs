//! Backstage catalog entities: the lossless round trip of every sample spec, problems that
//! name the entity and the annotation, and `skein catalog import` / `export` end to end.

use std::path::Path;

use skein_backstage::{
    self as backstage, EntityStatus, from_entity, parse_entities, render_entities, to_entity,
};
use skein_core::load::{self, SpecFile};

use crate::util::{Workspace, repo_root, text};

/// Every sample spec (not the fleet file), parsed as written (relative URIs).
fn samples() -> Vec<load::SpecFile> {
    let dir = repo_root().join("samples");
    let paths = load::spec_paths(&dir).expect("list samples/");
    assert!(
        paths.len() >= 12,
        "samples/ has the sample specs: {paths:?}"
    );
    paths
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).unwrap();
            load::parse(p, &text).unwrap_or_else(|e| panic!("{}: {e:?}", p.display()))
        })
        .collect()
}

#[test]
fn every_sample_spec_survives_the_round_trip_through_an_entity() {
    let status = EntityStatus {
        status: "completed".into(),
        version: Some(3),
        rows: Some(1234),
        last_verification: Some("passed: rows, checksum, 2 rules".into()),
        updated_at: "2026-01-02T03:04:05Z".into(),
        table_version: None,
    };
    let file = Path::new("catalog-info.yaml");
    for f in samples() {
        for st in [None, Some(&status)] {
            let entity = to_entity(&f.spec, st);
            assert!(backstage::is_dataset(&entity), "{}", f.name());
            assert_eq!(
                from_entity(&entity, file).as_ref(),
                Ok(&f.spec),
                "{} with status {st:?}",
                f.name()
            );
        }
    }
}

#[test]
fn every_sample_spec_survives_the_round_trip_through_catalog_info_text() {
    let specs: Vec<_> = samples().into_iter().map(|f| f.spec).collect();
    let status = EntityStatus {
        status: "awaiting_approval".into(),
        version: None,
        rows: None,
        last_verification: None,
        updated_at: "2026-01-02T03:04:05Z".into(),
        table_version: None,
    };
    let entities: Vec<_> = specs.iter().map(|s| to_entity(s, Some(&status))).collect();
    let text = render_entities(&entities);
    let file = Path::new("catalog-info.yaml");
    let parsed = parse_entities(&text, file).unwrap_or_else(|p| panic!("{p:#?}\n{text}"));
    assert_eq!(parsed, entities);
    let back: Vec<_> = parsed
        .iter()
        .map(|e| from_entity(e, file).unwrap_or_else(|p| panic!("{p:#?}")))
        .collect();
    assert_eq!(back, specs);
}

#[test]
fn rendered_specs_read_back_as_the_same_spec() {
    for f in samples() {
        let yaml = backstage::render_spec(&f.spec);
        let back = load::parse(Path::new("imported.yaml"), &yaml)
            .unwrap_or_else(|p| panic!("{p:#?}\n{yaml}"));
        assert_eq!(back.spec, f.spec, "{yaml}");
        assert!(!yaml.contains("null"), "unset fields are left out: {yaml}");
    }
}

#[test]
fn export_shows_the_format_the_delta_table_version_and_the_glue_table_and_import_ignores_them() {
    let f = samples()
        .into_iter()
        .find(|f| f.name() == "suppliers")
        .expect("samples/suppliers.yaml");
    let mut spec = f.spec.clone();
    assert!(
        spec.spec.target.is_delta(),
        "the sample suppliers is a Delta target"
    );
    spec.spec.target.uri = "s3://lake/suppliers/".into();
    spec.spec.target.glue = Some(skein_core::spec::GlueTable {
        database: "lake".into(),
        table: "suppliers".into(),
    });
    let status = EntityStatus {
        status: "completed".into(),
        version: Some(3),
        rows: Some(9),
        last_verification: Some("passed".into()),
        updated_at: "2026-01-02T03:04:05Z".into(),
        table_version: Some(4),
    };
    let e = to_entity(&spec, Some(&status));
    let ann = |k: &str| e.metadata.annotations.get(k).map(String::as_str);
    assert_eq!(ann("skein.dev/target-format"), Some("delta"));
    assert_eq!(ann("skein.dev/table-version"), Some("4"));
    assert_eq!(ann("skein.dev/glue-table"), Some("lake.suppliers"));
    // status annotations are not spec: the entity reads back as the spec, no error
    let back = from_entity(&e, Path::new("catalog-info.yaml")).unwrap_or_else(|p| panic!("{p:#?}"));
    assert_eq!(back, spec);
}

#[test]
fn export_writes_the_status_the_owner_the_dependencies_and_a_link() {
    let f = samples()
        .into_iter()
        .find(|f| f.name() == "orders")
        .expect("samples/orders.yaml");
    let status = EntityStatus {
        status: "completed".into(),
        version: Some(2),
        rows: Some(7),
        last_verification: Some("passed".into()),
        updated_at: "2026-01-02T03:04:05Z".into(),
        table_version: None,
    };
    let e = to_entity(&f.spec, Some(&status));
    assert_eq!(e.api_version, "backstage.io/v1alpha1");
    assert_eq!(e.kind, "Resource");
    assert_eq!(e.spec.type_, "dataset");
    assert_eq!(e.spec.owner, "team-payments");
    assert_eq!(e.spec.depends_on, vec!["resource:default/customers"]);
    assert_eq!(e.metadata.tags, vec!["finance"]);
    let ann = |k: &str| e.metadata.annotations.get(k).map(String::as_str);
    assert_eq!(ann("skein.dev/source"), Some("data/orders/"));
    assert_eq!(ann("skein.dev/source-format"), Some("csv"));
    assert_eq!(ann("skein.dev/source-system"), Some("legacy-warehouse"));
    assert_eq!(ann("skein.dev/target"), Some("lake/orders"));
    assert_eq!(ann("skein.dev/group"), Some("finance"));
    assert_eq!(ann("skein.dev/criticality"), Some("high"));
    assert_eq!(ann("skein.dev/priority"), Some("10"));
    assert_eq!(ann("skein.dev/approval"), Some("auto"));
    assert_eq!(ann("skein.dev/status"), Some("completed"));
    assert_eq!(ann("skein.dev/version"), Some("2"));
    assert_eq!(ann("skein.dev/rows"), Some("7"));
    assert_eq!(ann("skein.dev/last-verification"), Some("passed"));
    assert_eq!(ann("skein.dev/updated-at"), Some("2026-01-02T03:04:05Z"));
    assert!(ann("skein.dev/transform").unwrap().contains("FROM source"));
    let verify: serde_json::Value = serde_json::from_str(ann("skein.dev/verify").unwrap()).unwrap();
    assert_eq!(verify["key"], "order_id");
    assert_eq!(e.metadata.links.len(), 1);
    assert_eq!(e.metadata.links[0].title, "Published data");
    assert_eq!(e.metadata.links[0].url, "lake/orders");
    // no published version, no link
    let pending = EntityStatus {
        status: "pending".into(),
        ..EntityStatus::default()
    };
    assert!(to_entity(&f.spec, Some(&pending)).metadata.links.is_empty());
}

/// A catalog file with one dataset `d` whose annotations are `annotations` (YAML lines,
/// indented four spaces) and the problems importing it gives, as `field: message` lines.
fn import_problems(annotations: &str) -> Vec<String> {
    let yaml = format!(
        "apiVersion: backstage.io/v1alpha1\nkind: Resource\nmetadata:\n  name: d\n  annotations:\n{annotations}spec:\n  type: dataset\n  owner: team-a\n"
    );
    let file = Path::new("catalog-info.yaml");
    let entities = parse_entities(&yaml, file).unwrap_or_else(|p| panic!("{p:#?}\n{yaml}"));
    match from_entity(&entities[0], file) {
        Ok(spec) => panic!("expected problems, got {spec:#?}"),
        Err(problems) => problems
            .iter()
            .map(|p| format!("{}: {}", p.field, p.message))
            .collect(),
    }
}

#[test]
fn bad_annotations_are_problems_naming_the_entity_and_the_annotation() {
    let base = "    skein.dev/source: data/d.csv\n    skein.dev/source-format: csv\n    skein.dev/target: lake/d\n";
    // one problem, containing each of `expected`
    let check = |extra: &str, expected: &[&str]| {
        let problems = import_problems(&format!("{base}{extra}"));
        assert_eq!(problems.len(), 1, "{extra}: {problems:#?}");
        let p = &problems[0];
        assert!(p.contains("entity `d`"), "{extra}: `{p}` names the entity");
        for want in expected {
            assert!(p.contains(want), "{extra}: `{p}` should contain `{want}`");
        }
    };
    check(
        "    skein.dev/verify: '{\"rules\": [oops]}'\n",
        &[
            "metadata.annotations[skein.dev/verify]: entity `d`: the annotation `skein.dev/verify` is not valid",
        ],
    );
    check(
        "    skein.dev/verify: '{\"checksum\": true, \"colour\": 1}'\n",
        &["[skein.dev/verify]", "unknown field `colour`"],
    );
    check(
        "    skein.dev/source-csv: '{\"delimiter\": \";;\"}'\n",
        &["[skein.dev/source-csv]", "not one ASCII character"],
    );
    check(
        "    skein.dev/target-options: '{\"compression\": \"brotli\"}'\n",
        &["[skein.dev/target-options]", "unknown variant `brotli`"],
    );
    check(
        "    skein.dev/criticality: severe\n",
        &["[skein.dev/criticality]", "`severe` is not one of"],
    );
    check(
        "    skein.dev/priority: soon\n",
        &["[skein.dev/priority]", "`soon` is not a whole number"],
    );
    check(
        "    skein.dev/trasnform: SELECT 1\n",
        &["[skein.dev/trasnform]", "unknown annotation"],
    );
    check(
        "    skein.dev/transform: '  '\n",
        &["[skein.dev/transform]", "the query is empty"],
    );
    let missing = import_problems("    skein.dev/source-format: csv\n");
    assert_eq!(missing.len(), 2, "{missing:#?}");
    assert!(missing[0].contains("[skein.dev/source]") && missing[0].contains("is missing"));
    assert!(missing[1].contains("[skein.dev/target]") && missing[1].contains("is missing"));
}

#[test]
fn plain_numbers_in_annotations_are_read_as_text_and_status_is_ignored() {
    let yaml = "\
apiVersion: backstage.io/v1alpha1
kind: Resource
metadata:
  name: d
  uid: 0b1c
  annotations:
    skein.dev/source: data/d.csv
    skein.dev/source-format: csv
    skein.dev/target: lake/d
    skein.dev/priority: 7
    skein.dev/status: failed
    skein.dev/version: 4
    backstage.io/source-location: url:https://example.com/repo
spec:
  type: dataset
  lifecycle: production
  owner: team-a
  dependsOn: [resource:default/a, 'resource:b', component:default/web, c]
";
    let file = Path::new("catalog-info.yaml");
    let entities = parse_entities(yaml, file).unwrap();
    let spec = from_entity(&entities[0], file).unwrap();
    assert_eq!(spec.spec.priority, 7);
    assert_eq!(spec.spec.depends_on, vec!["a", "b", "c"]);
    assert_eq!(spec.metadata.owner.as_deref(), Some("team-a"));
}

/// Two datasets (one depending on the other) and a Component, next to their data in
/// `catalog/`; relative paths are relative to the catalog file, not the working directory.
const CATALOG_INFO: &str = "\
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: web-shop
spec:
  type: website
  lifecycle: production
  owner: team-web
---
apiVersion: backstage.io/v1alpha1
kind: Resource
metadata:
  name: people
  description: People from the legacy CRM.
  annotations:
    backstage.io/techdocs-ref: dir:.
    skein.dev/source: data/people.csv
    skein.dev/source-format: csv
    skein.dev/source-system: legacy-crm
    skein.dev/target: lake/people
    skein.dev/transform: SELECT CAST(id AS BIGINT) AS id, name FROM source
    skein.dev/verify: '{\"key\": \"id\", \"rules\": [{\"unique\": \"id\"}, {\"notNull\": \"name\"}]}'
  tags: [pii]
spec:
  type: dataset
  lifecycle: production
  owner: group:default/team-crm
  system: crm
---
apiVersion: backstage.io/v1alpha1
kind: Resource
metadata:
  name: cities
  annotations:
    skein.dev/source: data/cities.ndjson
    skein.dev/source-format: ndjson
    skein.dev/target: lake/cities
    skein.dev/priority: \"5\"
spec:
  type: dataset
  owner: group:default/team-crm
  dependsOn:
    - resource:default/people
    - component:default/web-shop
";

/// A workspace with `catalog/catalog-info.yaml` and its data.
fn catalog_workspace(catalog_info: &str) -> Workspace {
    let ws = Workspace::new();
    ws.write("catalog/catalog-info.yaml", catalog_info);
    ws.write(
        "catalog/data/people.csv",
        "id,name\n1,Ada\n2,\"Grace, Admiral\"\n3,Linus\n",
    );
    ws.write(
        "catalog/data/cities.ndjson",
        "{\"city\": \"Oslo\"}\n{\"city\": \"Lund\"}\n",
    );
    ws
}

/// `skein catalog import catalog/catalog-info.yaml --out specs`, then `skein migrate specs`.
fn import_and_migrate(ws: &Workspace) {
    let (code, json) = ws.skein_json(&[
        "catalog",
        "import",
        "catalog/catalog-info.yaml",
        "--out",
        "specs",
    ]);
    assert_eq!(code, 0, "{json:#}");
    assert_eq!(json["imported"], serde_json::json!(["people", "cities"]));
    assert_eq!(json["skipped"], serde_json::json!(["web-shop"]));
    // the imported specs in specs/ read the data under catalog/: a root (the path policy)
    ws.write(
        "specs/skein.yaml",
        "apiVersion: skein/v1\nkind: Fleet\nspec:\n  roots: [../catalog]\n",
    );
    let (code, json) = ws.skein_json(&["migrate", "specs"]);
    assert_eq!(code, 0, "{json:#}");
}

#[test]
fn import_writes_specs_that_migrate() {
    let ws = catalog_workspace(CATALOG_INFO);
    import_and_migrate(&ws);
    let people = ws.path().join("specs/people.yaml");
    let f = load::load_file(&people).unwrap_or_else(|p| panic!("{p:#?}"));
    let data = ws.path().join("catalog/data/people.csv");
    assert_eq!(
        Path::new(&f.spec.spec.source.uri),
        data.canonicalize().unwrap_or(data.clone()).as_path(),
        "relative to the catalog file, made absolute"
    );
    assert_eq!(
        f.spec.metadata.owner.as_deref(),
        Some("group:default/team-crm")
    );
    assert_eq!(f.spec.metadata.tags, vec!["pii"]);
    assert!(ws.path().join("catalog/lake/people").exists());
    assert!(ws.path().join("catalog/lake/cities").exists());
    let (_, status) = ws.skein_json(&["status"]);
    for d in status["datasets"].as_array().unwrap() {
        assert_eq!(d["status"], "completed", "{status:#}");
    }
}

#[test]
fn an_entity_without_a_target_exits_2_naming_the_entity_and_the_annotation() {
    let ws = catalog_workspace(&CATALOG_INFO.replace("    skein.dev/target: lake/people\n", ""));
    let out = ws.skein(&[
        "catalog",
        "import",
        "catalog/catalog-info.yaml",
        "--out",
        "specs",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("catalog-info.yaml:")
            && stderr.contains("entity `people`")
            && stderr.contains("skein.dev/target"),
        "{}",
        text(&out)
    );
    assert!(!ws.path().join("specs").exists(), "nothing written");
}

#[test]
fn export_after_migrating_shows_status_version_and_rows() {
    let ws = catalog_workspace(CATALOG_INFO);
    import_and_migrate(&ws);
    let (code, json) = ws.skein_json(&["catalog", "export", "out"]);
    assert_eq!(code, 0, "{json:#}");
    assert_eq!(json["datasets"], 2);
    let path = ws.path().join("out/catalog-info.yaml");
    let yaml = std::fs::read_to_string(&path).unwrap();
    let entities = parse_entities(&yaml, &path).unwrap_or_else(|p| panic!("{p:#?}\n{yaml}"));
    assert_eq!(entities.len(), 2, "{yaml}");
    for (name, rows) in [("people", "3"), ("cities", "2")] {
        let e = entities
            .iter()
            .find(|e| e.metadata.name == name)
            .unwrap_or_else(|| panic!("{name} in {yaml}"));
        let ann = |k: &str| e.metadata.annotations.get(k).map(String::as_str);
        assert_eq!(ann("skein.dev/status"), Some("completed"), "{yaml}");
        assert_eq!(ann("skein.dev/version"), Some("1"), "{yaml}");
        assert_eq!(ann("skein.dev/rows"), Some(rows), "{yaml}");
        assert!(ann("skein.dev/last-verification").is_some(), "{yaml}");
        assert_eq!(ann("skein.dev/target-format"), Some("parquet"), "{yaml}");
        assert_eq!(
            ann("skein.dev/table-version"),
            None,
            "a Parquet target: {yaml}"
        );
        assert_eq!(ann("skein.dev/glue-table"), None, "{yaml}");
        assert_eq!(e.metadata.links[0].title, "Published data");
        // lossless: the exported entity reads back as the spec that was migrated
        let spec_file = ws.path().join(format!("specs/{name}.yaml"));
        let migrated = load::load_file(&spec_file).unwrap_or_else(|p| panic!("{p:#?}"));
        // (the export writes local paths relative to itself; read back, they are the same
        // absolute paths the catalog holds)
        let mut exported = SpecFile {
            path: path.clone(),
            text: String::new(),
            spec: from_entity(e, &path).unwrap_or_else(|p| panic!("{p:#?}")),
            hash: String::new(),
        };
        assert!(!exported.spec.spec.source.uri.starts_with('/'), "{yaml}");
        load::absolutize(&mut exported);
        assert_eq!(exported.spec, migrated.spec, "{name}");
    }
}
