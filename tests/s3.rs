//! The data plane on S3, against the moto server: sources under an `s3://` prefix or one
//! object, targets whose commit point is `_skein/current.json`, migrate → v1 → v2 →
//! rollback byte for byte, a failed verification that changes nothing, clear errors for a
//! missing bucket or an empty prefix, and the conditional put that refuses a stale
//! publisher. S3 settings are passed in-process (no environment variables).

use std::sync::Arc;

use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use sha2::{Digest, Sha256};
use skein_core::catalog::Catalog;
use skein_core::load::{self, SpecFile};
use skein_data::{DataDir, S3Settings, Settings, Target};
use skein_embedded::SqliteCatalog;
use skein_usecases::{DatasetResult, MigrateOptions, Outcome, Part};

use crate::moto::{REGION, moto, unique};
use crate::util::{Workspace, repo_root};

/// Data-plane settings that talk to the test's moto server.
fn settings() -> Settings {
    Settings {
        s3: S3Settings::with_endpoint(&moto().endpoint, REGION, "testing", "testing"),
        ..Settings::default()
    }
}

/// Creates a fresh bucket in moto (a plain, unsigned `PUT /<bucket>`, which moto accepts).
pub(crate) fn bucket() -> String {
    use std::io::{Read, Write};
    let name = unique("skein-s3");
    let m = moto();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", m.port)).unwrap();
    let req = format!(
        "PUT /{name} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        m.port
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "create bucket {name}: {answer}"
    );
    name
}

fn store(s: &Settings, bucket: &str) -> Arc<dyn ObjectStore> {
    s.s3.store(bucket).unwrap()
}

async fn put(s: &Settings, bucket: &str, key: &str, bytes: Vec<u8>) {
    store(s, bucket)
        .put(&Path::from(key), PutPayload::from(bytes))
        .await
        .unwrap();
}

async fn get(s: &Settings, bucket: &str, key: &str) -> Vec<u8> {
    store(s, bucket)
        .get(&Path::from(key))
        .await
        .unwrap_or_else(|e| panic!("get s3://{bucket}/{key}: {e}"))
        .bytes()
        .await
        .unwrap()
        .to_vec()
}

async fn keys(s: &Settings, bucket: &str, prefix: &str) -> Vec<String> {
    use futures::TryStreamExt;
    let mut out: Vec<String> = store(s, bucket)
        .list(Some(&Path::from(prefix)))
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .unwrap();
    out.sort();
    out
}

fn sample(rel: &str) -> Vec<u8> {
    std::fs::read(repo_root().join("samples/data").join(rel)).unwrap()
}

/// A spec file in `ws` with the given source, target, transform and verify block.
fn spec(
    ws: &Workspace,
    name: &str,
    source: &str,
    format: &str,
    target: &str,
    sql: &str,
    verify: &str,
) -> SpecFile {
    let path = ws.write(
        &format!("{name}.yaml"),
        &format!(
            "apiVersion: skein/v1\nkind: Dataset\nmetadata: {{name: {name}}}\nspec:\n  source: {{uri: '{source}', format: {format}}}\n  target: {{uri: '{target}'}}\n  transform:\n    sql: \"{sql}\"\n{verify}"
        ),
    );
    load::load_file(&path).unwrap_or_else(|p| panic!("spec {name}: {p:?}"))
}

fn opts(run: &str) -> MigrateOptions {
    MigrateOptions {
        run_id: run.to_string(),
        publish: true,
        approved: true,
        progress: Arc::default(),
        allow_schema_change: false,
        part: Part::All,
        large: None,
    }
}

/// Runs the migrate use case as `skein migrate` does: the run recorded first.
async fn migrate(c: &SqliteCatalog, s: &Settings, file: &SpecFile, run: &str) -> DatasetResult {
    migrate_with(c, s, file, &opts(run)).await
}

async fn migrate_with(
    c: &SqliteCatalog,
    s: &Settings,
    file: &SpecFile,
    opts: &MigrateOptions,
) -> DatasetResult {
    let run = opts.run_id.as_str();
    if c.run(run).await.unwrap().is_none() {
        c.put_run(&crate::util::running_run(run)).await.unwrap();
    }
    skein_usecases::migrate(c, s, file, opts).await.unwrap()
}

/// `current.json` of the target at `s3://bucket/prefix/`.
async fn current_json(s: &Settings, bucket: &str, prefix: &str) -> serde_json::Value {
    let bytes = get(s, bucket, &format!("{prefix}/_skein/current.json")).await;
    serde_json::from_slice(&bytes).unwrap()
}

/// The version `current.json` names: its number, its manifest (read through the key
/// `current.json` gives), and the bytes of each data file, checked against the manifest.
async fn published(
    s: &Settings,
    bucket: &str,
    prefix: &str,
) -> (u64, serde_json::Value, Vec<(String, Vec<u8>)>) {
    let current = current_json(s, bucket, prefix).await;
    let version = current["version"].as_u64().unwrap();
    let manifest_key = current["manifest"].as_str().unwrap();
    assert_eq!(
        manifest_key,
        format!("{prefix}/versions/v{version}/_manifest.json")
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&get(s, bucket, manifest_key).await).unwrap();
    assert_eq!(manifest["version"].as_u64(), Some(version));
    let mut files = Vec::new();
    let mut rows = 0;
    for f in manifest["files"].as_array().unwrap() {
        let name = f["name"].as_str().unwrap();
        let bytes = get(s, bucket, &format!("{prefix}/versions/v{version}/{name}")).await;
        assert_eq!(bytes.len() as u64, f["size"].as_u64().unwrap(), "{name}");
        let sha: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(sha, f["sha256"].as_str().unwrap(), "{name}");
        rows += f["rows"].as_u64().unwrap();
        files.push((name.to_string(), bytes));
    }
    assert_eq!(rows, manifest["rows"].as_u64().unwrap());
    (version, manifest, files)
}

