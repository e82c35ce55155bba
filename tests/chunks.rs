//! Chunked migrations: a source larger than `spec.source.chunkSize` is staged in chunks
//! (groups of files, or row-group runs of one big Parquet file) and published as one
//! version equal to the unchunked migration; the state machine runs one job per chunk;
//! a failed chunk is retried alone while the finished ones are reused; a transform that
//! needs all rows at once is refused.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use serde_json::Value;
use skein_core::Status;
use skein_core::catalog::Catalog;
use skein_core::load;
use skein_core::queue::{Job, JobStep};
use skein_data::Settings;
use skein_embedded::SqliteCatalog;
use skein_usecases::tasks::{self, JobAnswer};

use crate::util::{Workspace, query_parquet};

/// Rows per CSV file; each file is exactly `ROWS * LINE` bytes plus the header.
const ROWS: usize = 30_000;
const LINE: usize = 34;
const HEADER: &str = "id,user,amount,country\n";

/// One CSV file of fixed-width lines: `id,user,amount,country`.
pub(crate) fn csv_file(file: usize) -> String {
    let mut s = String::with_capacity(HEADER.len() + ROWS * LINE);
    s.push_str(HEADER);
    for i in 0..ROWS {
        let id = file * ROWS + i;
        let country = ["GB", "US", "SE"][id % 3];
        let _ = writeln!(
            s,
            "{id:010},u{:07},{:010},{country}",
            (id * 7919) % 1_000_000,
            (id * 104_729) % 10_000_000
        );
        debug_assert_eq!(s.len(), HEADER.len() + (i + 1) * LINE);
    }
    s
}

/// Six CSV files of about 1 MiB each under `data/clicks/`.
fn csv_source(ws: &Workspace) {
    for f in 0..6 {
        ws.write(&format!("data/clicks/part-{f}.csv"), &csv_file(f));
    }
}

const SQL: &str = "SELECT CAST(id AS BIGINT) AS id, user, amount * 2 AS doubled, country FROM source WHERE country <> 'SE'";

/// A spec over `source` (`format`), published to `lake/<name>`, chunked when `chunk` is set.
fn spec(ws: &Workspace, name: &str, source: &str, format: &str, chunk: Option<&str>, sql: &str) {
    let chunk = chunk
        .map(|c| format!(", chunkSize: {c}"))
        .unwrap_or_default();
    ws.write(
        &format!("{name}.yaml"),
        &format!(
            "apiVersion: skein/v1\nkind: Dataset\nmetadata: {{name: {name}}}\nspec:\n  group: web\n  \
             source: {{uri: {source}, format: {format}{chunk}}}\n  target: {{uri: lake/{name}}}\n  \
             transform:\n    sql: \"{sql}\"\n  verify:\n    key: id\n    rules:\n      - {{unique: id}}\n"
        ),
    );
}

/// The published manifest of `lake/<name>`.
fn manifest(ws: &Workspace, name: &str) -> Value {
    let path = ws.path().join("lake").join(name).join("_manifest.json");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap()
}

/// Asserts that two published datasets hold the same rows: equal row counts and content
/// checksums (an order-independent hash of every row), and the same first rows by key.
fn assert_same_content(ws: &Workspace, chunked: &str, whole: &str) {
    let (a, b) = (manifest(ws, chunked), manifest(ws, whole));
    assert_eq!(a["rows"], b["rows"], "rows of {chunked} and {whole}");
    assert_eq!(
        a["checksum"], b["checksum"],
        "content of {chunked} and {whole}"
    );
    assert_eq!(a["schema"], b["schema"], "schema of {chunked} and {whole}");
    let first = |name: &str| {
        query_parquet(
            &ws.path().join("lake").join(name),
            "id, user, doubled, country",
            "id LIMIT 20",
        )
    };
    assert_eq!(first(chunked), first(whole));
}

