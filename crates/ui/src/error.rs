//! Errors of the dashboard, the metrics and the report.

use std::net::SocketAddr;
use std::path::PathBuf;

/// What went wrong, naming the address, run, dataset or file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A bind outside loopback without a token would give anyone on the network the buttons.
    #[error(
        "refusing to serve on {addr}: it is not a loopback address and no token is set; pass --token (or SKEIN_UI_TOKEN), or bind 127.0.0.1"
    )]
    PublicWithoutToken { addr: SocketAddr },
    /// The listening socket.
    #[error("cannot listen on {addr}: {source}; pick another --port or --bind")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// Serving stopped on an I/O error of the listening socket.
    #[error("the dashboard stopped serving: {source}")]
    Serve { source: std::io::Error },
    /// A file or directory.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The run is not in the catalog.
    #[error("run `{run}` is not in {place}; `skein runs` lists the runs")]
    UnknownRun { run: String, place: String },
    /// The execution is not in the engine store.
    #[error(
        "execution `{id}` is not in the engine store; `skein states list` shows the executions"
    )]
    UnknownExecution { id: String },
    /// The dataset is not in the catalog.
    #[error("dataset `{dataset}` is not in the catalog; `skein status` lists the known ones")]
    UnknownDataset { dataset: String },
    /// An operator's action was refused (unknown dataset, not waiting, lease held, no
    /// earlier version) or failed.
    #[error(transparent)]
    Action(#[from] skein_usecases::operator::Error),
    /// The catalog or queue.
    #[error(transparent)]
    Catalog(#[from] skein_core::Error),
    /// The engine store.
    #[error(transparent)]
    Store(#[from] skein_states::store::StoreError),
    /// Step Functions, read for a deployed stack's executions.
    #[error("{0}")]
    Executions(String),
    /// A use case.
    #[error(transparent)]
    Usecase(#[from] skein_usecases::Error),
    /// A broken invariant.
    #[error("internal error (a bug in skein-ui, please report it): {0}")]
    Internal(String),
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
