//! The local worker pools: one per group, as many workers as the group's cap, each
//! draining the group's SQLite queue through the shared [`skein_usecases::worker`], with
//! the local adapters of its ports: the engine store answers task tokens, a semaphore
//! per source system gives reader slots, the queue keeps a job hidden.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use skein_core::queue::{Delivery, JobQueue};
use skein_usecases::worker::{Handled, Worker, dead_lettered};

use crate::worker::Received;

use super::bindings::{Local, VISIBILITY_SECS};

/// Between heartbeats of a working job (task token and queue visibility).
const HEARTBEAT: Duration = Duration::from_secs(30);
/// How long a job waits before it is tried again when it could not start.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// Between looks at a group's dead letters.
const DEAD_LETTER_SWEEP: Duration = Duration::from_secs(2);

/// A group's worker: takes jobs until the run stops. The group's first worker also
/// answers its dead letters (the local dead-letter consumer).
pub(super) async fn worker(local: Arc<Local>, group: String, sweeps: bool) {
    let mut swept = Instant::now();
    // Dead letters stay in the queue for people to see: answer each token once.
    let mut answered = std::collections::HashSet::new();
    while !local.stop.load(Ordering::Relaxed) {
        if sweeps && swept.elapsed() >= DEAD_LETTER_SWEEP {
            answer_dead_letters(&local, &group, &mut answered).await;
            swept = Instant::now();
        }
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
    let worker = Worker {
        catalog: local.catalog.as_ref(),
        callbacks: local.callbacks.clone(),
        slots: &local.slots,
        data: &local.settings,
        allow_schema_change: local.allow_schema_change,
        heartbeat: HEARTBEAT,
        visibility: Duration::from_secs(VISIBILITY_SECS),
        slot_wait: RETRY_AFTER,
    };
    let message = Arc::new(Received {
        queue: local.queue.clone() as Arc<dyn JobQueue>,
        delivery: d.clone(),
    });
    local.jobs.fetch_add(1, Ordering::Relaxed);
    let group_key = format!("group:{group}");
    local.peaks.enter(&group_key);
    let started = Instant::now();
    let worked = worker
        .work(&d.job, message, Arc::new(skein_data::Progress::default()))
        .await;
    local.peaks.leave(&group_key);
    local
        .work_nanos
        .fetch_add(worked.busy.as_nanos() as u64, Ordering::Relaxed);
    tracing::info!(
        run_id = %d.job.run_id,
        dataset = %d.job.dataset,
        group,
        seconds = started.elapsed().as_secs_f64(),
        ok = worked.succeeded == Some(true),
        "migrate job finished"
    );
    match worked.handled {
        Handled::Done => {
            let _ = local.queue.delete(&d).await;
        }
        Handled::Again { after } | Handled::Wait { after } => {
            let _ = local.queue.extend(&d, after.as_secs().max(1)).await;
        }
    }
}

/// Fails the token of every job of `group` in the dead letters with `Skein.DeadLettered`
/// (a token answered already is skipped), so its execution rolls back and ends.
async fn answer_dead_letters(
    local: &Arc<Local>,
    group: &str,
    answered: &mut std::collections::HashSet<String>,
) {
    let jobs = match local.queue.dead_letters(group).await {
        Ok(jobs) => jobs,
        Err(e) => {
            tracing::warn!("dead letters of {group}: {e}");
            return;
        }
    };
    for job in jobs {
        if answered.contains(&job.task_token) {
            continue;
        }
        let done = dead_lettered(
            local.catalog.as_ref(),
            local.callbacks.as_ref(),
            &job,
            Some(super::bindings::MAX_RECEIVES),
        )
        .await;
        match done {
            // Answered now, or no longer waiting: either way nothing more to do.
            Ok(_) => {
                answered.insert(job.task_token);
            }
            Err(e) => tracing::warn!(dataset = %job.dataset, "dead letter: {e}"),
        }
    }
}
