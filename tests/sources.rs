//! Reading sources correctly: a real RFC 4180 export of many megabytes compared row for row
//! with pyarrow, CSV type sampling (`inferRecords`), and sources that cannot be read
//! (empty, cut off, bad lines, corrupt Parquet) refused with the file and line, through
//! the `skein` binary and the library, never a panic.

use std::path::Path;
use std::process::Command;

use skein_core::load;
use skein_data::Settings;

use crate::util::{Workspace, repo_root, text};

/// A spec `name.yaml` over `source` (relative to the workspace) with `sql`.
fn spec(ws: &Workspace, name: &str, source: &str, format: &str, extra: &str, sql: &str) {
    ws.write(
        &format!("{name}.yaml"),
        &format!(
            "apiVersion: skein/v1\nkind: Dataset\nmetadata: {{name: {name}}}\nspec:\n  source: {{uri: {source}, format: {format}{extra}}}\n  target: {{uri: lake/{name}}}\n  transform:\n    sql: \"{sql}\"\n"
        ),
    );
}

/// `skein migrate name.yaml --json`: exit code and the dataset's entry.
fn migrate(ws: &Workspace, name: &str) -> (i32, serde_json::Value) {
    let (code, json) = ws.skein_json(&["migrate", &format!("{name}.yaml")]);
    (code, json["datasets"][0].clone())
}

/// The Python of `.venv/` (pyarrow comes from scripts/requirements.txt).
fn python() -> std::path::PathBuf {
    let p = repo_root().join(".venv/bin/python");
    assert!(
        p.exists(),
        "{} is missing; run scripts/setup (it installs pyarrow into .venv/)",
        p.display()
    );
    p
}

pub(crate) fn run_python(script: &str, args: &[&Path]) -> std::process::Output {
    Command::new(python())
        .arg(repo_root().join("tests/python").join(script))
        .args(args)
        .output()
        .expect("run python")
}

