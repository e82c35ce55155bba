//! Rolling a dataset back, as recoverable protocols: an operator's rollback to the
//! previous published version (`skein rollback`, the dashboard), and the undo of a failed
//! migration (the state machines' Rollback step).
//!
//! Both take the dataset's lease first (a rollback while a run works on the dataset is
//! refused, naming the run; an undo whose run lost the dataset to another run only
//! removes its own staging), finish any protocol a crash interrupted on the target
//! ([`crate::publish::finish_interrupted`]), then record their intent in the target before
//! the first side effect. The intent carries everything the end needs (the version to
//! restore, the version current before, the status and reason to record), so the next
//! attempt finishes it without recomputing anything:
//!
//! | step | crash point | after a crash there, the next attempt |
//! | --- | --- | --- |
//! | record the intent `{rollback\|undo, run, restore, from, status, reason}` | `rollback.intent`, `undo.intent` | redoes every step below (each is idempotent) |
//! | undo only: delete the run's staging area | `undo.discarded` | deletes nothing more, goes on |
//! | Delta targets: one Delta commit restoring the version's files (`RESTORE`; skipped when the table holds it already) | `delta.committed` | commits nothing more, swaps the pointer |
//! | point the link / `current.json` at the restored version (on S3 conditional on `from`) | `rollback.swapped`, `undo.swapped` | finds the target restored: updates the catalog |
//! | catalog: record the restored version | `rollback.recorded`, `undo.recorded` | sees the catalog at it: only the status is left |
//! | catalog: the status (`rolled_back`, or `failed` when nothing was undone) with the reason; release the lease; clear the intent | – | sees the status and reason recorded: nothing to do |
//!
//! An undo whose step ran to its end but whose answer was lost (the engine re-runs the
//! Task) finds the dataset already `failed`/`rolled_back` by this run with this error and
//! answers the same without changing anything.

use skein_core::names;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use skein_core::Status;
use skein_core::catalog::Catalog;
use skein_core::crash;
use skein_core::load::{self, SpecFile};
use skein_data::{Intent, IntentOp, Settings, Target};

use crate::error::{Error, Result};
use crate::lease::LEASE_SECS;
use crate::outcome::{DatasetResult, Outcome};
use crate::recover::{complete_rollback, finish_interrupted};

/// Points the target back at the version before the current one (its files untouched
/// since it was published, so restored byte for byte), records it, and marks the dataset
/// `rolled_back` with the reason. Refused (an outcome, not an error) while another run
/// holds the dataset's lease.
pub async fn rollback<C: Catalog + ?Sized>(
    catalog: &C,
    settings: &Settings,
    file: &SpecFile,
    run_id: &str,
    reason: &str,
) -> Result<DatasetResult> {
    let started = Instant::now();
    let name = file.name();
    catalog.put_spec(&file.spec, &file.hash).await?;
    let mut result = DatasetResult::new(name, run_id, Outcome::Failed);
    match crate::lease::take_dataset(catalog, name, run_id, LEASE_SECS).await {
        Ok(()) => {
            let done = rollback_locked(catalog, settings, file, run_id, reason, &mut result).await;
            catalog.release_lease(name, run_id).await?;
            match done {
                Ok(()) => {}
                // The target refused (storage, a conflict): the dataset's failure.
                Err(Error::Data(e)) => {
                    result.error = Some(e.to_string());
                    result.error_name = Some(e.error_name().to_string());
                }
                Err(e) => return Err(e),
            }
        }
        Err(e @ skein_core::Error::LeaseHeld { .. }) => {
            result.error = Some(format!("rollback refused: {e}"));
            result.error_name = Some(names::LEASE_HELD.into());
        }
        Err(e) => return Err(e.into()),
    }
    result.seconds = started.elapsed().as_secs_f64();
    Ok(result)
}

async fn rollback_locked<C: Catalog + ?Sized>(
    catalog: &C,
    settings: &Settings,
    file: &SpecFile,
    run_id: &str,
    reason: &str,
    result: &mut DatasetResult,
) -> Result<()> {
    let name = file.name();
    let store = Target::open(settings, file)?;
    // An operator's rollback that a crash interrupted is finished, and is this one: the
    // command run again must not roll back one version further.
    if let Some(done) = finish_interrupted(catalog, &store).await?
        && done.intent.op == IntentOp::Rollback
        && let Some(n) = done.version
        && let Some(m) = store.version_manifest(n).await?
    {
        result.outcome = Outcome::RolledBack;
        result.version = Some(n);
        result.rows = m.rows;
        result.files = m.files.len();
        result.bytes = m.bytes;
        return Ok(());
    }
    let (from, to) = store.rollback_plan().await?;
    let note = format!(
        "rolled back from v{} to v{}: {reason}",
        from.version, to.version
    );
    let intent = Intent::undo(
        IntentOp::Rollback,
        name,
        run_id,
        Some(to.version),
        Some(from.version),
        Status::RolledBack,
        &note,
    );
    store.record_intent(&intent).await?;
    crash::point("rollback.intent", name);
    complete_rollback(catalog, &store, &intent).await?;
    result.outcome = Outcome::RolledBack;
    result.version = Some(to.version);
    result.rows = to.rows;
    result.files = to.files.len();
    result.bytes = to.bytes;
    Ok(())
}

