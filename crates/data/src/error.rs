//! Errors of the data plane.

use skein_core::names;
use std::path::PathBuf;

use datafusion::error::DataFusionError;

/// Result with the data-plane [`Error`] by default.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong while reading, transforming, writing, verifying or publishing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The source cannot be listed or read (missing, empty, corrupt, truncated).
    #[error("dataset `{dataset}`: source {uri} is unreadable: {message}")]
    SourceUnreadable {
        dataset: String,
        uri: String,
        message: String,
    },
    /// A value in the source does not convert to the type the transform asks for.
    #[error(
        "dataset `{dataset}`: column `{column}` has value `{value}` that does not convert: {message}; fix the source value or handle it in the transform (e.g. TRY_CAST)"
    )]
    BadValue {
        dataset: String,
        column: String,
        value: String,
        message: String,
    },
    /// The transform query failed while planning or running.
    #[error("dataset `{dataset}`: transform failed: {message}")]
    Transform { dataset: String, message: String },
    /// The transform is not one plain query over `source`.
    #[error("dataset `{dataset}`: spec.transform.sql is refused: {message}")]
    TransformRefused { dataset: String, message: String },
    /// A URI skein cannot handle here.
    #[error("dataset `{dataset}`: {field} `{uri}`: {message}")]
    UnsupportedUri {
        dataset: String,
        field: &'static str,
        uri: String,
        message: String,
    },
    /// The target path exists but is not managed by skein.
    #[error(
        "dataset `{dataset}`: target {path} exists and is not managed by skein; move it away or choose another spec.target.uri"
    )]
    TargetNotManaged { dataset: String, path: PathBuf },
    /// Rollback asked for, but there is no earlier version.
    #[error("dataset `{dataset}`: nothing to roll back to (current version: {current})")]
    NothingToRollBack { dataset: String, current: String },
    /// The dataset has no published version (to verify, compare or roll back from).
    #[error(
        "dataset `{dataset}` has no published version yet; run `skein migrate` or `skein run` first"
    )]
    NotPublished { dataset: String },
    /// A staged version to publish or verify does not exist.
    #[error("dataset `{dataset}`: no staged version for run `{run_id}`; run the migration first")]
    NotStaged { dataset: String, run_id: String },
    /// `spec.source.chunkSize` is set, but the transform needs all rows at once.
    #[error(
        "dataset `{dataset}`: the source is larger than spec.source.chunkSize, but the transform {reason}, so its chunks cannot be migrated apart and joined; make the transform row by row (columns and filters only) or remove chunkSize"
    )]
    NotChunkable { dataset: String, reason: String },
    /// `source.mode: incremental`, but the source or transform cannot run incrementally.
    #[error("dataset `{dataset}`: spec.source.mode is incremental, but {reason}")]
    NotIncremental { dataset: String, reason: String },
    /// A file of an incremental source's published version changed or disappeared.
    #[error(
        "dataset `{dataset}`: the source file {uri} {how} since v{version} was published from it; an incremental run only adds new files: put the file back as it was, or set `spec.source.onChange: full` to migrate the whole source again"
    )]
    SourceChanged {
        dataset: String,
        uri: String,
        how: String,
        version: u64,
    },
    /// What an incremental run staged for its new files is not what it computed.
    #[error(
        "dataset `{dataset}`: the new files staged by this incremental run failed verification: {check} expected {expected}, got {actual}"
    )]
    IncrementMismatch {
        dataset: String,
        check: &'static str,
        expected: String,
        actual: String,
    },
    /// A staged chunk does not hold what its source-side figures say.
    #[error(
        "dataset `{dataset}`: chunk {chunk} failed verification: {check} expected {expected}, got {actual}"
    )]
    ChunkMismatch {
        dataset: String,
        chunk: u32,
        check: &'static str,
        expected: String,
        actual: String,
    },
    /// Combining a chunked staging found chunks that were never staged.
    #[error(
        "dataset `{dataset}`: chunks {missing} of run `{run_id}` are not staged; run their jobs (or the whole migration) again"
    )]
    ChunksMissing {
        dataset: String,
        run_id: String,
        missing: String,
    },
    /// The S3 client cannot be built from the settings (bad endpoint or region).
    #[error(
        "S3 settings for bucket `{bucket}` are not usable: {message}; check AWS_ENDPOINT_URL and AWS_REGION"
    )]
    S3Config { bucket: String, message: String },
    /// An S3 operation on a dataset's target failed.
    #[error("dataset `{dataset}`: cannot {op} {uri}: {message}")]
    Storage {
        dataset: String,
        op: &'static str,
        uri: String,
        message: String,
    },
    /// Another publisher (or rollback) changed the current version between our read of
    /// it and our swap: the conditional put refused ours.
    #[error(
        "dataset `{dataset}`: {uri} changed while this run published (another publish or rollback won); nothing of this run is current: look at `skein history {dataset}` and run again if still wanted"
    )]
    PublishConflict { dataset: String, uri: String },
    /// A file-system operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// DataFusion failed outside the transform (e.g. reading staged files).
    #[error("{context}: {source}")]
    Engine {
        context: String,
        source: Box<DataFusionError>,
    },
    /// A broken invariant: a bug in skein.
    /// `target.partitionBy` names a column that cannot partition the output.
    #[error("dataset `{dataset}`: {field}: {message}")]
    Partition {
        dataset: String,
        field: String,
        message: String,
    },
    /// A row's value of a partition column cannot be a directory name.
    #[error(
        "dataset `{dataset}`: partition column `{column}` (spec.target.partitionBy) has value `{value}`: {message}"
    )]
    PartitionValue {
        dataset: String,
        column: String,
        value: String,
        message: String,
    },
    #[error("internal error (a bug in skein, please report it): {0}")]
    Internal(String),
}

impl Error {
    /// An `Io` error for `op` on `path`.
    pub fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }

    /// An `Engine` error with context.
    pub fn engine(context: impl Into<String>) -> impl FnOnce(DataFusionError) -> Error {
        let context = context.into();
        move |source| Error::Engine {
            context,
            source: Box::new(source),
        }
    }

    /// The Step Functions error name this error crosses process boundaries as.
    pub fn error_name(&self) -> &'static str {
        match self {
            Error::SourceUnreadable { .. } => names::SOURCE_UNREADABLE,
            Error::BadValue { .. } => names::BAD_VALUE,
            Error::Transform { .. } | Error::TransformRefused { .. } => names::TRANSFORM_FAILED,
            Error::UnsupportedUri { .. }
            | Error::TargetNotManaged { .. }
            | Error::NotChunkable { .. }
            | Error::NotIncremental { .. }
            | Error::Partition { .. } => names::INVALID_SPEC,
            Error::SourceChanged { .. } => names::SOURCE_CHANGED,
            Error::IncrementMismatch { .. } => names::VERIFICATION_FAILED,
            Error::PartitionValue { .. } => names::BAD_VALUE,
            Error::ChunkMismatch { .. } => names::VERIFICATION_FAILED,
            Error::ChunksMissing { .. } => names::NOT_STAGED,
            Error::NothingToRollBack { .. } => names::NOTHING_TO_ROLL_BACK,
            Error::NotStaged { .. } => names::NOT_STAGED,
            Error::NotPublished { .. } => names::NOT_PUBLISHED,
            Error::Io { .. } | Error::Engine { .. } | Error::Storage { .. } => names::STORAGE_ERROR,
            Error::S3Config { .. } => names::INVALID_SETTINGS,
            Error::PublishConflict { .. } => names::PUBLISH_CONFLICT,
            Error::Internal(_) => names::INTERNAL,
        }
    }
}
