//! Staging, the orchestrator: a finished staging of the same spec and source is reused, a
//! large source goes chunk by chunk ([`crate::chunk`]), any other is written in one go by
//! [`crate::writer`] and its staged manifest written last.

use std::sync::atomic::Ordering;

use skein_core::load::SpecFile;
use skein_core::manifest::Manifest;

use crate::error::Result;
use crate::session::{Settings, list_source, register_source};
use crate::target::Target;
use crate::writer::{Sink, staged_manifest, write_all};

pub use crate::writer::{DEFAULT_MAX_ROWS_PER_FILE, Progress};

/// What staging produced.
#[derive(Debug, Clone)]
pub struct Staged {
    /// The staged manifest (version 0 until published).
    pub manifest: Manifest,
    /// True when an earlier attempt had staged the same spec and source and was reused.
    pub reused: bool,
    /// For a chunked dataset: how many chunks, and how many were reused.
    pub chunks: Option<ChunkCount>,
    /// For an incremental source: what this run added, or why it migrated everything.
    pub incremental: Option<String>,
}

/// Chunks of a chunked staging.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkCount {
    /// Chunks in the plan.
    pub total: usize,
    /// Chunks an earlier attempt had staged and verified.
    pub reused: usize,
}

/// Stages a migration of `file` for `run_id`. A finished staging of the same spec and
/// source under the same run is recognised and reused. A source larger than
/// `spec.source.chunkSize` is staged chunk by chunk (see [`crate::chunk`]); chunks staged
/// by an earlier attempt are reused, and a failed chunk leaves the finished ones in place.
pub async fn stage(
    settings: &Settings,
    file: &SpecFile,
    store: &Target,
    run_id: &str,
    progress: &Progress,
) -> Result<Staged> {
    let source = list_source(settings, file).await?;
    if let Some(existing) = store.staged(run_id).await?
        && existing.spec_hash == file.hash
        && existing.source_fingerprint == source.fingerprint
    {
        return Ok(Staged {
            manifest: existing,
            reused: true,
            chunks: None,
            incremental: None,
        });
    }
    let full_because = match crate::incremental::base(settings, file, &source, store).await? {
        crate::incremental::Base::Full(why) => why,
        crate::incremental::Base::Add { previous, added } => {
            let inc = crate::incremental::stage_increment(
                settings, file, &source, store, run_id, progress, &previous, &added,
            )
            .await?;
            let note = format!(
                "incremental: {} new file(s), {} new row(s), added to v{}",
                inc.new_files, inc.new_rows, inc.base_version
            );
            return Ok(Staged {
                manifest: inc.manifest,
                reused: false,
                chunks: None,
                incremental: Some(note),
            });
        }
    };
    progress.source_bytes.store(source.bytes, Ordering::Relaxed);
    if let Some(plan) = crate::chunk::plan(settings, file, &source).await? {
        crate::chunk::save_plan(store, run_id, &plan).await?;
        let mut reused = 0;
        for chunk in &plan.chunks {
            let done = crate::chunk::stage_chunk(
                settings,
                file,
                &source,
                store,
                run_id,
                &plan,
                chunk.index,
                progress,
            )
            .await?;
            reused += usize::from(done.reused);
        }
        let manifest = crate::chunk::combine(file, store, run_id, &plan).await?;
        return Ok(Staged {
            manifest,
            reused: reused == plan.chunks.len(),
            chunks: Some(ChunkCount {
                total: plan.chunks.len(),
                reused,
            }),
            incremental: None,
        });
    }
    store.discard(run_id).await?; // a half-written earlier attempt
    let output = store.staging_output(settings, run_id)?;
    let ctx = settings.session()?;
    register_source(&ctx, file, &source).await?;
    let source_schema = crate::incremental::source_schema(&ctx, file).await?;
    let sink = Sink {
        output: &output,
        target: store,
        run_id,
        chunk: None,
    };
    let result = write_all(&ctx, file, &source, &sink, progress).await;
    let (schema, parts) = match result {
        Ok(ok) => ok,
        Err(e) => {
            let _ = store.discard(run_id).await;
            return Err(e);
        }
    };
    let mut manifest = staged_manifest(file, run_id, &source.fingerprint, &schema, &parts);
    if file.spec.spec.source.is_incremental() {
        manifest.source_files = Some(source.entries()); // what the next run adds to
        manifest.source_schema = source_schema;
    }
    // A crash here leaves parts without `_staged.json`: the next attempt restages.
    skein_core::crash::point("stage.parts", file.name());
    store.write_staged(run_id, &manifest).await?;
    Ok(Staged {
        manifest,
        reused: false,
        chunks: None,
        incremental: full_because.map(|why| format!("incremental: {why}")),
    })
}
