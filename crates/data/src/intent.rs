//! The intent a target records before the first side effect of a publish or a rollback.
//!
//! One intent at a time per target (the dataset's lease makes its holder the only actor):
//! `<store>/_intent.json` locally, `_skein/intent.json` on S3. It is written durably before
//! anything else changes and removed after the last step (the catalog update), so the
//! next attempt that finds one knows exactly which protocol stopped and finishes it: the
//! protocols themselves are in `skein_usecases::publish` and `skein_usecases::rollback`.

use serde::{Deserialize, Serialize};
use skein_core::Status;

/// Which protocol an intent belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntentOp {
    /// Make a run's staged version (or an existing identical version) current.
    Publish,
    /// An operator's rollback: make the previous version current again.
    Rollback,
    /// A failed migration undone: discard its staging, unpublish what it published.
    Undo,
}

/// A recorded intent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Intent {
    /// The protocol.
    pub op: IntentOp,
    /// The dataset.
    pub dataset: String,
    /// The run (or operator command) that recorded it.
    pub run_id: String,
    /// Publish: the version number the staged files become (or the existing identical
    /// version made current). Rollback and undo: the version made current again (`None`:
    /// an undo that restores nothing).
    pub version: Option<u64>,
    /// The version that was current when the intent was recorded (the swap is conditional
    /// on it on S3).
    pub from: Option<u64>,
    /// Rollback and undo: the status the dataset ends in.
    #[serde(default)]
    pub status: Option<Status>,
    /// Rollback and undo: the reason recorded with it.
    #[serde(default)]
    pub reason: Option<String>,
    /// RFC 3339 time it was recorded.
    pub at: String,
}

impl Intent {
    /// A publish of `run`'s staging as `version`, with `from` current now.
    pub fn publish(dataset: &str, run: &str, version: u64, from: Option<u64>) -> Intent {
        Intent {
            op: IntentOp::Publish,
            dataset: dataset.to_string(),
            run_id: run.to_string(),
            version: Some(version),
            from,
            status: None,
            reason: None,
            at: skein_core::time::now(),
        }
    }

    /// A rollback or undo ending in `status` with `reason`, restoring `version` (if any)
    /// over `from`.
    pub fn undo(
        op: IntentOp,
        dataset: &str,
        run: &str,
        version: Option<u64>,
        from: Option<u64>,
        status: Status,
        reason: &str,
    ) -> Intent {
        Intent {
            op,
            dataset: dataset.to_string(),
            run_id: run.to_string(),
            version,
            from,
            status: Some(status),
            reason: Some(reason.to_string()),
            at: skein_core::time::now(),
        }
    }
}
