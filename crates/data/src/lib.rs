//! skein-data: the data plane. Reads a dataset's source with DataFusion, runs its
//! transform, writes Parquet into staging, verifies it, publishes it atomically and
//! rolls it back.
//!
//! # Layout
//! - [`session`]: DataFusion sessions with a bounded memory pool and spill directory;
//!   the source registered as table `source`; source listing and fingerprint.
//! - [`sqlguard`]: the transform is one query over `source`, nothing else.
//! - [`transform`]: planning the transform; failures that name the column and value.
//! - [`stage`]: writing the transformed stream to staging, with the source-side checksum.
//! - [`checksum`]: the order-independent content checksum (algorithm documented there).
//! - [`verify`]: the checks of a staged or published version against the source.
//! - [`store`]: the local target store: staging, versions, atomic publish, rollback.
//! - [`inspect`]: checks of a spec against its source's schema (columns exist).
//! - [`location`]: spec URIs to local paths or S3 prefixes.
//!
//! **Invariant:** nothing is written outside `<store>/staging/<run>/` until publish, and
//! publish changes what readers see in one atomic step.

pub mod checksum;
pub mod diff;
pub mod error;
pub mod inspect;
pub mod location;
pub mod session;
pub mod sqlguard;
pub mod stage;
pub mod store;
pub mod transform;
pub mod verify;

pub use error::{Error, Result};
pub use session::Settings;
pub use stage::{Progress, Staged, stage};
pub use store::TargetStore;
pub use verify::{Check, VerifyReport, verify_dir};
