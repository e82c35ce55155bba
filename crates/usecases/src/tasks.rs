//! The Task payloads of the state machines, decoded and answered once: the local engine's
//! bindings and the Lambda functions both call these, so a state machine gets the same
//! answer (and the same error names) on one machine and on AWS.
//!
//! Every function takes the JSON the state machine sends (`Payload` of a `lambda:invoke`,
//! or the job of a queue message) and returns the JSON it expects, or a [`StepError`]
//! whose `error` is one of [`names`], which the state machines catch by name.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use skein_core::catalog::Catalog;
use skein_core::fleet::{PlanItem, RunPlan};
use skein_core::queue::{Job, JobStep};

use crate::migrate::{LEASE_SECS, MigrateOptions, Part};
use crate::outcome::Outcome;
use crate::payloads::{
    CatalogAction, Done, PlanAnswer, PublishAnswer, PublishPayload, RollbackPayload, VerifyAnswer,
    VerifyPayload, answer, decode, short,
};
use crate::steps::{self, StepError};

/// The Step Functions error names skein raises (the table is in [`skein_core::names`]).
pub use skein_core::names;

/// A task's answer.
pub type TaskResult = std::result::Result<Value, StepError>;

fn internal(e: impl std::fmt::Display) -> StepError {
    StepError::new(names::INTERNAL, e.to_string())
}

/// An infrastructure failure as a step error: the data plane's own name when it has one
/// (`Skein.StorageError`, `Skein.PublishConflict`, …), else `Skein.Internal`.
fn infra(e: crate::Error) -> StepError {
    match &e {
        crate::Error::Data(d) => StepError::new(d.error_name(), e.to_string()),
        crate::Error::Catalog(_) => internal(e),
    }
}

fn flatten<T>(
    r: crate::Result<std::result::Result<T, StepError>>,
) -> std::result::Result<T, StepError> {
    r.map_err(infra)?
}

/// A string field of a payload, or `Skein.BadRequest` naming it.
pub fn field<'a>(payload: &'a Value, name: &str) -> std::result::Result<&'a str, StepError> {
    payload.get(name).and_then(Value::as_str).ok_or_else(|| {
        StepError::new(
            names::BAD_REQUEST,
            format!(
                "the task payload needs a string field `{name}`; got {}",
                short(payload)
            ),
        )
    })
}

/// Where a run's item lists live in the run bucket: `runs/<runId>/`.
pub fn run_items_prefix(run_id: &str) -> String {
    format!("runs/{run_id}/")
}

/// The canary's item list, under the run's prefix.
pub const CANARY_ITEMS: &str = "canary.jsonl";

/// Wave `index`'s item list, under the run's prefix (the state machine builds the same
/// key with `States.Format('{}wave-{}.jsonl', prefix, index)`).
pub fn wave_items(index: usize) -> String {
    format!("wave-{index}.jsonl")
}

/// The objects Plan writes for a run: the canary and each wave as JSON Lines, one line
/// per dataset (`dataset`, `group`, `needsApproval`, `large`, `execution`), keyed under
/// [`run_items_prefix`]. The Distributed Maps read them with `ItemReader`, so no state
/// carries a list that grows with the number of datasets.
pub fn run_items(plan: &RunPlan, run_id: &str) -> Vec<(String, String)> {
    let lines = |v: &[PlanItem]| -> String {
        v.iter()
            .map(|i| {
                let line = json!({"dataset": i.dataset, "group": i.group, "needsApproval": i.needs_approval,
                       "large": i.large,
                       "execution": skein_core::fleet::execution_name(run_id, &i.dataset)});
                format!("{line}\n")
            })
            .collect()
    };
    let prefix = run_items_prefix(run_id);
    let mut out = vec![(format!("{prefix}{CANARY_ITEMS}"), lines(&plan.canary))];
    for (i, w) in plan.waves.iter().enumerate() {
        out.push((format!("{prefix}{}", wave_items(i)), lines(&w.datasets)));
    }
    out
}

