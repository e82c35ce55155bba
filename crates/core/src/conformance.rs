//! The conformance suites: what every [`Catalog`], [`JobQueue`] and [`ReaderSlots`]
//! adapter must do, written once.
//!
//! SQLite (embedded) and DynamoDB (AWS) run the same checks. Each check uses its own
//! dataset names (`prefix` + suffix) so the whole suite can share one catalog instance,
//! and panics with a message naming the broken promise.
//!
//! Enabled with the `conformance` feature; used only by tests.

use std::path::Path;
use std::sync::Arc;

use crate::catalog::{Catalog, Counter, EndCounts, RunEnd, RunRecord, RunStatus, VersionAction};
use crate::error::Error;
use crate::manifest::{ContentChecksum, FileEntry, Manifest, ManifestSummary};
use crate::queue::{Job, JobQueue};
use crate::slots::ReaderSlots;
use crate::spec::DatasetSpec;
use crate::status::Status;

/// A valid spec named `name`, with `note` folded into its transform so hashes differ.
pub fn spec(name: &str, note: &str) -> (DatasetSpec, String) {
    let text = format!(
        "apiVersion: skein/v1\nkind: Dataset\nmetadata: {{name: {name}, owner: team-test}}\n\
         spec:\n  source: {{uri: data/{name}.csv, format: csv}}\n  target: {{uri: lake/{name}}}\n\
         \x20 transform: {{sql: \"SELECT * FROM source -- {note}\"}}\n"
    );
    let file = crate::load::parse(Path::new("conformance.yaml"), &text)
        .unwrap_or_else(|p| panic!("conformance spec does not parse: {p:?}"));
    (file.spec, file.hash)
}

/// A version's summary as publish records it, its manifest at a made-up location.
fn summary(name: &str, version: u64, rows: u64) -> ManifestSummary {
    manifest(name, version, rows, 1).summary(format!("lake/{name}/v{version}/_manifest.json"))
}

/// A manifest of `files` files with `rows` rows in all.
fn manifest(name: &str, version: u64, rows: u64, files: u64) -> Manifest {
    Manifest {
        dataset: name.to_string(),
        version,
        run_id: "run-conformance".into(),
        spec_hash: "h".into(),
        source_fingerprint: "f".into(),
        files: (0..files)
            .map(|i| FileEntry {
                name: format!("part-{version}-{i:05}.parquet"),
                size: 10,
                sha256: format!("{i:064x}"),
                rows: rows / files + u64::from(i < rows % files),
            })
            .collect(),
        rows,
        bytes: 10 * files,
        checksum: ContentChecksum {
            rows,
            sum: "ab".into(),
        },
        schema: vec!["id: Int64".into()],
        created_at: "2026-01-01T00:00:00Z".into(),
        published_at: Some("2026-01-01T00:00:01Z".into()),
        verified_chunks: None,
        rule_violations: None,
        source_files: None,
        source_schema: None,
    }
}

/// Runs every check against `catalog`, with dataset names starting with `prefix`.
pub async fn run_all(catalog: Arc<dyn Catalog>, prefix: &str) {
    registration(catalog.as_ref(), &format!("{prefix}reg")).await;
    legal_lifecycle(catalog.as_ref(), &format!("{prefix}life")).await;
    illegal_and_conflicting(catalog.as_ref(), &format!("{prefix}bad")).await;
    racing_transitions(catalog.clone(), &format!("{prefix}race")).await;
    versions_and_attempts(catalog.as_ref(), &format!("{prefix}ver")).await;
    many_files(catalog.as_ref(), &format!("{prefix}files")).await;
    batch_registration(catalog.as_ref(), &format!("{prefix}batch")).await;
    fenced_attempts(catalog.as_ref(), &format!("{prefix}fence")).await;
    leases(catalog.as_ref(), &format!("{prefix}lease")).await;
    lease_takeover(catalog.as_ref(), &format!("{prefix}takeover")).await;
    drivers(catalog.as_ref(), &format!("{prefix}driver")).await;
    runs(catalog.clone(), &format!("{prefix}run")).await;
    run_ends(catalog.as_ref(), &format!("{prefix}ends")).await;
}

