//! skein-ui: what people look at while skein works. The dashboard behind `skein ui`, the
//! Prometheus `/metrics` it serves, and the self-contained HTML report of `skein report`.
//!
//! Everything here reads the embedded catalog, queue and engine store that `skein run`
//! writes ([`Sources`]); the only writes are the operator's actions
//! (`skein_usecases::operator`), the same use cases as `skein approve` and `skein reject`.
//!
//! # Layout
//! - [`view`]: read models (catalog rows, a run's progress and throughput, an execution
//!   with its event history), serialised as the dashboard's JSON API.
//! - [`graph`]: an ASL definition laid out as boxes and edges, coloured by the history.
//! - [`metrics`]: the Prometheus text exposition.
//! - [`report`]: the HTML report of a run.
//! - [`server`]: the axum app (static page, JSON API, server-sent events, token check).
//!
//! **Architecture Invariant:** the dashboard never changes a dataset by itself; every
//! change goes through `skein_usecases::operator`, shared with the CLI.

pub mod error;
pub mod graph;
pub mod metrics;
pub mod report;
pub mod server;
pub mod view;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use skein_embedded::{SqliteCatalog, SqliteQueue};
use skein_states::store::Store;

pub use error::{Error, Result};
pub use server::{Config, serve};

/// Deliveries before a job goes to the dead letters; the value `skein run` opens the
/// queue with (the dashboard only reads the queue, so it only matters for consistency).
const MAX_RECEIVES: u32 = 5;

/// The embedded stores of one catalog directory (`--catalog`, `.skein` by default).
#[derive(Clone)]
pub struct Sources {
    /// The catalog directory.
    pub dir: PathBuf,
    /// `catalog.db`: datasets, history, versions, attempts, runs.
    pub catalog: Arc<SqliteCatalog>,
    /// `queue.db`: the migration jobs per group.
    pub queue: Arc<SqliteQueue>,
    /// `states.db`: executions, their definitions and event histories.
    pub store: Store,
}

impl Sources {
    /// Opens (creating when missing) the catalog, queue and engine store under `dir`.
    pub fn open(dir: &Path) -> Result<Sources> {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        Ok(Sources {
            dir: dir.to_path_buf(),
            catalog: Arc::new(SqliteCatalog::open(&dir.join("catalog.db"))?),
            queue: Arc::new(SqliteQueue::open(&dir.join("queue.db"), MAX_RECEIVES)?),
            store: Store::open(&dir.join("states.db"))?,
        })
    }
}
