//! `skein run`, `plan`, `approve`, `reject`, `runs`: the migration state machines
//! (`state-machines/*.asl.json`) on the embedded engine, with every Task resource bound to
//! the use cases in `skein_usecases::steps` and the queue to local worker pools.
//!
//! Bindings (the same substitution names the SAM template uses):
//! - `${PlanFunctionArn}`, `${CatalogFunctionArn}`, `${VerifyFunctionArn}`,
//!   `${PublishFunctionArn}`, `${RollbackFunctionArn}` → in-process handlers;
//! - `sqs:sendMessage.waitForTaskToken` on `${MigrateQueueUrlPrefix}<group>` → the durable
//!   SQLite queue, drained by one worker pool per group (its concurrency cap); each job
//!   takes its source system's reader semaphore;
//! - `states:startExecution.sync:2` of `${DatasetMigrationStateMachineArn}` → a child
//!   execution named `<run>-<dataset>` in the same engine (started, resumed or re-read).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use async_trait::async_trait;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Value, json};
use skein_core::catalog::Catalog;
use skein_core::fleet::{Fleet, PlanItem, RunPlan};
use skein_core::queue::{Delivery, Job, JobQueue};
use skein_embedded::{SqliteCatalog, SqliteQueue};
use skein_states::engine::{Engine, Failure, Handlers, Options, TaskCall, TaskHandler};
use skein_states::store::{Store, TokenAnswer};
use skein_ui::actions::Decision;
use skein_usecases::lease::{self, Renewal};
use skein_usecases::steps::StepError;
use skein_usecases::tasks::{self, JobAnswer, names};
use tokio::sync::Semaphore;

use crate::flags::{Global, PlanArgs, RunArgs};
use crate::output;
use crate::{EXIT_DATASET_FAILED, EXIT_OK, EXIT_USAGE};

const RUN_MACHINE: &str = include_str!("../../state-machines/migration-run.asl.json");
const DATASET_MACHINE: &str = include_str!("../../state-machines/dataset-migration.asl.json");
const LAMBDA: &str = "arn:aws:lambda:local:000000000000:function:";
const DATASET_MACHINE_ARN: &str =
    "arn:aws:states:local:000000000000:stateMachine:dataset-migration";
const QUEUE_PREFIX: &str = "local://skein/migrate-";
/// Visibility timeout of a job; extended by the worker's heartbeat while it works.
const VISIBILITY_SECS: u64 = 900;
/// Deliveries before a job goes to the dead letters.
const MAX_RECEIVES: u32 = 5;

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
    })
}

fn definition(text: &str) -> anyhow::Result<Value> {
    let doc: Value = serde_json::from_str(text).context("a built-in state machine is not JSON")?;
    let mut missing = Vec::new();
    let doc = skein_states::cli::substitute(doc, &substitutions(), &mut missing);
    anyhow::ensure!(missing.is_empty(), "no local binding for {missing:?}");
    Ok(doc)
}

/// Highest concurrency seen per group and per source system, over the whole run: the
/// peaks are kept in a small file beside the catalog, so a resumed run reports the peaks
/// of every process that drove it, not only its own.
#[derive(Default)]
struct Peaks {
    inner: Mutex<BTreeMap<String, (u32, u32)>>,
    file: Option<PathBuf>,
}

impl Peaks {
    /// Peaks of `run_id`, starting from what earlier processes of the run recorded.
    fn of_run(catalog_dir: &Path, run_id: &str) -> Peaks {
        let file = catalog_dir.join("peaks").join(format!("{run_id}.json"));
        let saved: BTreeMap<String, u32> = std::fs::read(&file)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Peaks {
            inner: Mutex::new(saved.into_iter().map(|(k, p)| (k, (0, p))).collect()),
            file: Some(file),
        }
    }

    fn enter(&self, key: &str) {
        let mut m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let e = m.entry(key.to_string()).or_default();
        e.0 += 1;
        if e.0 > e.1 {
            e.1 = e.0;
            self.save(&m);
        }
    }

    fn leave(&self, key: &str) {
        let mut m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = m.get_mut(key) {
            e.0 = e.0.saturating_sub(1);
        }
    }

    fn peak(&self, key: &str) -> u32 {
        let m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        m.get(key).map(|e| e.1).unwrap_or(0)
    }

    /// Writes the peaks (a new peak is rare: at most the caps' sum of writes per run).
    /// Best effort: the figures are a report, never a reason to fail a run.
    fn save(&self, m: &BTreeMap<String, (u32, u32)>) {
        let Some(file) = &self.file else { return };
        let peaks: BTreeMap<&String, u32> = m.iter().map(|(k, e)| (k, e.1)).collect();
        let tmp = file.with_extension("json.tmp");
        let written = file
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&tmp, serde_json::to_vec(&peaks).unwrap_or_default()))
            .and_then(|()| std::fs::rename(&tmp, file));
        if let Err(e) = written {
            tracing::debug!("cannot keep the peaks in {}: {e}", file.display());
        }
    }
}