#[test]
fn chunked_csv_files_publish_the_same_version_as_one_job() {
    let ws = Workspace::new();
    csv_source(&ws);
    spec(&ws, "whole", "data/clicks", "csv", None, SQL);
    spec(&ws, "chunked", "data/clicks", "csv", Some("2MiB"), SQL);

    let (code, whole) = ws.skein_json(&["migrate", "whole.yaml"]);
    assert_eq!(code, 0, "{whole:#}");
    assert!(whole["datasets"][0].get("chunks").is_none(), "{whole:#}");
    let (code, chunked) = ws.skein_json(&["migrate", "chunked.yaml"]);
    assert_eq!(code, 0, "{chunked:#}");
    let r = &chunked["datasets"][0];
    assert_eq!(r["outcome"], "completed", "{r:#}");
    // 6 files of ~1 MiB in chunks of at most 2 MiB: two files per chunk.
    assert_eq!(r["chunks"], 3, "{r:#}");
    assert_eq!(r["rows"], 120_000, "{r:#}");
    assert_same_content(&ws, "chunked", "whole");

    // Every chunk's files are in the one published version, named after their chunk.
    let files: Vec<String> = manifest(&ws, "chunked")["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_string())
        .collect();
    for c in 0..3 {
        assert!(
            files.iter().any(|f| f.contains(&format!("-c{c:05}-"))),
            "chunk {c} has no file in {files:?}"
        );
    }
    let (code, verified) = ws.skein_json(&["verify", "chunked"]);
    assert_eq!(
        code, 0,
        "the published chunked version re-verifies: {verified:#}"
    );
}

/// A Parquet file of `rows` rows in row groups of `group` rows, uncompressed.
pub(crate) fn parquet_file(path: &Path, rows: usize, group: usize) {
    use datafusion::arrow::array::{Float64Array, Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::record_batch::RecordBatch;
    use datafusion::parquet::arrow::ArrowWriter;
    use datafusion::parquet::file::properties::WriterProperties;

    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("user", DataType::Utf8, false),
        Field::new("amount", DataType::Float64, false),
        Field::new("country", DataType::Utf8, false),
    ]));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(group))
        .set_compression(datafusion::parquet::basic::Compression::UNCOMPRESSED)
        .set_dictionary_enabled(false)
        .build();
    let mut w = ArrowWriter::try_new(
        std::fs::File::create(path).unwrap(),
        schema.clone(),
        Some(props),
    )
    .unwrap();
    for start in (0..rows).step_by(10_000) {
        let ids: Vec<i64> = (start..(start + 10_000).min(rows))
            .map(|i| i as i64)
            .collect();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(ids.clone())),
                Arc::new(StringArray::from_iter_values(
                    ids.iter()
                        .map(|i| format!("user-{:08}", (i * 7919) % 1_000_003)),
                )),
                Arc::new(Float64Array::from_iter_values(
                    ids.iter().map(|i| (*i as f64) * 0.25),
                )),
                Arc::new(StringArray::from_iter_values(
                    ids.iter()
                        .map(|i| ["GB", "US", "SE"][*i as usize % 3].to_string()),
                )),
            ],
        )
        .unwrap();
        w.write(&batch).unwrap();
    }
    w.close().unwrap();
}

#[test]
fn one_big_parquet_file_is_chunked_by_row_groups() {
    let ws = Workspace::new();
    let file = ws.path().join("data/events.parquet");
    parquet_file(&file, 240_000, 20_000); // 12 row groups, about 8 MiB
    let size = std::fs::metadata(&file).unwrap().len();
    assert!(
        size > 6 * 1024 * 1024,
        "the file must span several chunks: {size}"
    );
    let sql = "SELECT id, user, amount * 2 AS doubled, country FROM source WHERE country <> 'SE'";
    spec(&ws, "whole", "data/events.parquet", "parquet", None, sql);
    spec(
        &ws,
        "chunked",
        "data/events.parquet",
        "parquet",
        Some("2MiB"),
        sql,
    );

    let (code, whole) = ws.skein_json(&["migrate", "whole.yaml"]);
    assert_eq!(code, 0, "{whole:#}");
    let (code, chunked) = ws.skein_json(&["migrate", "chunked.yaml"]);
    assert_eq!(code, 0, "{chunked:#}");
    let r = &chunked["datasets"][0];
    let chunks = r["chunks"].as_u64().unwrap_or(0);
    assert!(
        (4..=6).contains(&chunks),
        "~8 MiB in chunks of 2 MiB row-group runs: {r:#}"
    );
    assert_eq!(r["rows"], 160_000, "{r:#}");
    assert_same_content(&ws, "chunked", "whole");
}

