//! The catalog port: where datasets, their status, history, versions, runs and leases
//! are kept. SQLite implements it embedded, DynamoDB on AWS; both pass the same suite.
//!
//! **Invariant:** every status change is a conditional write. [`Catalog::transition`]
//! succeeds only if the dataset is in `from` and `from → to` is legal; otherwise nothing
//! changes and the call fails with [`Error::StatusConflict`] or
//! [`Error::IllegalTransition`].

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::manifest::ManifestSummary;
use crate::spec::DatasetSpec;
use crate::status::Status;

use crate::error::Error;

/// A dataset as the catalog holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DatasetRecord {
    /// Dataset name.
    pub name: String,
    /// The spec last registered.
    pub spec: DatasetSpec,
    /// Hash of that spec.
    pub spec_hash: String,
    /// Spec version: 1 for the first registration, +1 whenever the hash changes.
    pub spec_version: u32,
    /// Current status.
    pub status: Status,
    /// Why it is in that status (errors, rollbacks), if anyone said.
    #[serde(default)]
    pub reason: Option<String>,
    /// Currently published version, if any.
    #[serde(default)]
    pub current_version: Option<u64>,
    /// Rows of the currently published version.
    #[serde(default)]
    pub rows: Option<u64>,
    /// Summary of the last verification (`passed …` / `failed: …`).
    #[serde(default)]
    pub last_verification: Option<String>,
    /// Task token of a run waiting for approval.
    #[serde(default)]
    pub approval_token: Option<String>,
    /// RFC 3339 time of the last change.
    pub updated_at: String,
}

/// One status change in a dataset's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    /// RFC 3339 time.
    pub at: String,
    /// Status before (none when the dataset was first registered).
    pub from: Option<Status>,
    /// Status after.
    pub to: Status,
    /// Reason or note.
    #[serde(default)]
    pub reason: Option<String>,
    /// The run that made the change.
    #[serde(default)]
    pub run_id: Option<String>,
}

/// What happened to a version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VersionAction {
    /// The version was published (made current).
    Published,
    /// A rollback made this (earlier) version current again.
    Restored,
}

/// A version event of a dataset's target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionRecord {
    /// RFC 3339 time of the event.
    pub at: String,
    /// Published or restored.
    pub action: VersionAction,
    /// The version's manifest summary and the manifest's location (the file list stays
    /// in the manifest next to the data, so the record's size is bounded).
    pub manifest: ManifestSummary,
}

/// One attempt to migrate a dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    /// Run the attempt belongs to.
    pub run_id: String,
    /// 1-based attempt number for the dataset.
    pub attempt: u32,
    /// RFC 3339 start.
    pub started_at: String,
    /// RFC 3339 end, when it ended.
    #[serde(default)]
    pub finished_at: Option<String>,
    /// `completed`, `up_to_date`, `failed`, … once ended.
    #[serde(default)]
    pub outcome: Option<String>,
    /// Error message of a failed attempt.
    #[serde(default)]
    pub error: Option<String>,
}

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Its datasets are being migrated (or it was killed and may be resumed).
    Running,
    /// It ended with every dataset completed (or up to date).
    Succeeded,
    /// It ended with a failed, rolled back or not run dataset, or was stopped.
    Failed,
}

impl RunStatus {
    /// The status as stored and printed.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
        }
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for RunStatus {
    type Err = crate::Error;

    fn from_str(text: &str) -> crate::Result<RunStatus> {
        match text {
            "running" => Ok(RunStatus::Running),
            "succeeded" => Ok(RunStatus::Succeeded),
            "failed" => Ok(RunStatus::Failed),
            other => Err(crate::Error::Internal(format!(
                "the catalog holds an unknown run status `{other}`"
            ))),
        }
    }
}

/// A run: one invocation that migrates a set of datasets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunRecord {
    /// Run id.
    pub run_id: String,
    /// RFC 3339 start.
    pub started_at: String,
    /// RFC 3339 end.
    #[serde(default)]
    pub finished_at: Option<String>,
    /// `running`, `succeeded`, `failed`.
    pub status: RunStatus,
    /// Datasets in the run.
    pub total: u64,
    /// Datasets that ended completed (or up to date).
    pub succeeded: u64,
    /// Datasets that ended failed or rolled back.
    pub failed: u64,
    /// Rows written by the run.
    pub rows: u64,
}

