//! The steps the migration state machines call, one function per Task: written once, bound
//! to the local engine's handlers and (on AWS) to the Lambda functions.
//!
//! A step that fails for the dataset returns [`StepError`] with a Step Functions error
//! name (`Skein.*`) that the state machines catch; `Err` of the outer result is an
//! infrastructure failure.

use skein_core::names;
use std::path::Path;

use serde::{Deserialize, Serialize};
use skein_core::Status;
use skein_core::catalog::{Catalog, RunEnd, RunRecord, RunStatus};
use skein_core::fleet::{Fleet, RunPlan};
use skein_core::load::{self, SpecFile};
use skein_data::{Settings, Target};

use crate::error::Result;

/// A dataset's failure as the state machine sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{error}: {cause}")]
pub struct StepError {
    /// `Skein.DependencyFailed`, `Skein.VerificationFailed`, `Skein.Rejected`, …
    pub error: String,
    pub cause: String,
}

impl StepError {
    pub fn new(error: &str, cause: impl Into<String>) -> StepError {
        StepError {
            error: error.to_string(),
            cause: cause.into(),
        }
    }
}

/// A step's result: the value, or the dataset's failure.
pub type StepResult<T> = Result<Result<T, StepError>>;

/// The dataset's spec as registered in the catalog.
pub async fn spec_file<C: Catalog + ?Sized>(
    catalog: &C,
    dataset: &str,
) -> Result<Result<SpecFile, StepError>> {
    Ok(match catalog.dataset(dataset).await? {
        Some(r) => Ok(load::from_catalog(r.spec, r.spec_hash)),
        None => Err(StepError::new(
            names::UNKNOWN_DATASET,
            format!("dataset `{dataset}` is not in the catalog"),
        )),
    })
}

/// Plan: read and check the specs of `dir` and its `skein.yaml`, register every spec,
/// record the run, and return the waves, canary and caps.
pub async fn plan<C: Catalog + ?Sized>(
    catalog: &C,
    dir: &Path,
    run_id: &str,
) -> StepResult<RunPlan> {
    // A run id names every child execution, and AWS keeps a closed execution's name taken
    // for 90 days: a finished run's id would fail every dataset with ExecutionAlreadyExists.
    // Refuse it before anything starts (a running run's Plan may be a retry: go on).
    if let Some(r) = catalog.run(run_id).await?
        && r.status != RunStatus::Running
    {
        return Ok(Err(StepError::new(
            names::RUN_ID_USED,
            format!(
                "run id `{run_id}` was already used by a run that ended {} (started {}); start the run with a new id",
                r.status, r.started_at
            ),
        )));
    }
    let loaded = load::load(dir);
    let mut problems = loaded.problems;
    let fleet = match Fleet::load(dir) {
        Ok(f) => f,
        Err(p) => {
            problems.extend(p);
            Fleet::default()
        }
    };
    problems.extend(fleet.check_specs(&loaded.files));
    if !problems.is_empty() {
        let cause = problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n");
        return Ok(Err(StepError::new(names::INVALID_SPEC, cause)));
    }
    let specs: Vec<(&skein_core::DatasetSpec, &str)> = loaded
        .files
        .iter()
        .map(|f| (&f.spec, f.hash.as_str()))
        .collect();
    catalog.put_specs(&specs).await?;
    let specs: Vec<&skein_core::DatasetSpec> = loaded.files.iter().map(|f| &f.spec).collect();
    let plan = skein_core::fleet::plan(&specs, &fleet);
    if catalog.run(run_id).await?.is_none() {
        catalog
            .put_run(&RunRecord {
                run_id: run_id.to_string(),
                started_at: skein_core::time::now(),
                finished_at: None,
                status: RunStatus::Running,
                total: plan.total as u64,
                succeeded: 0,
                failed: 0,
                rows: 0,
            })
            .await?;
    }
    Ok(Ok(plan))
}

