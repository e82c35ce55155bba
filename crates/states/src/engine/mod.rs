//! The interpreter: runs a [`Definition`](crate::definition::Definition) state by state,
//! committing every transition to the [`Store`](crate::store::Store) before acting on it, so that [`Engine::resume`] continues a killed run.
//!
//! An execution is a tree of frames: the root runs the machine's states; each Parallel
//! branch and Map iteration is a child frame (`<parent>/<step>:<index>`), resumed or
//! re-used (when it already ended) on restart. A Task whose result was not committed
//! before a crash is invoked again: bound handlers must be idempotent.
//!
//! # Layout
//! - `execution`: [`Engine`] starts, resumes and ends executions ([`Outcome`]).
//! - `frame`: one run of an execution, its frames and their transitions, scheduling and
//!   commits; `interrupt`: why a state or frame stopped short ([`Failure`] or not).
//! - `retry`: `Retry` and `Catch` around each attempt.
//! - `evaluator`: one trait, two query languages (JSONPath, JSONata), so that each state
//!   kind is written once: `task`, `map`, `parallel`, `wait`, `flow` (Pass, Succeed,
//!   Fail, Choice).
//! - `bindings`: the [`TaskHandler`]s bound to resources; `options`; `history`.

mod bindings;
mod evaluator;
mod execution;
mod flow;
mod frame;
mod history;
mod interrupt;
mod map;
mod options;
mod parallel;
mod retry;
mod task;
mod wait;

pub use bindings::{Handlers, TaskCall, TaskHandler};
pub use execution::{Engine, Outcome};
pub use history::history_json;
pub use options::Options;
pub use retry::{error_matches, retry_delay};

pub use crate::error::Error as EngineError;
pub use crate::failure::Failure;
