//! Migrating one dataset: lease → stage → verify → (approval) → publish → completed.
//!
//! Every status change goes through the catalog's conditional write. A failure at any
//! step marks the dataset `failed` with the reason and leaves the published target as it
//! was: staging is the only thing written before publish.
//!
//! Staging is resumable by construction: the staged manifest (`_staged.json`) is written
//! last, and a staging of the same spec and source under the same run is reused. After
//! a crash at each crash point ([`skein_core::crash`]) the next attempt (the job
//! delivered again to a resumed run, or `skein migrate`) does this:
//!
//! | crash point | state left | the next attempt |
//! | --- | --- | --- |
//! | `stage.parts` | Parquet parts without `_staged.json`; `in_progress` | discards them and stages again |
//! | `stage.staged` | a complete staging; `in_progress` | reuses it (`reused`), goes on to `migrated` |
//! | `stage.migrated` | `migrated`, not verified | marks the interruption (`failed`, then `in_progress`), reuses the staging, verifies |
//! | `stage.verified` | `verified`, the job not answered | the same: reuses the staging, verifies again, answers |
//! | `combine.staged` | the chunks combined into `_staged.json`; `in_progress` | combines again (the same manifest) |
//! | `combine.migrated`, `combine.verified` | `migrated` / `verified` | back to `in_progress` (the interruption recorded), combines and verifies again |
//!
//! Before any of it, [`crate::publish::finish_interrupted`] finishes a publish, rollback
//! or undo a crash left on the target, so a dataset whose publish was cut short is
//! completed (and then up to date) instead of failed.

use skein_core::names;
use std::sync::Arc;
use std::time::Instant;

use skein_core::Status;
use skein_core::catalog::{Catalog, Counter};
use skein_core::crash;
use skein_core::load::SpecFile;
use skein_core::manifest::SchemaDiff;
use skein_core::spec::SchemaChange;
use skein_data::session::list_source;
use skein_data::{Progress, Settings, Target};

use crate::error::Result;
use crate::outcome::{DatasetResult, Outcome};

pub use crate::lease::LEASE_SECS;

/// How to migrate.
#[derive(Debug, Clone)]
pub struct MigrateOptions {
    /// The run this migration belongs to (names the staging directory).
    pub run_id: String,
    /// Publish after a passed verification (false: stop at `verified`).
    pub publish: bool,
    /// Publish even when the spec asks for approval (someone approved up front).
    pub approved: bool,
    /// Live counters for progress display.
    pub progress: Arc<Progress>,
    /// Publish even if the output schema differs from the published version's.
    pub allow_schema_change: bool,
    /// Which part of the migration this call does.
    pub part: Part,
    /// For a first job: the fleet's large-job setting. A source above its threshold that
    /// chunks do not split is not migrated here but answered [`Outcome::Large`], to run
    /// in a container (`skein worker`).
    pub large: Option<skein_core::fleet::LargeJobs>,
}

/// Which part of a migration a call does. A state machine splits a chunked dataset into
/// jobs: the first job plans the chunks, one job per chunk stages it, a last job combines
/// them; one process (`skein migrate`) does it all in one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Part {
    /// Everything; a chunked dataset's chunks are staged one after another.
    #[default]
    All,
    /// The first job: as `All`, except that a dataset that needs chunks stops once they
    /// are planned ([`Outcome::Chunked`]), and that the run keeps the dataset's lease (its
    /// state machine's Publish, Complete or Rollback step releases it).
    FirstJob,
}

