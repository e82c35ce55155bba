//! skein-states: a durable Amazon States Language engine.
//!
//! The same state machines that run on AWS Step Functions run here on one machine: every
//! transition is committed to SQLite before the next, so a killed process resumes where it
//! stopped ([`engine::Engine::resume`]).
//!
//! # Layout
//! - [`definition`]: ASL JSON read into typed states; structural errors with JSON pointers.
//! - [`choice`]: Choice rules. [`path`], [`intrinsics`], [`template`]: JSONPath processing.
//! - [`engine`]: the interpreter; Task resources are bound to [`engine::TaskHandler`]s.
//! - [`limits`]: AWS's documented bounds (payload size, seconds, attempts) in one place.
//! - [`store`]: the SQLite event store with group commit. [`mock`]: Step Functions Local
//!   mock configs. [`items`]: distributed Map readers and writers. [`cli`]: `skein states`.

pub mod bench;
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