#[test]
fn a_10_mb_rfc4180_export_migrates_row_for_row_as_pyarrow_reads_it() {
    let ws = Workspace::new();
    let csv = ws.path().join("data/export.csv");
    std::fs::create_dir_all(csv.parent().unwrap()).unwrap();
    let rows = 30_000;
    let out = run_python("rfc4180_export.py", &[&csv, Path::new(&rows.to_string())]);
    assert!(out.status.success(), "{}", text(&out));
    let bytes = std::fs::read(&csv).unwrap();
    assert!(bytes.len() > 5_000_000, "{} bytes", bytes.len());
    assert!(bytes.starts_with(b"\xef\xbb\xbf"), "the export has a BOM");
    // quoted line breaks well past the first megabyte
    let late = &bytes[2_000_000..];
    let both = b"\"line one\nline two, with comma\r\nline \"\"three\"\"\"";
    assert!(late.windows(both.len()).any(|w| w == both));
    spec(
        &ws,
        "export",
        "data/export.csv",
        "csv",
        "",
        "SELECT * FROM source",
    );
    let (code, d) = migrate(&ws, "export");
    assert_eq!(code, 0, "{d:#}");
    assert_eq!(d["rows"], rows, "{d:#}");
    let out = run_python(
        "compare_csv_parquet.py",
        &[&csv, &ws.path().join("lake/export")],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("equal: {rows} rows")
    );

    // the same source in two files, chunked by whole files, reads the same rows and types
    // cut at the first record end past the middle: a \r\n outside quotes (the csv module
    // quotes every value holding a quote, so an even count of quotes means outside)
    let half = bytes.len() / 2;
    let mut quotes = bytes[..half].iter().filter(|&&b| b == b'"').count();
    let mut cut = half;
    while !(quotes % 2 == 0 && bytes[cut] == b'\r' && bytes[cut + 1] == b'\n') {
        quotes += usize::from(bytes[cut] == b'"');
        cut += 1;
    }
    let header_end = bytes.windows(2).position(|w| w == b"\r\n").unwrap() + 2;
    let mut second = bytes[3..header_end].to_vec(); // the header without the BOM
    second.extend_from_slice(&bytes[cut + 2..]);
    std::fs::create_dir_all(ws.path().join("data/parts")).unwrap();
    std::fs::write(ws.path().join("data/parts/a.csv"), &bytes[..cut + 2]).unwrap();
    std::fs::write(ws.path().join("data/parts/b.csv"), &second).unwrap();
    spec(
        &ws,
        "parts",
        "data/parts/",
        "csv",
        ", chunkSize: 1MiB",
        "SELECT * FROM source",
    );
    let (code, d) = migrate(&ws, "parts");
    assert_eq!(code, 0, "{d:#}");
    assert_eq!(d["rows"], rows, "{d:#}");
    let out = run_python(
        "compare_csv_parquet.py",
        &[&csv, &ws.path().join("lake/parts")],
    );
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn a_small_sample_names_the_file_line_and_column_of_a_wider_value_later() {
    let ws = Workspace::new();
    let mut csv = String::from("id,v\n");
    for i in 1..=50 {
        csv.push_str(&format!("{i},{}\n", i * 10));
    }
    csv.push_str("51,\"ten\nthousand\"\n52,5\n53,fifty-three\n");
    ws.write("data/d.csv", &csv);
    spec(
        &ws,
        "sampled",
        "data/d.csv",
        "csv",
        ", csv: {inferRecords: 20}",
        "SELECT * FROM source",
    );
    let (code, d) = migrate(&ws, "sampled");
    assert_eq!(code, 1, "{d:#}");
    let error = d["error"].as_str().unwrap();
    for want in ["d.csv", "line 52", "`v`", "`ten\nthousand`", "inferRecords"] {
        assert!(error.contains(want), "`{want}` in: {error}");
    }
    // the default sample sees every row: `v` is text, nothing is lost
    spec(
        &ws,
        "whole",
        "data/d.csv",
        "csv",
        "",
        "SELECT * FROM source",
    );
    let (code, d) = migrate(&ws, "whole");
    assert_eq!(code, 0, "{d:#}");
    assert_eq!(d["rows"], 53);
}

#[test]
fn a_column_empty_in_the_sample_keeps_its_later_values() {
    let ws = Workspace::new();
    let mut csv = String::from("id,late\n");
    for i in 1..=30 {
        csv.push_str(&format!("{i},\n"));
    }
    csv.push_str("31,kept\n");
    ws.write("data/d.csv", &csv);
    spec(
        &ws,
        "late",
        "data/d.csv",
        "csv",
        ", csv: {inferRecords: 10}",
        "SELECT id FROM source WHERE late = 'kept'",
    );
    let (code, d) = migrate(&ws, "late");
    assert_eq!(code, 0, "{d:#}");
    assert_eq!(d["rows"], 1, "{d:#}");
}

#[test]
fn infer_records_is_validated_and_survives_the_backstage_round_trip() {
    let ws = Workspace::new();
    ws.write("data/d.csv", "id\n1\n");
    spec(
        &ws,
        "zero",
        "data/d.csv",
        "csv",
        ", csv: {inferRecords: 0}",
        "SELECT * FROM source",
    );
    let out = ws.skein(&["validate", "zero.yaml"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("zero.yaml") && stdout.contains("spec.source.csv.inferRecords"),
        "{}",
        text(&out)
    );
    spec(
        &ws,
        "some",
        "data/d.csv",
        "csv",
        ", csv: {inferRecords: 500}",
        "SELECT * FROM source",
    );
    let file = load::load_file(&ws.path().join("some.yaml")).unwrap();
    assert_eq!(
        file.spec.spec.source.csv.as_ref().unwrap().infer_records,
        Some(500)
    );
    let entity = skein_backstage::to_entity(&file.spec, None);
    let json = &entity.metadata.annotations["skein.dev/source-csv"];
    assert!(json.contains("\"inferRecords\":500"), "{json}");
    let back = skein_backstage::from_entity(&entity, Path::new("catalog-info.yaml")).unwrap();
    assert_eq!(back, file.spec);
}

/// Runs `skein validate` and `skein migrate` on spec `name` and checks that both refuse it
/// (no panic), naming everything in `want`; `migrate` with error `error_name`.
fn refused(ws: &Workspace, name: &str, error_name: &str, want: &[&str]) {
    let out = ws.skein(&["validate", &format!("{name}.yaml")]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "validate {name}: {}",
        text(&out)
    );
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    for w in want {
        assert!(said.contains(w), "validate {name}: `{w}` in {}", text(&out));
    }
    let (code, d) = migrate(ws, name);
    assert_eq!(code, 1, "migrate {name}: {d:#}");
    assert_eq!(d["errorName"], error_name, "migrate {name}: {d:#}");
    let error = d["error"].as_str().unwrap_or_default();
    for w in want {
        assert!(error.contains(w), "migrate {name}: `{w}` in {error}");
    }
}

/// The library's view of the same spec: `check_spec` (what validate runs) and `stage`.
fn library_error(ws: &Workspace, name: &str) -> skein_data::Error {
    let file = load::load_file(&ws.path().join(format!("{name}.yaml"))).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let settings = Settings::default();
        let store = skein_data::Target::open(&settings, &file).unwrap();
        let progress = skein_data::Progress::default();
        match skein_data::stage(&settings, &file, &store, "lib", &progress).await {
            Ok(s) => panic!("{name}: staged {:?}", s.manifest.rows),
            Err(e) => e,
        }
    })
}

