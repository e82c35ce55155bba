//! One large CSV or NDJSON file in byte-range chunks: the cuts land on record starts
//! (tested on the boundary finder directly), an export without line breaks in its values
//! (`newlinesInValues: false`) and an NDJSON file migrate in several chunks and read back
//! row for row as pyarrow and Python's json module read the source, and a CSV whose values
//! may hold line breaks (the default) is not split and says why.

use std::fmt::Write as _;
use std::ops::Range;
use std::path::Path;

use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use serde_json::Value;
use skein_data::boundary::{WINDOW, byte_ranges, record_start};

use crate::sources::run_python;
use crate::util::{Workspace, text};

/// The boundary finder over `bytes` written to a temp file: `record_start` at each cut.
fn starts(bytes: &[u8], cuts: &[u64]) -> Vec<u64> {
    let (_dir, store, path) = stored(bytes);
    block_on(async {
        let mut out = Vec::new();
        for &cut in cuts {
            out.push(
                record_start(&store, &path, bytes.len() as u64, cut)
                    .await
                    .unwrap(),
            );
        }
        out
    })
}

/// `byte_ranges` of `bytes` cut every `size` bytes, as `(start, end)`.
fn ranges(bytes: &[u8], size: u64) -> Vec<(u64, u64)> {
    let (_dir, store, path) = stored(bytes);
    let ranges: Vec<Range<u64>> =
        block_on(byte_ranges(&store, &path, bytes.len() as u64, size)).unwrap();
    ranges.into_iter().map(|r| (r.start, r.end)).collect()
}

fn stored(bytes: &[u8]) -> (tempfile::TempDir, LocalFileSystem, ObjectPath) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f.txt");
    std::fs::write(&file, bytes).unwrap();
    let path = ObjectPath::from_filesystem_path(&file).unwrap();
    (dir, LocalFileSystem::new(), path)
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

/// Checks the invariant of a file's ranges: contiguous, non-empty, covering the file, each
/// starting at 0 or right after `\n`, so the records of the ranges are the file's records.
fn check_ranges(bytes: &[u8], ranges: &[(u64, u64)]) {
    let mut at = 0u64;
    for &(start, end) in ranges {
        let r = start..end;
        assert_eq!(r.start, at, "contiguous: {ranges:?}");
        assert!(r.end > r.start, "non-empty: {ranges:?}");
        assert!(
            r.start == 0 || bytes[r.start as usize - 1] == b'\n',
            "{r:?} starts at a record start"
        );
        at = r.end;
    }
    assert_eq!(
        at,
        bytes.len() as u64,
        "the ranges cover the file: {ranges:?}"
    );
    let lines: Vec<&[u8]> = ranges
        .iter()
        .flat_map(|&(start, end)| {
            bytes[start as usize..end as usize].split_inclusive(|&b| b == b'\n')
        })
        .collect();
    let whole: Vec<&[u8]> = bytes.split_inclusive(|&b| b == b'\n').collect();
    assert_eq!(lines, whole, "no record is split");
}

