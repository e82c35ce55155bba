//! The ASL engine: JSONPath and intrinsic functions, each state type and field through the
//! `skein states` CLI, and the crash-and-resume test.
mod conformance;
mod crash;
pub mod engine;
mod limits;
mod paths;
mod status;
