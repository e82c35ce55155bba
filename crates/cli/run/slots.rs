//! Source-system reader slots of a local run: the `ReaderSlots` port on a semaphore per
//! capped system (the fleet's `maxReaders`), counted toward the run's peaks.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use skein_core::slots::ReaderSlots;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::progress::Peaks;

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
        let permit = held.remove(&format!("{system}\n{holder}"));
        if permit.is_some() {
            // Counted out before the permit goes back: a waiter that takes it counts in
            // after, so the peak never shows one reader more than the cap.
            self.peaks.leave(&format!("system:{system}"));
        }
        drop(permit);
        Ok(())
    }
}
