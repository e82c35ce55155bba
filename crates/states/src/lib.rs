//! skein-states: a durable Amazon States Language engine (placeholder until the engine lands).

pub mod cli;