/// What the Plan task returns to the state machine: where the item lists are and how
/// many there are, never the datasets themselves, so the state stays the same size for
/// ten datasets or fifty thousand.
pub fn plan_payload(plan: &RunPlan, run_id: &str, bucket: &str) -> Value {
    let a = PlanAnswer {
        bucket: bucket.to_string(),
        prefix: run_items_prefix(run_id),
        canary: plan.canary.len(),
        waves: plan.waves.len(),
        total: plan.total,
        max_concurrency: plan.max_concurrency,
        tolerated_failure_percentage: plan.tolerated_failure_percentage,
    };
    serde_json::to_value(a).unwrap_or_default()
}

/// The `catalog` function: `checkDependencies`, `acquireLease`, `awaitApproval`,
/// `complete`, `summarise`, chosen by the payload's `action` ([`CatalogAction`]).
pub async fn catalog_action<C: Catalog + ?Sized>(catalog: &C, p: &Value) -> TaskResult {
    match decode::<CatalogAction>("catalog", p)? {
        CatalogAction::CheckDependencies { dataset } => {
            flatten(steps::check_dependencies(catalog, &dataset).await)?;
            answer(&Done {})
        }
        CatalogAction::AcquireLease { dataset, run_id } => {
            require_dataset(catalog, &dataset).await?;
            match crate::lease::take_dataset(catalog, &dataset, &run_id, LEASE_SECS).await {
                Ok(()) => answer(&Done {}),
                Err(e @ skein_core::Error::LeaseHeld { .. }) => {
                    Err(StepError::new(names::LEASE_HELD, e.to_string()))
                }
                Err(e) => Err(internal(e)),
            }
        }
        CatalogAction::AwaitApproval {
            dataset,
            run_id,
            task_token,
        } => {
            require_dataset(catalog, &dataset).await?;
            steps::await_approval(catalog, &dataset, &run_id, &task_token)
                .await
                .map_err(internal)?;
            answer(&Done {})
        }
        CatalogAction::Complete { dataset, run_id } => {
            steps::complete(catalog, &dataset, &run_id)
                .await
                .map_err(internal)?;
            answer(&Done {})
        }
        CatalogAction::Summarise(s) => {
            let total = match (s.datasets, s.total) {
                (Some(d), _) => d.len() as u64,
                (None, Some(t)) => t,
                (None, None) => {
                    let run = catalog.run(&s.run_id).await.map_err(internal)?;
                    run.map(|r| r.total).unwrap_or(0)
                }
            };
            let summary =
                steps::summarise(catalog, &s.run_id, total as usize, s.stopped.as_deref())
                    .await
                    .map_err(internal)?;
            answer(&summary)
        }
    }
}

async fn require_dataset<C: Catalog + ?Sized>(
    catalog: &C,
    dataset: &str,
) -> std::result::Result<(), StepError> {
    match catalog.dataset(dataset).await.map_err(internal)? {
        Some(_) => Ok(()),
        None => Err(StepError::new(
            names::UNKNOWN_DATASET,
            format!(
                "dataset `{dataset}` is not in the catalog; plan the run that registers it first"
            ),
        )),
    }
}

/// The `verify` function: the gate, `{dataset}` → `{summary}`.
pub async fn verify_task<C: Catalog + ?Sized>(catalog: &C, p: &Value) -> TaskResult {
    let p: VerifyPayload = decode("verify", p)?;
    let summary = flatten(steps::verify_gate(catalog, &p.dataset).await)?;
    answer(&VerifyAnswer { summary })
}

/// The `publish` function: `{dataset, runId}` → `{version}`.
pub async fn publish_task<C: Catalog + ?Sized>(
    catalog: &C,
    settings: &skein_data::Settings,
    p: &Value,
) -> TaskResult {
    let p: PublishPayload = decode("publish", p)?;
    let version = flatten(steps::publish(catalog, settings, &p.dataset, &p.run_id).await)?;
    answer(&PublishAnswer { version })
}

