//! The local bindings of the state machines' Task resources: each `Resource` the
//! definitions name is served in this process by the same use cases the Lambdas call.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use anyhow::Context;
use async_trait::async_trait;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use skein_core::queue::{Job, JobQueue};
use skein_embedded::{SqliteCatalog, SqliteQueue};
use skein_states::engine::{Engine, Failure, Handlers, TaskCall, TaskHandler};
use skein_states::status::ExecutionStatus;
use skein_states::store::{Store, TokenAnswer};
use skein_usecases::payloads::{self, CatalogAction, PlanPayload, RollbackPayload};
use skein_usecases::steps::StepError;
use skein_usecases::tasks::{self, names};

use super::progress::{Peaks, View};
use super::slots::LocalSlots;
use skein_embedded::EngineCallbacks;

pub(super) const RUN_MACHINE: &str = include_str!("../../../state-machines/migration-run.asl.json");
pub(super) const DATASET_MACHINE: &str =
    include_str!("../../../state-machines/dataset-migration.asl.json");
const LAMBDA: &str = "arn:aws:lambda:local:000000000000:function:";
const DATASET_MACHINE_ARN: &str =
    "arn:aws:states:local:000000000000:stateMachine:dataset-migration";
const QUEUE_PREFIX: &str = "local://skein/migrate-";
/// Visibility timeout of a job; extended by the worker's heartbeat while it works.
pub(super) const VISIBILITY_SECS: u64 = 900;
/// Deliveries before a job goes to the dead letters.
pub(super) const MAX_RECEIVES: u32 = 5;

/// The definition substitutions of the local bindings.
pub fn substitutions() -> Value {
    json!({
        "PlanFunctionArn": format!("{LAMBDA}skein-plan"),
        "CatalogFunctionArn": format!("{LAMBDA}skein-catalog"),
        "VerifyFunctionArn": format!("{LAMBDA}skein-verify"),
        "PublishFunctionArn": format!("{LAMBDA}skein-publish"),
        "RollbackFunctionArn": format!("{LAMBDA}skein-rollback"),
        "DatasetMigrationStateMachineArn": DATASET_MACHINE_ARN,
        "MigrateQueueUrlPrefix": QUEUE_PREFIX,
        // `ecs:runTask` runs `skein worker --job` here (see [`Local::container`]).
        "WorkerClusterArn": "arn:aws:ecs:local:000000000000:cluster/skein-workers",
        "WorkerTaskDefinitionArn": "arn:aws:ecs:local:000000000000:task-definition/skein-worker",
        "WorkerSubnets": "local",
        "WorkerSecurityGroup": "local",
    })
}

pub(super) fn definition(text: &str) -> anyhow::Result<Value> {
    let doc: Value = serde_json::from_str(text).context("a built-in state machine is not JSON")?;
    let mut missing = Vec::new();
    let doc = skein_states::cli::substitute(doc, &substitutions(), &mut missing);
    anyhow::ensure!(missing.is_empty(), "no local binding for {missing:?}");
    Ok(doc)
}

/// Everything the handlers share.
pub(super) struct Local {
    pub(super) catalog: Arc<SqliteCatalog>,
    pub(super) queue: Arc<SqliteQueue>,
    pub(super) store: Store,
    /// The task-token port on `store` (the migrate workers answer through it).
    pub(super) callbacks: Arc<EngineCallbacks>,
    pub(super) settings: skein_data::Settings,
    pub(super) engine: OnceLock<Engine>,
    pub(super) child_definition: Value,
    pub(super) slots: LocalSlots,
    pub(super) groups_of: Mutex<HashMap<String, String>>,
    pub(super) peaks: Arc<Peaks>,
    pub(super) view: OnceLock<View>,
    pub(super) auto_approve: bool,
    pub(super) allow_schema_change: bool,
    pub(super) stop: AtomicBool,
    pub(super) jobs: AtomicU64,
    /// Nanoseconds spent in the data plane (migrate jobs), summed over workers.
    pub(super) work_nanos: AtomicU64,
    /// Nanoseconds the Plan step took.
    pub(super) plan_nanos: AtomicU64,
    /// The local stand-in for S3 (the catalog directory): buckets are directories in it.
    pub(super) runs_root: PathBuf,
}

/// The bucket of the run item lists, locally a directory under the catalog.
const RUNS_BUCKET: &str = "skein-runs";

fn fail(e: impl std::fmt::Display) -> Failure {
    Failure::new(names::INTERNAL, e.to_string())
}