#[test]
fn an_empty_source_file_is_named_as_empty() {
    let ws = Workspace::new();
    ws.write("data/empty.csv", "");
    spec(
        &ws,
        "empty",
        "data/empty.csv",
        "csv",
        "",
        "SELECT id FROM source",
    );
    refused(
        &ws,
        "empty",
        "Skein.SourceUnreadable",
        &["data/empty.csv", "is empty"],
    );
    let e = library_error(&ws, "empty");
    assert_eq!(e.error_name(), "Skein.SourceUnreadable");
    assert!(e.to_string().contains("is empty"), "{e}");
    ws.write("data/empty.ndjson", "");
    spec(
        &ws,
        "nd-empty",
        "data/empty.ndjson",
        "ndjson",
        "",
        "SELECT id FROM source",
    );
    refused(
        &ws,
        "nd-empty",
        "Skein.SourceUnreadable",
        &["data/empty.ndjson", "is empty"],
    );
    // an empty file next to others adds no rows
    ws.write("data/some/a.csv", "id\n1\n2\n");
    ws.write("data/some/b.csv", "");
    spec(
        &ws,
        "some",
        "data/some/",
        "csv",
        "",
        "SELECT id FROM source",
    );
    let (code, d) = migrate(&ws, "some");
    assert_eq!((code, d["rows"].as_u64()), (0, Some(2)), "{d:#}");
}

#[test]
fn a_quoted_field_cut_off_by_the_end_of_the_file_names_the_line_it_opened() {
    let ws = Workspace::new();
    // the open quote is in the last column: a parser alone would take the rest as the note
    ws.write(
        "data/cut.csv",
        "id,note\n1,\"fine\"\n2,\"two\nlines\"\n3,\"cut off\n4,here\n5,end\n",
    );
    spec(
        &ws,
        "cut",
        "data/cut.csv",
        "csv",
        "",
        "SELECT * FROM source",
    );
    refused(
        &ws,
        "cut",
        "Skein.SourceUnreadable",
        &["data/cut.csv", "opened on line 5"],
    );
    let e = library_error(&ws, "cut");
    assert!(e.to_string().contains("line 5"), "{e}");

    // past the sample (inferRecords: 5), in a middle column: the read fails, and the
    // failure is explained by the open quote
    let mut csv = String::from("id,note,n\n");
    for i in 1..=40 {
        csv.push_str(&format!("{i},\"ok\",{i}\n"));
    }
    csv.push_str("41,\"never closed,41\n42,x,42\n");
    ws.write("data/late.csv", &csv);
    spec(
        &ws,
        "late",
        "data/late.csv",
        "csv",
        ", csv: {inferRecords: 5}",
        "SELECT * FROM source",
    );
    let (code, d) = migrate(&ws, "late");
    assert_eq!(code, 1, "{d:#}");
    assert_eq!(d["errorName"], "Skein.SourceUnreadable", "{d:#}");
    let error = d["error"].as_str().unwrap();
    assert!(
        error.contains("data/late.csv") && error.contains("opened on line 42"),
        "{error}"
    );
}