#[test]
fn a_cut_moves_to_the_next_record_start_and_never_splits_a_record() {
    let lf = b"a\nbb\nccc\n";
    // a cut right after a newline stays; a cut on the newline or inside a record moves
    // past the record's newline; a cut at the end or past the last newline is the end
    assert_eq!(
        starts(lf, &[0, 1, 2, 3, 4, 5, 6, 8, 9]),
        [0, 2, 2, 5, 5, 5, 9, 9, 9]
    );

    let crlf = b"id\r\n1\r\n22\r\n";
    // on the `\r` or the `\n` of a CRLF ending: after the `\n`, the `\r` stays with its record
    assert_eq!(starts(crlf, &[2, 3, 4, 5, 6, 7]), [4, 4, 4, 7, 7, 7]);
    check_ranges(crlf, &ranges(crlf, 1));

    // the last record without a trailing newline is read whole by the last range
    let open_end = b"a\nbbbbbb";
    assert_eq!(starts(open_end, &[3, 7]), [8, 8]);
    assert_eq!(ranges(open_end, 3), [(0, 8)]); // the cut at 3 falls in the last record
    assert_eq!(ranges(open_end, 1), [(0, 2), (2, 8)]);
    check_ranges(open_end, &ranges(open_end, 1));

    // a range shorter than one record: the cuts inside it add no range
    let long = b"xxxxxxxxxx\nyy\nz\n";
    assert_eq!(ranges(long, 3), [(0, 11), (11, 14), (14, 16)]);
    assert_eq!(ranges(long, 100), [(0, 16)]);

    // a record longer than the look-ahead window: found window after window
    let mut big = vec![b'q'; (WINDOW * 2 + 17) as usize];
    big.push(b'\n');
    big.extend_from_slice(b"tail\n");
    assert_eq!(starts(&big, &[5]), [WINDOW * 2 + 18]);
    assert_eq!(
        ranges(&big, WINDOW),
        [(0, WINDOW * 2 + 18), (WINDOW * 2 + 18, WINDOW * 2 + 23)]
    );

    // a file with no line break at all is one range
    assert_eq!(ranges(b"no newline", 2), [(0, 10)]);

    // every cut size over lines of varying lengths, CRLF and LF, keeps every record whole
    let mut mixed = Vec::new();
    for i in 0..200usize {
        mixed.extend(std::iter::repeat_n(b'v', (i * 37) % 23));
        mixed.extend_from_slice(if i % 3 == 0 { b"\r\n" } else { b"\n" });
    }
    mixed.extend_from_slice(b"last,without,newline");
    for size in 1..60 {
        check_ranges(&mixed, &ranges(&mixed, size));
    }
}

/// A spec over one source file, chunked at 1 MiB when `chunked`.
fn spec(ws: &Workspace, name: &str, source: &str, format: &str, extra: &str, chunked: bool) {
    let chunk = if chunked { ", chunkSize: 1MiB" } else { "" };
    ws.write(
        &format!("{name}.yaml"),
        &format!(
            "apiVersion: skein/v1\nkind: Dataset\nmetadata: {{name: {name}}}\nspec:\n  \
             source: {{uri: {source}, format: {format}{extra}{chunk}}}\n  target: {{uri: lake/{name}}}\n  \
             verify:\n    key: id\n    rules:\n      - {{unique: id}}\n      - {{notNull: id}}\n"
        ),
    );
}

