//! skein-states: a durable Amazon States Language engine.
//!
//! The same state machines that run on AWS Step Functions run here on one machine: every
//! transition is committed to SQLite before the next, so a killed process resumes where it
//! stopped ([`engine::Engine::resume`]).
//!
//! # Layout
//! - [`definition`]: ASL JSON read into typed states; structural errors with JSON pointers.
//! - [`choice`]: Choice rules and how they are decided. [`path`], [`intrinsics`],
//!   [`template`]: JSONPath processing. [`jsonata`]: JSONata expressions.
//! - [`engine`]: the interpreter, by concern and state kind, each state kind written once
//!   over one evaluator per query language; Task resources are bound to
//!   [`engine::TaskHandler`]s.
//! - [`failure`]: an ASL error and its cause (data of an execution, not a Rust error).
//! - [`status`]: [`status::ExecutionStatus`] and [`status::TokenStatus`], with the store's
//!   and the CLI's spellings.
//! - [`error`]: the crate's error types and its `Result`.
//! - [`limits`]: AWS's documented bounds (payload size, seconds, attempts) in one place;
//!   [`quotas`]: the quotas enforced by default; [`execution_name`]: names AWS accepts.
//! - [`store`]: the SQLite event store with group commit. [`mock`]: Step Functions Local
//!   mock configs. [`items`]: distributed Map readers and writers. [`cli`]: `skein states`.
//!
//! **Invariant:** no import circle between the files of this crate (a module's `mod.rs`
//! declares and re-exports; its files import each other and `mod.rs` one way only);
//! `scripts/import-circles crates/states/src` checks it.

pub mod bench;
pub mod causes;
pub mod choice;
pub mod cli;
pub mod definition;
pub mod engine;
pub mod error;
pub mod execution_name;
pub mod failure;
pub mod intrinsics;
pub mod items;
pub mod jsonata;
pub mod limits;
pub mod mock;
pub mod path;
pub mod quotas;
pub mod status;
pub mod store;
pub mod template;