/// A run counts each dataset once, under its latest end; the same end again, or another
/// run's ends, change nothing.
pub async fn run_ends(c: &dyn Catalog, run_id: &str) {
    c.put_run(&RunRecord {
        run_id: run_id.to_string(),
        started_at: "2026-01-01T00:00:00Z".into(),
        finished_at: None,
        status: RunStatus::Running,
        total: 4,
        succeeded: 0,
        failed: 0,
        rows: 0,
    })
    .await
    .unwrap();
    assert_eq!(
        c.end_counts(run_id).await.unwrap(),
        EndCounts::default(),
        "a new run has no ends"
    );
    c.record_end(run_id, "a", RunEnd::Completed).await.unwrap();
    c.record_end(run_id, "a", RunEnd::Completed).await.unwrap();
    c.record_end(run_id, "b", RunEnd::AwaitingApproval)
        .await
        .unwrap();
    c.record_end(run_id, "c", RunEnd::Failed).await.unwrap();
    let counts = c.end_counts(run_id).await.unwrap();
    assert_eq!(
        (counts.completed, counts.awaiting_approval, counts.failed),
        (1, 1, 1),
        "the same end twice counts once: {counts:?}"
    );
    // Approved later: its count moves.
    c.record_end(run_id, "b", RunEnd::Completed).await.unwrap();
    c.record_end(run_id, "c", RunEnd::RolledBack).await.unwrap();
    let counts = c.end_counts(run_id).await.unwrap();
    assert_eq!(
        counts,
        EndCounts {
            completed: 2,
            failed: 0,
            rolled_back: 1,
            awaiting_approval: 0,
        }
    );
    assert_eq!(counts.ended(), 3);
    assert_eq!(
        c.end_counts(&format!("{run_id}-other")).await.unwrap(),
        EndCounts::default(),
        "ends belong to their run"
    );
    assert!(
        c.record_end(&format!("{run_id}-nobody"), "a", RunEnd::Completed)
            .await
            .is_err(),
        "an end needs its run"
    );
}

