//! `skein worker`: the migrate worker as a process, for jobs too large for a Lambda. The
//! same use case as the migrate function and the local pools
//! ([`skein_usecases::worker::Worker::work`]: heartbeat, reader slot, stage and verify,
//! answer the task token), with the adapters of where it runs:
//!
//! - `skein worker --job JSON` (or `SKEIN_JOB`, the token in `SKEIN_TASK_TOKEN`) works one
//!   job: what the Fargate task of `MigrateOnFargate` runs, and what `skein run` starts as
//!   a subprocess for the same state locally;
//! - `skein worker --queue GROUP` takes a group's jobs from its queue until stopped.
//!
//! Where: a deployed stack's catalog and Step Functions when `SKEIN_TABLE` is set (the
//! Fargate task's environment, as the functions') or with `--stack`; else the embedded
//! catalog directory (`--catalog`), whose engine store answers the token. SIGTERM (ECS
//! stops a task with it, and kills it 30 s later) stops the job: a `--job` job fails its
//! token with `Skein.Transient` so the state machine's retry runs it again; a `--queue`
//! job is given back to the queue.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use async_trait::async_trait;
use serde_json::Value;
use skein_core::callbacks::TaskCallbacks;
use skein_core::catalog::Catalog;
use skein_core::queue::{Delivery, Job, JobQueue};
use skein_core::slots::ReaderSlots;
use skein_usecases::worker::{Handled, InFlight, Worker};

use crate::flags::{Global, WorkerArgs};
use crate::{EXIT_DATASET_FAILED, EXIT_OK, EXIT_USAGE};

/// Between heartbeats of a working job (task token and queue visibility).
const HEARTBEAT: Duration = Duration::from_secs(60);
/// How long a job stays hidden in its queue while it works (extended by the heartbeat).
const VISIBILITY: Duration = Duration::from_secs(900);
/// Deliveries of the local queue before a job goes to the dead letters (as `skein run`).
const MAX_RECEIVES: u32 = 5;
/// A `--job` job whose catalog or callback failed before its token was answered is tried
/// this many times in the process before it gives up (the task's heartbeat timeout then
/// fails the state, and the state machine's retry starts a new task).
const JOB_TRIES: u32 = 5;

/// The ports a worker works through.
struct Ports {
    catalog: Arc<dyn Catalog>,
    callbacks: Arc<dyn TaskCallbacks>,
    slots: Arc<dyn ReaderSlots>,
    /// The group queues, for `--queue`.
    queue: Option<Arc<dyn JobQueue>>,
    place: String,
}

impl Ports {
    /// The worker use case over these ports.
    fn worker<'a>(
        &'a self,
        data: &'a skein_data::Settings,
        args: &WorkerArgs,
    ) -> Worker<'a, dyn Catalog> {
        Worker {
            catalog: self.catalog.as_ref(),
            callbacks: self.callbacks.clone(),
            slots: self.slots.as_ref(),
            data,
            allow_schema_change: args.allow_schema_change,
            heartbeat: HEARTBEAT,
            visibility: VISIBILITY,
            slot_wait: Duration::from_secs(30),
        }
    }
}

/// Reader slots of a process that is not the run's: a local `skein run` takes the slot
/// for the subprocess it starts (and holds it while the process works), so the process
/// itself never waits for one.
struct HeldByParent;

#[async_trait]
impl ReaderSlots for HeldByParent {
    async fn acquire(&self, _: &str, _: &str, _: u64) -> skein_core::Result<bool> {
        Ok(true)
    }

    async fn release(&self, _: &str, _: &str) -> skein_core::Result<()> {
        Ok(())
    }
}