fn step_failure(e: StepError) -> Failure {
    Failure::new(&e.error, e.cause)
}

/// A payload decoded as `T`, or `Skein.BadRequest` saying what is wrong.
fn decode<T: DeserializeOwned>(what: &str, payload: &Value) -> Result<T, Failure> {
    payloads::decode(what, payload).map_err(step_failure)
}

/// The parameters of `states:startExecution` the local binding reads.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StartExecution {
    name: String,
    #[serde(default)]
    input: Option<Value>,
}

/// The parameters of `sqs:sendMessage` the local binding reads.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SendMessage {
    queue_url: String,
    #[serde(default)]
    message_body: Option<Value>,
}

impl Local {
    pub(super) fn view(&self) -> Option<&View> {
        self.view.get()
    }

    fn group_of(&self, dataset: &str) -> String {
        let m = self.groups_of.lock().unwrap_or_else(|p| p.into_inner());
        m.get(dataset).cloned().unwrap_or_else(|| "default".into())
    }

    async fn plan(&self, payload: &Value) -> Result<Value, Failure> {
        let started = Instant::now();
        let PlanPayload { run_id, specs } = decode("plan", payload)?;
        let run_id = run_id.as_str();
        let dir = PathBuf::from(specs);
        let (plan, answer) = tasks::plan_task(self.catalog.as_ref(), &dir, run_id, RUNS_BUCKET)
            .await
            .map_err(step_failure)?;
        // The item lists the Distributed Maps read: files standing in for S3 objects,
        // `<catalog>/skein-runs/runs/<run>/…` (the engine's S3 root is the catalog).
        for (key, text) in tasks::run_items(&plan, run_id) {
            let path = self.runs_root.join(RUNS_BUCKET).join(&key);
            let written = path
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| std::fs::write(&path, text));
            written.map_err(|e| {
                Failure::new(
                    names::STORAGE_ERROR,
                    format!("cannot write the run's items {}: {e}", path.display()),
                )
            })?;
        }
        {
            let mut m = self.groups_of.lock().unwrap_or_else(|p| p.into_inner());
            for item in plan
                .canary
                .iter()
                .chain(plan.waves.iter().flat_map(|w| w.datasets.iter()))
            {
                m.insert(item.dataset.clone(), item.group.clone());
            }
        }
        self.plan_nanos
            .store(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        Ok(answer)
    }

    /// The shared catalog actions, plus what only a local run does: `--auto-approve`
    /// answers the approval token at once, and the progress view hears of the ends.
    async fn catalog_action(&self, call: &TaskCall) -> Result<Value, Failure> {
        let p = &call.payload;
        let answer = tasks::catalog_action(self.catalog.as_ref(), p)
            .await
            .map_err(step_failure)?;
        match decode::<CatalogAction>("catalog", p)? {
            CatalogAction::AwaitApproval {
                dataset,
                task_token,
                ..
            } => {
                if self.auto_approve {
                    let answer = TokenAnswer::Success(json!({"approvedBy": "--auto-approve"}));
                    self.store.answer_token(&task_token, answer).map_err(fail)?;
                } else if let Some(v) = self.view() {
                    v.note(&format!(
                        "⏸ {dataset} is verified and waits for approval: run `skein approve {dataset}` or `skein reject {dataset} --reason …`"
                    ));
                }
            }
            CatalogAction::Complete { dataset, .. } => {
                if let Some(v) = self.view() {
                    v.finished(&dataset, &self.group_of(&dataset), None);
                }
            }
            _ => {}
        }
        Ok(answer)
    }

    async fn child(&self, call: &TaskCall) -> Result<Value, Failure> {
        let StartExecution { name, input } = decode("startExecution", &call.payload)?;
        let name = name.as_str();
        let input = input.unwrap_or(json!({}));
        let engine = self
            .engine
            .get()
            .ok_or_else(|| fail("the engine is not ready"))?;
        // AWS refuses a name StartExecution does not accept: so does the engine.
        // https://docs.aws.amazon.com/step-functions/latest/apireference/API_StartExecution.html#API_StartExecution_Errors
        if let Some(problem) = skein_states::execution_name::problem(name) {
            return Err(Failure::new("StepFunctions.InvalidNameException", problem));
        }
        let outcome = engine
            .run_named(
                name,
                "dataset-migration",
                self.child_definition.clone(),
                input,
                Value::Null,
            )
            .await
            .map_err(fail)?;
        if outcome.status == ExecutionStatus::Succeeded {
            Ok(
                json!({"ExecutionArn": outcome.execution_arn, "Status": "SUCCEEDED", "Output": outcome.output}),
            )
        } else {
            Err(Failure::new(
                "States.TaskFailed",
                json!({"ExecutionArn": outcome.execution_arn, "Status": outcome.status,
                       "Error": outcome.error, "Cause": outcome.cause})
                .to_string(),
            ))
        }
    }