/// Migrates one dataset through the whole pipeline and reports how it ended.
pub async fn migrate<C: Catalog + ?Sized>(
    catalog: &C,
    settings: &Settings,
    file: &SpecFile,
    opts: &MigrateOptions,
) -> Result<DatasetResult> {
    let started = Instant::now();
    let name = file.name();
    let run = opts.run_id.as_str();
    let record = catalog.put_spec(&file.spec, &file.hash).await?;
    let mut result = DatasetResult::new(name, run, Outcome::Failed);

    // Another run works on this dataset: report, change nothing (not even a failure). A
    // run that is gone (its driver released or killed) leaves its lease to this one.
    match crate::lease::take_dataset(catalog, name, run, LEASE_SECS).await {
        Ok(()) => {}
        Err(e @ skein_core::Error::LeaseHeld { .. }) => {
            result.error = Some(e.to_string());
            result.error_name = Some(names::LEASE_HELD.into());
            result.seconds = started.elapsed().as_secs_f64();
            return Ok(result);
        }
        Err(e) => return Err(e.into()),
    }

    // Open the target and list the source; failures here are the dataset's.
    let prepared = match Target::open(settings, file) {
        Ok(store) => list_source(settings, file)
            .await
            .map(|source| (source, store)),
        Err(e) => Err(e),
    };
    let (source, store) = match prepared {
        Ok(ok) => ok,
        Err(e) => {
            fail_unstarted(catalog, name, record.status, run, &e).await?;
            catalog.release_lease(name, run).await?;
            return Ok(failed(result, &e, started));
        }
    };
    // A publish or rollback a crash interrupted is finished first (it may complete the
    // dataset), so the catalog and the target agree before anything else happens.
    let status = match crate::publish::finish_interrupted(catalog, &store).await? {
        Some(_) => catalog
            .dataset(name)
            .await?
            .map(|r| r.status)
            .unwrap_or(record.status),
        None => record.status,
    };

    // Up to date: the published version came from this very spec and source.
    if let Some(current) = store.current().await?
        && current.spec_hash == file.hash
        && current.source_fingerprint == source.fingerprint
        && matches!(status, Status::Completed)
    {
        catalog.release_lease(name, run).await?;
        result.outcome = Outcome::UpToDate;
        result.version = Some(current.version);
        result.rows = current.rows;
        result.files = current.files.len();
        result.bytes = current.bytes;
        result.seconds = started.elapsed().as_secs_f64();
        return Ok(result);
    }

    // Too large for this worker (a Lambda): nothing is changed, the run keeps the lease,
    // and the state machine starts the container's job, which takes it from here. A
    // source that its `chunkSize` splits stays here: its chunks are jobs of their own.
    if opts.part == Part::FirstJob
        && let Some(large) = &opts.large
        && skein_data::incremental::bytes_to_migrate(file, &source, &store).await?
            > large.threshold.0
        && file
            .spec
            .spec
            .source
            .chunk_size
            .is_none_or(|c| source.bytes <= c.0)
    {
        tracing::info!(
            dataset = name,
            bytes = source.bytes,
            threshold = large.threshold.0,
            "larger than the large-job threshold: routed to a container"
        );
        result.outcome = Outcome::Large;
        result.bytes = source.bytes;
        result.seconds = started.elapsed().as_secs_f64();
        return Ok(result);
    }

    let outcome = run_locked(catalog, settings, file, &store, opts, status, &mut result).await;
    // Under a state machine the run keeps the lease until its Publish, Complete or
    // Rollback step: between staging and publish (verify, a days-long approval) nobody
    // else may roll the dataset back or migrate it.
    if opts.part == Part::All {
        catalog.release_lease(name, run).await?;
    }
    outcome?;
    result.seconds = started.elapsed().as_secs_f64();
    Ok(result)
}

/// Stages and verifies chunk `index` of a chunked dataset (a chunk job). The dataset must
/// be in progress under this run, with its chunks planned by the first job. The catalog
/// is not changed: a failed chunk is retried alone, and the state machine rolls the
/// dataset back once its retries are spent.
pub async fn migrate_chunk<C: Catalog + ?Sized>(
    catalog: &C,
    settings: &Settings,
    file: &SpecFile,
    run: &str,
    index: u32,
    progress: &Progress,
) -> Result<skein_data::chunk::ChunkStaged> {
    let name = file.name();
    catalog.acquire_lease(name, run, LEASE_SECS).await?;
    let store = Target::open(settings, file)?;
    let plan = chunk_plan(catalog, file, &store, run).await?;
    let source = list_source(settings, file).await?;
    Ok(
        skein_data::chunk::stage_chunk(
            settings, file, &source, &store, run, &plan, index, progress,
        )
        .await?,
    )
}

/// The chunk plan the first job saved, for a dataset in progress under `run`.
async fn chunk_plan<C: Catalog + ?Sized>(
    catalog: &C,
    file: &SpecFile,
    store: &Target,
    run: &str,
) -> Result<skein_data::chunk::ChunkPlan> {
    let name = file.name();
    let status = catalog
        .dataset(name)
        .await?
        .map(|r| r.status)
        .unwrap_or(Status::Pending);
    let not_staged = || skein_data::Error::NotStaged {
        dataset: name.to_string(),
        run_id: run.to_string(),
    };
    // In progress, or further along when the combine job is run again after a crash.
    if !matches!(
        status,
        Status::InProgress | Status::Migrated | Status::Verified
    ) {
        return Err(not_staged().into());
    }
    skein_data::chunk::saved_plan(store, run, file)
        .await?
        .ok_or_else(|| not_staged().into())
}