/// Registering inserts `pending` once; a changed spec bumps the spec version only.
pub async fn registration(c: &dyn Catalog, name: &str) {
    let (s1, h1) = spec(name, "one");
    let r = c.put_spec(&s1, &h1).await.expect("register");
    assert_eq!(
        (r.status, r.spec_version, r.spec_hash.as_str()),
        (Status::Pending, 1, h1.as_str())
    );
    let again = c.put_spec(&s1, &h1).await.expect("register again");
    assert_eq!(again.spec_version, 1, "same spec must not bump the version");
    c.transition(name, Status::Pending, Status::InProgress, None, None)
        .await
        .unwrap();
    let (s2, h2) = spec(name, "two");
    assert_ne!(h1, h2);
    let changed = c.put_spec(&s2, &h2).await.expect("register changed spec");
    assert_eq!(
        changed.spec_version, 2,
        "a changed spec bumps the spec version"
    );
    assert_eq!(
        changed.status,
        Status::InProgress,
        "registration never changes a known status"
    );
    assert_eq!(changed.spec, s2);
    assert!(
        c.dataset(&format!("{name}-missing"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(c.datasets().await.unwrap().iter().any(|d| d.name == name));
}

/// The happy path is allowed, recorded in order with reasons and run ids.
pub async fn legal_lifecycle(c: &dyn Catalog, name: &str) {
    let (s, h) = spec(name, "");
    c.put_spec(&s, &h).await.unwrap();
    let path = [
        Status::Pending,
        Status::InProgress,
        Status::Migrated,
        Status::Verified,
        Status::AwaitingApproval,
        Status::Completed,
    ];
    for w in path.windows(2) {
        c.transition(name, w[0], w[1], Some("step"), Some("run-1"))
            .await
            .unwrap_or_else(|e| panic!("{} -> {} must be allowed: {e}", w[0], w[1]));
    }
    c.transition(
        name,
        Status::Completed,
        Status::RolledBack,
        Some("operator asked"),
        None,
    )
    .await
    .unwrap();
    let record = c.dataset(name).await.unwrap().unwrap();
    assert_eq!(record.status, Status::RolledBack);
    assert_eq!(record.reason.as_deref(), Some("operator asked"));
    let history = c.history(name).await.unwrap();
    let tos: Vec<Status> = history.iter().map(|e| e.to).collect();
    assert_eq!(
        tos,
        [&path[..], &[Status::RolledBack]].concat(),
        "history lists every change, oldest first"
    );
    assert_eq!(history[0].from, None, "registration has no previous status");
    assert_eq!(history[1].from, Some(Status::Pending));
    assert_eq!(history[1].run_id.as_deref(), Some("run-1"));
}

/// Illegal changes and stale `from`s change nothing.
pub async fn illegal_and_conflicting(c: &dyn Catalog, name: &str) {
    let (s, h) = spec(name, "");
    c.put_spec(&s, &h).await.unwrap();
    let err = c
        .transition(name, Status::Pending, Status::Completed, None, None)
        .await
        .expect_err("pending -> completed skips verification and must be refused");
    assert!(matches!(err, Error::IllegalTransition { .. }), "got {err}");
    let err = c
        .transition(name, Status::InProgress, Status::Migrated, None, None)
        .await
        .expect_err("the dataset is pending, not in_progress");
    match err {
        Error::StatusConflict {
            actual, expected, ..
        } => {
            assert_eq!((actual, expected), (Status::Pending, Status::InProgress))
        }
        other => panic!("expected a status conflict, got {other}"),
    }
    let err = c
        .transition(
            &format!("{name}-nobody"),
            Status::Pending,
            Status::InProgress,
            None,
            None,
        )
        .await
        .expect_err("unknown dataset");
    assert!(matches!(err, Error::UnknownDataset { .. }), "got {err}");
    assert_eq!(
        c.dataset(name).await.unwrap().unwrap().status,
        Status::Pending
    );
    assert_eq!(
        c.history(name).await.unwrap().len(),
        1,
        "refused changes leave no history"
    );
}

/// Of many concurrent `pending → in_progress`, exactly one wins.
pub async fn racing_transitions(c: Arc<dyn Catalog>, name: &str) {
    let (s, h) = spec(name, "");
    c.put_spec(&s, &h).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let c = c.clone();
        let name = name.to_string();
        tasks.push(tokio::spawn(async move {
            c.transition(
                &name,
                Status::Pending,
                Status::InProgress,
                Some(&format!("worker {i}")),
                None,
            )
            .await
        }));
    }
    let mut won = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(()) => won += 1,
            Err(Error::StatusConflict { .. }) => {}
            Err(other) => panic!("a losing racer must see a status conflict, got {other}"),
        }
    }
    assert_eq!(won, 1, "exactly one racer may win a conditional write");
    assert_eq!(c.history(name).await.unwrap().len(), 2);
}

/// `put_specs` registers 250 specs as `put_spec` would each: new ones `pending` at spec
/// version 1, an unchanged one untouched, a changed one at spec version 2.
pub async fn batch_registration(c: &dyn Catalog, prefix: &str) {
    let names: Vec<String> = (0..250).map(|i| format!("{prefix}-{i:03}")).collect();
    let (kept, kept_hash) = spec(&names[0], "");
    c.put_spec(&kept, &kept_hash).await.unwrap();
    c.transition(&names[0], Status::Pending, Status::InProgress, None, None)
        .await
        .unwrap();
    let (old, old_hash) = spec(&names[1], "old");
    c.put_spec(&old, &old_hash).await.unwrap();
    let specs: Vec<(DatasetSpec, String)> = names.iter().map(|n| spec(n, "")).collect();
    let refs: Vec<(&DatasetSpec, &str)> = specs.iter().map(|(s, h)| (s, h.as_str())).collect();
    c.put_specs(&refs).await.unwrap();
    c.put_specs(&refs).await.unwrap();
    for (i, name) in names.iter().enumerate() {
        let r = c.dataset(name).await.unwrap().unwrap();
        let expected = match i {
            0 => (Status::InProgress, 1),
            1 => (Status::Pending, 2),
            _ => (Status::Pending, 1),
        };
        assert_eq!((r.status, r.spec_version), expected, "{name}");
        assert_eq!(r.spec_hash, specs[i].1, "{name}");
    }
}

