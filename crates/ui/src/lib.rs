//! skein-ui: what people look at while skein works. The dashboard behind `skein ui`, the
//! Prometheus `/metrics` it serves, and the self-contained HTML report of `skein report`.
//!
//! Everything here reads through ports ([`Sources`]): locally the embedded catalog, queue
//! and engine store that `skein run` writes; for a deployed stack (`--stack`) the DynamoDB
//! catalog, the SQS queues and Step Functions. The only writes are the operator's actions
//! (`skein_usecases::operator`), the same use cases as `skein approve` and `skein reject`.
//!
//! # Layout
//! - [`executions`]: the executions port and its embedded-engine adapter.
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
pub mod executions;
pub mod graph;
pub mod metrics;
pub mod report;
pub mod server;
pub mod view;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use skein_core::callbacks::TaskCallbacks;
use skein_core::catalog::Catalog;
use skein_core::queue::JobQueue;
use skein_embedded::{EngineCallbacks, SqliteCatalog, SqliteQueue};
use skein_states::store::Store;

pub use error::{Error, Result};
pub use executions::{EngineExecutions, Executions};
pub use server::{Config, serve};

/// Deliveries before a job goes to the dead letters; the value `skein run` opens the
/// queue with (the dashboard only reads the queue, so it only matters for consistency).
const MAX_RECEIVES: u32 = 5;

/// What the pages read and the actions answer through.
#[derive(Clone)]
pub struct Sources {
    /// Where this is, for messages: `the catalog .skein`, `the stack skein-prod`.
    pub place: String,
    /// The catalog directory of an embedded setup: the local stand-in for S3 (a run's item
    /// lists) and the databases watched for changes. `None` on a deployed stack.
    pub dir: Option<PathBuf>,
    /// Datasets, history, versions, attempts, runs.
    pub catalog: Arc<dyn Catalog>,
    /// The migration jobs per group, when the queues can be read.
    pub queue: Option<Arc<dyn JobQueue>>,
    /// Executions, their definitions and event histories.
    pub executions: Arc<dyn Executions>,
    /// Answers a waiting dataset's task token (approve, reject).
    pub callbacks: Arc<dyn TaskCallbacks>,
}

impl Sources {
    /// Opens (creating when missing) the catalog, queue and engine store under `dir`.
    pub fn open(dir: &Path) -> Result<Sources> {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let store = Store::open(&dir.join("states.db"))?;
        Ok(Sources {
            place: format!("the catalog {}", dir.display()),
            dir: Some(dir.to_path_buf()),
            catalog: Arc::new(SqliteCatalog::open(&dir.join("catalog.db"))?),
            queue: Some(Arc::new(SqliteQueue::open(
                &dir.join("queue.db"),
                MAX_RECEIVES,
            )?)),
            executions: Arc::new(EngineExecutions(store.clone())),
            callbacks: Arc::new(EngineCallbacks::new(store)),
        })
    }
}