/// The `rollback` function: `{dataset, runId, error, cause}` → what was undone.
pub async fn rollback_task<C: Catalog + ?Sized>(
    catalog: &C,
    settings: &skein_data::Settings,
    p: &Value,
) -> TaskResult {
    let p: RollbackPayload = decode("rollback", p)?;
    let error = p.error.as_deref().unwrap_or(names::FAILED);
    let cause = p.cause.as_deref().unwrap_or("");
    let undone = steps::rollback_run(
        catalog,
        settings,
        &p.dataset,
        &p.run_id,
        error,
        &readable_cause(cause),
    )
    .await
    .map_err(infra)?;
    answer(&undone)
}

/// A child execution's failure cause is JSON (`{"Error":…,"Cause":…}`); keep its inner cause.
pub fn readable_cause(cause: &str) -> String {
    serde_json::from_str::<Value>(cause)
        .ok()
        .and_then(|v| v.get("Cause").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| cause.to_string())
}

/// A job message as the Migrate state sends it (`MessageBody`), or an error naming what
/// is wrong with it.
pub fn parse_job(body: &str) -> std::result::Result<Job, StepError> {
    serde_json::from_str::<Job>(body).map_err(|e| {
        StepError::new(
            names::BAD_REQUEST,
            format!(
                "a migrate job must be JSON {{\"dataset\", \"runId\", \"taskToken\"}}: {e}; got {}",
                short(&Value::String(body.to_string()))
            ),
        )
    })
}

/// How a migrate job ended: the answer for its task token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "camelCase")]
pub enum JobAnswer {
    /// `SendTaskSuccess` with this output.
    Success { output: Value },
    /// `SendTaskFailure` with this error name and cause.
    Failure { error: String, cause: String },
}

/// A migrate job: stage the dataset (with its source checksum), verify it, and say how to
/// answer the task token. Publishing is the state machine's later step.
///
/// A dataset larger than its `chunkSize` takes three kinds of job:
/// - the first job (no `chunk`, no `step`) plans the chunks and answers
///   `{"outcome": "chunked", "chunks": [0, 1, …]}`, which the state machine maps over;
/// - a chunk job (`"chunk": N`) stages and verifies chunk N and answers
///   `{"chunk": N, "rows", "files", "bytes", "reused"}`; it changes nothing in the catalog,
///   so a failed chunk is retried alone and reuses nothing but itself;
/// - the combine job (`"step": "combine"`) joins the chunks into one staged version and
///   verifies it in total, answering as a first job of a small dataset does.
///
/// A panic inside the job (a bug in skein or a library it calls) does not take the worker
/// down or leave the dataset `in_progress`: it becomes a `Skein.Internal` failure carrying
/// the panic's message, so the state machine rolls the dataset back with that reason.
pub async fn migrate_job<C: Catalog + ?Sized>(
    catalog: &C,
    settings: &skein_data::Settings,
    job: &Job,
    allow_schema_change: bool,
    progress: Arc<skein_data::Progress>,
) -> JobAnswer {
    use futures::FutureExt;
    let job_run = migrate_job_unguarded(catalog, settings, job, allow_schema_change, progress);
    match std::panic::AssertUnwindSafe(job_run).catch_unwind().await {
        Ok(answer) => answer,
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("a panic without a message");
            tracing::error!(dataset = %job.dataset, "migrate job panicked: {message}");
            JobAnswer::Failure {
                error: names::INTERNAL.into(),
                cause: format!(
                    "dataset `{}`: the migrate job panicked (a bug in skein; please report it): {message}",
                    job.dataset
                ),
            }
        }
    }
}

