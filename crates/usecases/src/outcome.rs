//! What a use case reports about one dataset.

use serde::Serialize;
use skein_data::VerifyReport;

/// How a dataset's migration ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Published and completed.
    Completed,
    /// The published version already came from this spec and source; nothing done.
    UpToDate,
    /// Verified and left staged (`--no-publish`).
    Verified,
    /// The first job of a chunked dataset: the chunks are planned, each to be staged by
    /// its own job and then combined.
    Chunked,
    /// The first job of a dataset too large for the worker that took it (a Lambda): the
    /// state machine runs it again in a container (the fleet's `largeJobs`).
    Large,
    /// Verified; waits for a person to approve before publish.
    AwaitingApproval,
    /// Verification found differences; nothing was published.
    VerificationFailed,
    /// Migration failed (source, transform, storage); nothing was published.
    Failed,
    /// Rolled back to the previous version.
    RolledBack,
    /// Not attempted: a dependency did not complete.
    Skipped,
}

impl Outcome {
    /// Whether the dataset ended well (exit code 0).
    pub fn is_success(self) -> bool {
        !matches!(
            self,
            Outcome::Failed | Outcome::VerificationFailed | Outcome::Skipped
        )
    }

    /// The outcome as written in tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::UpToDate => "up to date",
            Outcome::Verified => "verified",
            Outcome::Chunked => "chunked",
            Outcome::Large => "large",
            Outcome::AwaitingApproval => "awaiting approval",
            Outcome::VerificationFailed => "verification failed",
            Outcome::Failed => "failed",
            Outcome::RolledBack => "rolled back",
            Outcome::Skipped => "skipped",
        }
    }
}

/// The result of one use case on one dataset.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DatasetResult {
    /// Dataset name.
    pub dataset: String,
    /// How it ended.
    pub outcome: Outcome,
    /// The run.
    pub run_id: String,
    /// Published (or restored) version, when there is one.
    pub version: Option<u64>,
    /// Rows written or verified.
    pub rows: u64,
    /// Files written.
    pub files: usize,
    /// Bytes written.
    pub bytes: u64,
    /// Wall seconds.
    pub seconds: f64,
    /// The verification, when one ran.
    pub verification: Option<VerifyReport>,
    /// The error, for failures: the message.
    pub error: Option<String>,
    /// The error, for failures: the Step Functions error name (`Skein.BadValue`, …).
    pub error_name: Option<String>,
    /// How the output schema differs from the published version's, when it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema_change: Option<skein_core::manifest::SchemaDiff>,
    /// Chunks of a chunked dataset (planned, or staged), when it was chunked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chunks: Option<usize>,
    /// Of those, chunks an earlier attempt had staged and that were reused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chunks_reused: Option<usize>,
    /// Where source and target differ, when rows or content did not match.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<skein_data::diff::DiffReport>,
    /// For an incremental source: what the run added to which version, or why it
    /// migrated the whole source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incremental: Option<String>,
}

impl DatasetResult {
    /// An empty result for `dataset` in `run_id`, to be filled in.
    pub fn new(dataset: &str, run_id: &str, outcome: Outcome) -> DatasetResult {
        DatasetResult {
            dataset: dataset.to_string(),
            outcome,
            run_id: run_id.to_string(),
            version: None,
            rows: 0,
            files: 0,
            bytes: 0,
            seconds: 0.0,
            verification: None,
            error: None,
            error_name: None,
            schema_change: None,
            chunks: None,
            chunks_reused: None,
            diff: None,
            incremental: None,
        }
    }
}