/// A version whose manifest lists 10,000 files (a chunked, partitioned dataset) is
/// recorded and read back: the catalog keeps its summary, the file count and where the
/// manifest is, with the sha256 of the manifest's bytes (a whole manifest of that size
/// would be ~1.7 MB, past DynamoDB's 400 KB item limit).
pub async fn many_files(c: &dyn Catalog, name: &str) {
    const FILES: u64 = 10_000;
    let (s, h) = spec(name, "");
    c.put_spec(&s, &h).await.unwrap();
    let m = manifest(name, 1, 1_000_000, FILES);
    assert!(
        m.stored_bytes().len() > 400 * 1024,
        "the manifest itself is large"
    );
    let location = format!("s3://lake/{name}/_skein/versions/v1/_manifest.json");
    c.record_version(name, VersionAction::Published, &m.summary(&location))
        .await
        .unwrap();
    let versions = c.versions(name).await.unwrap();
    assert_eq!(versions.len(), 1);
    let v = &versions[0].manifest;
    assert_eq!(
        (v.version, v.file_count, v.rows, v.bytes),
        (1, FILES, 1_000_000, 10 * FILES)
    );
    assert_eq!(v.location, location);
    use sha2::{Digest, Sha256};
    let sha: String = Sha256::digest(m.stored_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        v.sha256, sha,
        "the sha256 is of the manifest's stored bytes"
    );
    assert!(
        serde_json::to_vec(v).unwrap().len() < 4 * 1024,
        "the summary does not grow with the files"
    );
    let record = c.dataset(name).await.unwrap().unwrap();
    assert_eq!(
        (record.current_version, record.rows),
        (Some(1), Some(1_000_000))
    );
}

/// Versions and attempts are recorded and read back in order.
pub async fn versions_and_attempts(c: &dyn Catalog, name: &str) {
    let (s, h) = spec(name, "");
    c.put_spec(&s, &h).await.unwrap();
    c.record_version(name, VersionAction::Published, &summary(name, 1, 10))
        .await
        .unwrap();
    c.record_version(name, VersionAction::Published, &summary(name, 2, 20))
        .await
        .unwrap();
    c.record_version(name, VersionAction::Restored, &summary(name, 1, 10))
        .await
        .unwrap();
    let record = c.dataset(name).await.unwrap().unwrap();
    assert_eq!((record.current_version, record.rows), (Some(1), Some(10)));
    let versions = c.versions(name).await.unwrap();
    let seen: Vec<(VersionAction, u64)> = versions
        .iter()
        .map(|v| (v.action, v.manifest.version))
        .collect();
    assert_eq!(
        seen,
        vec![
            (VersionAction::Published, 1),
            (VersionAction::Published, 2),
            (VersionAction::Restored, 1)
        ]
    );
    assert_eq!(
        versions[1].manifest,
        summary(name, 2, 20),
        "summaries round-trip"
    );

    c.set_verification(name, "passed: 10 rows").await.unwrap();
    c.set_approval_token(name, Some("token-1")).await.unwrap();
    let record = c.dataset(name).await.unwrap().unwrap();
    assert_eq!(record.last_verification.as_deref(), Some("passed: 10 rows"));
    assert_eq!(record.approval_token.as_deref(), Some("token-1"));
    c.set_approval_token(name, None).await.unwrap();
    assert_eq!(c.dataset(name).await.unwrap().unwrap().approval_token, None);

    let a1 = c.start_attempt(name, "run-a").await.unwrap();
    let a2 = c.start_attempt(name, "run-b").await.unwrap();
    assert_eq!((a1, a2), (1, 2));
    c.finish_attempt(name, a1, "failed", Some("boom"))
        .await
        .unwrap();
    let attempts = c.attempts(name).await.unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0].outcome.as_deref(), Some("failed"));
    assert_eq!(attempts[0].error.as_deref(), Some("boom"));
    assert!(attempts[0].finished_at.is_some());
    assert_eq!(attempts[1].run_id, "run-b");
    assert!(attempts[1].finished_at.is_none());
    assert!(
        c.start_attempt(&format!("{name}-nobody"), "run-a")
            .await
            .is_err(),
        "attempts need a registered dataset"
    );
}

