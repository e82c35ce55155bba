//! Source formats beyond plain CSV, NDJSON and Parquet (issue 23): CSV and NDJSON
//! compressed with gzip, zstd, xz or bzip2 (from the extension or `source.compression`),
//! and Avro object container files; each written by a tool that shares no code with skein
//! and read back by another (pyarrow, DuckDB with its avro extension).

use std::path::Path;

use serde_json::Value;

use crate::sources::run_python;
use crate::util::{Workspace, repo_root, text};

/// Rows of a DuckDB query run in `dir` (the avro extension loaded offline).
fn duckdb(dir: &Path, sql: &str) -> Value {
    let ext = repo_root().join(
        ".venv/lib/python3.11/site-packages/duckdb_extension_avro/extensions/v1.5.5/avro.duckdb_extension",
    );
    let setup = format!(
        "con.execute(\"INSTALL '{}'\")\ncon.execute('LOAD avro')",
        ext.display()
    );
    crate::util::duckdb_rows(dir, &setup, sql)
}

fn spec(ws: &Workspace, name: &str, source: &str) {
    ws.write(
        &format!("{name}.yaml"),
        &format!(
            "apiVersion: skein/v1\nkind: Dataset\nmetadata: {{name: {name}}}\nspec:\n  source: {source}\n  target: {{uri: lake/{name}}}\n"
        ),
    );
}

#[test]
fn compressed_csv_ndjson_and_avro_sources_read_as_other_engines_read_them() {
    let ws = Workspace::new();
    let data = ws.path().join("data");
    let out = run_python("write_sources.py", &[&data, Path::new("3000")]);
    assert!(out.status.success(), "{}", text(&out));
    for (name, file) in [
        ("gz", "export.csv.gz"),
        ("zst", "export.csv.zst"),
        ("xz", "export.csv.xz"),
        ("bz2", "export.csv.bz2"),
    ] {
        spec(&ws, name, &format!("{{uri: data/{file}, format: csv}}"));
    }
    // a compression named in the spec, on a file whose name does not say it
    std::fs::copy(data.join("export.csv.gz"), data.join("export-gzip.bin")).unwrap();
    spec(
        &ws,
        "named",
        "{uri: data/export-gzip.bin, format: csv, compression: gzip}",
    );
    spec(
        &ws,
        "events",
        "{uri: data/events.ndjson.gz, format: ndjson}",
    );
    spec(&ws, "avro", "{uri: data/avro, format: avro}");
    let names = ["gz", "zst", "xz", "bz2", "named", "events", "avro"];
    let files: Vec<String> = names.iter().map(|n| format!("{n}.yaml")).collect();
    let mut args = vec!["migrate"];
    args.extend(files.iter().map(String::as_str));
    let out = ws.skein(&args);
    assert!(out.status.success(), "{}", text(&out));
    // Each compressed CSV: row for row what pyarrow reads from the same compressed file
    // (gzip, zstd), or from the bytes it was compressed from (pyarrow has no xz or bzip2).
    for name in ["gz", "zst", "xz", "bz2"] {
        let file = match name {
            "gz" | "zst" => data.join(format!("export.csv.{name}")),
            _ => data.join("export.csv"),
        };
        let out = run_python(
            "compare_csv_parquet.py",
            &[&file, &ws.path().join(format!("lake/{name}"))],
        );
        assert!(out.status.success(), "{name}: {}", text(&out));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "equal: 3000 rows"
        );
    }
    let out = run_python(
        "compare_csv_parquet.py",
        &[&data.join("export.csv"), &ws.path().join("lake/named")],
    );
    assert!(out.status.success(), "named: {}", text(&out));
    // NDJSON (gzip) and Avro: what DuckDB reads from the same files, row for row.
    let expected = duckdb(
        &data,
        "SELECT id, note, amount, ok FROM read_json_auto('events.ndjson.gz') ORDER BY id",
    );
    let published = duckdb(
        ws.path(),
        "SELECT id, note, amount, ok FROM 'lake/events/*.parquet' ORDER BY id",
    );
    assert_eq!(published.as_array().map(Vec::len), Some(3000));
    assert_eq!(published, expected);
    let expected = duckdb(
        &data,
        "SELECT id, name, amount, paid, epoch_ms(\"at\") FROM read_avro('avro/*.avro') ORDER BY id",
    );
    let published = duckdb(
        ws.path(),
        "SELECT id, name, amount, paid, epoch_ms(\"at\") FROM 'lake/avro/*.parquet' ORDER BY id",
    );
    assert_eq!(published.as_array().map(Vec::len), Some(3000));
    assert_eq!(published, expected);
}

