//! The embedded SQLite catalog against the shared conformance suite, in memory and on disk,
//! plus what only a file-backed catalog can show: two connections, reopening, schema guard.

use std::sync::Arc;

use skein_core::Status;
use skein_core::catalog::Catalog;
use skein_core::conformance;
use skein_embedded::SqliteCatalog;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_memory_catalog_conforms() {
    let c: Arc<dyn Catalog> = Arc::new(SqliteCatalog::open_in_memory().unwrap());
    conformance::run_all(c, "mem-").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn file_catalog_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let c: Arc<dyn Catalog> =
        Arc::new(SqliteCatalog::open(&dir.path().join("nested/catalog.db")).unwrap());
    conformance::run_all(c, "file-").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_connections_race_on_one_file_and_one_wins() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.db");
    let a = Arc::new(SqliteCatalog::open(&path).unwrap());
    let b = Arc::new(SqliteCatalog::open(&path).unwrap());
    let (spec, hash) = conformance::spec("shared", "");
    a.put_spec(&spec, &hash).await.unwrap();
    let mut tasks = Vec::new();
    for c in [a.clone(), b.clone(), a.clone(), b.clone()] {
        tasks.push(tokio::spawn(async move {
            c.transition("shared", Status::Pending, Status::InProgress, None, None)
                .await
        }));
    }
    let mut won = 0;
    for t in tasks {
        if t.await.unwrap().is_ok() {
            won += 1;
        }
    }
    assert_eq!(won, 1);
    assert_eq!(
        b.dataset("shared").await.unwrap().unwrap().status,
        Status::InProgress
    );
    // The lease taken through one connection is seen by the other.
    a.acquire_lease("shared", "proc-a", 300).await.unwrap();
    assert!(b.acquire_lease("shared", "proc-b", 300).await.is_err());
}

#[tokio::test]
async fn reopened_catalog_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.db");
    {
        let c = SqliteCatalog::open(&path).unwrap();
        let (spec, hash) = conformance::spec("kept", "");
        c.put_spec(&spec, &hash).await.unwrap();
        c.transition(
            "kept",
            Status::Pending,
            Status::InProgress,
            Some("started"),
            Some("run-x"),
        )
        .await
        .unwrap();
    }
    let c = SqliteCatalog::open(&path).unwrap();
    let record = c
        .dataset("kept")
        .await
        .unwrap()
        .expect("dataset survives reopening");
    assert_eq!(record.status, Status::InProgress);
    assert_eq!(c.history("kept").await.unwrap().len(), 2);
}

#[test]
fn catalog_from_a_newer_skein_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.db");
    drop(SqliteCatalog::open(&path).unwrap());
    let conn = rusqlite_free_bump(&path);
    assert!(conn.contains("newer than this skein"), "got: {conn}");
}

/// Marks the file as written by a future schema (via the sqlite3 header's user_version
/// field at offset 60), then reports what opening it says.
fn rusqlite_free_bump(path: &std::path::Path) -> String {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[60..64].copy_from_slice(&99u32.to_be_bytes());
    std::fs::write(path, bytes).unwrap();
    match SqliteCatalog::open(path) {
        Ok(_) => "opened".into(),
        Err(e) => e.to_string(),
    }
}