/// The combine job of a chunked dataset: joins the staged chunks into one staged version,
/// then verifies it in total and goes on as a whole migration would (`migrated` →
/// `verified`, the schema check). Publishing is the state machine's later step.
pub async fn combine_chunks<C: Catalog + ?Sized>(
    catalog: &C,
    settings: &Settings,
    file: &SpecFile,
    opts: &MigrateOptions,
) -> Result<DatasetResult> {
    let started = Instant::now();
    let name = file.name();
    let run = opts.run_id.as_str();
    let mut result = DatasetResult::new(name, run, Outcome::Failed);
    catalog.acquire_lease(name, run, LEASE_SECS).await?;
    let store = Target::open(settings, file)?;
    let plan = chunk_plan(catalog, file, &store, run).await?;
    // Run again after a crash past `migrated`: back to in progress, then as the first time.
    let status = catalog
        .dataset(name)
        .await?
        .map(|r| r.status)
        .unwrap_or(Status::InProgress);
    if status != Status::InProgress {
        start(catalog, name, status, run).await?;
    }
    let attempt = match catalog
        .attempts(name)
        .await?
        .into_iter()
        .rev()
        .find(|a| a.run_id == run && a.finished_at.is_none())
    {
        Some(a) => a.attempt,
        None => catalog.start_attempt(name, run).await?,
    };
    let outcome = match skein_data::chunk::combine(file, &store, run, &plan).await {
        Ok(manifest) => {
            crash::point("combine.staged", name);
            let staged = skein_data::Staged {
                manifest,
                reused: false,
                chunks: Some(skein_data::ChunkCount {
                    total: plan.chunks.len(),
                    reused: 0,
                }),
                incremental: None,
            };
            after_staging(
                catalog,
                settings,
                file,
                &store,
                opts,
                attempt,
                staged,
                &mut result,
            )
            .await
        }
        Err(e) => {
            fail_data(
                catalog,
                name,
                Status::InProgress,
                attempt,
                run,
                &e,
                &mut result,
            )
            .await
        }
    };
    // The run keeps the lease for publish (see `migrate`).
    outcome?;
    result.seconds = started.elapsed().as_secs_f64();
    Ok(result)
}

async fn run_locked<C: Catalog + ?Sized>(
    catalog: &C,
    settings: &Settings,
    file: &SpecFile,
    store: &Target,
    opts: &MigrateOptions,
    status: Status,
    result: &mut DatasetResult,
) -> Result<()> {
    let name = file.name();
    let run = opts.run_id.as_str();
    start(catalog, name, status, run).await?;
    let attempt = catalog.start_attempt(name, run).await?;
    crate::fence::supersede_earlier(catalog, name, run, attempt).await?;
    // This attempt's own staging (see `fence`); chunk plans stay at the run's level.
    let fenced = store.clone().with_attempt(attempt);

    if opts.part == Part::FirstJob {
        match plan_chunks(settings, file, store, run).await {
            Ok(None) => {}
            Ok(Some(n)) => {
                result.outcome = Outcome::Chunked;
                result.chunks = Some(n);
                return Ok(());
            }
            Err(e) => {
                return fail_data(catalog, name, Status::InProgress, attempt, run, &e, result)
                    .await;
            }
        }
    }

    let staged = match skein_data::stage(settings, file, &fenced, run, &opts.progress).await {
        Ok(s) => {
            crash::point("stage.staged", name);
            s
        }
        Err(e) => {
            return fail_data(catalog, name, Status::InProgress, attempt, run, &e, result).await;
        }
    };
    let outcome = after_staging(
        catalog, settings, file, &fenced, opts, attempt, staged, result,
    )
    .await;
    crate::fence::stop_superseded(catalog, name, attempt, outcome).await
}