async fn ports(g: &Global) -> anyhow::Result<Ports> {
    let table = std::env::var(skein_aws::lambda::TABLE_VAR)
        .ok()
        .filter(|t| !t.is_empty());
    if let Some(table) = table {
        // A Fargate task: the stack's catalog table and Step Functions, from the task's
        // environment and role, as the functions have them.
        let settings = skein_aws::AwsSettings::from_env();
        let catalog = Arc::new(skein_aws::DynamoCatalog::connect(&settings, &table).await);
        let queue: Option<Arc<dyn JobQueue>> = match std::env::var("SKEIN_QUEUE_URL_PREFIX") {
            Ok(prefix) if !prefix.is_empty() => Some(Arc::new(
                skein_aws::SqsQueue::connect(&settings, &prefix).await,
            )),
            _ => None,
        };
        return Ok(Ports {
            slots: catalog.clone(),
            callbacks: Arc::new(skein_aws::SfnCallbacks::connect(&settings).await),
            catalog,
            queue,
            place: format!("the catalog table {table}"),
        });
    }
    if let Some(name) = &g.stack {
        let deployed = crate::stack::connect(name).await?;
        let settings = skein_aws::AwsSettings::from_env();
        let queue: Option<Arc<dyn JobQueue>> = match deployed.outputs.get("MigrateQueueUrlPrefix") {
            Some(prefix) => Some(Arc::new(
                skein_aws::SqsQueue::connect(&settings, prefix).await,
            )),
            None => None,
        };
        let catalog = Arc::new(deployed.catalog);
        return Ok(Ports {
            slots: catalog.clone(),
            callbacks: Arc::new(deployed.callbacks),
            catalog,
            queue,
            place: format!("the stack {name}"),
        });
    }
    let dir = g.catalog_dir();
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the catalog directory {}", dir.display()))?;
    let store = skein_states::store::Store::open(&dir.join("states.db"))?;
    Ok(Ports {
        catalog: Arc::new(skein_embedded::SqliteCatalog::open(
            &dir.join("catalog.db"),
        )?),
        callbacks: Arc::new(skein_embedded::EngineCallbacks::new(store)),
        slots: Arc::new(HeldByParent),
        queue: Some(Arc::new(skein_embedded::SqliteQueue::open(
            &dir.join("queue.db"),
            MAX_RECEIVES,
        )?)),
        place: format!("the catalog {}", dir.display()),
    })
}

/// Data-plane settings: the flags, and inside an ECS task the task's memory
/// (`ECS_CONTAINER_METADATA_URI_V4`) unless `--memory-limit` / `SKEIN_MEMORY_LIMIT` says.
async fn settings(g: &Global) -> skein_data::Settings {
    let mut s = g.settings();
    let explicit = std::env::args().any(|a| a.starts_with("--memory-limit"))
        || std::env::var_os("SKEIN_MEMORY_LIMIT").is_some();
    if !explicit && let Some(mib) = task_memory_mib().await {
        // Half of the task's memory, as on Lambda: the rest is the runtime's, the Parquet
        // writers' buffers and the S3 client's (the pool bounds only what operators hold).
        s.memory_limit = skein_aws::functions::lambda_memory_pool(mib as usize);
        tracing::info!(
            task_memory_mib = mib,
            pool = s.memory_limit,
            "memory pool from the ECS task"
        );
    }
    s
}

/// The task's memory limit in MiB from the ECS task metadata endpoint (version 4,
/// <https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-metadata-endpoint-v4-fargate.html>):
/// `GET ${ECS_CONTAINER_METADATA_URI_V4}/task` answers `{"Limits": {"CPU": 4, "Memory": 16384}}`.
async fn task_memory_mib() -> Option<u64> {
    let base = std::env::var("ECS_CONTAINER_METADATA_URI_V4").ok()?;
    let body = tokio::time::timeout(Duration::from_secs(2), http_get(&format!("{base}/task")))
        .await
        .ok()??;
    let v: Value = serde_json::from_str(&body).ok()?;
    v.pointer("/Limits/Memory").and_then(Value::as_u64)
}

