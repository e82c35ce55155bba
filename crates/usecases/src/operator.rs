//! The operator's actions, shared by the CLI (`skein approve`, `skein reject`) and the
//! dashboard's buttons (approve, reject, roll back).
//!
//! Approval answers the task token the waiting run stored in the catalog, through the
//! [`TaskCallbacks`] port: locally the run (in its own process) sees the answer by polling
//! the engine store, on AWS Step Functions hears it; either publishes or rolls back.
//!
//! Both actions take the dataset's lease first: an answer in the name of the waiting run
//! (which holds it while it waits), a rollback in its own. When another run holds it (a
//! migration under way, another rollback), the action is refused with
//! [`Error::LeaseHeld`], naming the holder, and changes nothing.

use serde::Serialize;
use serde_json::json;
use skein_core::Status;
use skein_core::callbacks::TaskCallbacks;
use skein_core::catalog::Catalog;
use skein_core::load;

use crate::outcome::{DatasetResult, Outcome};
use crate::steps;
use skein_core::names;

/// Why an action was refused or failed; the refusals changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The dataset is not in the catalog.
    #[error("dataset `{dataset}` is not in the catalog; `skein status` lists the known ones")]
    UnknownDataset { dataset: String },
    /// Approve / reject of a dataset nobody waits on.
    #[error(
        "dataset `{dataset}` is not waiting for approval (it is {status}); `skein status` shows who waits"
    )]
    NotWaiting { dataset: String, status: String },
    /// Another run holds the dataset's lease: the action would race it.
    #[error(
        "dataset `{dataset}` is leased by run `{holder}` until {expires}; the action was refused and changed nothing; try again once that run is done with it"
    )]
    LeaseHeld {
        dataset: String,
        holder: String,
        expires: String,
    },
    /// A rollback the target store refused (e.g. no earlier version).
    #[error("dataset `{dataset}` was not rolled back: {reason}")]
    RollbackRefused { dataset: String, reason: String },
    /// The catalog or the task-token backend.
    #[error(transparent)]
    Catalog(#[from] skein_core::Error),
    /// A use case.
    #[error(transparent)]
    Usecase(#[from] crate::Error),
}

/// Result with the actions' [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What the operator decided about a dataset waiting for approval.
#[derive(Debug, Clone, Copy)]
pub enum Decision<'a> {
    /// Publish it.
    Approve,
    /// Roll it back, recording why.
    Reject { reason: &'a str },
}

/// An answered approval.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Answered {
    pub dataset: String,
    /// `approved` or `rejected`.
    pub answer: &'static str,
    /// The execution that waited (it continues when its run is running), when the
    /// backend says (the embedded engine does, Step Functions does not).
    pub execution: Option<String>,
}

/// Answers the approval a dataset waits for, as `by` (a user name).
pub async fn answer_approval<C: Catalog + ?Sized>(
    catalog: &C,
    callbacks: &dyn TaskCallbacks,
    dataset: &str,
    decision: Decision<'_>,
    by: &str,
) -> Result<Answered> {
    let waiting_run = catalog
        .history(dataset)
        .await?
        .iter()
        .rev()
        .find(|h| h.to == Status::AwaitingApproval)
        .and_then(|h| h.run_id.clone());
    if let Some(run) = &waiting_run {
        match crate::lease::take_dataset(catalog, dataset, run, crate::migrate::LEASE_SECS).await {
            Ok(()) => {}
            Err(skein_core::Error::LeaseHeld {
                holder, expires, ..
            }) => {
                return Err(Error::LeaseHeld {
                    dataset: dataset.to_string(),
                    holder,
                    expires,
                });
            }
            Err(e) => return Err(e.into()),
        }
    }
    let Some(token) = steps::approval_token(catalog, dataset).await? else {
        let status = match catalog.dataset(dataset).await? {
            Some(r) => r.status.to_string(),
            None => {
                return Err(Error::UnknownDataset {
                    dataset: dataset.to_string(),
                });
            }
        };
        return Err(Error::NotWaiting {
            dataset: dataset.to_string(),
            status,
        });
    };
    let (execution, verb) = match decision {
        Decision::Approve => {
            let output = json!({ "approvedBy": by });
            (callbacks.succeed(&token, &output).await?, "approved")
        }
        Decision::Reject { reason } => {
            let cause = format!("rejected by {by}: {reason}");
            (
                callbacks.fail(&token, names::REJECTED, &cause).await?,
                "rejected",
            )
        }
    };
    tracing::info!(
        dataset,
        execution = execution.as_deref().unwrap_or("-"),
        answer = verb,
        by,
        "approval answered"
    );
    Ok(Answered {
        dataset: dataset.to_string(),
        answer: verb,
        execution,
    })
}

/// Rolls a dataset of the catalog back to its previous published version, in a new run
/// `run_id` (the use case `skein rollback NAME` runs).
pub async fn rollback<C: Catalog + ?Sized>(
    catalog: &C,
    dataset: &str,
    run_id: &str,
    reason: &str,
) -> Result<DatasetResult> {
    let record = catalog
        .dataset(dataset)
        .await?
        .ok_or_else(|| Error::UnknownDataset {
            dataset: dataset.to_string(),
        })?;
    let file = load::from_catalog(record.spec, record.spec_hash);
    // S3 targets: endpoint and credentials from the standard AWS environment.
    let settings = skein_data::Settings::default();
    // This process drives the rollback's run while it lasts: if it dies mid-way, the next
    // command takes the dataset's lease over at once (the run is gone) and finishes it.
    let key = crate::lease::run_key(run_id);
    let driver = crate::lease::claim(catalog, &key, run_id, false).await?;
    let result = crate::rollback::rollback(catalog, &settings, &file, run_id, reason).await;
    catalog.release_driver(&key, &driver).await?;
    let result = result?;
    if result.outcome != Outcome::RolledBack {
        return Err(Error::RollbackRefused {
            dataset: dataset.to_string(),
            reason: result
                .error
                .clone()
                .unwrap_or_else(|| result.outcome.as_str().to_string()),
        });
    }
    tracing::info!(dataset, run_id, version = result.version, "rolled back");
    Ok(result)
}