/// Rows DataFusion reads from a directory of Parquet files (local or S3).
async fn count_rows(s: &Settings, dir: &DataDir) -> u64 {
    let ctx = s.session().unwrap();
    dir.register(&ctx).unwrap();
    ctx.read_parquet(dir.url(), Default::default())
        .await
        .unwrap()
        .count()
        .await
        .unwrap() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_publishes_v1_then_v2_and_rollback_restores_v1_byte_for_byte() {
    let s = settings();
    let b = bucket();
    put(
        &s,
        &b,
        "in/orders/orders-2024-01.csv",
        sample("orders/orders-2024-01.csv"),
    )
    .await;
    put(
        &s,
        &b,
        "in/orders/orders-2024-02.csv",
        sample("orders/orders-2024-02.csv"),
    )
    .await;
    put(&s, &b, "in/orders/_SUCCESS", Vec::new()).await;
    let ws = Workspace::new();
    let file = spec(
        &ws,
        "orders",
        &format!("s3://{b}/in/orders/"),
        "csv",
        &format!("s3://{b}/lake/orders/"),
        "SELECT * FROM source",
        "  verify:\n    rules: [{notNull: id}]\n",
    );
    let c = SqliteCatalog::open_in_memory().unwrap();

    let r1 = migrate(&c, &s, &file, "run-1").await;
    assert_eq!(r1.outcome, Outcome::Completed, "{r1:?}");
    assert_eq!(r1.version, Some(1));
    let (v, m1, files1) = published(&s, &b, "lake/orders").await;
    assert_eq!(v, 1);
    assert!(r1.rows > 0);
    assert_eq!(m1["rows"].as_u64(), Some(r1.rows));
    let target = Target::open(&s, &file).unwrap();
    assert_eq!(target.uri(), format!("s3://{b}/lake/orders/"));
    assert_eq!(
        count_rows(&s, &target.version_data(1).await.unwrap()).await,
        r1.rows
    );
    let current = target.current().await.unwrap().unwrap();
    assert_eq!(serde_json::to_value(&current).unwrap(), m1);
    assert!(
        keys(&s, &b, "lake/orders/_skein/staging").await.is_empty(),
        "staging is deleted after publish"
    );
    // the source-side checksum, recomputed from S3, matches the published files
    let v1 = skein_usecases::verify::verify_published(&c, &s, &file, "check-1")
        .await
        .unwrap();
    assert_eq!(v1.outcome, Outcome::Completed, "{v1:?}");

    // the same spec and source again: nothing to do
    let again = migrate(&c, &s, &file, "run-2").await;
    assert_eq!(again.outcome, Outcome::UpToDate, "{again:?}");

    // a changed source publishes v2
    put(
        &s,
        &b,
        "in/orders/orders-2024-03.csv",
        sample("orders/orders-2024-02.csv"),
    )
    .await;
    let r3 = migrate(&c, &s, &file, "run-3").await;
    assert_eq!(r3.outcome, Outcome::Completed, "{r3:?}");
    assert_eq!(r3.version, Some(2));
    let (v, m2, _) = published(&s, &b, "lake/orders").await;
    assert_eq!(v, 2);
    assert!(m2["rows"].as_u64().unwrap() > m1["rows"].as_u64().unwrap());
    assert_eq!(
        count_rows(&s, &target.version_data(2).await.unwrap()).await,
        r3.rows
    );

    // rollback: current.json names v1 again, whose objects are the very bytes of before
    let rb = skein_usecases::rollback::rollback(&c, &s, &file, "run-4", "bad numbers")
        .await
        .unwrap();
    assert_eq!(rb.outcome, Outcome::RolledBack, "{rb:?}");
    assert_eq!(rb.version, Some(1));
    let (v, m, files) = published(&s, &b, "lake/orders").await;
    assert_eq!(v, 1);
    assert_eq!(m, m1);
    assert_eq!(files, files1);
    let record = c.dataset("orders").await.unwrap().unwrap();
    assert_eq!(record.status, skein_core::Status::RolledBack);
    // v1 is the first version: nothing before it
    let none = skein_usecases::rollback::rollback(&c, &s, &file, "run-5", "again")
        .await
        .unwrap();
    assert_eq!(none.outcome, Outcome::Failed);
    assert!(
        none.error
            .as_deref()
            .unwrap_or("")
            .contains("nothing to roll back"),
        "{none:?}"
    );
}

/// Moves version `n` of the target at `prefix` into the layout skein used before
/// `versions/` (`_skein/versions/v<n>/`) and points `current.json` at it there, as an
/// older skein left it.
async fn move_to_old_layout(s: &Settings, bucket: &str, prefix: &str, n: u64) {
    let from = format!("{prefix}/versions/v{n}/");
    let moved = keys(s, bucket, &from).await;
    assert!(!moved.is_empty(), "nothing under {from}");
    for key in moved {
        let to = format!("{prefix}/_skein/versions/v{n}/{}", &key[from.len()..]);
        let bytes = get(s, bucket, &key).await;
        put(s, bucket, &to, bytes).await;
        store(s, bucket)
            .delete(&Path::from(key.as_str()))
            .await
            .unwrap();
    }
    let mut current = current_json(s, bucket, prefix).await;
    assert_eq!(current["version"], n);
    current["manifest"] = format!("{prefix}/_skein/versions/v{n}/_manifest.json").into();
    let key = format!("{prefix}/_skein/current.json");
    put(s, bucket, &key, serde_json::to_vec(&current).unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_of_the_old_hidden_layout_is_still_read_verified_and_rolled_back_to() {
    let s = settings();
    let b = bucket();
    put(&s, &b, "in/o.csv", b"id,name\n1,a\n2,b\n".to_vec()).await;
    let ws = Workspace::new();
    let file = spec(
        &ws,
        "old",
        &format!("s3://{b}/in/o.csv"),
        "csv",
        &format!("s3://{b}/lake/old/"),
        "SELECT CAST(id AS BIGINT) AS id, name FROM source",
        "  verify: {checksum: true}\n",
    );
    let c = SqliteCatalog::open_in_memory().unwrap();
    let r1 = migrate(&c, &s, &file, "run-1").await;
    assert_eq!(r1.outcome, Outcome::Completed, "{r1:?}");
    move_to_old_layout(&s, &b, "lake/old", 1).await;
    let v1_keys = keys(&s, &b, "lake/old/_skein/versions/v1").await;
    let v1_bytes = futures::future::join_all(v1_keys.iter().map(|k| get(&s, &b, k))).await;

    // The old layout is read where it is: the current manifest, the data, verification.
    let target = Target::open(&s, &file).unwrap();
    assert_eq!(target.current().await.unwrap().unwrap().version, 1);
    let dir = target.version_data(1).await.unwrap();
    assert_eq!(dir.url(), format!("s3://{b}/lake/old/_skein/versions/v1/"));
    assert_eq!(count_rows(&s, &dir).await, 2);
    let checked = skein_usecases::verify::verify_published(&c, &s, &file, "check-1")
        .await
        .unwrap();
    assert_eq!(checked.outcome, Outcome::Completed, "{checked:?}");
    let again = migrate(&c, &s, &file, "run-2").await;
    assert_eq!(again.outcome, Outcome::UpToDate, "{again:?}");

    // A new version goes to the public layout, numbered after the old one.
    put(&s, &b, "in/o.csv", b"id,name\n1,a\n2,b\n3,c\n".to_vec()).await;
    let r3 = migrate(&c, &s, &file, "run-3").await;
    assert_eq!(
        (r3.outcome, r3.version),
        (Outcome::Completed, Some(2)),
        "{r3:?}"
    );
    let (v, m2, _) = published(&s, &b, "lake/old").await;
    assert_eq!((v, m2["rows"].as_u64()), (2, Some(3)));
    let versions: Vec<u64> = target
        .versions()
        .await
        .unwrap()
        .iter()
        .map(|m| m.version)
        .collect();
    assert_eq!(versions, [1, 2]);

    // Rollback restores the old-layout version where it is, byte for byte.
    let rb = skein_usecases::rollback::rollback(&c, &s, &file, "run-4", "bad")
        .await
        .unwrap();
    assert_eq!(
        (rb.outcome, rb.version),
        (Outcome::RolledBack, Some(1)),
        "{rb:?}"
    );
    let current = current_json(&s, &b, "lake/old").await;
    assert_eq!(current["version"], 1);
    assert_eq!(
        current["manifest"],
        "lake/old/_skein/versions/v1/_manifest.json"
    );
    assert_eq!(keys(&s, &b, "lake/old/_skein/versions/v1").await, v1_keys);
    let after = futures::future::join_all(v1_keys.iter().map(|k| get(&s, &b, k))).await;
    assert_eq!(after, v1_bytes);
    assert!(keys(&s, &b, "lake/old/versions/v1").await.is_empty());
    let current = target.current().await.unwrap().unwrap();
    assert_eq!((current.version, current.rows), (1, 2));
    assert_eq!(
        count_rows(&s, &target.version_data(1).await.unwrap()).await,
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_object_sources_in_parquet_and_ndjson_migrate_to_s3() {
    let s = settings();
    let b = bucket();
    put(&s, &b, "in/products.parquet", sample("products.parquet")).await;
    put(&s, &b, "in/events.ndjson", sample("events.ndjson")).await;
    let ws = Workspace::new();
    let c = SqliteCatalog::open_in_memory().unwrap();
    for (name, key, format) in [
        ("products", "in/products.parquet", "parquet"),
        ("events", "in/events.ndjson", "ndjson"),
    ] {
        let file = spec(
            &ws,
            name,
            &format!("s3://{b}/{key}"),
            format,
            &format!("s3://{b}/lake/{name}"),
            "SELECT * FROM source",
            "",
        );
        let r = migrate(&c, &s, &file, "run-1").await;
        assert_eq!(r.outcome, Outcome::Completed, "{name}: {r:?}");
        let (v, m, _) = published(&s, &b, &format!("lake/{name}")).await;
        assert_eq!(v, 1);
        assert!(r.rows > 0, "{name}");
        assert_eq!(m["rows"].as_u64(), Some(r.rows), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_verification_leaves_the_published_version_current() {
    let s = settings();
    let b = bucket();
    put(
        &s,
        &b,
        "in/pay/p.csv",
        b"id,method\n1,card\n2,cash\n".to_vec(),
    )
    .await;
    let ws = Workspace::new();
    let file = spec(
        &ws,
        "pay",
        &format!("s3://{b}/in/pay/"),
        "csv",
        &format!("s3://{b}/lake/pay"),
        "SELECT * FROM source",
        "  verify:\n    rules: [{notNull: method}]\n",
    );
    let c = SqliteCatalog::open_in_memory().unwrap();
    assert_eq!(
        migrate(&c, &s, &file, "run-1").await.outcome,
        Outcome::Completed
    );
    let before = get(&s, &b, "lake/pay/_skein/current.json").await;
    let (_, _, files_before) = published(&s, &b, "lake/pay").await;

    put(
        &s,
        &b,
        "in/pay/p.csv",
        b"id,method\n1,card\n2,\n3,\n".to_vec(),
    )
    .await;
    let r = migrate(&c, &s, &file, "run-2").await;
    assert_eq!(r.outcome, Outcome::VerificationFailed, "{r:?}");
    assert!(
        r.error.as_deref().unwrap().contains("notNull(method)"),
        "{r:?}"
    );
    assert_eq!(get(&s, &b, "lake/pay/_skein/current.json").await, before);
    let (v, _, files_after) = published(&s, &b, "lake/pay").await;
    assert_eq!(v, 1);
    assert_eq!(files_after, files_before);
    assert!(
        !keys(&s, &b, "lake/pay/_skein/staging/run-2")
            .await
            .is_empty()
    );

    // the state machine's rollback step discards the staged objects; v1 stays
    let undone = skein_usecases::steps::rollback_run(
        &c,
        &s,
        "pay",
        "run-2",
        "Skein.VerificationFailed",
        "rule notNull(method)",
    )
    .await
    .unwrap();
    assert!(
        undone.reason.contains("staged files discarded"),
        "{undone:?}"
    );
    assert!(
        keys(&s, &b, "lake/pay/_skein/staging/run-2")
            .await
            .is_empty()
    );
    assert_eq!(get(&s, &b, "lake/pay/_skein/current.json").await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_bucket_or_an_empty_prefix_is_a_clear_error() {
    let s = settings();
    let b = bucket();
    let ws = Workspace::new();
    let c = SqliteCatalog::open_in_memory().unwrap();
    let missing = unique("no-such-bucket");
    let cases = [
        (
            "nobucket",
            format!("s3://{missing}/in/"),
            format!("bucket `{missing}` does not exist"),
        ),
        (
            "noprefix",
            format!("s3://{b}/empty/"),
            format!("no data files under s3://{b}/empty/"),
        ),
    ];
    for (name, uri, expected) in cases {
        let file = spec(
            &ws,
            name,
            &uri,
            "csv",
            &format!("s3://{b}/lake/{name}"),
            "SELECT * FROM source",
            "",
        );
        let r = migrate(&c, &s, &file, "run-1").await;
        assert_eq!(r.outcome, Outcome::Failed, "{r:?}");
        assert_eq!(r.error_name.as_deref(), Some("Skein.SourceUnreadable"));
        let e = r.error.unwrap();
        assert!(e.contains(&format!("dataset `{name}`")), "{e}");
        assert!(e.contains(&uri), "{e}");
        assert!(e.contains(&expected), "{e}");
    }
    // a target in a bucket that does not exist
    put(&s, &b, "in/t.csv", b"id\n1\n".to_vec()).await;
    let file = spec(
        &ws,
        "notarget",
        &format!("s3://{b}/in/t.csv"),
        "csv",
        &format!("s3://{missing}/lake/t"),
        "SELECT * FROM source",
        "",
    );
    let r = migrate(&c, &s, &file, "run-1").await;
    assert_eq!(r.outcome, Outcome::Failed, "{r:?}");
    let e = r.error.unwrap();
    assert!(
        e.contains("dataset `notarget`") && e.contains(&format!("s3://{missing}/lake/t")),
        "{e}"
    );
    assert!(e.contains("does not exist"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_conditional_put_refuses_a_stale_publisher() {
    let s = settings();
    let b = bucket();
    put(&s, &b, "in/x.csv", b"id\n1\n2\n".to_vec()).await;
    let ws = Workspace::new();
    let file = spec(
        &ws,
        "race",
        &format!("s3://{b}/in/x.csv"),
        "csv",
        &format!("s3://{b}/lake/race"),
        "SELECT * FROM source",
        "",
    );
    let Target::S3(store) = Target::open(&s, &file).unwrap() else {
        panic!("an s3:// target opens the S3 store");
    };
    let target = Target::S3(store.clone());
    let progress = skein_data::Progress::default();
    for run in ["run-a", "run-b", "run-c"] {
        skein_data::stage(&s, &file, &target, run, &progress)
            .await
            .unwrap();
    }

    // a and b both read "never published"; a swaps first, b's create-if-absent loses
    let seen_by_b = store.head().await.unwrap();
    assert_eq!(seen_by_b.version, None);
    let a = store.publish("run-a").await.unwrap();
    assert_eq!(a.version, 1);
    let e = store.publish_after("run-b", &seen_by_b).await.unwrap_err();
    assert!(
        matches!(e, skein_data::Error::PublishConflict { .. }),
        "{e}"
    );
    assert!(e.to_string().contains("dataset `race`"), "{e}");
    assert_eq!(current_json(&s, &b, "lake/race").await["version"], 1);
    let versions: Vec<u64> = store
        .versions()
        .await
        .unwrap()
        .iter()
        .map(|m| m.version)
        .collect();
    assert_eq!(
        versions,
        vec![1],
        "the loser's version is not left as a version"
    );

    // c read v1; b (now fresh) publishes; c's update-if-e-tag-matches loses
    let seen_by_c = store.head().await.unwrap();
    assert_eq!(seen_by_c.version, Some(1));
    let b_published = store.publish("run-b").await.unwrap();
    assert!(b_published.version > 1, "claimed numbers are not reused");
    let e = store.publish_after("run-c", &seen_by_c).await.unwrap_err();
    assert!(
        matches!(e, skein_data::Error::PublishConflict { .. }),
        "{e}"
    );
    assert_eq!(
        current_json(&s, &b, "lake/race").await["version"].as_u64(),
        Some(b_published.version)
    );
    // a rollback against a stale head loses too
    let e = store.point_at_after(1, &seen_by_b).await.unwrap_err();
    assert!(
        matches!(e, skein_data::Error::PublishConflict { .. }),
        "{e}"
    );
    assert_eq!(
        target.current().await.unwrap().unwrap().version,
        b_published.version
    );
}

/// `skein` with the standard AWS variables pointing at moto (a child process, so the
/// environment is its own), `--json`, the catalog in `ws`.
fn skein_json(ws: &Workspace, args: &[&str]) -> (i32, serde_json::Value) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_skein"))
        .args(args)
        .arg("--json")
        .current_dir(ws.path())
        .env("SKEIN_CATALOG", ws.path().join(".skein"))
        .envs(crate::moto::env())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or("null");
    let json = serde_json::from_str(last).unwrap_or_else(|e| {
        panic!(
            "skein {args:?}: {e}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_reads_s3_settings_from_the_aws_environment() {
    let s = settings();
    let b = bucket();
    put(&s, &b, "in/c.csv", b"id,name\n1,a\n2,b\n".to_vec()).await;
    let ws = Workspace::new();
    spec(
        &ws,
        "cli",
        &format!("s3://{b}/in/c.csv"),
        "csv",
        &format!("s3://{b}/lake/cli/"),
        "SELECT CAST(id AS BIGINT) AS id, name FROM source",
        "",
    );
    let (code, json) = skein_json(&ws, &["migrate", "cli.yaml"]);
    assert_eq!(code, 0, "{json:#}");
    assert_eq!(json["datasets"][0]["outcome"], "completed", "{json:#}");
    put(&s, &b, "in/c.csv", b"id,name\n1,a\n2,b\n3,c\n".to_vec()).await;
    let (code, json) = skein_json(&ws, &["migrate", "cli.yaml"]);
    assert_eq!(code, 0, "{json:#}");
    assert_eq!(json["datasets"][0]["version"], 2, "{json:#}");
    assert_eq!(current_json(&s, &b, "lake/cli").await["version"], 2);
    let (code, json) = skein_json(&ws, &["rollback", "cli.yaml"]);
    assert_eq!(code, 0, "{json:#}");
    assert_eq!(json["datasets"][0]["outcome"], "rolled_back", "{json:#}");
    let (v, m, _) = published(&s, &b, "lake/cli").await;
    assert_eq!((v, m["rows"].as_u64()), (1, Some(2)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_staged_files_are_uploaded_in_parts_and_arrive_intact() {
    let mut s = settings();
    s.s3.upload_part_bytes = 5 * 1024 * 1024; // S3's minimum part size
    s.target_partitions = 1; // one staged file of ~11 MB: three parts
    let b = bucket();
    // incompressible text, so the Parquet file is as big as the CSV
    let mut csv = String::from("id,a,b\n");
    for i in 0..80_000u32 {
        let h = |salt: &str| -> String {
            Sha256::digest(format!("{salt}{i}").as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        };
        csv.push_str(&format!("{i},{},{}\n", h("a"), h("b")));
    }
    put(&s, &b, "in/big.csv", csv.into_bytes()).await;
    let ws = Workspace::new();
    let path = ws.write(
        "big.yaml",
        &format!(
            "apiVersion: skein/v1\nkind: Dataset\nmetadata: {{name: big}}\nspec:\n  source: {{uri: 's3://{b}/in/big.csv', format: csv}}\n  target: {{uri: 's3://{b}/lake/big', compression: none}}\n  transform:\n    sql: SELECT * FROM source\n"
        ),
    );
    let file = load::load_file(&path).unwrap_or_else(|p| panic!("{p:?}"));
    let c = SqliteCatalog::open_in_memory().unwrap();
    let staged_only = MigrateOptions {
        publish: false,
        ..opts("run-1")
    };
    let r = migrate_with(&c, &s, &file, &staged_only).await;
    assert_eq!(r.outcome, Outcome::Verified, "{r:?}");
    assert_eq!(r.files, 1, "{r:?}");
    assert!(r.bytes > 10 * 1024 * 1024, "{r:?}");
    // a multipart object's e-tag is `<md5 of the part md5s>-<parts>`
    let store = store(&s, &b);
    // staged straight into the version it claimed (issue 17)
    let part = keys(&s, &b, "lake/big/versions/v1")
        .await
        .into_iter()
        .find(|k| k.ends_with(".parquet"))
        .expect("a staged part");
    let meta = store.head(&Path::from(part.as_str())).await.unwrap();
    let etag = meta.e_tag.unwrap_or_default();
    assert!(
        etag.trim_matches('"').ends_with("-3"),
        "{part}: e-tag {etag}"
    );
    // published, the bytes are exactly those hashed while writing
    let target = Target::open(&s, &file).unwrap();
    let v = skein_usecases::migrate::publish_staged(
        &c,
        &file,
        &target,
        "run-1",
        skein_core::Status::Verified,
    )
    .await
    .unwrap();
    assert_eq!(v, 1);
    let (_, m, files) = published(&s, &b, "lake/big").await;
    assert_eq!(m["rows"].as_u64(), Some(80_000));
    assert_eq!(files.len(), 1);
    assert!(keys(&s, &b, "lake/big/_skein/staging").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// Issue 17: publish on S3 is O(1) whatever the size. An attempt claims its version number
// before it stages (`versions/v<N>/_claim.json`, naming the run and the attempt), writes
// its files straight into `versions/v<N>/`, and publish writes only the manifest and the
// pointer: no object is copied, however many files the version has.
async fn publish_of_a_version_staged_in_many_files_copies_nothing() {
    let s = settings();
    let b = bucket();
    // 30 source files of 100 rows: each batch rolls to a new output file (maxRowsPerFile).
    for f in 0..30 {
        let mut csv = String::from("id,customer,amount\n");
        for i in f * 100..(f + 1) * 100 {
            csv.push_str(&format!("{i},\"Zoë, {i}\",{}.25\n", i % 97));
        }
        put(
            &s,
            &b,
            &format!("in/many/part-{f:02}.csv"),
            csv.into_bytes(),
        )
        .await;
    }
    let ws = Workspace::new();
    let path = ws.write(
        "many.yaml",
        &format!(
            "apiVersion: skein/v1\nkind: Dataset\nmetadata: {{name: many}}\nspec:\n  source: {{uri: 's3://{b}/in/many/', format: csv}}\n  target: {{uri: 's3://{b}/lake/many', maxRowsPerFile: 100}}\n"
        ),
    );
    let file = load::load_file(&path).unwrap_or_else(|p| panic!("{p:?}"));
    let c = SqliteCatalog::open_in_memory().unwrap();
    let staged_only = MigrateOptions {
        publish: false,
        ..opts("run-1")
    };
    let r = migrate_with(&c, &s, &file, &staged_only).await;
    assert_eq!(r.outcome, Outcome::Verified, "{r:?}");
    let n = r.files;
    assert!(n >= 20, "many files: {r:?}");
    // Staged in v1 already, claimed by the run's first attempt; v1 is no version yet.
    let v1 = keys(&s, &b, "lake/many/versions/v1").await;
    assert_eq!(
        v1.iter().filter(|k| k.ends_with(".parquet")).count(),
        n,
        "{v1:?}"
    );
    let claim: serde_json::Value =
        serde_json::from_slice(&get(&s, &b, "lake/many/versions/v1/_claim.json").await).unwrap();
    assert_eq!(
        (claim["runId"].as_str(), claim["attempt"].as_u64()),
        (Some("run-1"), Some(1))
    );
    assert!(!v1.iter().any(|k| k.ends_with("_manifest.json")), "{v1:?}");
    assert!(
        keys(&s, &b, "lake/many/_skein/current.json")
            .await
            .is_empty()
    );

    let target = Target::open(&s, &file).unwrap();
    let v = skein_usecases::migrate::publish_staged(
        &c,
        &file,
        &target,
        "run-1",
        skein_core::Status::Verified,
    )
    .await
    .unwrap();
    assert_eq!(v, 1);
    let Target::S3(t) = &target else {
        unreachable!("an S3 target")
    };
    assert_eq!(t.copies(), 0, "publish copied objects");
    let (version, manifest, files) = published(&s, &b, "lake/many").await;
    assert_eq!((version, files.len()), (1, n));
    assert_eq!(manifest["rows"], 3_000);
    // The staged files are the published ones, and staging's metadata is gone.
    assert_eq!(
        keys(&s, &b, "lake/many/versions/v1").await.len(),
        v1.len() + 1,
        "the manifest is the only new object"
    );
    assert!(keys(&s, &b, "lake/many/_skein/staging").await.is_empty());

    // A second run publishes v2, copying nothing either; a rollback points back at v1,
    // whose files were never touched; discarding run-2's staging afterwards leaves its
    // published version alone.
    let mut changed = String::from("id,customer,amount\n");
    for i in 3_000..3_100 {
        changed.push_str(&format!("{i},\"Zoë, {i}\",{}.5\n", i % 89));
    }
    put(&s, &b, "in/many/part-30.csv", changed.into_bytes()).await;
    let r2 = migrate(&c, &s, &file, "run-2").await;
    assert_eq!(r2.outcome, Outcome::Completed, "{r2:?}");
    assert_eq!(r2.version, Some(2));
    let Target::S3(t2) = &Target::open(&s, &file).unwrap() else {
        unreachable!()
    };
    assert_eq!(t2.copies(), 0);
    skein_usecases::rollback::rollback(&c, &s, &file, "run-3", "numbers off")
        .await
        .unwrap();
    let (version, _, files) = published(&s, &b, "lake/many").await;
    assert_eq!(
        (version, files.len()),
        (1, 30),
        "rolled back to v1, byte for byte"
    );
    let discarded = Target::open(&s, &file).unwrap();
    discarded.discard("run-2").await.unwrap();
    let v2 = keys(&s, &b, "lake/many/versions/v2").await;
    assert!(
        v2.iter().any(|k| k.ends_with("_manifest.json")),
        "a published version is never discarded: {v2:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_of_a_published_s3_version_localises_differences_with_diff() {
    let s = settings();
    let b = bucket();
    put(&s, &b, "in/d.csv", b"id,v\n1,a\n2,b\n3,c\n".to_vec()).await;
    let ws = Workspace::new();
    let file = spec(
        &ws,
        "drift",
        &format!("s3://{b}/in/d.csv"),
        "csv",
        &format!("s3://{b}/lake/drift"),
        "SELECT CAST(id AS BIGINT) AS id, v FROM source",
        "  verify:\n    key: id\n",
    );
    let c = SqliteCatalog::open_in_memory().unwrap();
    assert_eq!(
        migrate(&c, &s, &file, "run-1").await.outcome,
        Outcome::Completed
    );
    // the source drifts after publish: one row changed, one added
    put(&s, &b, "in/d.csv", b"id,v\n1,a\n2,B\n3,c\n4,d\n".to_vec()).await;
    let r = skein_usecases::verify::verify_published(&c, &s, &file, "check")
        .await
        .unwrap();
    assert_eq!(r.outcome, Outcome::VerificationFailed, "{r:?}");
    let d = r.diff.expect("a diff for a keyed dataset");
    assert_eq!(
        (d.changed, d.only_in_source, d.only_in_target),
        (1, 1, 0),
        "{d:?}"
    );
    assert_eq!(d.only_in_source_keys, vec!["4".to_string()]);
    let saved: serde_json::Value =
        serde_json::from_slice(&get(&s, &b, "lake/drift/_skein/reports/check-diff.json").await)
            .unwrap();
    assert_eq!(saved["changed"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_sources_on_s3_publish_the_same_version_as_one_job() {
    let s = settings();
    let b = bucket();
    let ws = Workspace::new();
    for f in 0..6 {
        let key = format!("src/clicks/part-{f}.csv");
        put(&s, &b, &key, crate::chunks::csv_file(f).into_bytes()).await;
    }
    let local = ws.path().join("events.parquet");
    crate::chunks::parquet_file(&local, 240_000, 20_000);
    put(&s, &b, "src/events.parquet", std::fs::read(&local).unwrap()).await;
    // one large CSV file and one large NDJSON file, cut into byte ranges (ranged GETs)
    let mut one = crate::chunks::csv_file(0);
    let mut ndjson = String::new();
    for f in 0..6 {
        let part = crate::chunks::csv_file(f);
        for line in part.lines().skip(1) {
            let v: Vec<&str> = line.split(',').collect();
            ndjson.push_str(&format!(
                "{{\"id\":{},\"amount\":{},\"country\":\"{}\"}}\n",
                v[0].trim_start_matches('0').parse::<u64>().unwrap_or(0),
                v[2].trim_start_matches('0').parse::<u64>().unwrap_or(0),
                v[3]
            ));
        }
        if f > 0 {
            one.push_str(part.split_once('\n').unwrap().1);
        }
    }
    put(&s, &b, "src/one.csv", one.into_bytes()).await;
    put(&s, &b, "src/one.ndjson", ndjson.into_bytes()).await;

    let c = SqliteCatalog::open_in_memory().unwrap();
    let spec = |name: &str, source: &str, format: &str, chunk: &str| {
        let path = ws.write(
            &format!("{name}.yaml"),
            &format!(
                "apiVersion: skein/v1\nkind: Dataset\nmetadata: {{name: {name}}}\nspec:\n  \
                 source: {{uri: 's3://{b}/{source}', format: {format}{chunk}}}\n  \
                 target: {{uri: 's3://{b}/lake/{name}/'}}\n  transform:\n    \
                 sql: \"SELECT CAST(id AS BIGINT) AS id, amount, country FROM source WHERE country <> 'SE'\"\n"
            ),
        );
        load::load_file(&path).unwrap_or_else(|p| panic!("{p:?}"))
    };
    let flat = ", csv: {newlinesInValues: false}";
    for (stem, source, format, options, rows) in [
        ("csv", "src/clicks/", "csv", "", 120_000),
        ("parquet", "src/events.parquet", "parquet", "", 160_000),
        ("csv-ranges", "src/one.csv", "csv", flat, 120_000),
        ("ndjson-ranges", "src/one.ndjson", "ndjson", "", 120_000),
    ] {
        let whole = spec(&format!("{stem}-whole"), source, format, options);
        let chunked = spec(
            &format!("{stem}-chunked"),
            source,
            format,
            &format!("{options}, chunkSize: 2MiB"),
        );
        let r = migrate(&c, &s, &whole, &format!("run-{stem}-whole")).await;
        assert_eq!(r.outcome, Outcome::Completed, "{r:?}");
        assert_eq!(r.chunks, None, "{r:?}");
        let r = migrate(&c, &s, &chunked, &format!("run-{stem}-chunked")).await;
        assert_eq!(r.outcome, Outcome::Completed, "{r:?}");
        assert!(r.chunks.is_some_and(|n| n >= 3), "{stem} is chunked: {r:?}");
        assert_eq!(r.rows, rows, "{r:?}");
        let (_, a, _) = published(&s, &b, &format!("lake/{stem}-chunked")).await;
        let (_, w, _) = published(&s, &b, &format!("lake/{stem}-whole")).await;
        assert_eq!(a["checksum"], w["checksum"], "{stem}: same content");
        assert_eq!(a["schema"], w["schema"], "{stem}: same schema");
        // Staging is gone once published; the chunk plan went with it.
        let left = keys(&s, &b, &format!("lake/{stem}-chunked/_skein/staging")).await;
        assert!(left.is_empty(), "{left:?}");
    }
}

/// `skein …` against moto, killed at crash point `point`: true when it was killed there.
fn skein_crashed_at(ws: &Workspace, args: &[&str], point: &str) -> bool {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_skein"))
        .args(args)
        .current_dir(ws.path())
        .env("SKEIN_CATALOG", ws.path().join(".skein"))
        .envs(crate::moto::env())
        .env("SKEIN_CRASH_AT", point)
        .output()
        .unwrap();
    out.status.code().is_none()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_killed_between_the_claim_and_the_pointer_put_is_finished_by_the_next_attempt() {
    let s = settings();
    for point in ["publish.claimed", "publish.moved"] {
        let b = bucket();
        put(&s, &b, "in/c.csv", b"id,name\n1,a\n2,b\n".to_vec()).await;
        let ws = Workspace::new();
        spec(
            &ws,
            "crash",
            &format!("s3://{b}/in/c.csv"),
            "csv",
            &format!("s3://{b}/lake/crash/"),
            "SELECT CAST(id AS BIGINT) AS id, name FROM source",
            "",
        );
        let (code, json) = skein_json(&ws, &["migrate", "crash.yaml"]);
        assert_eq!(code, 0, "{json:#}");
        put(&s, &b, "in/c.csv", b"id,name\n1,a\n2,b\n3,c\n".to_vec()).await;
        assert!(
            skein_crashed_at(&ws, &["migrate", "crash.yaml"], point),
            "never reached {point}"
        );
        // Killed: v2 is claimed (and at `publish.moved` complete), the pointer still v1,
        // the intent says what was under way.
        assert_eq!(current_json(&s, &b, "lake/crash").await["version"], 1);
        let claimed = keys(&s, &b, "lake/crash/versions/v2").await;
        assert!(
            claimed.iter().any(|k| k.ends_with("_claim.json")),
            "{point}: {claimed:?}"
        );
        let intent: serde_json::Value =
            serde_json::from_slice(&get(&s, &b, "lake/crash/_skein/intent.json").await).unwrap();
        assert_eq!(
            (intent["op"].as_str(), intent["version"].as_u64()),
            (Some("publish"), Some(2))
        );

        // The next attempt (a new process, a new run) finishes that publish: v2, not v3.
        let (code, json) = skein_json(&ws, &["migrate", "crash.yaml"]);
        assert_eq!(code, 0, "after {point}: {json:#}");
        assert_eq!(json["datasets"][0]["version"], 2, "after {point}: {json:#}");
        let (v, m, _) = published(&s, &b, "lake/crash").await;
        assert_eq!((v, m["rows"].as_u64()), (2, Some(3)), "after {point}");
        assert!(keys(&s, &b, "lake/crash/versions/v3").await.is_empty());
        assert!(
            keys(&s, &b, "lake/crash/_skein/intent.json")
                .await
                .is_empty()
        );
        assert!(keys(&s, &b, "lake/crash/_skein/staging").await.is_empty());
        let (_, status) = skein_json(&ws, &["status"]);
        assert_eq!(status["datasets"][0]["currentVersion"], 2, "{status:#}");
        assert_eq!(status["datasets"][0]["status"], "completed", "{status:#}");

        // A rollback killed after its conditional put: run again, it finishes (v1 in the
        // catalog too) and goes no further back.
        if point == "publish.moved" {
            assert!(skein_crashed_at(
                &ws,
                &["rollback", "crash"],
                "rollback.swapped"
            ));
            assert_eq!(current_json(&s, &b, "lake/crash").await["version"], 1);
            let (code, json) = skein_json(&ws, &["rollback", "crash"]);
            assert_eq!(code, 0, "{json:#}");
            assert_eq!(json["datasets"][0]["version"], 1, "{json:#}");
            let (_, status) = skein_json(&ws, &["status"]);
            assert_eq!(status["datasets"][0]["currentVersion"], 1, "{status:#}");
            assert_eq!(status["datasets"][0]["status"], "rolled_back", "{status:#}");
            assert!(
                keys(&s, &b, "lake/crash/_skein/intent.json")
                    .await
                    .is_empty()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incremental_s3_source_adds_new_objects_and_refuses_a_rewritten_one() {
    let s = settings();
    let b = bucket();
    let month = |first: u64, rows: u64| -> Vec<u8> {
        let mut csv = String::from("id,city,amount\n");
        for id in first..first + rows {
            csv.push_str(&format!("{id},\"Zürich\nHB\",{}.5\n", id * 2));
        }
        csv.into_bytes()
    };
    put(&s, &b, "exports/2024-01.csv", month(1, 50)).await;
    let ws = Workspace::new();
    let path = ws.write(
        "orders.yaml",
        &format!(
            "apiVersion: skein/v1\nkind: Dataset\nmetadata: {{name: orders}}\nspec:\n  \
             source: {{uri: 's3://{b}/exports/', format: csv, mode: incremental}}\n  \
             target: {{uri: 's3://{b}/lake/orders'}}\n  verify:\n    rules: [{{unique: id}}]\n"
        ),
    );
    let file = load::load_file(&path).unwrap();
    let c = SqliteCatalog::open_in_memory().unwrap();
    let r = migrate(&c, &s, &file, "run-1").await;
    assert_eq!(r.outcome, Outcome::Completed, "{r:?}");
    let (v1, m1, _) = published(&s, &b, "lake/orders").await;
    assert_eq!((v1, r.rows), (1, 50));

    // February arrives: v2 holds January's file (copied server side, the same bytes)
    // and February's, read back whole.
    put(&s, &b, "exports/2024-02.csv", month(51, 30)).await;
    let r = migrate(&c, &s, &file, "run-2").await;
    assert_eq!(r.outcome, Outcome::Completed, "{r:?}");
    assert!(
        r.incremental
            .as_deref()
            .unwrap_or_default()
            .contains("1 new file(s), 30 new row(s), added to v1"),
        "{r:?}"
    );
    let (v2, m2, files) = published(&s, &b, "lake/orders").await;
    assert_eq!((v2, m2["rows"].as_u64()), (2, Some(80)));
    let jan = m1["files"][0]["name"].as_str().unwrap();
    assert!(files.iter().any(|(n, _)| n == jan), "{m2:#}");
    let dir = Target::open(&s, &file)
        .unwrap()
        .version_data(2)
        .await
        .unwrap();
    assert_eq!(count_rows(&s, &dir).await, 80);

    // January rewritten (a new e-tag): refused naming the object; v2 stays current.
    put(&s, &b, "exports/2024-01.csv", month(1, 51)).await;
    put(&s, &b, "exports/2024-03.csv", month(81, 10)).await;
    let r = migrate(&c, &s, &file, "run-3").await;
    assert_eq!(r.outcome, Outcome::Failed, "{r:?}");
    let error = r.error.clone().unwrap_or_default();
    assert!(
        error.contains(&format!("s3://{b}/exports/2024-01.csv` changed")),
        "{error}"
    );
    assert_eq!(r.error_name.as_deref(), Some("Skein.SourceChanged"));
    assert_eq!(current_json(&s, &b, "lake/orders").await["version"], 2);
}
