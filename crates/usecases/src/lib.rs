//! skein-usecases: the steps of a migration, written once over the ports.
//!
//! The CLI, the local engine's Task bindings and the Lambda handlers all call these
//! functions; only the adapters behind the [`Catalog`](skein_core::catalog::Catalog)
//! differ (SQLite embedded, DynamoDB on AWS).
//!
//! # Layout
//! - [`migrate`]: the whole pipeline for one dataset (lease → stage → verify → publish),
//!   and its steps one by one for the state machines.
//! - [`publish`]: publish as a recoverable protocol (intent, idempotent steps), and
//!   [`publish::finish_interrupted`], which completes any protocol a crash stopped.
//! - [`rollback`]: restore the previous published version; undo a failed migration.
//! - [`recover`]: the end of a publish, rollback or undo a crash interrupted (below both).
//! - `fence`: attempt numbers as fencing tokens: each attempt's own staging, status
//!   changes refused to a superseded attempt.
//! - [`lease`]: one driver per run (pid, host, renewed lease), dataset leases taken over
//!   from runs that are gone.
//! - [`verify`]: re-verify the published version against the source.
//! - [`outcome`]: what a use case reports, for people and for JSON.
//! - [`worker`]: one migrate job from its queue to its answered task token (the local
//!   pools and the SQS function).
//! - [`operator`]: a person's actions: approve, reject, roll back by name (the CLI and
//!   the dashboard).
//! - [`tasks`], [`steps`], [`payloads`]: the state machines' Task payloads (typed)
//!   decoded and answered.
//!
//! **Invariant:** a dataset's failure is an [`Outcome`](outcome::Outcome), not an `Err`;
//! `Err` means the catalog or the machine failed, and nothing about the dataset is known.

pub mod error;
mod fence;
pub mod lease;
pub mod migrate;
pub mod operator;
pub mod outcome;
pub mod payloads;
pub mod publish;
pub mod recover;
pub mod rollback;
pub mod steps;
pub mod tasks;
pub mod verify;
pub mod worker;

pub use error::{Error, Result};
pub use migrate::{MigrateOptions, Part, migrate};
pub use outcome::{DatasetResult, Outcome};

/// A new run id: sortable by time, unique.
pub fn new_run_id() -> String {
    let now = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("run-{now}-{}", &suffix[..6])
}