/// The live terminal view: overall, per wave (in the message), per group.
struct View {
    multi: MultiProgress,
    overall: ProgressBar,
    /// One bar per wave (the canary first), and which wave each dataset is in.
    waves: Vec<ProgressBar>,
    wave_of: HashMap<String, usize>,
    groups: HashMap<String, ProgressBar>,
    visible: bool,
}

impl View {
    fn new(plan: &RunPlan, hidden: bool) -> View {
        use std::io::IsTerminal;
        let visible = !hidden && std::io::stderr().is_terminal();
        let multi = MultiProgress::with_draw_target(if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        let style = ProgressStyle::with_template(
            "{prefix:>14.bold} [{bar:30}] {pos}/{len} {percent:>3}% {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        let overall = multi.add(ProgressBar::new(plan.total as u64));
        overall.set_style(style.clone());
        overall.set_prefix("run");
        let mut waves = Vec::new();
        let mut wave_of = HashMap::new();
        let mut named: Vec<(String, &[PlanItem])> = Vec::new();
        if !plan.canary.is_empty() {
            named.push(("canary".into(), &plan.canary));
        }
        for w in &plan.waves {
            named.push((format!("wave {}", w.index + 1), &w.datasets));
        }
        for (i, (name, items)) in named.iter().enumerate() {
            let bar = multi.add(ProgressBar::new(items.len() as u64));
            bar.set_style(style.clone());
            bar.set_prefix(name.clone());
            for item in items.iter() {
                wave_of.insert(item.dataset.clone(), i);
            }
            waves.push(bar);
        }
        let mut per_group: BTreeMap<&str, u64> = BTreeMap::new();
        for item in plan
            .canary
            .iter()
            .chain(plan.waves.iter().flat_map(|w| w.datasets.iter()))
        {
            *per_group.entry(item.group.as_str()).or_default() += 1;
        }
        let mut groups = HashMap::new();
        for (g, n) in per_group {
            let bar = multi.add(ProgressBar::new(n));
            bar.set_style(style.clone());
            bar.set_prefix(g.to_string());
            bar.set_message(format!("cap {}", plan.groups.get(g).copied().unwrap_or(0)));
            groups.insert(g.to_string(), bar);
        }
        View {
            multi,
            overall,
            waves,
            wave_of,
            groups,
            visible,
        }
    }

    fn finished(&self, dataset: &str, group: &str, failure: Option<&str>) {
        self.overall.inc(1);
        if let Some(bar) = self.wave_of.get(dataset).and_then(|i| self.waves.get(*i)) {
            bar.inc(1);
        }
        if let Some(bar) = self.groups.get(group) {
            bar.inc(1);
        }
        if let Some(reason) = failure {
            let line = format!("✗ {dataset}: {reason}");
            if self.visible {
                self.multi.suspend(|| eprintln!("{line}"));
            } else {
                eprintln!("{line}");
            }
        }
    }

    fn note(&self, line: &str) {
        if self.visible {
            self.multi.suspend(|| eprintln!("{line}"));
        } else {
            eprintln!("{line}");
        }
    }

    fn clear(&self) {
        self.overall.finish_and_clear();
        for b in &self.waves {
            b.finish_and_clear();
        }
        for b in self.groups.values() {
            b.finish_and_clear();
        }
        let _ = self.multi.clear();
    }
}

/// Everything the handlers share.
struct Local {
    catalog: Arc<SqliteCatalog>,
    queue: Arc<SqliteQueue>,
    store: Store,
    settings: skein_data::Settings,
    engine: OnceLock<Engine>,
    child_definition: Value,
    systems: HashMap<String, Arc<Semaphore>>,
    groups_of: Mutex<HashMap<String, String>>,
    peaks: Peaks,
    view: OnceLock<View>,
    auto_approve: bool,
    allow_schema_change: bool,
    stop: AtomicBool,
    jobs: AtomicU64,
    /// Nanoseconds spent in the data plane (migrate jobs), summed over workers.
    work_nanos: AtomicU64,
    /// Nanoseconds the Plan step took.
    plan_nanos: AtomicU64,
    /// The local stand-in for S3 (the catalog directory): buckets are directories in it.
    runs_root: PathBuf,
}

/// The bucket of the run item lists, locally a directory under the catalog.
const RUNS_BUCKET: &str = "skein-runs";

fn fail(e: impl std::fmt::Display) -> Failure {
    Failure::new(names::INTERNAL, e.to_string())
}

fn step_failure(e: StepError) -> Failure {
    Failure::new(&e.error, e.cause)
}

fn field<'a>(payload: &'a Value, name: &str) -> Result<&'a str, Failure> {
    tasks::field(payload, name).map_err(step_failure)
}