    async fn enqueue(&self, call: &TaskCall) -> Result<Value, Failure> {
        let SendMessage {
            queue_url: url,
            message_body,
        } = decode("sendMessage", &call.payload)?;
        let group = url.strip_prefix(QUEUE_PREFIX).ok_or_else(|| {
            Failure::new(
                names::BAD_REQUEST,
                format!("queue `{url}` is not a local skein queue"),
            )
        })?;
        let body = message_body.unwrap_or(json!({}));
        // The body is the job itself (`chunk` and `step` included), as SQS would carry it.
        let job: Job = serde_json::from_value(body.clone()).map_err(|e| {
            Failure::new(
                names::BAD_REQUEST,
                format!("a migrate job must be {{\"dataset\", \"runId\", \"taskToken\"}}: {e}; got {body}"),
            )
        })?;
        self.queue.send(group, &job).await.map_err(fail)?;
        Ok(json!({"MessageId": job.task_token}))
    }

    /// `ecs:runTask.waitForTaskToken` (`MigrateOnFargate`): the container's `skein worker
    /// --job` as a subprocess on this catalog, with the job and the token from the
    /// container's environment overrides, as the Fargate task gets them. The run takes the
    /// dataset's reader slot for the subprocess and holds it while it works. The
    /// subprocess answers the token itself; one that exits without answering (killed,
    /// crashed) has its token failed here with its exit status and last words.
    async fn container(self: &Arc<Self>, call: &TaskCall) -> Result<Value, Failure> {
        let env = call
            .payload
            .pointer("/Overrides/ContainerOverrides/0/Environment")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let var = |name: &str| {
            env.iter()
                .find(|e| e.get("Name").and_then(Value::as_str) == Some(name))
                .and_then(|e| e.get("Value").and_then(Value::as_str))
                .map(str::to_string)
        };
        let (Some(job), Some(token)) = (var("SKEIN_JOB"), var("SKEIN_TASK_TOKEN")) else {
            return Err(Failure::new(
                names::BAD_REQUEST,
                "ecs:runTask: the container override must set SKEIN_JOB and SKEIN_TASK_TOKEN",
            ));
        };
        let parsed: Value = serde_json::from_str(&job).map_err(|e| {
            Failure::new(
                names::BAD_REQUEST,
                format!("SKEIN_JOB is not JSON: {e}: {job}"),
            )
        })?;
        let dataset = parsed
            .get("dataset")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let system =
            match skein_core::catalog::Catalog::dataset(self.catalog.as_ref(), &dataset).await {
                Ok(Some(d)) => d.spec.spec.source.system.clone(),
                _ => None,
            };
        let exe = std::env::current_exe().map_err(fail)?;
        let mut command = tokio::process::Command::new(exe);
        command
            .arg("worker")
            .arg("--catalog")
            .arg(&self.runs_root)
            .arg("--memory-limit")
            .arg(self.settings.memory_limit.to_string())
            .arg("--quiet")
            .arg("--job")
            .arg(&job)
            .env("SKEIN_TASK_TOKEN", &token)
            // never a deployed stack's: this is the local run's catalog
            .env_remove("SKEIN_TABLE")
            .env_remove("SKEIN_STACK")
            .env_remove("SKEIN_JOB")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(false);
        if let Some(dir) = &self.settings.spill_dir {
            command.arg("--spill-dir").arg(dir);
        }
        if self.allow_schema_change {
            command.arg("--allow-schema-change");
        }
        let local = self.clone();
        let task = format!(
            "arn:aws:ecs:local:000000000000:task/skein-workers/{}",
            skein_usecases::new_run_id()
        );
        tokio::spawn(async move {
            use skein_core::slots::ReaderSlots;
            if let Some(s) = &system {
                let _ = local.slots.acquire(s, &token, 0).await;
            }
            let output = match command.spawn() {
                Ok(child) => child.wait_with_output().await,
                Err(e) => Err(e),
            };
            if let Some(s) = &system {
                let _ = local.slots.release(s, &token).await;
            }
            let why = match output {
                Ok(o) if o.status.success() => return,
                Ok(o) => {
                    let stderr = String::from_utf8_lossy(&o.stderr);
                    let last = stderr
                        .lines()
                        .rev()
                        .find(|l| !l.trim().is_empty())
                        .unwrap_or("");
                    format!("the container's worker exited with {}: {last}", o.status)
                }
                Err(e) => format!("the container's worker could not start: {e}"),
            };
            // A failed dataset exits 1 after answering: failing the token again is refused
            // (it no longer waits), so only an unanswered token takes this.
            use skein_core::callbacks::TaskCallbacks;
            if local
                .callbacks
                .fail(
                    &token,
                    "States.TaskFailed",
                    &format!("dataset `{dataset}`: {why}"),
                )
                .await
                .is_ok()
            {
                tracing::warn!(dataset = %dataset, "{why}");
            }
        });
        // What RunTask answers (the task's ARN), as the state's immediate response.
        Ok(json!({"Tasks": [{"TaskArn": task, "LastStatus": "PROVISIONING"}]}))
    }
}