/// A status change fenced by an attempt happens only while that attempt is the newest: a
/// stale worker (attempt 1) cannot move the dataset once attempt 2 started, and its refused
/// write changes neither the status nor the history.
pub async fn fenced_attempts(c: &dyn Catalog, name: &str) {
    let (s, h) = spec(name, "");
    c.put_spec(&s, &h).await.unwrap();
    let run = Some("run-fence");
    let a1 = c.start_attempt(name, "run-fence").await.unwrap();
    c.transition_in_attempt(name, a1, Status::Pending, Status::InProgress, None, run)
        .await
        .expect("the newest attempt moves the dataset");
    let a2 = c.start_attempt(name, "run-fence").await.unwrap();
    let history = c.history(name).await.unwrap().len();
    match c
        .transition_in_attempt(name, a1, Status::InProgress, Status::Migrated, None, run)
        .await
    {
        Err(Error::Superseded {
            attempt, current, ..
        }) => assert_eq!((attempt, current), (a1, a2)),
        other => panic!("a superseded attempt must be refused, got {other:?}"),
    }
    let record = c.dataset(name).await.unwrap().unwrap();
    assert_eq!(
        record.status,
        Status::InProgress,
        "the refused write changed the status"
    );
    assert_eq!(
        c.history(name).await.unwrap().len(),
        history,
        "the refused write left a history entry"
    );
    c.transition_in_attempt(name, a2, Status::InProgress, Status::Migrated, None, run)
        .await
        .expect("the newest attempt goes on");
    // The fence does not hide a status conflict of the newest attempt.
    match c
        .transition_in_attempt(name, a2, Status::InProgress, Status::Failed, None, run)
        .await
    {
        Err(Error::StatusConflict { actual, .. }) => assert_eq!(actual, Status::Migrated),
        other => panic!("a wrong `from` must be a conflict, got {other:?}"),
    }
}

/// One holder at a time; the holder may renew; an expired lease is free; release frees.
pub async fn leases(c: &dyn Catalog, name: &str) {
    let (s, h) = spec(name, "");
    c.put_spec(&s, &h).await.unwrap();
    c.acquire_lease(name, "worker-a", 300)
        .await
        .expect("free lease");
    c.acquire_lease(name, "worker-a", 300)
        .await
        .expect("the holder renews");
    match c.acquire_lease(name, "worker-b", 300).await {
        Err(Error::LeaseHeld { holder, .. }) => assert_eq!(holder, "worker-a"),
        other => panic!("a held lease must refuse another holder, got {other:?}"),
    }
    c.release_lease(name, "worker-b").await.unwrap();
    assert!(
        c.acquire_lease(name, "worker-b", 300).await.is_err(),
        "only the holder can release"
    );
    c.release_lease(name, "worker-a").await.unwrap();
    c.acquire_lease(name, "worker-b", 0)
        .await
        .expect("released lease is free");
    c.acquire_lease(name, "worker-c", 300)
        .await
        .expect("a lease with ttl 0 has expired");
}

/// A lease moves from a holder known to be gone only while that holder still has it.
pub async fn lease_takeover(c: &dyn Catalog, name: &str) {
    let (s, h) = spec(name, "");
    c.put_spec(&s, &h).await.unwrap();
    c.acquire_lease(name, "run-dead", 300).await.unwrap();
    c.take_over_lease(name, "run-dead", "run-new", 300)
        .await
        .expect("the gone holder's lease moves");
    match c.take_over_lease(name, "run-dead", "run-third", 300).await {
        Err(Error::LeaseHeld { holder, .. }) => assert_eq!(holder, "run-new"),
        other => panic!("a takeover from a holder that lost the lease must fail, got {other:?}"),
    }
    c.acquire_lease(name, "run-new", 300)
        .await
        .expect("the new holder holds it");
    c.release_lease(name, "run-new").await.unwrap();
    c.take_over_lease(name, "run-dead", "run-third", 300)
        .await
        .expect("a free lease is simply taken");
}

