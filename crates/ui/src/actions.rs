//! The operator's actions, shared by the CLI (`skein approve`, `skein reject`,
//! `skein rollback NAME`) and the dashboard's buttons.
//!
//! Approval answers the task token the waiting run stored in the catalog: the run (in its
//! own process) sees the answer by polling the engine store and publishes or rolls back.
//!
//! Both actions take the dataset's lease first: an answer in the name of the waiting run
//! (which holds it while it waits), a rollback in its own. When another run holds it (a
//! migration under way, another rollback), the action is refused with
//! [`Error::LeaseHeld`], naming the holder, and changes nothing.

use serde::Serialize;
use serde_json::json;
use skein_core::Status;
use skein_core::catalog::Catalog;
use skein_core::load;
use skein_states::store::{Store, TokenAnswer};
use skein_usecases::steps;
use skein_usecases::{DatasetResult, Outcome};

use crate::error::{Error, Result};

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
    /// The execution that waited (it continues when its run is running).
    pub execution: String,
}

/// Answers the approval a dataset waits for, as `by` (a user name).
pub async fn answer_approval<C: Catalog + ?Sized>(
    catalog: &C,
    store: &Store,
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
        match skein_usecases::lease::take_dataset(
            catalog,
            dataset,
            run,
            skein_usecases::migrate::LEASE_SECS,
        )
        .await
        {
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
    let (answer, verb) = match decision {
        Decision::Approve => (
            TokenAnswer::Success(json!({ "approvedBy": by })),
            "approved",
        ),
        Decision::Reject { reason } => (
            TokenAnswer::Failure {
                error: "Skein.Rejected".into(),
                cause: format!("rejected by {by}: {reason}"),
            },
            "rejected",
        ),
    };
    let record = store.answer_token(&token, answer)?;
    tracing::info!(
        dataset,
        execution = %record.execution,
        answer = verb,
        by,
        "approval answered"
    );
    Ok(Answered {
        dataset: dataset.to_string(),
        answer: verb,
        execution: record.execution,
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
    let key = skein_usecases::lease::run_key(run_id);
    let driver = skein_usecases::lease::claim(catalog, &key, run_id, false).await?;
    let result =
        skein_usecases::rollback::rollback(catalog, &settings, &file, run_id, reason).await;
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
