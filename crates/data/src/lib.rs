//! skein-data: the data plane. Reads a dataset's source with DataFusion, runs its
//! transform, writes Parquet into staging, verifies it, publishes it atomically and
//! rolls it back.
//!
//! # Layout
//! - [`session`]: DataFusion sessions with a bounded memory pool and spill directory;
//!   the source registered as table `source`; source listing and fingerprint.
//! - [`sqlguard`]: the transform is one query over `source`, nothing else.
//! - [`transform`]: planning the transform; failures that name the column and value.
//! - [`listing`]: a source's files listed and fingerprinted.
//! - [`stage`]: staging orchestrated: reused, chunked, or written in one go.
//! - [`writer`]: the writer primitives: Parquet files written per partition, hashed as
//!   they are written, with the source-side checksum on the same stream.
//! - [`csv_source`]: CSV column types inferred by a real CSV parser over whole files
//!   (quoted newlines anywhere), and quoted fields cut off by the end of a file.
//! - [`chunk`]: large sources in chunks: planning, staging one chunk, combining them.
//! - [`boundary`]: record starts around the cuts of a large CSV or NDJSON file.
//! - [`text_range`]: a chunk's CSV or NDJSON pieces (byte ranges) read as `source`.
//! - [`delta`]: Delta Lake targets: a version published or restored as one Delta commit.
//! - [`checksum`]: the order-independent content checksum (algorithm documented there).
//! - [`verify`]: the checks of a staged or published version against the source.
//! - [`intent`]: the intent a publish or rollback records before its first side effect.
//! - [`store`]: the local target store: staging, versions, atomic publish, rollback.
//! - [`s3_store`]: the S3 target store: the same, with `current.json` swapped by a
//!   conditional put as the commit point.
//! - [`target`]: [`Target`], either store behind one API.
//! - [`layout`]: below both stores: the names of staged and published documents, and
//!   [`DataDir`], a directory of Parquet files (local or S3) for DataFusion.
//! - [`s3`]: S3 settings (the AWS environment, overridable in-process) and clients.
//! - [`glue`]: the Glue Data Catalog table of an S3 target, created or updated on publish
//!   and rollback.
//! - [`footer`]: Parquet files checked at both ends before a footer parser sees them.
//! - [`inspect`]: checks of a spec against its source's schema (columns exist).
//! - [`ndjson`]: after a failed NDJSON read, the file and line that made it fail.
//! - [`location`]: spec URIs to local paths or S3 prefixes.
//! - [`partition`]: `target.partitionBy`: output split into `col=value/` directories,
//!   read back with the values from the paths.
//!
//! **Invariant:** nothing is written outside `<store>/staging/<run>/` until publish, and
//! publish changes what readers see in one atomic step (a `rename(2)` of the symlink
//! locally, a conditional put of `_skein/current.json` on S3).

pub mod boundary;
pub mod checksum;
pub mod chunk;
pub mod command;
pub mod csv_source;
pub mod delta;
pub mod diff;
pub mod diff_buckets;
pub mod error;
pub mod footer;
pub mod glue;
pub mod incremental;
pub mod inspect;
pub mod intent;
pub mod layout;
pub mod listing;
pub mod location;
pub mod ndjson;
pub mod partition;
pub mod s3;
pub mod s3_store;
pub mod session;
pub mod sqlguard;
pub mod stage;
pub mod store;
pub mod target;
pub mod text_range;
pub mod transform;
pub mod verify;
pub mod writer;

pub use error::{Error, Result};
pub use intent::{Intent, IntentOp};
pub use layout::DataDir;
pub use s3::S3Settings;
pub use s3_store::S3TargetStore;
pub use session::Settings;
pub use stage::{ChunkCount, Progress, Staged, stage};
pub use store::TargetStore;
pub use target::Target;
pub use verify::{Check, VerifyReport, verify_dir};
