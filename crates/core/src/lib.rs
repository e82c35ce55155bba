//! skein-core: the domain of skein, free of any storage or compute engine.
//!
//! It knows what a dataset spec is and when it is valid, which status changes are legal,
//! what a published version's manifest records, and the ports (traits) that adapters
//! implement: the [`Catalog`](catalog::Catalog).
//!
//! # Layout
//! - [`spec`]: the `skein/v1` `Dataset` spec as written in YAML, parsed strictly.
//! - [`load`]: reading spec files and directories into [`load::SpecFile`]s, with line numbers.
//! - [`validate`]: the checks that need no data (names, URIs, formats, rules, cycles).
//! - [`problem`]: a [`Problem`](problem::Problem) names the file, line, field and what to do.
//! - [`status`]: dataset statuses and the legal transitions between them.
//! - [`manifest`]: what a staged or published version records.
//! - [`catalog`]: the catalog port and its records.
//! - [`plan`]: dependency waves.
//! - [`callbacks`], [`slots`], [`queue`]: the ports of the migrate worker (task tokens,
//!   source-system reader slots, the job queue).
//! - [`yaml`]: YAML reading for every loader: errors with lines, never a panic.
//! - [`crash`]: crash points for the durability tests (`SKEIN_CRASH_AT`).
//!
//! **Invariant:** this crate depends on neither DataFusion, nor rusqlite, nor aws-sdk-*.

pub mod callbacks;
pub mod catalog;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod crash;
pub mod error;
pub mod fleet;
pub mod load;
pub mod manifest;
pub mod names;
pub mod paths;
pub mod plan;
pub mod problem;
pub mod queue;
pub mod slots;
pub mod spec;
pub mod spec_file;
pub mod status;
pub mod time;
pub mod validate;
pub mod yaml;

pub use error::{Error, Result};
pub use problem::Problem;
pub use spec::DatasetSpec;
pub use status::Status;
