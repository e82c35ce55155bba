//! The Task payloads the state machines send (`Payload` of a `lambda:invoke`), and what
//! each Task answers, as types.
//! Fields are camelCase as the definitions write them; fields a task does not read are
//! ignored (the definitions may pass more).
//!
//! A payload is decoded with [`decode`], which turns a missing or mistyped field into
//! `Skein.BadRequest` naming it, so the state machine catches it by name. (The Lambda
//! handlers receive JSON and decode here, not with `LambdaEvent<T>`, whose decoding error
//! would reach Step Functions as the runtime's own error type instead.)

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::steps::StepError;
use skein_core::names;

/// Decodes a payload, or `Skein.BadRequest` saying what is wrong and showing (the start
/// of) what came.
pub fn decode<T: DeserializeOwned>(what: &str, p: &Value) -> Result<T, StepError> {
    T::deserialize(p).map_err(|e| {
        StepError::new(
            names::BAD_REQUEST,
            format!(
                "the {what} task payload is not usable: {e}; got {}",
                short(p)
            ),
        )
    })
}

/// The start of a payload (up to 200 characters), for error messages.
pub fn short(v: &Value) -> String {
    let text = v.to_string();
    match text.char_indices().nth(200) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text,
    }
}

/// Plan: `{runId, specs}` (a directory locally, `s3://bucket/prefix/` on AWS).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanPayload {
    pub run_id: String,
    pub specs: String,
}

/// Verify: `{dataset}`.
#[derive(Debug, Clone, Deserialize)]
pub struct VerifyPayload {
    pub dataset: String,
}

/// Publish: `{dataset, runId}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishPayload {
    pub dataset: String,
    pub run_id: String,
}

/// Rollback: `{dataset, runId, error, cause}`, the error and cause of the failure caught.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RollbackPayload {
    pub dataset: String,
    pub run_id: String,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub cause: Option<String>,
}

/// The catalog function's actions, by `action`.
#[derive(Debug, Clone, Deserialize)]
#[serde(
    tag = "action",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum CatalogAction {
    /// Every dependency completed, or `Skein.DependencyFailed`.
    CheckDependencies { dataset: String },
    /// The dataset's lease for the run, or `Skein.LeaseHeld`.
    AcquireLease { dataset: String, run_id: String },
    /// Records the approval token; the dataset waits.
    AwaitApproval {
        dataset: String,
        run_id: String,
        task_token: String,
    },
    /// The dataset is done in this run.
    Complete { dataset: String, run_id: String },
    /// The run's summary, from the ends the catalog counted.
    Summarise(SummarisePayload),
}

/// Summarise: the run and how many datasets it planned.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SummarisePayload {
    pub run_id: String,
    /// The plan's count of datasets (`$.plan.total`); without it, the run record's.
    #[serde(default)]
    pub total: Option<u64>,
    /// The datasets, by name (older payloads): only their count is used.
    #[serde(default)]
    pub datasets: Option<Vec<String>>,
    /// Why the run stopped early, when it did.
    #[serde(default)]
    pub stopped: Option<String>,
}

// ---- what the Tasks answer (the state machines read these fields) ----

/// Serialises an answer for the state machine (a struct of this module, always an
/// object).
pub fn answer<T: Serialize>(value: &T) -> Result<Value, StepError> {
    serde_json::to_value(value)
        .map_err(|e| StepError::new(names::INTERNAL, format!("a task answer: {e}")))
}

/// Plan's answer: where the run's item lists are and how many, never the datasets, so the
/// state is the same size for ten datasets or fifty thousand.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanAnswer {
    pub bucket: String,
    /// `runs/<runId>/`.
    pub prefix: String,
    /// Datasets in the canary.
    pub canary: usize,
    /// Wave lists after the canary's.
    pub waves: usize,
    pub total: usize,
    pub max_concurrency: u32,
    pub tolerated_failure_percentage: f64,
}

/// Verify's answer: the passed verification's summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyAnswer {
    pub summary: String,
}

/// Publish's answer: the version made current.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishAnswer {
    pub version: u64,
}

/// The answer of a catalog action that only changes the catalog: `{}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Done {}
