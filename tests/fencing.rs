//! Fencing (issue 16 d): a stale worker, whose attempt a newer one superseded while it
//! staged, can neither move the dataset nor get its files published, and the two
//! attempts' files never mix. The interleaving is exact: the stale worker's first status
//! change after staging waits while the whole second attempt runs.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use skein_core::Status;
use skein_core::catalog::{
    Attempt, Catalog, Counter, DatasetRecord, Driver, EndCounts, HistoryEntry, RunEnd, RunRecord,
    VersionAction, VersionRecord,
};
use skein_core::manifest::ManifestSummary;
use skein_core::queue::Job;
use skein_core::{DatasetSpec, Result, load, names};
use skein_data::Settings;
use skein_embedded::SqliteCatalog;
use skein_usecases::steps;
use skein_usecases::tasks::{self, JobAnswer};

use crate::sources::run_python;
use crate::util::{Workspace, parquet_checksums, text};

type Hook = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The catalog as the stale worker sees it: the real SQLite catalog, except that its first
/// fenced move to `migrated` first runs `hook` (the second attempt, start to end).
struct Interleaved {
    inner: Arc<SqliteCatalog>,
    hook: Mutex<Option<Hook>>,
}

#[async_trait]
impl Catalog for Interleaved {
    async fn put_spec(&self, spec: &DatasetSpec, hash: &str) -> Result<DatasetRecord> {
        self.inner.put_spec(spec, hash).await
    }
    async fn dataset(&self, name: &str) -> Result<Option<DatasetRecord>> {
        self.inner.dataset(name).await
    }
    async fn datasets(&self) -> Result<Vec<DatasetRecord>> {
        self.inner.datasets().await
    }
    async fn transition(
        &self,
        name: &str,
        from: Status,
        to: Status,
        reason: Option<&str>,
        run_id: Option<&str>,
    ) -> Result<()> {
        self.inner.transition(name, from, to, reason, run_id).await
    }
    async fn transition_in_attempt(
        &self,
        name: &str,
        attempt: u32,
        from: Status,
        to: Status,
        reason: Option<&str>,
        run_id: Option<&str>,
    ) -> Result<()> {
        let hook = if to == Status::Migrated {
            self.hook.lock().unwrap().take()
        } else {
            None
        };
        if let Some(hook) = hook {
            hook.await;
        }
        self.inner
            .transition_in_attempt(name, attempt, from, to, reason, run_id)
            .await
    }
    async fn history(&self, name: &str) -> Result<Vec<HistoryEntry>> {
        self.inner.history(name).await
    }
    async fn record_version(
        &self,
        name: &str,
        action: VersionAction,
        manifest: &ManifestSummary,
    ) -> Result<()> {
        self.inner.record_version(name, action, manifest).await
    }
    async fn versions(&self, name: &str) -> Result<Vec<VersionRecord>> {
        self.inner.versions(name).await
    }
    async fn set_verification(&self, name: &str, summary: &str) -> Result<()> {
        self.inner.set_verification(name, summary).await
    }
    async fn set_approval_token(&self, name: &str, token: Option<&str>) -> Result<()> {
        self.inner.set_approval_token(name, token).await
    }
    async fn start_attempt(&self, name: &str, run_id: &str) -> Result<u32> {
        self.inner.start_attempt(name, run_id).await
    }
    async fn finish_attempt(
        &self,
        name: &str,
        attempt: u32,
        outcome: &str,
        error: Option<&str>,
    ) -> Result<()> {
        self.inner
            .finish_attempt(name, attempt, outcome, error)
            .await
    }
    async fn attempts(&self, name: &str) -> Result<Vec<Attempt>> {
        self.inner.attempts(name).await
    }
    async fn put_run(&self, run: &RunRecord) -> Result<()> {
        self.inner.put_run(run).await
    }
    async fn run(&self, run_id: &str) -> Result<Option<RunRecord>> {
        self.inner.run(run_id).await
    }
    async fn runs(&self) -> Result<Vec<RunRecord>> {
        self.inner.runs().await
    }
    async fn add_to_run(&self, run_id: &str, counter: Counter, n: u64) -> Result<()> {
        self.inner.add_to_run(run_id, counter, n).await
    }
    async fn record_end(&self, run_id: &str, dataset: &str, end: RunEnd) -> Result<()> {
        self.inner.record_end(run_id, dataset, end).await
    }
    async fn end_counts(&self, run_id: &str) -> Result<EndCounts> {
        self.inner.end_counts(run_id).await
    }
    async fn acquire_lease(&self, name: &str, holder: &str, ttl: u64) -> Result<()> {
        self.inner.acquire_lease(name, holder, ttl).await
    }
    async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        self.inner.release_lease(name, holder).await
    }
    async fn take_over_lease(&self, name: &str, from: &str, to: &str, ttl: u64) -> Result<()> {
        self.inner.take_over_lease(name, from, to, ttl).await
    }
    async fn claim_driver(&self, key: &str, me: &Driver, replace: Option<&Driver>) -> Result<()> {
        self.inner.claim_driver(key, me, replace).await
    }
    async fn driver(&self, key: &str) -> Result<Option<Driver>> {
        self.inner.driver(key).await
    }
    async fn release_driver(&self, key: &str, me: &Driver) -> Result<()> {
        self.inner.release_driver(key, me).await
    }
}