#[test]
fn compressed_files_are_chunked_whole_and_compression_is_for_text_sources_only() {
    let ws = Workspace::new();
    let data = ws.path().join("data");
    let out = run_python("write_sources.py", &[&data, Path::new("20000")]);
    assert!(out.status.success(), "{}", text(&out));
    // Four gzip files in a directory, chunked at 1 MiB: a compressed file is never cut.
    std::fs::create_dir_all(ws.path().join("parts")).unwrap();
    let gz = std::fs::read(data.join("export.csv.gz")).unwrap();
    for i in 0..4 {
        std::fs::write(ws.path().join(format!("parts/p{i}.csv.gz")), &gz).unwrap();
    }
    assert!(gz.len() > 512 * 1024, "{} bytes", gz.len());
    spec(
        &ws,
        "parts",
        "{uri: parts, format: csv, chunkSize: 1MiB, csv: {newlinesInValues: false}}",
    );
    let (code, json) = ws.skein_json(&["migrate", "parts.yaml"]);
    assert_eq!(code, 0, "{json:#}");
    let d = &json["datasets"][0];
    assert_eq!(d["rows"], 80_000, "{json:#}");
    assert!(d["chunks"].as_u64().unwrap_or(0) >= 2, "{json:#}");
    // compression on an Avro source is refused by name
    spec(
        &ws,
        "bad",
        "{uri: data/avro, format: avro, compression: gzip}",
    );
    let out = ws.skein(&["validate", "bad.yaml"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("spec.source.compression"),
        "{}",
        text(&out)
    );
}

/// Runs a Python snippet with the project's `.venv` (pyarrow) in `dir`.
fn python(dir: &Path, code: &str) {
    let out = std::process::Command::new(repo_root().join(".venv/bin/python"))
        .arg("-c")
        .arg(code)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn parquet_files_with_differing_schemas_are_read_by_column_name_and_a_type_conflict_is_named() {
    let ws = Workspace::new();
    let data = ws.path().join("data/parts");
    std::fs::create_dir_all(&data).unwrap();
    // Written by pyarrow as a source system's exports drift: a column added later, the
    // columns reordered, a column dropped, unicode and nulls.
    python(
        &data,
        "import pyarrow as pa, pyarrow.parquet as pq\n\
         pq.write_table(pa.table({'id': [1, 2], 'name': ['Zoë', None]}), '2024-01.parquet')\n\
         pq.write_table(pa.table({'id': [3], 'name': ['Ørsted'], 'amount': [1.5]}), '2024-02.parquet')\n\
         pq.write_table(pa.table({'amount': [None, 2.25], 'id': [4, 5]}), '2024-03.parquet')\n",
    );
    spec(&ws, "drift", "{uri: data/parts, format: parquet}");
    let out = ws.skein(&["migrate", "drift.yaml"]);
    assert!(out.status.success(), "{}", text(&out));
    // What DuckDB reads from the same files by name is what skein published.
    let expected = duckdb(
        &data,
        "SELECT id, name, amount FROM read_parquet('*.parquet', union_by_name = true) ORDER BY id",
    );
    let published = duckdb(
        ws.path(),
        "SELECT id, name, amount FROM 'lake/drift/*.parquet' ORDER BY id",
    );
    assert_eq!(published.as_array().map(Vec::len), Some(5));
    assert_eq!(published, expected);

    // A month whose ids were exported as text: refused naming the column, both files and
    // both types, and the published version stays as it was.
    python(
        &data,
        "import pyarrow as pa, pyarrow.parquet as pq\n\
         pq.write_table(pa.table({'id': ['6'], 'name': ['x']}), '2024-04.parquet')\n",
    );
    let out = ws.skein(&["migrate", "drift.yaml"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let all = text(&out);
    for says in [
        "column `id` is Int64 in",
        "2024-01.parquet",
        "but Utf8 in",
        "2024-04.parquet",
        "rewrite",
    ] {
        assert!(all.contains(says), "`{says}` missing in {all}");
    }
    let still = duckdb(ws.path(), "SELECT count(*) FROM 'lake/drift/*.parquet'");
    assert_eq!(still, serde_json::json!([[5]]));
}

#[test]
fn csv_files_of_one_source_with_different_headers_are_named() {
    let ws = Workspace::new();
    ws.write(
        "data/parts/2024-01.csv",
        "\u{feff}id,name\n1,\"Zoë\nline two\"\n2,b\n",
    );
    ws.write("data/parts/2024-02.csv", "id,name,region\n3,c,EU\n");
    spec(&ws, "headers", "{uri: data/parts, format: csv}");
    let out = ws.skein(&["migrate", "headers.yaml"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let all = text(&out);
    for says in [
        "2024-02.csv is unreadable: its header has 3 columns (id, name, region)",
        "2024-01.csv` has 2 (id, name)",
        "the same columns in the same order",
    ] {
        assert!(all.contains(says), "`{says}` missing in {all}");
    }
}
