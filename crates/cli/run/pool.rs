//! The local worker pools: one per group, as many workers as the group's cap, each
//! draining the group's SQLite queue through the shared [`skein_usecases::worker`], with
//! the local adapters of its ports: the engine store answers task tokens, a semaphore
//! per source system gives reader slots, the queue keeps a job hidden.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use skein_core::queue::{Delivery, JobQueue};
use skein_core::slots::ReaderSlots;
use skein_embedded::SqliteQueue;
use skein_usecases::worker::{Handled, InFlight, Worker};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::bindings::{Local, VISIBILITY_SECS};
use super::progress::Peaks;

/// Between heartbeats of a working job (task token and queue visibility).
const HEARTBEAT: Duration = Duration::from_secs(30);
/// How long a job waits before it is tried again when it could not start.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// Source-system reader slots in this process: a semaphore per capped system (the
/// fleet's `maxReaders`); every taken slot counts toward the system's peak.
pub(super) struct LocalSlots {
    systems: HashMap<String, Arc<Semaphore>>,
    held: Mutex<HashMap<String, Option<OwnedSemaphorePermit>>>,
    peaks: Arc<Peaks>,
}

impl LocalSlots {
    pub(super) fn new(caps: &std::collections::BTreeMap<String, u32>, peaks: Arc<Peaks>) -> Self {
        let systems = caps
            .iter()
            .map(|(k, v)| (k.clone(), Arc::new(Semaphore::new(*v as usize))))
            .collect();
        LocalSlots {
            systems,
            held: Mutex::new(HashMap::new()),
            peaks,
        }
    }
}

#[async_trait]
impl ReaderSlots for LocalSlots {
    /// Waits for a permit (a local worker has nothing else to do meanwhile): never `false`.
    async fn acquire(
        &self,
        system: &str,
        holder: &str,
        _ttl_secs: u64,
    ) -> skein_core::Result<bool> {
        let permit = match self.systems.get(system) {
            Some(sem) => sem.clone().acquire_owned().await.ok(),
            None => None,
        };
        self.peaks.enter(&format!("system:{system}"));
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        held.insert(format!("{system}\n{holder}"), permit);
        Ok(true)
    }

    async fn release(&self, system: &str, holder: &str) -> skein_core::Result<()> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if held.remove(&format!("{system}\n{holder}")).is_some() {
            self.peaks.leave(&format!("system:{system}"));
        }
        Ok(())
    }
}

/// A job's delivery from the SQLite queue.
struct Received {
    queue: Arc<SqliteQueue>,
    delivery: Delivery,
}

#[async_trait]
impl InFlight for Received {
    async fn keep_hidden(&self, d: Duration) {
        if let Err(e) = self.queue.extend(&self.delivery, d.as_secs()).await {
            tracing::warn!(dataset = %self.delivery.job.dataset, "queue visibility: {e}");
        }
    }
}

/// A group's worker: takes jobs until the run stops.
pub(super) async fn worker(local: Arc<Local>, group: String) {
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
        queue: local.queue.clone(),
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
        Handled::Again { after } => {
            let _ = local.queue.extend(&d, after.as_secs().max(1)).await;
        }
    }
}