async fn migrate_job_unguarded<C: Catalog + ?Sized>(
    catalog: &C,
    settings: &skein_data::Settings,
    job: &Job,
    allow_schema_change: bool,
    progress: Arc<skein_data::Progress>,
) -> JobAnswer {
    let file = match steps::spec_file(catalog, &job.dataset).await {
        Ok(Ok(f)) => f,
        Ok(Err(e)) => {
            return JobAnswer::Failure {
                error: e.error,
                cause: e.cause,
            };
        }
        Err(e) => {
            return JobAnswer::Failure {
                error: names::TRANSIENT.into(),
                cause: e.to_string(),
            };
        }
    };
    if let Some(index) = job.chunk {
        let staged =
            crate::migrate::migrate_chunk(catalog, settings, &file, &job.run_id, index, &progress)
                .await;
        return match staged {
            Ok(c) => JobAnswer::Success {
                output: json!({
                    "chunk": index,
                    "rows": c.manifest.rows,
                    "files": c.manifest.files.len(),
                    "bytes": c.manifest.bytes,
                    "reused": c.reused,
                }),
            },
            Err(e) => failure(e),
        };
    }
    let opts = MigrateOptions {
        run_id: job.run_id.clone(),
        publish: false,
        approved: false,
        progress,
        allow_schema_change,
        part: Part::FirstJob,
        // the container's own job runs here whatever the size
        large: job.large.clone().filter(|_| !job.container),
    };
    let result = match job.step {
        Some(JobStep::Combine) => {
            crate::migrate::combine_chunks(catalog, settings, &file, &opts).await
        }
        None => crate::migrate(catalog, settings, &file, &opts).await,
    };
    match result {
        Ok(r) if matches!(r.outcome, Outcome::Verified | Outcome::UpToDate) => JobAnswer::Success {
            output: json!({
                "outcome": r.outcome.as_str().replace(' ', "_"),
                "rows": r.rows,
                "files": r.files,
                "bytes": r.bytes,
                "version": r.version,
                "chunks": r.chunks,
            }),
        },
        // What `MigrateOnFargate` runs: the same job, marked to run where it lands, in a
        // task of the fleet's size (ECS wants CPU and memory as strings).
        Ok(r)
            if r.outcome == Outcome::Large
                && let Some(size) = &job.large =>
        {
            JobAnswer::Success {
                output: json!({
                    "outcome": "large",
                    "sourceBytes": r.bytes,
                    "threshold": size.threshold.0,
                    "container": {
                        "cpu": size.cpu.to_string(),
                        "memory": size.memory.to_string(),
                        "ephemeralStorage": size.ephemeral_storage,
                    },
                    "job": {"dataset": job.dataset, "runId": job.run_id, "container": true},
                }),
            }
        }
        Ok(r) if r.outcome == Outcome::Chunked => JobAnswer::Success {
            output: json!({
                "outcome": "chunked",
                "chunks": (0..r.chunks.unwrap_or(0) as u32).collect::<Vec<u32>>(),
            }),
        },
        Ok(r) => JobAnswer::Failure {
            error: r
                .error_name
                .unwrap_or_else(|| names::MIGRATION_FAILED.into()),
            cause: r.error.unwrap_or_else(|| r.outcome.as_str().to_string()),
        },
        // A superseded attempt says so; anything else failed the machine, not the dataset.
        Err(e @ crate::Error::Catalog(skein_core::Error::Superseded { .. })) => failure(e),
        Err(e) => JobAnswer::Failure {
            error: names::TRANSIENT.into(),
            cause: e.to_string(),
        },
    }
}

/// A failed job's answer: the data plane's error name for a dataset's failure, the lease
/// holder's for a held lease, `Skein.Transient` for the catalog (worth a retry).
fn failure(e: crate::Error) -> JobAnswer {
    let error = match &e {
        crate::Error::Data(d) => d.error_name().to_string(),
        crate::Error::Catalog(skein_core::Error::LeaseHeld { .. }) => names::LEASE_HELD.into(),
        crate::Error::Catalog(skein_core::Error::Superseded { .. }) => names::SUPERSEDED.into(),
        crate::Error::Catalog(_) => names::TRANSIENT.into(),
    };
    JobAnswer::Failure {
        error,
        cause: e.to_string(),
    }
}

/// The `plan` function over a local directory of specs (on AWS, the function first copies
/// the specs from S3): registers them, records the run, returns the plan's references.
///
/// The caller writes [`run_items`] of the plan to `bucket` (a local directory standing in
/// for it, or S3) before the state machine goes on.
pub async fn plan_task<C: Catalog + ?Sized>(
    catalog: &C,
    dir: &std::path::Path,
    run_id: &str,
    bucket: &str,
) -> std::result::Result<(RunPlan, Value), StepError> {
    let plan = flatten(steps::plan(catalog, dir, run_id).await)?;
    let payload = plan_payload(&plan, run_id, bucket);
    Ok((plan, payload))
}
