//! Finding the rows: `skein diff` bisects key buckets down to the rows that differ, and
//! `skein verify` runs it by itself when rows or content do not match.

use std::collections::BTreeSet;
use std::fmt::Write;

use serde_json::Value;

use crate::util::Workspace;

const N: usize = 1_000_000;

fn csv(skip: &[usize], change: &[usize], extra: &[usize]) -> String {
    let mut s = String::with_capacity(N * 24);
    s.push_str("id,name,amount\n");
    for i in 0..N {
        if skip.contains(&i) {
            continue;
        }
        let amount = if change.contains(&i) {
            999_999
        } else {
            i % 1000
        };
        let _ = writeln!(s, "{i},n{},{amount}", i % 97);
    }
    for i in extra {
        let _ = writeln!(s, "{i},new,1");
    }
    s
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect()
}

fn set(ks: &[usize]) -> BTreeSet<String> {
    ks.iter().map(|k| k.to_string()).collect()
}

#[test]
fn seven_planted_differences_in_a_million_rows_are_found_exactly() {
    let ws = Workspace::new();
    ws.write("data/d.csv", &csv(&[], &[], &[]));
    ws.write(
        "d.yaml",
        "apiVersion: skein/v1\nkind: Dataset\nmetadata: {name: d}\nspec:\n  source: {uri: data/d.csv, format: csv}\n  \
         target: {uri: lake/d}\n  verify: {key: id}\n",
    );
    let (code, json) = ws.skein_json(&["migrate", "d.yaml"]);
    assert_eq!(code, 0, "{json:#}");
    let (code, same) = ws.skein_json(&["diff", "d"]);
    assert_eq!(code, 0, "no differences yet: {same:#}");
    assert_eq!(same["reports"][0]["changed"], 0);

    // The source moves on: 2 rows gone, 3 changed, 2 new.
    let (missing, changed, new) = ([17, 654_321], [5, 500_000, 999_999], [1_000_007, 2_000_000]);
    ws.write("data/d.csv", &csv(&missing, &changed, &new));
    let (code, json) = ws.skein_json(&["diff", "d", "--threshold", "256"]);
    assert_eq!(code, 1, "{json:#}");
    let r = &json["reports"][0];
    assert_eq!(r["onlyInSource"], 2, "{r:#}");
    assert_eq!(keys(&r["onlyInSourceKeys"]), set(&new));
    assert_eq!(r["onlyInTarget"], 2);
    assert_eq!(keys(&r["onlyInTargetKeys"]), set(&missing));
    assert_eq!(r["changed"], 3);
    let changed_rows: BTreeSet<String> = r["changedRows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["key"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(changed_rows, set(&changed));
    for c in r["changedRows"].as_array().unwrap() {
        let cols: Vec<&str> = c["columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["column"].as_str().unwrap())
            .collect();
        assert_eq!(cols, ["amount"], "only the amount changed: {c:#}");
        assert_eq!(c["columns"][0]["source"], "999999");
    }
    assert!(r["levels"].as_u64().unwrap() >= 2, "bisected: {r:#}");
    assert_eq!(r["sourceRows"], N as u64);

    // `skein verify` finds the mismatch and localises it by itself.
    let (code, json) = ws.skein_json(&["verify", "d"]);
    assert_eq!(code, 1, "{json:#}");
    let d = &json["datasets"][0];
    assert_eq!(d["diff"]["changed"], 3, "{d:#}");
    assert_eq!(keys(&d["diff"]["onlyInTargetKeys"]), set(&missing));
    let reports = ws.path().join("lake/.d.skein/reports");
    assert_eq!(
        std::fs::read_dir(&reports).unwrap().count(),
        1,
        "the report is kept"
    );
}

#[test]
fn without_a_key_the_report_has_counts_and_says_why() {
    let ws = Workspace::new();
    ws.write("data/k.csv", "a,b\n1,x\n2,y\n");
    ws.write(
        "k.yaml",
        "apiVersion: skein/v1\nkind: Dataset\nmetadata: {name: k}\nspec:\n  source: {uri: data/k.csv, format: csv}\n  target: {uri: lake/k}\n",
    );
    assert_eq!(ws.skein_json(&["migrate", "k.yaml"]).0, 0);
    ws.write("data/k.csv", "a,b\n1,x\n2,y\n3,z\n");
    let (code, json) = ws.skein_json(&["diff", "k"]);
    assert_eq!(code, 1, "{json:#}");
    let r = &json["reports"][0];
    assert_eq!(
        (r["sourceRows"].as_u64(), r["targetRows"].as_u64()),
        (Some(3), Some(2))
    );
    assert!(r["note"].as_str().unwrap().contains("verify.key"), "{r:#}");
    let out = ws.skein(&["diff", "k"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("no key"), "{text}");
}
