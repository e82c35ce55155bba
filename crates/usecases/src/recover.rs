//! Finishing what a crash interrupted on a target: the publish, rollback or undo whose
//! intent is recorded there, run from wherever it stopped to its end. Below both
//! protocols (`publish`, `rollback`), which call [`finish_interrupted`] before their own
//! steps; the tables of steps and crash points are in their modules.

use skein_core::Status;
use skein_core::catalog::{Catalog, VersionAction};
use skein_core::crash;
use skein_core::manifest::Manifest;
use skein_data::{Intent, IntentOp, Target};

use crate::error::Result;

/// A protocol [`finish_interrupted`] finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    /// Its intent, as it was recorded.
    pub intent: Intent,
    /// The version it made current (`None`: it had nothing left to do, or restores
    /// nothing).
    pub version: Option<u64>,
}

/// Finishes the publish, rollback or undo a crash interrupted on this target, if its
/// intent is there. Every use case that changes a target calls it first (holding the
/// dataset's lease).
pub async fn finish_interrupted<C: Catalog + ?Sized>(
    catalog: &C,
    store: &Target,
) -> Result<Option<Finished>> {
    let Some(intent) = store.intent().await? else {
        return Ok(None);
    };
    tracing::info!(
        dataset = %intent.dataset,
        run_id = %intent.run_id,
        op = ?intent.op,
        version = intent.version,
        "finishing an interrupted protocol"
    );
    let version = match intent.op {
        IntentOp::Publish => complete_publish(catalog, store, &intent)
            .await?
            .map(|m| m.version),
        IntentOp::Rollback | IntentOp::Undo => complete_rollback(catalog, store, &intent).await?,
    };
    Ok(Some(Finished { intent, version }))
}

/// Runs a recorded publish from wherever it stopped to its end. `None`: nothing had been
/// moved and nothing is staged any more, so the publish is dropped.
pub(crate) async fn complete_publish<C: Catalog + ?Sized>(
    catalog: &C,
    store: &Target,
    intent: &Intent,
) -> Result<Option<Manifest>> {
    let name = intent.dataset.as_str();
    let run = intent.run_id.as_str();
    let Some(mut n) = intent.version else {
        store.clear_intent().await?;
        return Ok(None);
    };
    // The run's newest attempt's staging (see `fence`); the store itself for the rest.
    let staging = crate::fence::staged_target(catalog, store, name, run).await?;
    let staged = staging.staged(run).await?;
    // `v<N>` complete already: moved by this publish, or the identical version re-pointed.
    let moved = store.version_manifest(n).await?.filter(|m| {
        m.run_id == run
            || staged.as_ref().is_none_or(|s| {
                s.spec_hash == m.spec_hash && s.source_fingerprint == m.source_fingerprint
            })
    });
    let manifest = match moved {
        Some(m) => m,
        None => {
            if staged.is_none() {
                store.clear_intent().await?;
                return Ok(None);
            }
            let claimed = staging.claim(run, n).await?;
            if claimed != n {
                n = claimed;
                let moved_on = Intent {
                    version: Some(n),
                    ..intent.clone()
                };
                store.record_intent(&moved_on).await?;
            }
            crash::point("publish.claimed", name);
            let m = staging.move_staged(run, n).await?;
            crash::point("publish.moved", name);
            m
        }
    };
    if let Err(e) = store.point_to(n, intent.from).await {
        if matches!(e, skein_data::Error::PublishConflict { .. }) {
            if manifest.run_id == run {
                let _ = store.abandon(n).await;
            }
            store.clear_intent().await?;
        }
        return Err(e.into());
    }
    crash::point("publish.swapped", name);
    // The catalog follows the target.
    let record = catalog
        .dataset(name)
        .await?
        .ok_or_else(|| skein_core::Error::UnknownDataset {
            dataset: name.to_string(),
        })?;
    if record.current_version != Some(n) {
        catalog
            .record_version(
                name,
                VersionAction::Published,
                &manifest.summary(store.manifest_location(n).await?),
            )
            .await?;
    }
    crash::point("publish.recorded", name);
    if record.status != Status::Completed && record.status.can_become(Status::Completed) {
        let note = format!("published v{n} ({} rows)", manifest.rows);
        catalog
            .transition(
                name,
                record.status,
                Status::Completed,
                Some(&note),
                Some(run),
            )
            .await?;
    }
    crash::point("publish.completed", name);
    store.discard(run).await?;
    store.clear_intent().await?;
    Ok(Some(manifest))
}

/// Runs a recorded rollback or undo from wherever it stopped to its end; returns the
/// version it restored, if any.
pub(crate) async fn complete_rollback<C: Catalog + ?Sized>(
    catalog: &C,
    store: &Target,
    intent: &Intent,
) -> Result<Option<u64>> {
    let name = intent.dataset.as_str();
    let run = intent.run_id.as_str();
    let undo = intent.op == IntentOp::Undo;
    if undo {
        store.discard(run).await?;
        crash::point("undo.discarded", name);
    }
    if let Some(n) = intent.version {
        let Some(manifest) = store.version_manifest(n).await? else {
            store.clear_intent().await?;
            return Err(skein_data::Error::Internal(format!(
                "dataset `{name}`: the version to restore, v{n}, has no manifest"
            ))
            .into());
        };
        if let Err(e) = store.point_to(n, intent.from).await {
            if matches!(e, skein_data::Error::PublishConflict { .. }) {
                store.clear_intent().await?;
            }
            return Err(e.into());
        }
        crash::point(
            if undo {
                "undo.swapped"
            } else {
                "rollback.swapped"
            },
            name,
        );
        let record = catalog.dataset(name).await?;
        if record.and_then(|r| r.current_version) != Some(n) {
            catalog
                .record_version(
                    name,
                    VersionAction::Restored,
                    &manifest.summary(store.manifest_location(n).await?),
                )
                .await?;
        }
        crash::point(
            if undo {
                "undo.recorded"
            } else {
                "rollback.recorded"
            },
            name,
        );
    }
    if undo {
        catalog.set_approval_token(name, None).await?;
    }
    if let Some(record) = catalog.dataset(name).await? {
        let to = intent.status.unwrap_or(Status::Failed);
        if record.status != to || record.reason != intent.reason {
            catalog
                .transition(name, record.status, to, intent.reason.as_deref(), Some(run))
                .await?;
        }
    }
    catalog.release_lease(name, run).await?;
    store.clear_intent().await?;
    Ok(intent.version)
}
