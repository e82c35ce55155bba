//! YAML in every loader (dataset specs, the fleet's `skein.yaml`, Backstage catalog files):
//! anchors and aliases resolve; an alias to no anchor, and YAML the library chokes on,
//! are problems naming the file and line, never a panic (the `skein` binary exits 2,
//! never 101).

use std::process::Output;

use crate::util::{Workspace, text};

const SPEC: &str = "apiVersion: skein/v1
kind: Dataset
metadata: {name: d, owner: &team team-a}
spec:
  source: {uri: data/d.csv, format: csv}
  target: {uri: lake/d}
  verify:
    rules: [{notNull: &id id}, {unique: *id}]
";

const ENTITY: &str = "apiVersion: backstage.io/v1alpha1
kind: Resource
metadata:
  name: NAME
  annotations:
    skein.dev/source: data/NAME.csv
    skein.dev/source-format: csv
    skein.dev/target: lake/NAME
spec: {type: dataset, owner: team-a}
";

/// Asserts `skein` refused the input (exit 2) with a problem naming `file` at `line`.
fn refused(out: &Output, file: &str, line: usize) {
    assert_eq!(out.status.code(), Some(2), "{}", text(out));
    let all = text(out);
    assert!(
        all.contains(&format!("{file}:{line}:")),
        "expected a problem at {file}:{line}: {all}"
    );
    assert!(!all.contains("panicked"), "{all}");
}

// The crash found by fuzzing: `skein catalog import` of `x: *a` panicked in the YAML
// library (it read on past the broken document), exit 101.
#[test]
fn catalog_import_refuses_an_alias_to_no_anchor() {
    let ws = Workspace::new();
    let entity = |name: &str| ENTITY.replace("NAME", name);
    // (file content, line of the problem)
    let cases = [
        ("x: *a\n".to_string(), 1),
        ("x: *a\n---\ny: 1\n".to_string(), 1),
        (
            format!(
                "{}---\nmetadata: {{name: *nowhere}}\n---\n{}",
                entity("a"),
                entity("b")
            ),
            11,
        ),
        (format!("{}  labels: {{team: *t}}\n", entity("a")), 10),
        ("- [*a, &a 1]\n".to_string(), 1),
    ];
    for (i, (content, line)) in cases.iter().enumerate() {
        let name = format!("catalog-{i}.yaml");
        ws.write(&name, content);
        let out = ws.skein(&["catalog", "import", &name]);
        refused(&out, &name, *line);
    }
}

// Aliases to anchors defined earlier are resolved, in an imported entity as in a spec.
#[test]
fn aliases_to_anchors_resolve() {
    let ws = Workspace::new();
    let entity = ENTITY.replace("NAME", "d").replace(
        "spec: {type: dataset, owner: team-a}",
        "spec: {type: dataset, owner: &o team-a, system: *o}",
    );
    ws.write("catalog-info.yaml", &entity);
    ws.write("data/d.csv", "id\n1\n");
    let out = ws.skein(&["catalog", "import", "catalog-info.yaml", "--out", "specs"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    ws.write("specs2/d.yaml", SPEC);
    let loaded = skein_core::load::load(&ws.path().join("specs2"));
    assert_eq!(loaded.problems, vec![], "{SPEC}");
    assert_eq!(
        loaded.files[0].spec.metadata.owner.as_deref(),
        Some("team-a")
    );
}

// `skein validate` of a spec, `skein plan` of a directory whose `skein.yaml` is broken.
#[test]
fn specs_and_the_fleet_refuse_an_alias_to_no_anchor() {
    let ws = Workspace::new();
    ws.write(
        "specs/d.yaml",
        &SPEC.replace("{unique: *id}", "{unique: *missing}"),
    );
    let out = ws.skein(&["validate", "specs/d.yaml"]);
    refused(&out, "d.yaml", 8);

    ws.write("fleet/d.yaml", SPEC);
    ws.write("fleet/data/d.csv", "id\n1\n");
    ws.write(
        "fleet/skein.yaml",
        "apiVersion: skein/v1\nkind: Fleet\nspec:\n  maxConcurrency: *cap\n",
    );
    let out = ws.skein(&["plan", "fleet"]);
    refused(&out, "skein.yaml", 4);
    // the fleet's maxConcurrency is the run's distributed Map's: at most 10,000
    ws.write(
        "fleet/skein.yaml",
        "apiVersion: skein/v1\nkind: Fleet\nspec:\n  maxConcurrency: 10001\n",
    );
    let out = ws.skein(&["plan", "fleet"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("spec.maxConcurrency"),
        "{}",
        text(&out)
    );
}