/// Writes a real RFC 4180 export of `rows` rows (BOM, quoted line breaks, unicode, nulls).
fn export(csv: &Path, rows: usize) {
    let out = run_python("rfc4180_export.py", &[csv, Path::new(&rows.to_string())]);
    assert!(out.status.success(), "{}", text(&out));
}

/// Parquet file names in `dir`.
fn parts(dir: &Path) -> Vec<String> {
    parquet_checksums(dir).into_iter().map(|(n, _)| n).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_superseded_worker_cannot_publish_and_its_files_never_mix_with_the_new_attempts() {
    let ws = Workspace::new();
    let csv = ws.path().join("data/export.csv");
    std::fs::create_dir_all(csv.parent().unwrap()).unwrap();
    export(&csv, 3_000);
    ws.write(
        "export.yaml",
        "apiVersion: skein/v1\nkind: Dataset\nmetadata: {name: export}\nspec:\n  group: web\n  \
         source: {uri: data/export.csv, format: csv}\n  target: {uri: lake/export}\n",
    );
    let file = load::load_file(&ws.path().join("export.yaml")).unwrap();
    let inner = Arc::new(SqliteCatalog::open_in_memory().unwrap());
    let run = "run-fenced";
    inner.put_run(&crate::util::running_run(run)).await.unwrap();
    inner.put_spec(&file.spec, &file.hash).await.unwrap();
    let settings = Settings::default();
    let staging = ws.path().join("lake/.export.skein/staging").join(run);

    // The second attempt: the same job delivered again after the first one's token timed
    // out. Meanwhile the source changed (4,000 rows), so any file of the first attempt in
    // the published version would show in its rows.
    let second: Arc<Mutex<Option<JobAnswer>>> = Arc::default();
    let hook: Hook = {
        let (inner, settings, second, csv) =
            (inner.clone(), settings.clone(), second.clone(), csv.clone());
        let staging = staging.clone();
        Box::pin(async move {
            // the stale attempt has staged its files in its own directory by now
            assert!(!parts(&staging.join("a1")).is_empty(), "attempt 1 staged");
            export(&csv, 4_000);
            let job = Job::new("export", run, "token-2");
            let answer =
                tasks::migrate_job(inner.as_ref(), &settings, &job, false, Default::default())
                    .await;
            *second.lock().unwrap() = Some(answer);
        })
    };
    let stale = Interleaved {
        inner: inner.clone(),
        hook: Mutex::new(Some(hook)),
    };
    let job = Job::new("export", run, "token-1");
    let first = tasks::migrate_job(&stale, &settings, &job, false, Default::default()).await;

    // The stale worker was refused at its first status change and says why.
    match &first {
        JobAnswer::Failure { error, cause } => {
            assert_eq!(error, names::SUPERSEDED, "{cause}");
            assert!(
                cause.contains("attempt 1") && cause.contains("attempt 2"),
                "{cause}"
            );
        }
        other => panic!("the stale worker must be refused, got {other:?}"),
    }
    let second = second
        .lock()
        .unwrap()
        .take()
        .expect("the second attempt ran");
    let output = match second {
        JobAnswer::Success { output } => output,
        other => panic!("the second attempt must succeed: {other:?}"),
    };
    assert_eq!(output["rows"], 4_000, "{output:#}");
    let attempts = inner.attempts("export").await.unwrap();
    let outcomes: Vec<_> = attempts
        .iter()
        .map(|a| (a.attempt, a.outcome.as_deref()))
        .collect();
    assert_eq!(
        outcomes,
        [(1, Some("superseded")), (2, Some("verified"))],
        "{attempts:?}"
    );
    let record = inner.dataset("export").await.unwrap().unwrap();
    assert_eq!(record.status, Status::Verified);
    // Only the second attempt's rows were counted for the run.
    let counted = inner.run(run).await.unwrap().unwrap();
    assert_eq!(counted.rows, 4_000, "{counted:?}");

    // Each attempt's files stayed in its own directory.
    let (a1, a2) = (parts(&staging.join("a1")), parts(&staging.join("a2")));
    assert!(!a1.is_empty() && !a2.is_empty(), "{a1:?} {a2:?}");
    let staged: skein_core::manifest::Manifest =
        serde_json::from_slice(&std::fs::read(staging.join("a2/_staged.json")).unwrap()).unwrap();
    let mut listed: Vec<String> = staged.files.iter().map(|f| f.name.clone()).collect();
    listed.sort();
    assert_eq!(
        listed, a2,
        "attempt 2's directory holds exactly its manifest's files"
    );

    // Publish takes the newest attempt's staging, and nothing of the stale one.
    let version = steps::publish(inner.as_ref(), &settings, "export", run)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(version, 1);
    let published = ws.path().join("lake/export");
    assert_eq!(parts(&published), a2);
    let out = run_python("compare_csv_parquet.py", &[&csv, &published]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "equal: 4000 rows"
    );
    assert!(
        !staging.exists(),
        "publish removes the run's staging, the stale attempt's included"
    );
}