impl Local {
    fn view(&self) -> Option<&View> {
        self.view.get()
    }

    fn group_of(&self, dataset: &str) -> String {
        let m = self.groups_of.lock().unwrap_or_else(|p| p.into_inner());
        m.get(dataset).cloned().unwrap_or_else(|| "default".into())
    }

    async fn plan(&self, payload: &Value) -> Result<Value, Failure> {
        let started = Instant::now();
        let run_id = field(payload, "runId")?;
        let dir = PathBuf::from(field(payload, "specs")?);
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
        let mut p = call.payload.clone();
        // Summarise reads the run's datasets from the item lists Plan wrote.
        if let Some((bucket, keys)) = tasks::summarise_items(&p) {
            let mut texts = Vec::new();
            for key in keys {
                let path = self.runs_root.join(&bucket).join(&key);
                texts.push(std::fs::read_to_string(&path).map_err(|e| {
                    Failure::new(
                        names::STORAGE_ERROR,
                        format!("cannot read the run's items {}: {e}", path.display()),
                    )
                })?);
            }
            p["datasets"] = json!(tasks::datasets_of_items(&texts));
        }
        let p = &p;
        let answer = tasks::catalog_action(self.catalog.as_ref(), p)
            .await
            .map_err(step_failure)?;
        match field(p, "action")? {
            "awaitApproval" => {
                let dataset = field(p, "dataset")?;
                let token = field(p, "taskToken")?;
                if self.auto_approve {
                    let answer = TokenAnswer::Success(json!({"approvedBy": "--auto-approve"}));
                    self.store.answer_token(token, answer).map_err(fail)?;
                } else if let Some(v) = self.view() {
                    v.note(&format!(
                        "⏸ {dataset} is verified and waits for approval: run `skein approve {dataset}` or `skein reject {dataset} --reason …`"
                    ));
                }
            }
            "complete" => {
                let dataset = field(p, "dataset")?;
                if let Some(v) = self.view() {
                    v.finished(dataset, &self.group_of(dataset), None);
                }
            }
            _ => {}
        }
        Ok(answer)
    }

    async fn child(&self, call: &TaskCall) -> Result<Value, Failure> {
        let p = &call.payload;
        let name = field(p, "Name")?;
        let input = p.get("Input").cloned().unwrap_or(json!({}));
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
        if outcome.status == "SUCCEEDED" {
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
        let p = &call.payload;
        let url = field(p, "QueueUrl")?;
        let group = url.strip_prefix(QUEUE_PREFIX).ok_or_else(|| {
            Failure::new(
                "Skein.BadRequest",
                format!("queue `{url}` is not a local skein queue"),
            )
        })?;
        let body = p.get("MessageBody").cloned().unwrap_or(json!({}));
        // The body is the job itself (`chunk` and `step` included), as SQS would carry it.
        let job: Job = serde_json::from_value(body.clone()).map_err(|e| {
            Failure::new(
                "Skein.BadRequest",
                format!("a migrate job must be {{\"dataset\", \"runId\", \"taskToken\"}}: {e}; got {body}"),
            )
        })?;
        self.queue.send(group, &job).await.map_err(fail)?;
        Ok(json!({"MessageId": job.task_token}))
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
                    let dataset = field(p, "dataset")?;
                    let reason = undone.get("reason").and_then(Value::as_str);
                    v.finished(dataset, &l.group_of(dataset), reason);
                }
                Ok(undone)
            }
            Kind::Queue => l.enqueue(call).await,
            Kind::Child => l.child(call).await,
        }
    }
}

fn handlers(local: &Arc<Local>) -> Handlers {
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
        .resource("arn:aws:states:::states:startExecution", bind(Kind::Child));
    h
}