/// Every dependency must have completed; otherwise the dataset is skipped with the reason.
pub async fn check_dependencies<C: Catalog + ?Sized>(catalog: &C, dataset: &str) -> StepResult<()> {
    let file = match spec_file(catalog, dataset).await? {
        Ok(f) => f,
        Err(e) => return Ok(Err(e)),
    };
    for dep in &file.spec.spec.depends_on {
        let status = catalog.dataset(dep).await?.map(|r| r.status);
        match status {
            Some(Status::Completed) => {}
            Some(s) => {
                return Ok(Err(StepError::new(
                    names::DEPENDENCY_FAILED,
                    format!("dependency `{dep}` ended {s}"),
                )));
            }
            None => {
                return Ok(Err(StepError::new(
                    names::DEPENDENCY_FAILED,
                    format!("dependency `{dep}` is not in the catalog"),
                )));
            }
        }
    }
    Ok(Ok(()))
}

/// The verification gate: the worker verified while it staged; only `verified` passes.
pub async fn verify_gate<C: Catalog + ?Sized>(catalog: &C, dataset: &str) -> StepResult<String> {
    let record = catalog.dataset(dataset).await?;
    Ok(match record {
        Some(r) if r.status == Status::Verified => Ok(r.last_verification.unwrap_or_default()),
        Some(r) => Err(StepError::new(
            names::VERIFICATION_FAILED,
            r.last_verification
                .or(r.reason)
                .unwrap_or_else(|| format!("dataset is {}, not verified", r.status)),
        )),
        None => Err(StepError::new(
            names::UNKNOWN_DATASET,
            format!("dataset `{dataset}` is not in the catalog"),
        )),
    })
}

/// Parks a verified dataset until someone approves: `verified → awaiting_approval`, with
/// the task token stored in the catalog for `skein approve` / `reject`.
pub async fn await_approval<C: Catalog + ?Sized>(
    catalog: &C,
    dataset: &str,
    run_id: &str,
    token: &str,
) -> Result<()> {
    let record = catalog.dataset(dataset).await?;
    if record.as_ref().map(|r| r.status) == Some(Status::Verified) {
        catalog
            .transition(
                dataset,
                Status::Verified,
                Status::AwaitingApproval,
                Some("approval required: run `skein approve` or `skein reject`"),
                Some(run_id),
            )
            .await?;
    }
    catalog.set_approval_token(dataset, Some(token)).await?;
    catalog
        .record_end(run_id, dataset, RunEnd::AwaitingApproval)
        .await?;
    Ok(())
}

/// The task token a waiting dataset holds (for `skein approve` / `reject`).
pub async fn approval_token<C: Catalog + ?Sized>(
    catalog: &C,
    dataset: &str,
) -> Result<Option<String>> {
    Ok(catalog
        .dataset(dataset)
        .await?
        .filter(|r| r.status == Status::AwaitingApproval)
        .and_then(|r| r.approval_token))
}

/// Publishes the run's staged version and marks the dataset completed.
pub async fn publish<C: Catalog + ?Sized>(
    catalog: &C,
    settings: &Settings,
    dataset: &str,
    run_id: &str,
) -> StepResult<u64> {
    let file = match spec_file(catalog, dataset).await? {
        Ok(f) => f,
        Err(e) => return Ok(Err(e)),
    };
    let record = catalog.dataset(dataset).await?;
    let status = record.map(|r| r.status).unwrap_or(Status::Pending);
    if status == Status::Completed {
        // Published by an earlier attempt of this step (a resumed run): only its intent
        // may be left to clear.
        let store = Target::open(settings, &file)?;
        crate::publish::finish_interrupted(catalog, &store).await?;
        let current = store.current().await?;
        return Ok(Ok(current.map(|m| m.version).unwrap_or(0)));
    }
    if !matches!(status, Status::Verified | Status::AwaitingApproval) {
        return Ok(Err(StepError::new(
            names::NOT_VERIFIED,
            format!("dataset `{dataset}` is {status}; only a verified dataset is published"),
        )));
    }
    // The run's lease, renewed (an approval may have waited longer than it lasts); if
    // another run took the dataset meanwhile, this run publishes nothing.
    match crate::lease::take_dataset(catalog, dataset, run_id, crate::migrate::LEASE_SECS).await {
        Ok(()) => {}
        Err(e @ skein_core::Error::LeaseHeld { .. }) => {
            return Ok(Err(StepError::new(names::LEASE_HELD, e.to_string())));
        }
        Err(e) => return Err(e.into()),
    }
    catalog.set_approval_token(dataset, None).await?;
    let store = Target::open(settings, &file)?;
    let version = crate::publish::publish_staged(catalog, &file, &store, run_id, status).await?;
    // Published and completed: the run is done with the target (Complete releases it too).
    catalog.release_lease(dataset, run_id).await?;
    Ok(Ok(version))
}