/// One bound resource.
struct Bound {
    local: Arc<Local>,
    kind: Kind,
}

#[derive(Clone, Copy)]
enum Kind {
    Plan,
    Catalog,
    Verify,
    Publish,
    Rollback,
    Queue,
    Child,
    Container,
}

#[async_trait]
impl TaskHandler for Bound {
    async fn call(&self, call: &TaskCall) -> Result<Value, Failure> {
        let result = self.dispatch(call).await;
        // Structured log line per task, with the run and dataset ids (JSON with
        // SKEIN_LOG_FORMAT=json).
        let p = &call.payload;
        let under = |base: &str, k: &str| {
            p.pointer(&format!("{base}/{k}"))
                .and_then(Value::as_str)
                .unwrap_or("")
        };
        let base = match self.kind {
            Kind::Queue => "/MessageBody",
            Kind::Container => "/Overrides/ContainerOverrides/0",
            Kind::Child => "/Input",
            _ => "",
        };
        let (run_id, dataset) = (under(base, "runId"), under(base, "dataset"));
        match &result {
            Ok(_) => tracing::info!(run_id, dataset, state = %call.state, "task succeeded"),
            Err(f) => {
                tracing::warn!(run_id, dataset, state = %call.state, error = %f.error, "task failed")
            }
        }
        result
    }
}

impl Bound {
    async fn dispatch(&self, call: &TaskCall) -> Result<Value, Failure> {
        let l = &self.local;
        let c = l.catalog.as_ref();
        let p = &call.payload;
        match self.kind {
            Kind::Plan => l.plan(p).await,
            Kind::Catalog => l.catalog_action(call).await,
            Kind::Verify => tasks::verify_task(c, p).await.map_err(step_failure),
            Kind::Publish => tasks::publish_task(c, &l.settings, p)
                .await
                .map_err(step_failure),
            Kind::Rollback => {
                let undone = tasks::rollback_task(c, &l.settings, p)
                    .await
                    .map_err(step_failure)?;
                if let Some(v) = l.view() {
                    let RollbackPayload { dataset, .. } = decode("rollback", p)?;
                    let dataset = dataset.as_str();
                    let reason = undone.get("reason").and_then(Value::as_str);
                    v.finished(dataset, &l.group_of(dataset), reason);
                }
                Ok(undone)
            }
            Kind::Queue => l.enqueue(call).await,
            Kind::Child => l.child(call).await,
            Kind::Container => l.container(call).await,
        }
    }
}

pub(super) fn handlers(local: &Arc<Local>) -> Handlers {
    let mut h = Handlers::default();
    let bind = |kind| -> Arc<dyn TaskHandler> {
        Arc::new(Bound {
            local: local.clone(),
            kind,
        })
    };
    h.function("skein-plan", bind(Kind::Plan))
        .function("skein-catalog", bind(Kind::Catalog))
        .function("skein-verify", bind(Kind::Verify))
        .function("skein-publish", bind(Kind::Publish))
        .function("skein-rollback", bind(Kind::Rollback))
        .resource("arn:aws:states:::sqs:sendMessage", bind(Kind::Queue))
        .resource("arn:aws:states:::states:startExecution", bind(Kind::Child))
        .resource("arn:aws:states:::ecs:runTask", bind(Kind::Container));
    h
}