/// One driver per key: refused with its record while it holds, renewed by itself,
/// replaced only when the caller names the exact record there, free once released.
pub async fn drivers(c: &dyn Catalog, key: &str) {
    use crate::catalog::Driver;
    let a = Driver {
        run_id: "run-a".into(),
        pid: 101,
        host: "host-a".into(),
        expires_at: 4_000_000_000,
    };
    let b = Driver {
        run_id: "run-b".into(),
        pid: 202,
        host: "host-b".into(),
        expires_at: 4_000_000_000,
    };
    assert_eq!(
        c.driver(key).await.unwrap(),
        None,
        "nobody drives a new key"
    );
    c.claim_driver(key, &a, None).await.expect("a free key");
    let renewed = Driver {
        expires_at: 4_000_000_100,
        ..a.clone()
    };
    c.claim_driver(key, &renewed, None)
        .await
        .expect("the driver renews");
    assert_eq!(c.driver(key).await.unwrap(), Some(renewed.clone()));
    match c.claim_driver(key, &b, None).await {
        Err(Error::DriverHeld {
            pid, host, run_id, ..
        }) => {
            assert_eq!(
                (pid, host.as_str(), run_id.as_str()),
                (101, "host-a", "run-a")
            )
        }
        other => panic!("a held key must refuse another driver, got {other:?}"),
    }
    assert!(
        c.claim_driver(key, &b, Some(&a)).await.is_err(),
        "a takeover naming a stale record (the driver renewed since) is refused"
    );
    c.release_driver(key, &b).await.unwrap();
    assert!(
        c.claim_driver(key, &b, None).await.is_err(),
        "only the driver releases"
    );
    c.claim_driver(key, &b, Some(&renewed))
        .await
        .expect("a takeover naming the record there now");
    c.release_driver(key, &b).await.unwrap();
    assert_eq!(c.driver(key).await.unwrap().map(|d| d.expires_at), Some(0));
    c.claim_driver(key, &a, None)
        .await
        .expect("a released key is free");
}