pub use crate::rollback::Undone;

/// After any failure: discards the run's staged files, restores the previous version if
/// this run had published, and marks the dataset `rolled_back` (something was undone) or
/// `failed` (nothing to undo) with the reason. A recoverable protocol: see
/// [`crate::rollback`].
pub async fn rollback_run<C: Catalog + ?Sized>(
    catalog: &C,
    settings: &Settings,
    dataset: &str,
    run_id: &str,
    error: &str,
    cause: &str,
) -> Result<Undone> {
    let undone =
        crate::rollback::undo_run(catalog, settings, dataset, run_id, error, cause).await?;
    let end = if undone.status == Status::RolledBack {
        RunEnd::RolledBack
    } else {
        RunEnd::Failed
    };
    catalog.record_end(run_id, dataset, end).await?;
    Ok(undone)
}

/// Ends a dataset's migration: releases the lease and counts the dataset as succeeded in
/// the run (published, or up to date): a dataset that waits for a person or fails after
/// its verification never counted. The progress counter may count a retried Complete
/// twice; the run's ends ([`Catalog::record_end`]), which Summarise reads, count it once.
pub async fn complete<C: Catalog + ?Sized>(catalog: &C, dataset: &str, run_id: &str) -> Result<()> {
    catalog.release_lease(dataset, run_id).await?;
    catalog
        .add_to_run(run_id, skein_core::catalog::Counter::Succeeded, 1)
        .await?;
    catalog
        .record_end(run_id, dataset, RunEnd::Completed)
        .await?;
    Ok(())
}

/// Counts of a run, from the catalog.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub run_id: String,
    pub status: String,
    pub total: usize,
    pub completed: usize,
    pub failed: usize,
    pub rolled_back: usize,
    pub awaiting_approval: usize,
    pub not_run: usize,
}

/// Summarise: the run's datasets by how they ended, from the counts the catalog kept as
/// they ended ([`Catalog::record_end`]): one read whatever the run's size, never a visit
/// per dataset. `total` is the plan's count; a dataset that reached no end did not run.
/// Records the run as finished.
pub async fn summarise<C: Catalog + ?Sized>(
    catalog: &C,
    run_id: &str,
    total: usize,
    stopped: Option<&str>,
) -> Result<Summary> {
    let ends = catalog.end_counts(run_id).await?;
    let mut s = Summary {
        run_id: run_id.to_string(),
        total,
        completed: ends.completed as usize,
        failed: ends.failed as usize,
        rolled_back: ends.rolled_back as usize,
        awaiting_approval: ends.awaiting_approval as usize,
        not_run: total.saturating_sub(ends.ended() as usize),
        ..Summary::default()
    };
    let status = if stopped.is_some() || s.failed + s.rolled_back + s.not_run > 0 {
        RunStatus::Failed
    } else {
        RunStatus::Succeeded
    };
    s.status = status.to_string();
    if let Some(mut run) = catalog.run(run_id).await? {
        run.finished_at = Some(skein_core::time::now());
        run.status = status;
        run.succeeded = s.completed as u64;
        run.failed = (s.failed + s.rolled_back) as u64;
        catalog.put_run(&run).await?;
    }
    Ok(s)
}
