//! The reader-slot port: at most `cap` jobs read one source system at a time (the fleet's
//! `systems.<name>.maxReaders`). DynamoDB implements it with a conditional counter and an
//! expiring holder item per reader; locally a semaphore per system.

use async_trait::async_trait;

use crate::error::Result;

/// Source-system reader slots.
#[async_trait]
pub trait ReaderSlots: Send + Sync {
    /// Takes a slot of `system` for `holder`, expiring after `ttl_secs` unless released
    /// (a crashed reader frees its slot). `false`: every slot is taken, try again later.
    /// A system without a cap always has a slot; taking one `holder` has already is a
    /// success.
    async fn acquire(&self, system: &str, holder: &str, ttl_secs: u64) -> Result<bool>;

    /// Gives `holder`'s slot back; releasing a slot not held is a no-op.
    async fn release(&self, system: &str, holder: &str) -> Result<()>;
}