/// `skein migrate name.yaml --json`: the dataset's result (exit 0 asserted) and stderr.
fn migrate(ws: &Workspace, name: &str) -> (Value, String) {
    let file = format!("{name}.yaml");
    let out = ws.skein(&["migrate", &file, "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    (
        json["datasets"][0].clone(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn manifest(ws: &Workspace, name: &str) -> Value {
    let path = ws.path().join("lake").join(name).join("_manifest.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The chunked and the whole migration published the same rows (an order-independent
/// checksum over every row), schema and row count.
fn assert_same_version(ws: &Workspace, chunked: &str, whole: &str) {
    let (a, b) = (manifest(ws, chunked), manifest(ws, whole));
    for field in ["rows", "checksum", "schema"] {
        assert_eq!(a[field], b[field], "{field} of {chunked} and {whole}");
    }
}

#[test]
fn one_large_csv_file_without_line_breaks_in_values_is_migrated_in_byte_ranges() {
    let ws = Workspace::new();
    let csv = ws.path().join("data/export.csv");
    std::fs::create_dir_all(csv.parent().unwrap()).unwrap();
    let rows = 20_000;
    let out = run_python(
        "rfc4180_export.py",
        &[&csv, Path::new(&rows.to_string()), Path::new("flat")],
    );
    assert!(out.status.success(), "{}", text(&out));
    let bytes = std::fs::read(&csv).unwrap();
    assert!(bytes.len() > 5 * 1024 * 1024, "{} bytes", bytes.len());
    assert!(bytes.starts_with(b"\xef\xbb\xbf"), "the export has a BOM");
    assert!(
        !bytes.windows(3).any(|w| w == b"\n\n\n"),
        "sanity: a flat export"
    );
    let flat = ", csv: {newlinesInValues: false}";
    spec(&ws, "ranges", "data/export.csv", "csv", flat, true);
    spec(&ws, "whole", "data/export.csv", "csv", flat, false);

    let (r, stderr) = migrate(&ws, "ranges");
    assert_eq!(r["outcome"], "completed", "{r:#}");
    let chunks = r["chunks"].as_u64().unwrap_or(0);
    let mib = bytes.len() as u64 / (1024 * 1024);
    assert!(
        chunks >= 4 && (mib..=mib + 1).contains(&chunks),
        "{} bytes in 1 MiB byte ranges: {r:#}",
        bytes.len()
    );
    assert!(!stderr.contains("not split"), "{stderr}");
    assert_eq!(r["rows"], rows, "{r:#}");
    let v = &r["verification"];
    assert_eq!(v["passed"], true, "{v:#}");

    // row for row as pyarrow reads the file (unicode, quotes, commas, nulls, the BOM,
    // timestamps with zones as UTC instants)
    let out = run_python(
        "compare_csv_parquet.py",
        &[&csv, &ws.path().join("lake/ranges")],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("equal: {rows} rows")
    );
    // and the same version as the file read in one job
    let (w, _) = migrate(&ws, "whole");
    assert!(w.get("chunks").is_none(), "{w:#}");
    assert_same_version(&ws, "ranges", "whole");
}

/// NDJSON lines with unicode, escaped quotes and line breaks (`\n` inside a JSON string is
/// two characters), commas, nulls and missing keys, of varying lengths.
fn ndjson_file(rows: usize) -> String {
    let words = [
        "Zoë",
        "李雷",
        "🚚",
        "a, b",
        "say \"hi\"",
        "two\nlines",
        "tab\there",
    ];
    let mut s = String::new();
    for i in 0..rows {
        let mut row = serde_json::Map::new();
        row.insert("id".into(), Value::from(i as i64));
        let note: String = (0..(i * 7) % 13)
            .map(|k| words[(i + k) % words.len()])
            .collect::<Vec<_>>()
            .join(" ");
        row.insert(
            "note".into(),
            if i % 11 == 0 {
                Value::Null
            } else {
                Value::from(note)
            },
        );
        if i % 17 != 0 {
            row.insert("amount".into(), Value::from((i as f64) * 0.25 + 0.5));
        }
        row.insert(
            "ts".into(),
            Value::from(format!(
                "2024-{:02}-{:02}T{:02}:00:00{}",
                1 + i % 12,
                1 + i % 28,
                i % 24,
                ["Z", "+02:00", "-05:30"][i % 3]
            )),
        );
        row.insert("ok".into(), Value::from(i % 2 == 0));
        let _ = writeln!(s, "{}", Value::Object(row));
    }
    s
}

#[test]
fn one_large_ndjson_file_is_migrated_in_byte_ranges() {
    let ws = Workspace::new();
    let rows = 50_000;
    let path = ws.write("data/events.ndjson", &ndjson_file(rows));
    let size = std::fs::metadata(&path).unwrap().len();
    assert!(size > 4 * 1024 * 1024, "{size} bytes");
    spec(&ws, "ranges", "data/events.ndjson", "ndjson", "", true);
    spec(&ws, "whole", "data/events.ndjson", "ndjson", "", false);

    let (r, _) = migrate(&ws, "ranges");
    assert_eq!(r["outcome"], "completed", "{r:#}");
    assert!(
        r["chunks"].as_u64().unwrap_or(0) >= 4,
        "{size} bytes: {r:#}"
    );
    assert_eq!(r["rows"], rows, "{r:#}");
    let out = run_python(
        "compare_ndjson_parquet.py",
        &[&path, &ws.path().join("lake/ranges"), Path::new("id")],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("equal: {rows} rows")
    );
    let (w, _) = migrate(&ws, "whole");
    assert!(w.get("chunks").is_none(), "{w:#}");
    assert_same_version(&ws, "ranges", "whole");
}

#[test]
fn a_csv_whose_values_may_hold_line_breaks_is_not_split_and_says_why() {
    let ws = Workspace::new();
    let csv = ws.path().join("data/export.csv");
    std::fs::create_dir_all(csv.parent().unwrap()).unwrap();
    let rows = 8_000;
    let out = run_python("rfc4180_export.py", &[&csv, Path::new(&rows.to_string())]);
    assert!(out.status.success(), "{}", text(&out));
    let size = std::fs::metadata(&csv).unwrap().len();
    assert!(size > 2 * 1024 * 1024, "larger than two chunks: {size}");
    spec(&ws, "export", "data/export.csv", "csv", "", true);

    let (r, stderr) = migrate(&ws, "export");
    assert_eq!(r["outcome"], "completed", "{r:#}");
    assert!(r.get("chunks").is_none(), "read whole, as one job: {r:#}");
    assert!(
        stderr.contains("is not split: values may hold line breaks")
            && stderr.contains("newlinesInValues: false"),
        "{stderr}"
    );
    let out = run_python(
        "compare_csv_parquet.py",
        &[&csv, &ws.path().join("lake/export")],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("equal: {rows} rows")
    );
    // Declared without line breaks, the same file is cut; the read of a range that split
    // a quoted value fails, and the failure names the value and the setting.
    spec(
        &ws,
        "declared",
        "data/export.csv",
        "csv",
        ", csv: {newlinesInValues: false}",
        true,
    );
    let (code, out) = ws.skein_json(&["migrate", "declared.yaml"]);
    assert_eq!(code, 1, "{out:#}");
    let r = &out["datasets"][0];
    assert_eq!(r["errorName"], "Skein.SourceUnreadable", "{r:#}");
    let error = r["error"].as_str().unwrap();
    assert!(
        error.contains("opened on line 2 holds a line break")
            && error.contains("remove newlinesInValues: false"),
        "{error}"
    );
    assert!(
        !ws.path().join("lake/declared").exists(),
        "nothing published"
    );
}

#[test]
fn a_value_that_does_not_convert_in_a_byte_range_is_placed_by_its_range() {
    let ws = Workspace::new();
    let csv = ws.path().join("data/export.csv");
    std::fs::create_dir_all(csv.parent().unwrap()).unwrap();
    let out = run_python(
        "rfc4180_export.py",
        &[&csv, Path::new("8000"), Path::new("flat")],
    );
    assert!(out.status.success(), "{}", text(&out));
    let mut bytes = std::fs::read(&csv).unwrap();
    bytes.extend_from_slice(b"99999,\"late, row\",not-a-number,,\r\n");
    std::fs::write(&csv, &bytes).unwrap();
    spec(
        &ws,
        "bad",
        "data/export.csv",
        "csv",
        ", csv: {newlinesInValues: false, inferRecords: 1000}",
        true,
    );
    let (code, out) = ws.skein_json(&["migrate", "bad.yaml"]);
    assert_eq!(code, 1, "{out:#}");
    let r = &out["datasets"][0];
    assert_eq!(r["errorName"], "Skein.BadValue", "{r:#}");
    let error = r["error"].as_str().unwrap();
    let last = bytes.len();
    assert!(
        error.contains("column `amount` has value `not-a-number`")
            && error.contains("it is in chunk ")
            && error.contains(&format!("..{last} of `"))
            && !error.contains("on line"),
        "{error}"
    );
}