/// What the undo step did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Undone {
    /// The status the dataset ends in.
    pub status: Status,
    /// The reason recorded.
    pub reason: String,
}

/// After any failure of a run's migration of `dataset`: discards the run's staged files,
/// restores the previous version if this run had published, and marks the dataset
/// `rolled_back` (something was undone) or `failed` (nothing to undo) with the reason.
pub async fn undo_run<C: Catalog + ?Sized>(
    catalog: &C,
    settings: &Settings,
    dataset: &str,
    run_id: &str,
    error: &str,
    cause: &str,
) -> Result<Undone> {
    let base = format!("{error}: {cause}");
    let Some(record) = catalog.dataset(dataset).await? else {
        return Ok(Undone {
            status: Status::Failed,
            reason: base,
        });
    };
    let file = load::from_catalog(record.spec.clone(), record.spec_hash.clone());
    let store = Target::open(settings, &file).ok();
    // The run's own lease (re-entrant). If another run holds the dataset now, its status
    // and target are that run's: only this run's own staging goes.
    match crate::lease::take_dataset(catalog, dataset, run_id, LEASE_SECS).await {
        Ok(()) => {}
        Err(skein_core::Error::LeaseHeld { holder, .. }) => {
            if let Some(store) = &store {
                store.discard(run_id).await?;
            }
            return Ok(Undone {
                status: Status::Failed,
                reason: format!(
                    "{base} (run `{holder}` holds the dataset now; its status is left to it)"
                ),
            });
        }
        Err(e) => return Err(e.into()),
    }
    if let Some(store) = &store
        && let Some(done) = finish_interrupted(catalog, store).await?
        && done.intent.op == IntentOp::Undo
        && done.intent.run_id == run_id
    {
        return Ok(Undone {
            status: done.intent.status.unwrap_or(Status::Failed),
            reason: done.intent.reason.unwrap_or(base),
        });
    }
    // Undone to the end already, the answer lost: the same answer, nothing changed.
    let record = catalog.dataset(dataset).await?.unwrap_or(record);
    if matches!(record.status, Status::Failed | Status::RolledBack)
        && let Some(reason) = record.reason.as_ref().filter(|r| r.starts_with(&base))
        && catalog
            .history(dataset)
            .await?
            .last()
            .is_some_and(|h| h.run_id.as_deref() == Some(run_id))
    {
        catalog.release_lease(dataset, run_id).await?;
        return Ok(Undone {
            status: record.status,
            reason: reason.clone(),
        });
    }

    let mut undone = Vec::new();
    let mut restore = None;
    let mut from = None;
    if let Some(store) = &store {
        let staging = crate::fence::staged_target(catalog, store, dataset, run_id).await?;
        if staging.has_staging(run_id).await.unwrap_or(false) {
            undone.push("staged files discarded".to_string());
        }
        let current = store.current().await?;
        from = current.as_ref().map(|m| m.version);
        if let Some(current) = &current
            && current.run_id == run_id
            && store.versions().await?.len() > 1
        {
            let (now, previous) = store.rollback_plan().await?;
            restore = Some(previous.version);
            undone.push(format!(
                "v{} unpublished, v{} restored",
                now.version, previous.version
            ));
        } else if let Some(current) = &current {
            undone.push(format!("published v{} left intact", current.version));
        }
    }
    let something_undone = undone.iter().any(|u| !u.starts_with("published"));
    let to = if something_undone {
        Status::RolledBack
    } else {
        Status::Failed
    };
    let mut reason = base;
    if !undone.is_empty() {
        reason = format!("{reason} ({})", undone.join("; "));
    }
    match &store {
        Some(store) => {
            let intent = Intent::undo(IntentOp::Undo, dataset, run_id, restore, from, to, &reason);
            store.record_intent(&intent).await?;
            crash::point("undo.intent", dataset);
            complete_rollback(catalog, store, &intent).await?;
        }
        None => {
            // No target to undo anything in (it cannot even be opened): record why.
            catalog.set_approval_token(dataset, None).await?;
            catalog
                .transition(dataset, record.status, to, Some(&reason), Some(run_id))
                .await?;
            catalog.release_lease(dataset, run_id).await?;
        }
    }
    Ok(Undone { status: to, reason })
}