/// Plans the chunks of a dataset and saves the plan in staging: the number of chunks, or
/// `None` when it runs as one job (or a finished staging of this run is there to reuse).
async fn plan_chunks(
    settings: &Settings,
    file: &SpecFile,
    store: &Target,
    run: &str,
) -> skein_data::Result<Option<usize>> {
    if file.spec.spec.source.chunk_size.is_none() {
        return Ok(None); // no listing for the common case: one job
    }
    let source = list_source(settings, file).await?;
    if let Some(staged) = store.staged(run).await?
        && staged.spec_hash == file.hash
        && staged.source_fingerprint == source.fingerprint
    {
        return Ok(None);
    }
    match skein_data::chunk::plan(settings, file, &source).await? {
        Some(plan) => {
            skein_data::chunk::save_plan(store, run, &plan).await?;
            Ok(Some(plan.chunks.len()))
        }
        None => Ok(None),
    }
}

/// From a staged version on: `migrated`, the verification, `verified`, the schema check,
/// and (when asked) approval or publish.
#[allow(clippy::too_many_arguments)]
async fn after_staging<C: Catalog + ?Sized>(
    catalog: &C,
    settings: &Settings,
    file: &SpecFile,
    store: &Target,
    opts: &MigrateOptions,
    attempt: u32,
    staged: skein_data::Staged,
    result: &mut DatasetResult,
) -> Result<()> {
    let name = file.name();
    let run = opts.run_id.as_str();
    let m = &staged.manifest;
    // crash points: `stage.*` for one staging, `combine.*` for combined chunks
    let kind = if staged.chunks.is_some() {
        "combine"
    } else {
        "stage"
    };
    result.rows = m.rows;
    result.files = m.files.len();
    result.bytes = m.bytes;
    if let Some(c) = staged.chunks {
        result.chunks = Some(c.total);
        result.chunks_reused = Some(c.reused);
    }
    let chunks = match staged.chunks {
        Some(c) if c.reused > 0 => format!(" from {} chunks ({} reused)", c.total, c.reused),
        Some(c) => format!(" from {} chunks", c.total),
        None => String::new(),
    };
    let mut note = format!(
        "staged {} rows in {} files{chunks}{}",
        m.rows,
        m.files.len(),
        if staged.reused { " (reused)" } else { "" }
    );
    if let Some(inc) = &staged.incremental {
        note.push_str(&format!("; {inc}"));
    }
    result.incremental = staged.incremental.clone();
    catalog
        .transition_in_attempt(
            name,
            attempt,
            Status::InProgress,
            Status::Migrated,
            Some(&note),
            Some(run),
        )
        .await?;
    catalog.add_to_run(run, Counter::Rows, m.rows).await?;
    crash::point(&format!("{kind}.migrated"), name);

    let report =
        match skein_data::verify_dir(settings, file, &store.staging_data(run).await?, m).await {
            Ok(r) => r,
            Err(e) => {
                let reason = format!("verification could not run: {e}");
                fail_attempt(
                    catalog,
                    name,
                    Status::Migrated,
                    attempt,
                    run,
                    "failed",
                    &reason,
                )
                .await?;
                result.error = Some(reason);
                result.error_name = Some(e.error_name().to_string());
                return Ok(());
            }
        };
    let summary = report.summary();
    catalog.set_verification(name, &summary).await?;
    let passed = report.passed;
    result.verification = Some(report);
    if !passed {
        let reason = format!("verification {summary}");
        fail_attempt(
            catalog,
            name,
            Status::Migrated,
            attempt,
            run,
            "verification_failed",
            &reason,
        )
        .await?;
        result.outcome = Outcome::VerificationFailed;
        result.error = Some(reason);
        result.error_name = Some(names::VERIFICATION_FAILED.into());
        return Ok(());
    }
    catalog
        .transition_in_attempt(
            name,
            attempt,
            Status::Migrated,
            Status::Verified,
            Some(&summary),
            Some(run),
        )
        .await?;
    crash::point(&format!("{kind}.verified"), name);

    // A changed output schema is reported before publish and needs consent.
    let allowed =
        opts.allow_schema_change || file.spec.spec.schema_change == Some(SchemaChange::Allow);
    if let Some(current) = store.current().await? {
        let diff = SchemaDiff::between(&current.schema, &staged.manifest.schema);
        if !diff.is_empty() && !allowed {
            let reason = format!(
                "the output schema differs from published v{}: {diff}; pass --allow-schema-change or set `schemaChange: allow` in the spec",
                current.version
            );
            fail_attempt(
                catalog,
                name,
                Status::Verified,
                attempt,
                run,
                "schema_changed",
                &reason,
            )
            .await?;
            result.error = Some(reason);
            result.error_name = Some(names::SCHEMA_CHANGED.into());
            result.schema_change = Some(diff);
            return Ok(());
        }
        if !diff.is_empty() {
            result.schema_change = Some(diff);
        }
    }

    if !opts.publish {
        catalog
            .finish_attempt(name, attempt, "verified", None)
            .await?;
        // `skein migrate --no-publish` ends here, a success. Under the state machine the
        // dataset may still wait for a person, be rejected or fail to publish: it counts
        // when it completes (`steps::complete`), not when it is verified.
        if opts.part == Part::All {
            catalog.add_to_run(run, Counter::Succeeded, 1).await?;
        }
        result.outcome = Outcome::Verified;
        return Ok(());
    }
    if file.spec.needs_approval() && !opts.approved {
        catalog
            .transition_in_attempt(
                name,
                attempt,
                Status::Verified,
                Status::AwaitingApproval,
                Some("approval required"),
                Some(run),
            )
            .await?;
        catalog
            .finish_attempt(name, attempt, "awaiting_approval", None)
            .await?;
        result.outcome = Outcome::AwaitingApproval;
        return Ok(());
    }
    let version = publish_staged(catalog, file, store, run, Status::Verified).await?;
    catalog
        .finish_attempt(name, attempt, "completed", None)
        .await?;
    catalog.add_to_run(run, Counter::Succeeded, 1).await?;
    result.outcome = Outcome::Completed;
    result.version = Some(version);
    Ok(())
}