#[test]
fn the_state_machine_runs_one_job_per_chunk_and_publishes_one_version() {
    let ws = Workspace::new();
    csv_source(&ws);
    spec(&ws, "clicks", "data/clicks", "csv", Some("2MiB"), SQL);
    spec(&ws, "whole", "data/clicks", "csv", None, SQL);
    ws.write(
        "skein.yaml",
        "apiVersion: skein/v1\nkind: Fleet\nspec:\n  maxConcurrency: 2\n  groups:\n    web: {concurrency: 2}\n",
    );
    let out = ws.skein(&["run", ".", "--auto-approve"]);
    assert!(out.status.success(), "{}", crate::util::text(&out));
    assert_same_content(&ws, "clicks", "whole");

    let (_, runs) = ws.skein_json(&["runs"]);
    let run = runs["runs"][0]["runId"].as_str().unwrap().to_string();
    let (code, history) = ws.skein_json(&["states", "history", &format!("{run}-clicks")]);
    assert_eq!(code, 0, "{history:#}");
    let entered = |state: &str| {
        history["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["stateEnteredEventDetails"]["name"] == state)
            .count()
    };
    assert_eq!(entered("MigrateChunk"), 3, "one chunk job per chunk");
    assert_eq!(entered("CombineChunks"), 1);
    assert_eq!(entered("Publish"), 1);
    assert_eq!(entered("MigrateChunk") + entered("CombineChunks"), 4);
    // The small dataset took the one-job path.
    let (_, whole) = ws.skein_json(&["states", "history", &format!("{run}-whole")]);
    assert!(
        !whole["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["stateEnteredEventDetails"]["name"] == "MigrateChunk")
    );
    let (_, status) = ws.skein_json(&["history", "clicks"]);
    let notes = status.to_string();
    assert!(notes.contains("from 3 chunks"), "{status:#}");
}

/// Overwrites `path` with `content` of the same length, keeping its modification time,
/// so that the source's fingerprint (sizes and times) and so the chunk plan stay the same.
fn replace_keeping_stamp(path: &Path, content: &[u8]) {
    let before = std::fs::metadata(path).unwrap();
    assert_eq!(before.len(), content.len() as u64);
    std::fs::write(path, content).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(before.modified().unwrap())
        .unwrap();
}

fn answer_output(a: JobAnswer) -> Value {
    match a {
        JobAnswer::Success { output } => output,
        JobAnswer::Failure { error, cause } => panic!("{error}: {cause}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_chunk_is_retried_alone_and_finished_chunks_are_reused() {
    let ws = Workspace::new();
    csv_source(&ws);
    spec(&ws, "clicks", "data/clicks", "csv", Some("2MiB"), SQL);
    spec(&ws, "whole", "data/clicks", "csv", None, SQL);
    let file = load::load_file(&ws.path().join("clicks.yaml")).unwrap();
    let c = SqliteCatalog::open_in_memory().unwrap();
    let s = Settings::default();
    let run = "run-chunks";
    c.put_run(&crate::util::running_run(run)).await.unwrap();
    c.put_spec(&file.spec, &file.hash).await.unwrap();
    let progress = Arc::new(skein_data::Progress::default());
    let job = |chunk: Option<u32>, step: Option<JobStep>| Job {
        chunk,
        step,
        ..Job::new("clicks", run, "token")
    };

    // The first job plans the chunks and hands them to the state machine's Map.
    let first =
        answer_output(tasks::migrate_job(&c, &s, &job(None, None), false, progress.clone()).await);
    assert_eq!(first["outcome"], "chunked", "{first:#}");
    assert_eq!(first["chunks"], serde_json::json!([0, 1, 2]));
    assert_eq!(
        c.dataset("clicks").await.unwrap().unwrap().status,
        Status::InProgress
    );

    // Chunk 2 reads part-4.csv, which now holds a value that is not a number.
    let bad_path = ws.path().join("data/clicks/part-4.csv");
    let good = std::fs::read(&bad_path).unwrap();
    let mut bad = good.clone();
    let at = HEADER.len() + 100 * LINE + 20; // the `amount` field of row 100
    bad[at..at + 10].copy_from_slice(b"not-a-num!");
    replace_keeping_stamp(&bad_path, &bad);

    for chunk in [0, 1] {
        let out = answer_output(
            tasks::migrate_job(&c, &s, &job(Some(chunk), None), false, progress.clone()).await,
        );
        assert_eq!(out["reused"], false, "{out:#}");
        assert_eq!(out["chunk"], chunk);
    }
    match tasks::migrate_job(&c, &s, &job(Some(2), None), false, progress.clone()).await {
        JobAnswer::Failure { error, cause } => {
            assert_eq!(error, "Skein.BadValue", "{cause}");
            assert!(
                cause.contains("amount") && cause.contains("not-a-num!"),
                "{cause}"
            );
        }
        other => panic!("chunk 2 must fail: {other:?}"),
    }
    // A failed chunk changes nothing in the catalog and leaves no files of its own.
    assert_eq!(
        c.dataset("clicks").await.unwrap().unwrap().status,
        Status::InProgress
    );
    let staging = ws.path().join("lake/.clicks.skein/staging").join(run);
    let names: Vec<String> = std::fs::read_dir(&staging)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert!(!names.iter().any(|n| n.contains("-c00002-")), "{names:?}");
    assert!(names.iter().any(|n| n.contains("-c00000-")), "{names:?}");
    // Combining now names the missing chunk.
    match tasks::migrate_job(
        &c,
        &s,
        &job(None, Some(JobStep::Combine)),
        false,
        progress.clone(),
    )
    .await
    {
        JobAnswer::Failure { error, cause } => {
            assert_eq!(error, "Skein.NotStaged", "{cause}");
            assert!(cause.contains("chunks 2 of run"), "{cause}");
        }
        other => panic!("combine must fail while chunk 2 is missing: {other:?}"),
    }
    // That failure ended the attempt; the state machine rolls the dataset back next. Here
    // the run goes on as a retry would: start over from the first job.
    c.transition(
        "clicks",
        Status::Failed,
        Status::InProgress,
        None,
        Some(run),
    )
    .await
    .unwrap();

    // The source is fixed; the retry of chunk 2 stages it alone, and a repeated chunk 0
    // job (an at-least-once delivery) reuses what is there.
    replace_keeping_stamp(&bad_path, &good);
    let retried = answer_output(
        tasks::migrate_job(&c, &s, &job(Some(2), None), false, progress.clone()).await,
    );
    assert_eq!(retried["reused"], false, "{retried:#}");
    let again = answer_output(
        tasks::migrate_job(&c, &s, &job(Some(0), None), false, progress.clone()).await,
    );
    assert_eq!(again["reused"], true, "{again:#}");

    let combined = answer_output(
        tasks::migrate_job(
            &c,
            &s,
            &job(None, Some(JobStep::Combine)),
            false,
            progress.clone(),
        )
        .await,
    );
    assert_eq!(combined["outcome"], "verified", "{combined:#}");
    assert_eq!(combined["rows"], 120_000);
    assert_eq!(combined["chunks"], 3);
    assert_eq!(
        c.dataset("clicks").await.unwrap().unwrap().status,
        Status::Verified
    );
    let version = tasks::publish_task(
        &c,
        &s,
        &serde_json::json!({"dataset": "clicks", "runId": run}),
    )
    .await
    .unwrap();
    assert_eq!(version["version"], 1);

    tokio::task::spawn_blocking(move || {
        let (code, whole) = ws.skein_json(&["migrate", "whole.yaml"]);
        assert_eq!(code, 0, "{whole:#}");
        assert_same_content(&ws, "clicks", "whole");
    })
    .await
    .unwrap();
}

#[test]
fn a_transform_that_needs_all_rows_is_not_chunked() {
    let ws = Workspace::new();
    csv_source(&ws);
    spec(
        &ws,
        "totals",
        "data/clicks",
        "csv",
        Some("2MiB"),
        "SELECT country AS id, count(*) AS n FROM source GROUP BY country",
    );
    let (code, out) = ws.skein_json(&["migrate", "totals.yaml"]);
    assert_eq!(code, 1, "{out:#}");
    let r = &out["datasets"][0];
    assert_eq!(r["errorName"], "Skein.InvalidSpec", "{r:#}");
    let error = r["error"].as_str().unwrap();
    assert!(
        error.contains("totals") && error.contains("aggregates") && error.contains("chunkSize"),
        "{error}"
    );
    assert!(!ws.path().join("lake/totals").exists(), "nothing published");

    // A chunk size under 1 MiB is a spec error, named with its field.
    spec(&ws, "tiny", "data/clicks", "csv", Some("10KiB"), SQL);
    let out = ws.skein(&["validate", "tiny.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    let text = crate::util::text(&out);
    assert!(
        text.contains("spec.source.chunkSize") && text.contains("1MiB"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_combine_step_verifies_the_chunks_total_without_reading_rows_and_sees_a_stray_file() {
    let ws = Workspace::new();
    csv_source(&ws);
    spec(&ws, "clicks", "data/clicks", "csv", Some("2MiB"), SQL);
    // with row-wise rules, which each chunk counts on its own files
    let text = std::fs::read_to_string(ws.path().join("clicks.yaml")).unwrap();
    ws.write(
        "clicks.yaml",
        &text.replace(
            "      - {unique: id}\n",
            "      - {unique: id}\n      - {notNull: user}\n      - {range: {column: doubled, min: 0}}\n",
        ),
    );
    let file = load::load_file(&ws.path().join("clicks.yaml")).unwrap();
    let c = SqliteCatalog::open_in_memory().unwrap();
    let s = Settings::default();
    let run = "run-combine";
    c.put_run(&crate::util::running_run(run)).await.unwrap();
    c.put_spec(&file.spec, &file.hash).await.unwrap();
    let progress = Arc::new(skein_data::Progress::default());
    let job = |chunk: Option<u32>, step: Option<JobStep>| Job {
        chunk,
        step,
        ..Job::new("clicks", run, "token")
    };
    let first =
        answer_output(tasks::migrate_job(&c, &s, &job(None, None), false, progress.clone()).await);
    assert_eq!(first["outcome"], "chunked", "{first:#}");
    for chunk in [0, 1, 2] {
        answer_output(
            tasks::migrate_job(&c, &s, &job(Some(chunk), None), false, progress.clone()).await,
        );
    }
    // A file no chunk wrote lands in staging (a stray copy): the total must not pass.
    let staging = ws.path().join("lake/.clicks.skein/staging").join(run);
    let chunk0 = std::fs::read_dir(&staging)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains("-c00000-"))
        .unwrap();
    let stray = staging.join("part-stray.parquet");
    std::fs::copy(&chunk0, &stray).unwrap();
    match tasks::migrate_job(
        &c,
        &s,
        &job(None, Some(JobStep::Combine)),
        false,
        progress.clone(),
    )
    .await
    {
        JobAnswer::Failure { error, cause } => {
            assert_eq!(error, "Skein.VerificationFailed", "{cause}");
            for failed in [
                "files (expected ",
                "files; not on the other side: part-stray.parquet (",
                "rows (expected 120000, got 1", // the footers count the stray rows
                "checksum (expected ",
                "got unknown: the files are not the chunks' files)",
            ] {
                assert!(cause.contains(failed), "{failed}: {cause}");
            }
            assert!(!cause.contains("got 120000)"), "{cause}");
        }
        other => panic!("a stray file must fail the combined verification: {other:?}"),
    }

    // Without it, the combined chunks pass from the listing, the footers and the chunks'
    // own verified checksums, with the rule still run on the output.
    std::fs::remove_file(&stray).unwrap();
    c.transition(
        "clicks",
        Status::Failed,
        Status::InProgress,
        None,
        Some(run),
    )
    .await
    .unwrap();
    let combined = answer_output(
        tasks::migrate_job(
            &c,
            &s,
            &job(None, Some(JobStep::Combine)),
            false,
            progress.clone(),
        )
        .await,
    );
    assert_eq!(combined["outcome"], "verified", "{combined:#}");
    let store = skein_data::Target::open(&s, &file).unwrap();
    let staged = store.staged(run).await.unwrap().unwrap();
    assert_eq!(staged.verified_chunks, Some(3));
    let report =
        skein_data::verify_dir(&s, &file, &store.staging_data(run).await.unwrap(), &staged)
            .await
            .unwrap();
    let names: Vec<&str> = report.checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "files",
            "rows",
            "checksum",
            "schema",
            "rule unique(id)",
            "rule notNull(user)",
            "rule range(doubled)"
        ],
        "{report:#?}"
    );
    assert!(report.passed, "{report:#?}");
    // The row-wise rules' counts are the chunks' (added up), not a scan of the total:
    // a count the chunks had reported is what the total check says.
    let counted = staged.rule_violations.clone().unwrap();
    assert_eq!(
        counted.into_iter().collect::<Vec<_>>(),
        [
            ("rule notNull(user)".to_string(), 0),
            ("rule range(doubled)".to_string(), 0)
        ]
    );
    let mut doctored = staged.clone();
    doctored
        .rule_violations
        .as_mut()
        .unwrap()
        .insert("rule notNull(user)".into(), 7);
    let report = skein_data::verify_dir(
        &s,
        &file,
        &store.staging_data(run).await.unwrap(),
        &doctored,
    )
    .await
    .unwrap();
    let not_null = report
        .checks
        .iter()
        .find(|c| c.name == "rule notNull(user)")
        .unwrap();
    assert_eq!(
        (not_null.passed, not_null.actual.as_str()),
        (false, "7 violating rows")
    );
}
