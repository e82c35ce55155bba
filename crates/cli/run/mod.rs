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
//!
//! # Layout
//! `progress` (the live view, the peaks) ← `slots` (reader slots) ← `bindings` (the Task
//! resources) ← `pool` (the worker pools) ← `summary` (the end of a run) ← this module
//! (the commands).

mod bindings;
mod pool;
mod progress;
mod slots;
mod summary;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};
use skein_core::callbacks::TaskCallbacks;
use skein_core::catalog::Catalog;
use skein_core::fleet::{Fleet, PlanItem, RunPlan};
use skein_core::names;
use skein_embedded::{EngineCallbacks, SqliteCatalog, SqliteQueue};
use skein_states::engine::{Engine, Options};
use skein_states::status::ExecutionStatus;
use skein_states::store::Store;
use skein_usecases::lease::{self, Renewal};
use skein_usecases::operator::{self, Decision};

use crate::flags::{Global, PlanArgs, RunArgs};
use crate::output;
use crate::{EXIT_DATASET_FAILED, EXIT_OK, EXIT_USAGE};
use bindings::{DATASET_MACHINE, Local, MAX_RECEIVES, RUN_MACHINE, definition, handlers};
use pool::worker;
use progress::{Peaks, View};
use slots::LocalSlots;
use summary::report;

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
    problems.extend(fleet.check_specs(&loaded.files));
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
    if g.stack.is_some() {
        return crate::stack::run(g, args).await;
    }
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
                && e.status == ExecutionStatus::Running
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
    let peaks = Arc::new(Peaks::of_run(&g.catalog_dir(), &run_id));
    let local = Arc::new(Local {
        catalog: catalog.clone(),
        queue: queue.clone(),
        store: store.clone(),
        callbacks: Arc::new(EngineCallbacks::new(store.clone())),
        settings: g.settings(),
        engine: OnceLock::new(),
        child_definition: definition(DATASET_MACHINE)?,
        slots: LocalSlots::new(&plan.systems, peaks.clone()),
        groups_of: Mutex::new(HashMap::new()),
        peaks,
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
        for i in 0..*cap {
            workers.push(tokio::spawn(worker(local.clone(), group.clone(), i == 0)));
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
        Some(id)
            if store
                .execution(id)?
                .is_some_and(|e| e.status == ExecutionStatus::Running) =>
        {
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
    let ok = run.status == skein_core::catalog::RunStatus::Succeeded;
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
                    json!({"ok": false, "error": names::DRIVER_HELD, "message": e.to_string(),
                           "driver": driver})
                );
            }
            eprintln!("error: {e}");
            Ok(Some(EXIT_USAGE))
        }
        Err(e) => Err(e.into()),
    }
}

/// `skein approve` / `skein reject`: the same action as the dashboard's buttons.
pub async fn answer(g: &Global, dataset: &str, reject: Option<&str>) -> anyhow::Result<u8> {
    let decision = match reject {
        None => Decision::Approve,
        Some(reason) => Decision::Reject { reason },
    };
    // On a deployed stack: its catalog, and the token answered through Step Functions.
    let (catalog, callbacks): (Box<dyn Catalog>, Box<dyn TaskCallbacks>) = match &g.stack {
        Some(name) => {
            let deployed = crate::stack::connect(name).await?;
            (Box::new(deployed.catalog), Box::new(deployed.callbacks))
        }
        None => {
            let (_, _, store) = open_all(g)?;
            let catalog = crate::datasets::open_catalog(g)?;
            (Box::new(catalog), Box::new(EngineCallbacks::new(store)))
        }
    };
    let answered = match operator::answer_approval(
        catalog.as_ref(),
        callbacks.as_ref(),
        dataset,
        decision,
        &whoami(),
    )
    .await
    {
        Ok(a) => a,
        Err(e @ (operator::Error::NotWaiting { .. } | operator::Error::UnknownDataset { .. })) => {
            eprintln!("error: {e}");
            return Ok(EXIT_USAGE);
        }
        // Another run holds the dataset: refused, nothing changed, but not a usage error.
        Err(e @ operator::Error::LeaseHeld { .. }) => {
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
    let catalog = crate::datasets::operator_catalog(g).await?;
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
                r.status.to_string(),
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