/// Run records: put, read, list newest first, counters add atomically.
pub async fn runs(c: Arc<dyn Catalog>, prefix: &str) {
    let older = RunRecord {
        run_id: format!("{prefix}-1"),
        started_at: "2026-01-01T00:00:00Z".into(),
        finished_at: None,
        status: RunStatus::Running,
        total: 3,
        succeeded: 0,
        failed: 0,
        rows: 0,
    };
    let newer = RunRecord {
        run_id: format!("{prefix}-2"),
        started_at: "2026-01-02T00:00:00Z".into(),
        ..older.clone()
    };
    c.put_run(&older).await.unwrap();
    c.put_run(&newer).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let c = c.clone();
        let id = older.run_id.clone();
        tasks.push(tokio::spawn(async move {
            c.add_to_run(&id, Counter::Rows, 5).await.unwrap();
            c.add_to_run(&id, Counter::Succeeded, 1).await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    c.add_to_run(&older.run_id, Counter::Failed, 2)
        .await
        .unwrap();
    let got = c
        .run(&older.run_id)
        .await
        .unwrap()
        .expect("run is recorded");
    assert_eq!(
        (got.rows, got.succeeded, got.failed),
        (50, 10, 2),
        "no lost updates"
    );
    let ids: Vec<String> = c
        .runs()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.run_id.starts_with(prefix))
        .map(|r| r.run_id)
        .collect();
    assert_eq!(
        ids,
        vec![newer.run_id.clone(), older.run_id.clone()],
        "newest first"
    );
    let finished = RunRecord {
        finished_at: Some("2026-01-01T01:00:00Z".into()),
        status: RunStatus::Succeeded,
        ..got
    };
    c.put_run(&finished).await.unwrap();
    assert_eq!(c.run(&older.run_id).await.unwrap().unwrap(), finished);
    assert!(
        c.add_to_run(&format!("{prefix}-none"), Counter::Rows, 1)
            .await
            .is_err()
    );
}

/// The job-queue contract, written once for every [`JobQueue`] adapter (SQLite, SQS).
/// `group`'s queue must be new and move a job to its dead letters after 2 deliveries.
///
/// - a sent job is delivered once and then hidden; `depth` counts visible and in-flight;
/// - a job whose worker died comes back after its visibility timeout, its receive count
///   one higher; after the second delivery it is a dead letter, and peeking leaves it;
/// - `extend` keeps a job hidden past its first timeout; `delete` ends it.
pub async fn queue(q: &dyn JobQueue, group: &str) {
    use std::time::Duration;
    let job = |name: &str| Job::new(name, "run-queue", &format!("token-{group}-{name}"));
    // Past a 1 s visibility timeout, with room for a busy machine's clock reads.
    let past_timeout = Duration::from_millis(1_400);

    q.send(group, &job("orders")).await.unwrap();
    q.send(group, &job("customers")).await.unwrap();
    assert_eq!(q.depth(group).await.unwrap(), 2, "two sent");
    let a = q.receive(group, 60).await.unwrap().expect("a job");
    let b = q.receive(group, 60).await.unwrap().expect("another job");
    assert_eq!((a.receives, b.receives), (1, 1), "first deliveries");
    let mut names = vec![a.job.dataset.clone(), b.job.dataset.clone()];
    names.sort();
    assert_eq!(names, ["customers", "orders"], "each job delivered once");
    assert!(
        q.receive(group, 60).await.unwrap().is_none(),
        "delivered jobs are hidden"
    );
    assert_eq!(q.depth(group).await.unwrap(), 2, "in flight still counts");
    q.delete(&a).await.unwrap();
    q.delete(&b).await.unwrap();
    assert_eq!(q.depth(group).await.unwrap(), 0, "deleted jobs are gone");

    q.send(group, &job("slow")).await.unwrap();
    let slow = q.receive(group, 1).await.unwrap().expect("delivered");
    q.extend(&slow, 60).await.unwrap();
    tokio::time::sleep(past_timeout).await;
    assert!(
        q.receive(group, 60).await.unwrap().is_none(),
        "an extended job stays hidden past its first timeout"
    );
    q.delete(&slow).await.unwrap();

    q.send(group, &job("flaky")).await.unwrap();
    for n in 1..=2 {
        let d = q.receive(group, 1).await.unwrap().expect("delivered again");
        assert_eq!(d.receives, n, "the receive count of delivery {n}");
        assert_eq!(d.job, job("flaky"), "the job comes back whole");
        // The worker dies: the job becomes visible again after the timeout.
        tokio::time::sleep(past_timeout).await;
    }
    assert!(
        q.receive(group, 1).await.unwrap().is_none(),
        "no third delivery: the job is a dead letter"
    );
    assert_eq!(q.dead_letters(group).await.unwrap(), vec![job("flaky")]);
    assert_eq!(
        q.dead_letters(group).await.unwrap().len(),
        1,
        "peeking leaves the dead letters"
    );
    assert_eq!(
        q.depth(group).await.unwrap(),
        0,
        "a dead letter is not queued"
    );
}

/// The reader-slot contract of an adapter that refuses when every slot is taken (DynamoDB;
/// the local pools' semaphore waits instead, in one process). `capped` has a cap of 2,
/// `free` none.
pub async fn reader_slots(s: &dyn ReaderSlots, capped: &str, free: &str) {
    assert!(s.acquire(capped, "a", 300).await.unwrap(), "first slot");
    assert!(
        s.acquire(capped, "a", 300).await.unwrap(),
        "a holder's slot is re-entrant"
    );
    assert!(s.acquire(capped, "b", 300).await.unwrap(), "second slot");
    assert!(!s.acquire(capped, "c", 300).await.unwrap(), "the cap is 2");
    s.release(capped, "a").await.unwrap();
    s.release(capped, "a").await.unwrap();
    assert!(
        s.acquire(capped, "c", 300).await.unwrap(),
        "a released slot is free"
    );
    // A reader that died frees its slot when its time runs out.
    s.release(capped, "c").await.unwrap();
    assert!(s.acquire(capped, "dies", 0).await.unwrap());
    assert!(
        s.acquire(capped, "next", 300).await.unwrap(),
        "an expired slot is free"
    );
    for holder in ["one", "two", "three"] {
        assert!(
            s.acquire(free, holder, 300).await.unwrap(),
            "no cap, no wait"
        );
    }
}
