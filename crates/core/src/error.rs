//! Errors of the domain core.

use std::path::PathBuf;

use crate::status::Status;

/// Result with the core [`Error`] by default.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong in the domain core and in catalog adapters.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A spec file or directory could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// One or more specs are invalid; each problem names file, field and fix.
    #[error("{} problem(s) in dataset specs", problems.len())]
    Invalid { problems: Vec<crate::Problem> },
    /// A dataset is not in the catalog.
    #[error(
        "dataset `{dataset}` is not in the catalog; register it by running `skein migrate <spec file>`"
    )]
    UnknownDataset { dataset: String },
    /// A status change that the lifecycle does not allow.
    #[error("dataset `{dataset}`: status change {from} -> {to} is not allowed")]
    IllegalTransition {
        dataset: String,
        from: Status,
        to: Status,
    },
    /// A conditional write lost: the dataset was not in the expected status.
    #[error("dataset `{dataset}` is {actual}, expected {expected}: another process changed it")]
    StatusConflict {
        dataset: String,
        expected: Status,
        actual: Status,
    },
    /// Another holder owns the dataset's lease.
    #[error(
        "dataset `{dataset}` is leased by `{holder}` until {expires}; wait or let the lease expire"
    )]
    LeaseHeld {
        dataset: String,
        holder: String,
        expires: String,
    },
    /// Another process drives the run (or the directory's runs).
    #[error(
        "{key} is driven by pid {pid} on host `{host}` (run `{run_id}`), its lease until {expires}; \
         wait for it to finish, watch it with `skein status` or `skein ui`, or, once that process \
         is gone and its lease expired, pass --takeover"
    )]
    DriverHeld {
        key: String,
        run_id: String,
        pid: u32,
        host: String,
        expires: String,
    },
    /// A task token no longer waits for an answer (answered, timed out, or its execution
    /// stopped): whoever holds it must stop, another attempt may own the dataset now.
    #[error("task token no longer waits ({reason}): the task was answered, timed out or stopped")]
    TokenGone { reason: String },
    /// A worker's attempt is no longer the dataset's newest: a later attempt owns the
    /// dataset (and its own staging), so this one must stop and change nothing.
    #[error(
        "dataset `{dataset}`: attempt {attempt} of run `{run_id}` was superseded by attempt {current}; it stops without changing anything"
    )]
    Superseded {
        dataset: String,
        run_id: String,
        attempt: u32,
        current: u32,
    },
    /// A catalog backend failed (SQLite, DynamoDB, …).
    #[error("catalog backend: {message}")]
    Backend { message: String },
    /// A broken invariant: this is a bug in skein.
    #[error("internal error (a bug in skein, please report it): {0}")]
    Internal(String),
}