/// The process driving a run (or holding a directory's runs): one at a time, its lease
/// renewed while it lives. A second process is refused with this record, which names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Driver {
    /// The run it drives.
    pub run_id: String,
    /// Its process id.
    pub pid: u32,
    /// The host it runs on.
    pub host: String,
    /// Unix seconds when the lease ends unless renewed; 0 once released.
    pub expires_at: i64,
}

impl Driver {
    /// The error that refuses another process, naming this driver.
    pub fn held(&self, key: &str) -> Error {
        Error::DriverHeld {
            key: key.to_string(),
            run_id: self.run_id.clone(),
            pid: self.pid,
            host: self.host.clone(),
            expires: chrono::DateTime::from_timestamp(self.expires_at, 0)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .unwrap_or_default(),
        }
    }
}

/// How a dataset's migration ended in a run, as the run's summary counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RunEnd {
    /// Published (or up to date) and completed.
    Completed,
    /// Failed and undone, the dataset left failed.
    Failed,
    /// Failed or rejected, and the previous version restored.
    RolledBack,
    /// Verified, waiting for a person when the run ended.
    AwaitingApproval,
}

impl RunEnd {
    /// Every end, in the summary's order.
    pub const ALL: [RunEnd; 4] = [
        RunEnd::Completed,
        RunEnd::Failed,
        RunEnd::RolledBack,
        RunEnd::AwaitingApproval,
    ];

    /// The stored name (a catalog column value or attribute suffix).
    pub fn as_str(self) -> &'static str {
        match self {
            RunEnd::Completed => "completed",
            RunEnd::Failed => "failed",
            RunEnd::RolledBack => "rolled_back",
            RunEnd::AwaitingApproval => "awaiting_approval",
        }
    }

    /// The end a stored name stands for.
    pub fn parse(s: &str) -> Result<RunEnd> {
        RunEnd::ALL
            .into_iter()
            .find(|e| e.as_str() == s)
            .ok_or_else(|| Error::Internal(format!("the catalog holds an unknown run end `{s}`")))
    }
}

/// A run's count of each [`RunEnd`]: every dataset counted once, under its latest end.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndCounts {
    pub completed: u64,
    pub failed: u64,
    pub rolled_back: u64,
    pub awaiting_approval: u64,
}

impl EndCounts {
    /// The count of `end`, to add to.
    pub fn of(&mut self, end: RunEnd) -> &mut u64 {
        match end {
            RunEnd::Completed => &mut self.completed,
            RunEnd::Failed => &mut self.failed,
            RunEnd::RolledBack => &mut self.rolled_back,
            RunEnd::AwaitingApproval => &mut self.awaiting_approval,
        }
    }

    /// Datasets that reached an end.
    pub fn ended(&self) -> u64 {
        self.completed + self.failed + self.rolled_back + self.awaiting_approval
    }
}

/// Progress counters of a run, added atomically.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    Succeeded,
    Failed,
    Rows,
}

/// The catalog port. See the module doc for the conditional-write invariant.
#[async_trait]
pub trait Catalog: Send + Sync {
    /// Registers a spec: inserts a new dataset as `pending`, or updates the spec of a
    /// known one (bumping its spec version when the hash changed). Status is unchanged for
    /// a known dataset.
    async fn put_spec(&self, spec: &DatasetSpec, spec_hash: &str) -> Result<DatasetRecord>;

    /// Registers many specs (a run's plan), each as [`Catalog::put_spec`] does. This
    /// default registers them one after another; an adapter whose calls are round trips
    /// batches them.
    async fn put_specs(&self, specs: &[(&DatasetSpec, &str)]) -> Result<()> {
        for (spec, hash) in specs {
            self.put_spec(spec, hash).await?;
        }
        Ok(())
    }

    /// The dataset, if registered.
    async fn dataset(&self, name: &str) -> Result<Option<DatasetRecord>>;

    /// All datasets, by name.
    async fn datasets(&self) -> Result<Vec<DatasetRecord>>;

    /// Conditional status change `from → to` with a reason, recorded in the history.
    async fn transition(
        &self,
        name: &str,
        from: Status,
        to: Status,
        reason: Option<&str>,
        run_id: Option<&str>,
    ) -> Result<()>;