pub use crate::publish::publish_staged;

/// Ends a started attempt as failed: `from → failed` with the reason, the attempt closed
/// with `outcome`, the run's failure counter bumped.
async fn fail_attempt<C: Catalog + ?Sized>(
    catalog: &C,
    name: &str,
    from: Status,
    attempt: u32,
    run: &str,
    outcome: &str,
    reason: &str,
) -> Result<()> {
    catalog
        .transition_in_attempt(name, attempt, from, Status::Failed, Some(reason), Some(run))
        .await?;
    catalog
        .finish_attempt(name, attempt, outcome, Some(reason))
        .await?;
    catalog.add_to_run(run, Counter::Failed, 1).await?;
    Ok(())
}

/// Ends a started attempt as failed by a data-plane error, and says so in `result`.
async fn fail_data<C: Catalog + ?Sized>(
    catalog: &C,
    name: &str,
    from: Status,
    attempt: u32,
    run: &str,
    e: &skein_data::Error,
    result: &mut DatasetResult,
) -> Result<()> {
    let reason = e.to_string();
    fail_attempt(catalog, name, from, attempt, run, "failed", &reason).await?;
    result.error = Some(reason);
    result.error_name = Some(e.error_name().to_string());
    Ok(())
}

/// Moves a dataset to `in_progress` from wherever it stands. A dataset left mid-way by a
/// crashed run (its lease now ours) is first marked failed with the reason.
async fn start<C: Catalog + ?Sized>(
    catalog: &C,
    name: &str,
    status: Status,
    run: &str,
) -> Result<()> {
    let mut from = status;
    if !from.can_become(Status::InProgress) {
        let reason = if from == Status::AwaitingApproval {
            "superseded: a new migration started before approval"
        } else {
            "interrupted: an earlier run stopped mid-way"
        };
        catalog
            .transition(name, from, Status::Failed, Some(reason), Some(run))
            .await?;
        from = Status::Failed;
    }
    catalog
        .transition(name, from, Status::InProgress, None, Some(run))
        .await?;
    Ok(())
}

/// Records a failure found before the migration could start (bad target, no source).
async fn fail_unstarted<C: Catalog + ?Sized>(
    catalog: &C,
    name: &str,
    status: Status,
    run: &str,
    e: &skein_data::Error,
) -> Result<()> {
    let reason = e.to_string();
    if status != Status::Failed {
        catalog
            .transition(name, status, Status::Failed, Some(&reason), Some(run))
            .await?;
    }
    let attempt = catalog.start_attempt(name, run).await?;
    catalog
        .finish_attempt(name, attempt, "failed", Some(&reason))
        .await?;
    catalog.add_to_run(run, Counter::Failed, 1).await?;
    Ok(())
}

fn failed(mut result: DatasetResult, e: &skein_data::Error, started: Instant) -> DatasetResult {
    result.outcome = Outcome::Failed;
    result.error = Some(e.to_string());
    result.error_name = Some(e.error_name().to_string());
    result.seconds = started.elapsed().as_secs_f64();
    result
}