#[test]
fn a_bad_ndjson_line_is_named_by_its_number() {
    let ws = Workspace::new();
    let mut lines: Vec<String> = (1..=6)
        .map(|i| format!("{{\"id\": {i}, \"v\": \"x{i}\"}}"))
        .collect();
    lines.push("{\"id\": 7, \"v\": oops}".into());
    lines.push("{\"id\": 8, \"v\": \"x8\"}".into());
    ws.write("data/e.ndjson", &(lines.join("\n") + "\n"));
    spec(
        &ws,
        "nd",
        "data/e.ndjson",
        "ndjson",
        "",
        "SELECT * FROM source",
    );
    refused(
        &ws,
        "nd",
        "Skein.SourceUnreadable",
        &["data/e.ndjson", "line 7"],
    );
    let e = library_error(&ws, "nd");
    assert!(e.to_string().contains("line 7"), "{e}");

    // past what schema inference reads (10,000 lines): the read fails, the line is named
    let mut text = String::new();
    for i in 1..=10_050 {
        if i == 10_020 {
            text.push_str("{\"id\": 10020, \"v\": \"unterminated}\n");
        } else {
            text.push_str(&format!("{{\"id\": {i}, \"v\": \"x\"}}\n"));
        }
    }
    ws.write("data/big.ndjson", &text);
    spec(
        &ws,
        "big",
        "data/big.ndjson",
        "ndjson",
        "",
        "SELECT * FROM source",
    );
    let (code, d) = migrate(&ws, "big");
    assert_eq!(code, 1, "{d:#}");
    let error = d["error"].as_str().unwrap();
    assert!(
        error.contains("data/big.ndjson") && error.contains("line 10020"),
        "{error}"
    );
}

#[test]
fn corrupt_parquet_files_are_refused_with_their_name() {
    let ws = Workspace::new();
    ws.write("data/t.csv", "id,v\n1,a\n2,b\n");
    spec(&ws, "good", "data/t.csv", "csv", "", "SELECT * FROM source");
    assert_eq!(migrate(&ws, "good").0, 0);
    let produced = std::fs::read_dir(ws.path().join("lake/good"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "parquet"))
        .unwrap();
    let good = std::fs::read(produced).unwrap();
    let n = good.len();
    let mut past_end = good.clone();
    past_end[n - 8..n - 4].copy_from_slice(&(n as u32 * 2).to_le_bytes());
    let mut garbage_head = good.clone();
    garbage_head[..4].copy_from_slice(b"PK\x03\x04");
    let mut garbage_tail = good.clone();
    garbage_tail[n - 4..].copy_from_slice(b"EOF!");
    let cases: [(&str, Vec<u8>, &str); 7] = [
        // Found by fuzzing: a column chunk whose metadata gives a negative start made the
        // Parquet reader panic (`byte_range`) while reading the data.
        (
            "negative-column-range",
            include_bytes!("../fuzz/seeds/parquet/column-chunk-negative-range.parquet").to_vec(),
            "cannot be read",
        ),
        ("past-end", past_end, "more than the file's"),
        // Found by fuzzing: an embedded Arrow schema with a field of type NONE made
        // arrow-ipc panic (`unimplemented!`) inside DataFusion's schema inference.
        (
            "arrow-type-none",
            include_bytes!("../fuzz/seeds/parquet/arrow-schema-type-none.parquet").to_vec(),
            "has a schema in its metadata that cannot be read",
        ),
        (
            "truncated",
            good[..n / 2].to_vec(),
            "does not end with the Parquet magic",
        ),
        (
            "garbage-head",
            garbage_head,
            "does not start with the Parquet magic",
        ),
        (
            "garbage-tail",
            garbage_tail,
            "does not end with the Parquet magic",
        ),
        ("zero", Vec::new(), "0 bytes long"),
    ];
    for (name, bytes, why) in cases {
        let rel = format!("data/{name}.parquet");
        std::fs::write(ws.path().join(&rel), bytes).unwrap();
        spec(&ws, name, &rel, "parquet", "", "SELECT * FROM source");
        refused(&ws, name, "Skein.SourceUnreadable", &[&rel, why]);
        // a good file next to it in a chunked prefix: chunk planning reads footers too
        let dir = format!("data/{name}-dir");
        std::fs::create_dir_all(ws.path().join(&dir)).unwrap();
        std::fs::write(ws.path().join(&dir).join("a.parquet"), &good).unwrap();
        std::fs::copy(ws.path().join(&rel), ws.path().join(&dir).join("b.parquet")).unwrap();
        let chunked = format!("{name}-chunked");
        spec(
            &ws,
            &chunked,
            &dir,
            "parquet",
            ", chunkSize: 1MiB",
            "SELECT * FROM source",
        );
        refused(&ws, &chunked, "Skein.SourceUnreadable", &["b.parquet", why]);
        let e = library_error(&ws, name);
        assert_eq!(e.error_name(), "Skein.SourceUnreadable", "{name}: {e}");
    }
}