    /// [`Catalog::transition`], fenced by an attempt: it happens only while `attempt` is the
    /// dataset's newest attempt (the number [`Catalog::start_attempt`] handed out last), in
    /// the same conditional write. A worker whose attempt was superseded (its token timed
    /// out and a new attempt started) gets [`Error::Superseded`] and changes nothing.
    async fn transition_in_attempt(
        &self,
        name: &str,
        attempt: u32,
        from: Status,
        to: Status,
        reason: Option<&str>,
        run_id: Option<&str>,
    ) -> Result<()>;

    /// Status history, oldest first.
    async fn history(&self, name: &str) -> Result<Vec<HistoryEntry>>;

    /// Records a version event and sets the dataset's current version and rows. The
    /// catalog keeps the summary only (bounded size), never the manifest's file list.
    async fn record_version(
        &self,
        name: &str,
        action: VersionAction,
        manifest: &ManifestSummary,
    ) -> Result<()>;

    /// Version events, oldest first.
    async fn versions(&self, name: &str) -> Result<Vec<VersionRecord>>;

    /// Stores the summary of the last verification.
    async fn set_verification(&self, name: &str, summary: &str) -> Result<()>;

    /// Stores (or clears) the task token of a run waiting for approval.
    async fn set_approval_token(&self, name: &str, token: Option<&str>) -> Result<()>;

    /// Starts an attempt and returns its number.
    async fn start_attempt(&self, name: &str, run_id: &str) -> Result<u32>;

    /// Ends an attempt with an outcome and, for failures, the error.
    async fn finish_attempt(
        &self,
        name: &str,
        attempt: u32,
        outcome: &str,
        error: Option<&str>,
    ) -> Result<()>;

    /// Attempts, oldest first.
    async fn attempts(&self, name: &str) -> Result<Vec<Attempt>>;

    /// Creates or replaces a run record.
    async fn put_run(&self, run: &RunRecord) -> Result<()>;

    /// A run record.
    async fn run(&self, run_id: &str) -> Result<Option<RunRecord>>;

    /// All runs, newest first.
    async fn runs(&self) -> Result<Vec<RunRecord>>;

    /// Adds `n` to a run's counter atomically.
    async fn add_to_run(&self, run_id: &str, counter: Counter, n: u64) -> Result<()>;

    /// Records that `dataset`'s migration in `run_id` ended as `end`, and keeps the run's
    /// count of each end in the same conditional write: a dataset counts once per run,
    /// under its latest end (awaiting approval, then completed, moves its count), and
    /// recording the same end again changes nothing. Summarise reads the counts instead
    /// of visiting every dataset.
    async fn record_end(&self, run_id: &str, dataset: &str, end: RunEnd) -> Result<()>;

    /// The run's count of each end (zero for a run that recorded none).
    async fn end_counts(&self, run_id: &str) -> Result<EndCounts>;

    /// Takes the dataset's lease for `holder` for `ttl_secs`, if free, expired, or already
    /// the holder's; fails with `LeaseHeld` otherwise.
    async fn acquire_lease(&self, name: &str, holder: &str, ttl_secs: u64) -> Result<()>;

    /// Releases the lease if `holder` holds it.
    async fn release_lease(&self, name: &str, holder: &str) -> Result<()>;

    /// Moves the dataset's lease from `from` (a holder known to be gone) to `to`, if
    /// `from` still holds it; fails with `LeaseHeld` otherwise.
    async fn take_over_lease(&self, name: &str, from: &str, to: &str, ttl_secs: u64) -> Result<()>;

    /// Makes `me` the driver of `key` (a run or a directory of specs): succeeds if nobody
    /// drives it, the lease was released, `me` (same pid and host) drives it already (a
    /// renewal, which also updates the run and expiry), or `replace` is exactly the
    /// record there now (a takeover of a driver known to be gone). Fails with
    /// [`Error::DriverHeld`] naming the driver otherwise.
    async fn claim_driver(&self, key: &str, me: &Driver, replace: Option<&Driver>) -> Result<()>;

    /// The driver of `key`, if any was ever recorded.
    async fn driver(&self, key: &str) -> Result<Option<Driver>>;

    /// Releases `key` if `me` (same pid and host) drives it.
    async fn release_driver(&self, key: &str, me: &Driver) -> Result<()>;
}
