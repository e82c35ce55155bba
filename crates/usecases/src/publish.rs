//! Publish as a recoverable protocol: an intent recorded before the first side effect,
//! then steps that are each idempotent, so a crash at any instant is completed by the
//! next attempt and the catalog and the target never disagree after it.
//!
//! The steps, and what the next attempt does after a crash right after each (the names
//! are the crash points of [`skein_core::crash`]):
//!
//! | step | crash point | after a crash there, the next attempt |
//! | --- | --- | --- |
//! | choose the number `N` (or an existing version of the same spec and source), record the intent `{publish, run, N, from}` in the target | `publish.intent` | finds the intent, the files still staged: continues from the claim |
//! | S3: claim `v<N>` (`_claim.json`, create-if-absent; the same run's claim is kept; an attempt of a plain Parquet target claimed it before staging into it) | `publish.claimed` | claims again (its own claim: the same `N`) and copies |
//! | move the staged files into `v<N>` with the manifest last (locally one `rename(2)`; on S3 only the manifest when staged in `v<N>`, else copies, then the manifest) | `publish.moved` | finds `v<N>` complete: swaps the link / pointer |
//! | Delta targets: one Delta commit making `v<N>`'s files the table's (skipped when the table's newest skein commit is `v<N>` already) | `delta.committed` | finds the table at `v<N>`: commits nothing, swaps the link / pointer |
//! | swap the link (`rename(2)`) / put `current.json` conditional on the e-tag of `from` | `publish.swapped` | finds the target at `v<N>`: updates the catalog |
//! | catalog: record version `N` (`current_version = N`) | `publish.recorded` | sees the catalog at `N`: only the status is left |
//! | catalog: `verified`/`awaiting_approval` → `completed` | `publish.completed` | sees both done: deletes staging, clears the intent |
//! | delete the staging area (S3), clear the intent | – | nothing to do |
//!
//! The next attempt is whoever touches the dataset next: the resumed run's Publish task
//! (the engine re-runs a Task whose result it had not committed), its Rollback task,
//! `skein migrate`, `skein rollback`, or on AWS the retried Lambda. Each calls
//! [`finish_interrupted`] first, which finishes the recorded protocol (publish, rollback
//! or undo) before doing its own. If the staged files are gone before anything was moved
//! (a run that discarded them), the intent is dropped: the publish never happened.
//! If, on S3, the pointer names neither `from` nor `N` (another publisher won), the
//! unpublished `v<N>` is removed (its claim kept) and the publish fails with
//! `Skein.PublishConflict`, changing nothing in the catalog.

use skein_core::Status;
use skein_core::catalog::Catalog;
use skein_core::crash;
use skein_core::load::SpecFile;
use skein_data::{Intent, IntentOp, Target};

use crate::error::Result;

use crate::recover::complete_publish;
pub use crate::recover::{Finished, finish_interrupted};

/// Publishes a run's staged, verified version and marks the dataset completed. If a
/// version from the same spec and source is already in the store (a re-run after
/// rollback), it is made current instead of copied. `_from` is the status the caller saw
/// (`verified` or `awaiting_approval`); the catalog's own is read again.
pub async fn publish_staged<C: Catalog + ?Sized>(
    catalog: &C,
    file: &SpecFile,
    store: &Target,
    run: &str,
    _from: Status,
) -> Result<u64> {
    let name = file.name();
    if let Some(done) = finish_interrupted(catalog, store).await?
        && done.intent.op == IntentOp::Publish
        && done.intent.run_id == run
        && let Some(v) = done.version
    {
        return Ok(v); // this very publish, interrupted and finished now
    }
    let not_staged = || skein_data::Error::NotStaged {
        dataset: name.to_string(),
        run_id: run.to_string(),
    };
    // Only the run's newest attempt's staging is published (see `fence`).
    let staging = crate::fence::staged_target(catalog, store, name, run).await?;
    let staged = staging.staged(run).await?.ok_or_else(not_staged)?;
    let from = store.current().await?.map(|m| m.version);
    let version = match store
        .find_version(&staged.spec_hash, &staged.source_fingerprint)
        .await?
    {
        Some(m) => m.version,
        // Staged straight into its own version (S3): that number, nothing to copy.
        None => match staging.staged_version(run).await? {
            Some(n) => n,
            None => store.next_version().await?,
        },
    };
    let intent = Intent::publish(name, run, version, from);
    store.record_intent(&intent).await?;
    crash::point("publish.intent", name);
    match complete_publish(catalog, store, &intent).await? {
        Some(m) => Ok(m.version),
        None => Err(not_staged().into()),
    }
}