/// A group's worker: takes jobs, migrates (stage + verify), answers the task token.
async fn worker(local: Arc<Local>, group: String) {
    while !local.stop.load(Ordering::Relaxed) {
        match local.queue.receive(&group, VISIBILITY_SECS).await {
            Ok(Some(d)) => work(&local, &group, d).await,
            Ok(None) => local.queue.wait_for_job(Duration::from_millis(100)).await,
            Err(e) => {
                tracing::warn!("queue {group}: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

async fn work(local: &Arc<Local>, group: &str, d: Delivery) {
    let token = d.job.task_token.clone();
    // A redelivered job whose token was answered is done; only the delete was lost.
    if let Ok(Some(t)) = local.store.token(&token)
        && t.status != "waiting"
    {
        let _ = local.queue.delete(&d).await;
        return;
    }
    local.jobs.fetch_add(1, Ordering::Relaxed);
    let started = Instant::now();
    let answer = migrate_job(local, group, &d).await;
    tracing::info!(
        run_id = %d.job.run_id,
        dataset = %d.job.dataset,
        group,
        seconds = started.elapsed().as_secs_f64(),
        ok = matches!(answer, TokenAnswer::Success(_)),
        "migrate job finished"
    );
    if let Err(e) = local.store.answer_token(&token, answer) {
        tracing::warn!("job {}: {e}", d.job.dataset);
    }
    let _ = local.queue.delete(&d).await;
}

/// The shared migrate job, wrapped in what the local fleet adds: the per-system reader
/// semaphore, the peak counters, and heartbeats (queue visibility and task token).
async fn migrate_job(local: &Arc<Local>, group: &str, d: &Delivery) -> TokenAnswer {
    let c = local.catalog.as_ref();
    let system = match c.dataset(&d.job.dataset).await {
        Ok(r) => r.and_then(|r| r.spec.spec.source.system),
        Err(e) => {
            return TokenAnswer::Failure {
                error: names::TRANSIENT.into(),
                cause: e.to_string(),
            };
        }
    };
    let permit = match system.as_ref().and_then(|s| local.systems.get(s)) {
        Some(sem) => sem.clone().acquire_owned().await.ok(),
        None => None,
    };
    let group_key = format!("group:{group}");
    let system_key = system.as_ref().map(|s| format!("system:{s}"));
    local.peaks.enter(&group_key);
    if let Some(k) = &system_key {
        local.peaks.enter(k);
    }
    // Heartbeat: keep the job hidden and tell the state machine the worker is alive.
    let beat = {
        let local = local.clone();
        let d = d.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(30)).await;
                let _ = local.queue.extend(&d, VISIBILITY_SECS).await;
                let _ = local
                    .store
                    .answer_token(&d.job.task_token, TokenAnswer::Heartbeat);
            }
        })
    };
    let started = Instant::now();
    let answer = tasks::migrate_job(
        c,
        &local.settings,
        &d.job,
        local.allow_schema_change,
        Arc::new(skein_data::Progress::default()),
    )
    .await;
    local
        .work_nanos
        .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
    beat.abort();
    if let Some(k) = &system_key {
        local.peaks.leave(k);
    }
    local.peaks.leave(&group_key);
    drop(permit);
    match answer {
        JobAnswer::Success { output } => TokenAnswer::Success(output),
        JobAnswer::Failure { error, cause } => TokenAnswer::Failure { error, cause },
    }
}

fn open_all(g: &Global) -> anyhow::Result<(Arc<SqliteCatalog>, Arc<SqliteQueue>, Store)> {
    let dir = g.catalog_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let catalog = Arc::new(crate::datasets::open_catalog(g)?);
    let queue = Arc::new(SqliteQueue::open(&dir.join("queue.db"), MAX_RECEIVES)?);
    let store = Store::open(&dir.join("states.db"))?;
    Ok((catalog, queue, store))
}

/// Specs and fleet of a directory, or the problems (exit 2).
fn load_plan(dir: &Path) -> Result<RunPlan, Vec<skein_core::Problem>> {
    let loaded = skein_core::load::load(dir);
    let mut problems = loaded.problems;
    let fleet = Fleet::load(dir).unwrap_or_else(|p| {
        problems.extend(p);
        Fleet::default()
    });
    if !problems.is_empty() {
        return Err(problems);
    }
    let specs: Vec<&skein_core::DatasetSpec> = loaded.files.iter().map(|f| &f.spec).collect();
    Ok(skein_core::fleet::plan(&specs, &fleet))
}

/// `skein plan DIR`.
pub async fn plan(g: &Global, args: &PlanArgs) -> anyhow::Result<u8> {
    let plan = match load_plan(&args.dir) {
        Ok(p) => p,
        Err(problems) => {
            output::problems(&problems);
            return Ok(EXIT_USAGE);
        }
    };
    if g.json {
        println!("{}", serde_json::to_string(&plan)?);
        return Ok(EXIT_OK);
    }
    let describe = |i: &PlanItem| {
        let mut s = format!("{} ({}, {}", i.dataset, i.group, i.criticality);
        if let Some(sys) = &i.system {
            s.push_str(&format!(", reads {sys}"));
        }
        if i.needs_approval {
            s.push_str(", needs approval");
        }
        s.push(')');
        s
    };
    println!(
        "{} dataset(s); up to {} at a time; a wave tolerates {}% failures",
        plan.total, plan.max_concurrency, plan.tolerated_failure_percentage
    );
    if plan.canary.is_empty() {
        println!("canary: none");
    } else {
        println!("canary (runs first; a failure stops the run):");
        for i in &plan.canary {
            println!("  {}", describe(i));
        }
    }
    for w in &plan.waves {
        println!("wave {}:", w.index + 1);
        for i in &w.datasets {
            println!("  {}", describe(i));
        }
    }
    let caps = |m: &BTreeMap<String, u32>| {
        m.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!("group caps: {}", caps(&plan.groups));
    println!(
        "reader caps: {}",
        if plan.systems.is_empty() {
            "none".into()
        } else {
            caps(&plan.systems)
        }
    );
    Ok(EXIT_OK)
}

/// `skein run DIR`.
pub async fn run(g: &Global, args: &RunArgs) -> anyhow::Result<u8> {
    let (catalog, queue, store) = open_all(g)?;
    // Which run: explicit, an unfinished one of the same directory, or a new one.
    let mut resume: Option<String> = args.resume.clone();
    let dir = match (&args.dir, &resume) {
        (Some(d), _) => std::fs::canonicalize(d)
            .with_context(|| format!("{} is not a directory of specs", d.display()))?,
        (None, Some(r)) => {
            let exec = store
                .execution(r)?
                .with_context(|| format!("run `{r}` is not in {}", g.catalog_dir().display()))?;
            PathBuf::from(
                exec.input
                    .get("specs")
                    .and_then(Value::as_str)
                    .unwrap_or("."),
            )
        }
        (None, None) => anyhow::bail!("give a directory of specs, or --resume RUN"),
    };
    // One driver per directory: a second `skein run` of it is refused here, naming the
    // first, before it reads or re-queues anything.
    let dir_key = lease::dir_key(&dir);
    let mut claimed = lease::claim(catalog.as_ref(), &dir_key, "", args.takeover).await;
    if args.wait && driven_by_another(&claimed) {
        if let Some(code) = attach(g, catalog.as_ref(), &dir_key).await? {
            return Ok(code);
        }
        claimed = lease::claim(catalog.as_ref(), &dir_key, "", args.takeover).await;
    }
    if let Some(code) = refused(g, claimed)? {
        return Ok(code);
    }
    if resume.is_none() && !args.new {
        for r in catalog.runs().await? {
            // The engine's execution decides, not the run record: a run killed after its
            // Summarise step has a finished record but a running execution.
            if let Some(e) = store.execution(&r.run_id)?
                && e.status == "RUNNING"
                && e.input.get("specs").and_then(Value::as_str) == Some(&dir.display().to_string())
            {
                resume = Some(r.run_id.clone());
                break;
            }
        }
    }
    let plan = match load_plan(&dir) {
        Ok(p) => p,
        Err(problems) => {
            output::problems(&problems);
            return Ok(EXIT_USAGE);
        }
    };
    let run_id = resume.clone().unwrap_or_else(skein_usecases::new_run_id);
    let run_key = lease::run_key(&run_id);
    if let Some(code) = refused(
        g,
        lease::claim(catalog.as_ref(), &run_key, &run_id, args.takeover).await,
    )? {
        catalog.release_driver(&dir_key, &lease::me("")).await?;
        return Ok(code);
    }
    lease::claim(catalog.as_ref(), &dir_key, &run_id, false).await?;
    let renewal = Renewal::start(catalog.clone(), vec![dir_key, run_key], &run_id);
    if !g.json && !g.quiet {
        let verb = if resume.is_some() {
            "resuming"
        } else {
            "starting"
        };
        eprintln!(
            "{verb} run {run_id}: {} dataset(s), canary {}, {} wave(s); catalog {}",
            plan.total,
            plan.canary.len(),
            plan.waves.len(),
            g.catalog_dir().display()
        );
    }
    // Workers of a killed process are gone: their jobs are visible again now.
    queue.release_in_flight()?;
    let systems = plan
        .systems
        .iter()
        .map(|(k, v)| (k.clone(), Arc::new(Semaphore::new(*v as usize))))
        .collect();
    let local = Arc::new(Local {
        catalog: catalog.clone(),
        queue: queue.clone(),
        store: store.clone(),
        settings: g.settings(),
        engine: OnceLock::new(),
        child_definition: definition(DATASET_MACHINE)?,
        systems,
        groups_of: Mutex::new(HashMap::new()),
        peaks: Peaks::of_run(&g.catalog_dir(), &run_id),
        view: OnceLock::new(),
        auto_approve: args.auto_approve,
        allow_schema_change: args.allow_schema_change,
        stop: AtomicBool::new(false),
        jobs: AtomicU64::new(0),
        work_nanos: AtomicU64::new(0),
        plan_nanos: AtomicU64::new(0),
        runs_root: g.catalog_dir(),
    });
    {
        let mut m = local.groups_of.lock().unwrap_or_else(|p| p.into_inner());
        for item in plan
            .canary
            .iter()
            .chain(plan.waves.iter().flat_map(|w| w.datasets.iter()))
        {
            m.insert(item.dataset.clone(), item.group.clone());
        }
    }
    let _ = local.view.set(View::new(&plan, g.json || g.quiet));
    let engine = Engine::new(
        store.clone(),
        handlers(&local),
        Options {
            s3_root: g.catalog_dir(),
            ..Options::default()
        },
    );
    let _ = local.engine.set(engine.clone());
    let mut workers = Vec::new();
    for (group, cap) in &plan.groups {
        for _ in 0..*cap {
            workers.push(tokio::spawn(worker(local.clone(), group.clone())));
        }
    }
    let started = Instant::now();
    // A resumed run's time counts from the run's start, not this process's.
    let run_started = match &resume {
        Some(id) => store
            .execution(id)?
            .and_then(|e| chrono::DateTime::parse_from_rfc3339(&e.started_at).ok())
            .map(|t| chrono::Utc::now().signed_duration_since(t)),
        None => None,
    };
    let outcome = match &resume {
        Some(id) if store.execution(id)?.is_some_and(|e| e.status == "RUNNING") => {
            engine.resume(id).await?
        }
        Some(id) => anyhow::bail!("run `{id}` already ended; start a new one with `skein run DIR`"),
        None => {
            let input = json!({"runId": run_id, "specs": dir.display().to_string()});
            engine
                .run_named(
                    &run_id,
                    "migration-run",
                    definition(RUN_MACHINE)?,
                    input,
                    Value::Null,
                )
                .await?
        }
    };
    local.stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.await;
    }
    if let Some(v) = local.view() {
        v.clear();
    }
    let this_process = started.elapsed();
    let (took, this) = match run_started.and_then(|d| d.to_std().ok()) {
        Some(total) if total > this_process => (total, Some(this_process)),
        _ => (this_process, None),
    };
    let code = report(g, &local, &plan, &run_id, &outcome, took, this).await;
    renewal.release(catalog.as_ref()).await?;
    code
}

fn driven_by_another(claimed: &skein_usecases::Result<skein_core::catalog::Driver>) -> bool {
    matches!(
        claimed,
        Err(skein_usecases::Error::Catalog(
            skein_core::Error::DriverHeld { .. }
        ))
    )
}

/// `skein run --wait` while another process drives the directory: follows its run's
/// counters read-only until the driver lets go. `Some(exit code)` when that run finished
/// (0 succeeded, 1 failed; nothing more is run); `None` when its driver died first (the
/// caller takes over and resumes the run).
async fn attach(g: &Global, catalog: &SqliteCatalog, key: &str) -> anyhow::Result<Option<u8>> {
    let mut last = String::new();
    let mut run_id = String::new();
    while let Some(d) = catalog.driver(key).await? {
        if lease::gone(&d) || lease::expired(&d) {
            break;
        }
        if !d.run_id.is_empty() {
            run_id = d.run_id.clone();
        }
        if let Some(r) = catalog.run(&d.run_id).await? {
            let line = format!(
                "waiting: run {} is driven by pid {} on host `{}`: {} of {} dataset(s) done, {} failed",
                r.run_id,
                d.pid,
                d.host,
                r.succeeded + r.failed,
                r.total,
                r.failed
            );
            if line != last && !g.quiet && !g.json {
                eprintln!("{line}");
            }
            last = line;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let Some(run) = catalog
        .run(&run_id)
        .await?
        .filter(|r| r.finished_at.is_some())
    else {
        return Ok(None);
    };
    let ok = run.status == "succeeded";
    if g.json {
        println!(
            "{}",
            json!({"runId": run.run_id, "ok": ok, "attached": true, "run": run})
        );
    } else {
        println!(
            "run {} {}: {} dataset(s), {} completed, {} failed (driven by another process; `skein status` has the details)",
            run.run_id, run.status, run.total, run.succeeded, run.failed
        );
    }
    Ok(Some(if ok { EXIT_OK } else { EXIT_DATASET_FAILED }))
}

/// `Some(exit code)` when another process drives the run or the directory: says who, and
/// that nothing ran (exit 2).
fn refused(
    g: &Global,
    claimed: skein_usecases::Result<skein_core::catalog::Driver>,
) -> anyhow::Result<Option<u8>> {
    match claimed {
        Ok(_) => Ok(None),
        Err(skein_usecases::Error::Catalog(e))
            if matches!(e, skein_core::Error::DriverHeld { .. }) =>
        {
            if g.json {
                let driver = match &e {
                    skein_core::Error::DriverHeld {
                        run_id, pid, host, ..
                    } => json!({"runId": run_id, "pid": pid, "host": host}),
                    _ => Value::Null,
                };
                println!(
                    "{}",
                    json!({"ok": false, "error": "Skein.DriverHeld", "message": e.to_string(),
                           "driver": driver})
                );
            }
            eprintln!("error: {e}");
            Ok(Some(EXIT_USAGE))
        }
        Err(e) => Err(e.into()),
    }
}

async fn report(
    g: &Global,
    local: &Local,
    plan: &RunPlan,
    run_id: &str,
    outcome: &skein_states::engine::Outcome,
    took: Duration,
    this_process: Option<Duration>,
) -> anyhow::Result<u8> {
    let c = local.catalog.as_ref();
    let items: Vec<&PlanItem> = plan
        .canary
        .iter()
        .chain(plan.waves.iter().flat_map(|w| w.datasets.iter()))
        .collect();
    let mut rows = Vec::new();
    let mut datasets = Vec::new();
    let mut by_status: BTreeMap<String, usize> = BTreeMap::new();
    for i in &items {
        let r = c.dataset(&i.dataset).await?;
        let (status, version, count, mut reason) = match &r {
            Some(r) => (
                r.status.to_string(),
                r.current_version,
                r.rows,
                r.reason.clone(),
            ),
            None => ("not registered".into(), None, None, None),
        };
        // A completed dataset this run did not touch was up to date: say so rather than
        // repeat the reason of the run that published it.
        if let Some(r) = &r
            && r.status == skein_core::Status::Completed
            && !c
                .history(&i.dataset)
                .await?
                .iter()
                .any(|h| h.run_id.as_deref() == Some(run_id))
        {
            reason = Some(match r.current_version {
                Some(v) => format!("up to date (v{v})"),
                None => "up to date".into(),
            });
        }
        *by_status.entry(status.clone()).or_default() += 1;
        rows.push(vec![
            i.dataset.clone(),
            i.group.clone(),
            status.clone(),
            version
                .map(|v| format!("v{v}"))
                .unwrap_or_else(|| "-".into()),
            count.map(output::count).unwrap_or_else(|| "-".into()),
            reason.clone().unwrap_or_default(),
        ]);
        datasets.push(
            json!({"dataset": i.dataset, "group": i.group, "status": status, "version": version,
                             "rows": count, "reason": reason}),
        );
    }
    let cap_report = |caps: &BTreeMap<String, u32>, prefix: &str| -> BTreeMap<String, Value> {
        caps.iter()
            .map(|(k, cap)| {
                (
                    k.clone(),
                    json!({"cap": cap, "peak": local.peaks.peak(&format!("{prefix}:{k}"))}),
                )
            })
            .collect()
    };
    let summary = match outcome.status.as_str() {
        "SUCCEEDED" => outcome.output.clone().unwrap_or(Value::Null),
        _ => match c.run(run_id).await? {
            Some(r) => {
                json!({"runId": r.run_id, "status": r.status, "total": r.total, "completed": r.succeeded, "failed": r.failed})
            }
            None => Value::Null,
        },
    };
    let ok = outcome.status == "SUCCEEDED"
        && summary.get("status").and_then(Value::as_str) == Some("succeeded");
    // Engine overhead: wall time beyond the data plane's share (its time summed over the
    // jobs, divided by the workers that could run at once), per dataset.
    let workers = plan
        .groups
        .values()
        .sum::<u32>()
        .min(plan.max_concurrency)
        .max(1) as f64;
    let work = local.work_nanos.load(Ordering::Relaxed) as f64 / 1e9;
    let wall = took.as_secs_f64();
    let overhead_ms = if items.is_empty() {
        0.0
    } else {
        (wall - work / workers).max(0.0) * 1000.0 / items.len() as f64
    };
    let timing = json!({
        "wallSeconds": wall,
        "planSeconds": local.plan_nanos.load(Ordering::Relaxed) as f64 / 1e9,
        "dataPlaneSeconds": work,
        "jobs": local.jobs.load(Ordering::Relaxed),
        "parallelWorkers": workers,
        "engineOverheadMsPerDataset": overhead_ms,
    });
    if g.json {
        let quotas = headroom(local, run_id, &items)?;
        println!(
            "{}",
            json!({
                "quotas": quotas,
                "runId": run_id,
                "ok": ok,
                "execution": {"status": outcome.status, "error": outcome.error, "cause": outcome.cause, "executionArn": outcome.execution_arn},
                "summary": summary,
                "datasets": datasets,
                "caps": {"groups": cap_report(&plan.groups, "group"), "systems": cap_report(&plan.systems, "system")},
                "seconds": took.as_secs_f64(),
                "timing": timing,
            })
        );
    } else {
        output::table(
            &["DATASET", "GROUP", "STATUS", "VERSION", "ROWS", "REASON"],
            &rows,
        );
        let peaks = |caps: &BTreeMap<String, u32>, prefix: &str| {
            caps.iter()
                .map(|(k, cap)| format!("{k} {}/{cap}", local.peaks.peak(&format!("{prefix}:{k}"))))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!(
            "peak concurrency: groups {}; readers {}",
            peaks(&plan.groups, "group"),
            if plan.systems.is_empty() {
                "none".into()
            } else {
                peaks(&plan.systems, "system")
            }
        );
        // The counts are the table's statuses, so the line and the rows above it agree
        // whether the run ended through Summarise or stopped before it.
        let count = |k: &str| by_status.get(k).copied().unwrap_or(0);
        let mut line = format!(
            "run {run_id} {}: {} dataset(s), {} completed, {} failed, {} rolled back",
            if ok { "succeeded" } else { "failed" },
            items.len(),
            count("completed"),
            count("failed"),
            count("rolled_back"),
        );
        let others: usize = by_status
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "completed" | "failed" | "rolled_back"))
            .map(|(_, n)| n)
            .sum();
        if others > 0 {
            line.push_str(&format!(", {others} not finished"));
        }
        if let Some(e) = &outcome.error {
            line.push_str(&format!(" — stopped: {e}"));
        }
        line.push_str(&format!(" in {:.1}s", took.as_secs_f64()));
        if let Some(this) = this_process {
            line.push_str(&format!(" ({:.1}s in this process)", this.as_secs_f64()));
        }
        println!("{line}");
    }
    Ok(if ok { EXIT_OK } else { EXIT_DATASET_FAILED })
}

/// How close the run came to AWS's quotas: the run execution's headroom, and the largest
/// event count and payload over its datasets' executions.
fn headroom(local: &Local, run_id: &str, items: &[&PlanItem]) -> anyhow::Result<Value> {
    use skein_states::quotas::headroom as of;
    let run = of(&local.store.events(run_id)?);
    let mut most_events = (0u64, String::new());
    let mut largest = (0usize, String::new(), None::<String>);
    for i in items {
        let name = skein_core::fleet::execution_name(run_id, &i.dataset);
        let h = of(&local.store.events(&name)?);
        if h.events > most_events.0 {
            most_events = (h.events, name.clone());
        }
        if h.largest_payload_bytes > largest.0 {
            largest = (h.largest_payload_bytes, name, h.largest_payload_state);
        }
    }
    Ok(json!({
        "run": run,
        "datasets": {
            "mostEvents": most_events.0,
            "mostEventsExecution": most_events.1,
            "largestPayloadBytes": largest.0,
            "largestPayloadExecution": largest.1,
            "largestPayloadState": largest.2,
        },
        "maxEvents": skein_states::quotas::MAX_HISTORY_EVENTS,
        "maxPayloadBytes": skein_states::quotas::MAX_PAYLOAD_BYTES,
    }))
}

/// `skein approve` / `skein reject`: the same action as the dashboard's buttons.
pub async fn answer(g: &Global, dataset: &str, reject: Option<&str>) -> anyhow::Result<u8> {
    let (catalog, _, store) = open_all(g)?;
    let decision = match reject {
        None => Decision::Approve,
        Some(reason) => Decision::Reject { reason },
    };
    let answered = match skein_ui::actions::answer_approval(
        catalog.as_ref(),
        &store,
        dataset,
        decision,
        &whoami(),
    )
    .await
    {
        Ok(a) => a,
        Err(e @ (skein_ui::Error::NotWaiting { .. } | skein_ui::Error::UnknownDataset { .. })) => {
            eprintln!("error: {e}");
            return Ok(EXIT_USAGE);
        }
        // Another run holds the dataset: refused, nothing changed, but not a usage error.
        Err(e @ skein_ui::Error::LeaseHeld { .. }) => {
            eprintln!("error: {e}");
            return Ok(EXIT_DATASET_FAILED);
        }
        Err(e) => return Err(e.into()),
    };
    if g.json {
        println!(
            "{}",
            json!({"dataset": dataset, "answer": answered.answer, "execution": answered.execution})
        );
    } else {
        println!(
            "{} {dataset}; its run continues (a run that is not running continues with `skein run --resume`)",
            answered.answer
        );
    }
    Ok(EXIT_OK)
}

fn whoami() -> String {
    std::env::var("USER").unwrap_or_else(|_| "someone".into())
}

/// `skein runs`.
pub async fn runs(g: &Global) -> anyhow::Result<u8> {
    let catalog = crate::datasets::open_catalog(g)?;
    let runs = catalog.runs().await?;
    if g.json {
        println!("{}", json!({ "runs": runs }));
        return Ok(EXIT_OK);
    }
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            vec![
                r.run_id.clone(),
                r.status.clone(),
                r.started_at.clone(),
                r.finished_at.clone().unwrap_or_else(|| "-".into()),
                r.total.to_string(),
                r.succeeded.to_string(),
                r.failed.to_string(),
            ]
        })
        .collect();
    output::table(
        &[
            "RUN",
            "STATUS",
            "STARTED",
            "FINISHED",
            "DATASETS",
            "COMPLETED",
            "FAILED",
        ],
        &rows,
    );
    Ok(EXIT_OK)
}