#[test]
fn a_corrupted_staged_or_published_file_fails_verify_with_its_name() {
    let ws = Workspace::new();
    ws.write("data/t.csv", "id,v\n1,a\n2,b\n");
    spec(&ws, "pub", "data/t.csv", "csv", "", "SELECT * FROM source");
    let yaml = std::fs::read_to_string(ws.path().join("pub.yaml")).unwrap();
    ws.write("pub.yaml", &format!("{yaml}  verify:\n    key: id\n"));
    assert_eq!(migrate(&ws, "pub").0, 0);
    let dir = std::fs::canonicalize(ws.path().join("lake/pub")).unwrap();
    let file = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "parquet"))
        .unwrap();
    let mut bytes = std::fs::read(&file).unwrap();
    let n = bytes.len();
    bytes[n - 8..n - 4].copy_from_slice(&u32::MAX.to_le_bytes());
    std::fs::write(&file, bytes).unwrap();
    let name = file.file_name().unwrap().to_string_lossy().to_string();
    for args in [&["verify", "pub.yaml"][..], &["diff", "pub.yaml"][..]] {
        let out = ws.skein(args);
        assert_ne!(out.status.code(), Some(101), "{args:?}: {}", text(&out));
        assert_ne!(out.status.code(), Some(0), "{args:?}: {}", text(&out));
        let all = text(&out);
        assert!(all.contains(&name), "{args:?} names the file: {all}");
    }
}

#[test]
fn the_quote_tracker_follows_rfc4180_across_pieces() {
    use skein_data::csv_source::QuoteTracker;
    // (text, line of a quoted field still open at the end, records ended)
    let cases: &[(&str, Option<u64>, u64)] = &[
        ("a,b\n1,\"x\ny\"\n", None, 2),
        ("a,b\n1,\"say \"\"hi\"\"\"\n2,x\n", None, 3),
        ("a,b\n1,x\n2,\"cut\noff\n", Some(3), 2),
        ("\u{feff}\"a\",b\n1,ab\"c\n", None, 2),
        ("a,b\r\n1,\"\"\r\n2,\"", Some(3), 2),
        ("a,b\n1,\"ends with a quote\"", None, 1),
        ("a,b\n1,\"\"\"\"\n", None, 2),
        ("a,b\n1,x\"y\n2,\"z\"\n", None, 3),
        ("\u{feff}\"a\nb\",c\n", None, 1),
    ];
    for &(text, open, records) in cases {
        for pieces in [1, 2, 3, 7, 100] {
            let mut t = QuoteTracker::new(b'"', b',');
            let bytes = text.as_bytes();
            for piece in bytes.chunks(bytes.len().div_ceil(pieces).max(1)) {
                t.feed(piece);
            }
            assert_eq!(t.open_quote_line(), open, "{text:?} in {pieces} pieces");
            assert_eq!(t.records(), records, "{text:?} in {pieces} pieces");
        }
    }
}