/// A plain `http://host:port/path` GET (the metadata endpoint is link-local HTTP): the
/// body of a 200 answer.
async fn http_get(url: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let mut stream = tokio::net::TcpStream::connect(authority).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.ok()?;
    let raw = String::from_utf8_lossy(&raw);
    let (head, body) = raw.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

/// The job of `--job` / `SKEIN_JOB`, its token from the job itself, `--task-token` or
/// `SKEIN_TASK_TOKEN`.
fn job_of(args: &WorkerArgs) -> Result<Job, String> {
    let raw = match (&args.job, std::env::var("SKEIN_JOB")) {
        (Some(j), _) => j.clone(),
        (None, Ok(j)) if !j.is_empty() => j,
        _ => return Err("give the job: --job JSON, or SKEIN_JOB in the environment".into()),
    };
    let mut v: Value =
        serde_json::from_str(&raw).map_err(|e| format!("the job is not JSON ({e}): {raw}"))?;
    let Some(fields) = v.as_object_mut() else {
        return Err(format!(
            "the job must be a JSON object such as {{\"dataset\": \"orders\", \"runId\": \"run-1\"}}, got {raw}"
        ));
    };
    if !fields.contains_key("taskToken") {
        let token = args
            .task_token
            .clone()
            .or_else(|| std::env::var("SKEIN_TASK_TOKEN").ok())
            .filter(|t| !t.is_empty())
            .ok_or(
                "no task token: put taskToken in the job, or give --task-token or SKEIN_TASK_TOKEN",
            )?;
        fields.insert("taskToken".into(), Value::String(token));
    }
    serde_json::from_value(v).map_err(|e| {
        format!("the job must have \"dataset\" and \"runId\" (strings): {e}; got {raw}")
    })
}

/// `skein worker`.
pub async fn run(g: &Global, args: &WorkerArgs) -> anyhow::Result<u8> {
    match (
        &args.queue,
        args.job.is_some() || std::env::var_os("SKEIN_JOB").is_some(),
    ) {
        (Some(_), true) => {
            eprintln!(
                "error: give either --job (one job) or --queue GROUP (a queue's jobs), not both"
            );
            Ok(EXIT_USAGE)
        }
        (Some(group), false) => queue(g, args, group).await,
        (None, _) => {
            let job = match job_of(args) {
                Ok(j) => j,
                Err(e) => {
                    eprintln!("error: {e}");
                    return Ok(EXIT_USAGE);
                }
            };
            one(g, args, job).await
        }
    }
}

/// One job (`--job`), until its token is answered.
async fn one(g: &Global, args: &WorkerArgs, job: Job) -> anyhow::Result<u8> {
    let ports = ports(g).await?;
    let data = settings(g).await;
    let worker = ports.worker(&data, args);
    if !g.quiet {
        eprintln!(
            "skein worker: dataset {} of run {} on {}",
            job.dataset, job.run_id, ports.place
        );
    }
    let started = Instant::now();
    let mut tries = 0;
    let mut term = terminate();
    loop {
        let worked = tokio::select! {
            w = worker.work(&job, Arc::new(NotQueued), Arc::new(skein_data::Progress::default())) => w,
            _ = &mut term => {
                // The task is being stopped: the state machine's retry runs the job again.
                let cause = format!(
                    "dataset `{}`: the worker was stopped (SIGTERM) before the job finished; it runs again",
                    job.dataset
                );
                let _ = ports.callbacks.fail(&job.task_token, skein_core::names::TRANSIENT, &cause).await;
                eprintln!("skein worker: stopped; {cause}");
                return Ok(EXIT_DATASET_FAILED);
            }
        };
        match worked.handled {
            Handled::Done => {
                let ok = worked.succeeded == Some(true);
                tracing::info!(
                    dataset = %job.dataset,
                    run_id = %job.run_id,
                    seconds = started.elapsed().as_secs_f64(),
                    ok,
                    "worker job finished"
                );
                if !g.quiet {
                    eprintln!(
                        "skein worker: {} {} in {:.1} s",
                        job.dataset,
                        match worked.succeeded {
                            Some(true) => "answered: succeeded",
                            Some(false) => "answered: failed",
                            None => "was answered already",
                        },
                        started.elapsed().as_secs_f64()
                    );
                }
                return Ok(if worked.succeeded == Some(false) {
                    EXIT_DATASET_FAILED
                } else {
                    EXIT_OK
                });
            }
            // No free reader slot: wait here (a task has nothing else to do).
            Handled::Wait { after } => tokio::time::sleep(after).await,
            Handled::Again { after } => {
                tries += 1;
                if tries >= JOB_TRIES {
                    eprintln!(
                        "error: dataset `{}`: the catalog or Step Functions failed {tries} times before the job's token was answered; giving up (the state's heartbeat timeout retries it)",
                        job.dataset
                    );
                    return Ok(EXIT_DATASET_FAILED);
                }
                tokio::time::sleep(after).await;
            }
        }
    }
}

/// A `--job` job came in no queue: nothing to keep hidden.
struct NotQueued;

#[async_trait]
impl InFlight for NotQueued {
    async fn keep_hidden(&self, _: Duration) {}
}

/// A job's delivery from a group queue (also the local pools'), kept hidden while it works.
pub(crate) struct Received {
    pub(crate) queue: Arc<dyn JobQueue>,
    pub(crate) delivery: Delivery,
}

#[async_trait]
impl InFlight for Received {
    async fn keep_hidden(&self, d: Duration) {
        if let Err(e) = self.queue.extend(&self.delivery, d.as_secs()).await {
            tracing::warn!(dataset = %self.delivery.job.dataset, "queue visibility: {e}");
        }
    }
}

/// A group's jobs (`--queue GROUP`), until SIGTERM or Ctrl-C (or, with `--until-idle
/// SECS`, until the queue has had nothing for that long).
async fn queue(g: &Global, args: &WorkerArgs, group: &str) -> anyhow::Result<u8> {
    let ports = ports(g).await?;
    let Some(queue) = ports.queue.clone() else {
        eprintln!(
            "error: {} names no queues (set SKEIN_QUEUE_URL_PREFIX, or use --stack NAME whose outputs have MigrateQueueUrlPrefix)",
            ports.place
        );
        return Ok(EXIT_USAGE);
    };
    let data = settings(g).await;
    let worker = ports.worker(&data, args);
    if !g.quiet {
        eprintln!(
            "skein worker: queue {group} on {}; SIGTERM or Ctrl-C stops",
            ports.place
        );
    }
    let mut term = terminate();
    let mut idle_since = Instant::now();
    let (mut done, mut failed) = (0u64, 0u64);
    loop {
        let received = tokio::select! {
            r = queue.receive(group, VISIBILITY.as_secs()) => r,
            _ = &mut term => break,
        };
        let delivery = match received {
            Ok(Some(d)) => d,
            Ok(None) => {
                if args
                    .until_idle
                    .is_some_and(|s| idle_since.elapsed() >= Duration::from_secs(s))
                {
                    break;
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    _ = &mut term => break,
                }
                continue;
            }
            Err(e) => {
                tracing::warn!("queue {group}: {e}");
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
        };
        let message = Arc::new(Received {
            queue: queue.clone(),
            delivery: delivery.clone(),
        });
        let job = &delivery.job;
        let worked = tokio::select! {
            w = worker.work(job, message, Arc::new(skein_data::Progress::default())) => w,
            _ = &mut term => {
                // Given back: visible again at once for another worker (the job only
                // stages, in its own attempt's directory, so nothing half-done is kept).
                let _ = queue.extend(&delivery, 0).await;
                eprintln!("skein worker: stopped; gave dataset {} back to queue {group}", job.dataset);
                break;
            }
        };
        match worked.handled {
            Handled::Done => {
                if let Err(e) = queue.delete(&delivery).await {
                    tracing::warn!(dataset = %job.dataset, "deleting a finished job: {e}");
                }
                match worked.succeeded {
                    Some(false) => failed += 1,
                    _ => done += 1,
                }
                if !g.quiet {
                    eprintln!(
                        "skein worker: {} {}",
                        job.dataset,
                        if worked.succeeded == Some(false) {
                            "failed"
                        } else {
                            "done"
                        }
                    );
                }
            }
            Handled::Again { after } | Handled::Wait { after } => {
                let _ = queue.extend(&delivery, after.as_secs().max(1)).await;
            }
        }
        idle_since = Instant::now();
    }
    if g.json {
        println!(
            "{}",
            serde_json::json!({"group": group, "jobs": done + failed, "failed": failed})
        );
    } else if !g.quiet {
        eprintln!(
            "skein worker: {} job(s) from {group}, {failed} failed",
            done + failed
        );
    }
    Ok(EXIT_OK)
}

/// Completes on SIGTERM or Ctrl-C.
fn terminate() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    Box::pin(async {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            match signal(SignalKind::terminate()) {
                Ok(mut t) => {
                    tokio::select! {
                        _ = t.recv() => {}
                        _ = tokio::signal::ctrl_c() => {}
                    }
                }
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    })
}
