//! The layout of a target that both stores share, and the data plane reads: the names of
//! the documents in a staging area and a version, and [`DataDir`], a directory of Parquet
//! files on either store. It sits below [`crate::store`], [`crate::s3_store`],
//! [`crate::target`], [`crate::stage`] and [`crate::chunk`], and depends on none of them.
//!
//! A run's staging area is `staging/<run>/`; each attempt of the run stages under its own
//! `staging/<run>/a<N>/` (N from the catalog's attempt counter, the fencing token), so a
//! stale worker of attempt 1 and its successor, attempt 2, never write, read or delete
//! each other's files, and publish takes only the current attempt's.
//!
//! ```text
//! <staging>/_staged.json               a finished staging's manifest (written last)
//! <staging>/_chunks/plan.json          a chunked staging's plan
//! <staging>/_chunks/chunk-00003.json   chunk 3 staged and verified
//! <version>/_manifest.json             a published version's manifest
//! ```

use std::path::{Path, PathBuf};

use datafusion::prelude::SessionContext;

use crate::error::Result;
use crate::s3::S3Settings;

/// Name of the staged manifest inside a staging directory (written last).
pub const STAGED_MANIFEST: &str = "_staged.json";
/// Name of the manifest inside a version directory.
pub const MANIFEST: &str = "_manifest.json";
/// Where the plan lives in a run's staging area.
pub const PLAN: &str = "_chunks/plan.json";
/// Where chunk `index`'s manifest lives in a run's staging area.
pub fn chunk_manifest(index: u32) -> String {
    format!("_chunks/chunk-{index:05}.json")
}

/// The directory of attempt `n` inside a run's staging area.
pub fn attempt_dir(n: u32) -> String {
    format!("a{n}")
}

/// A directory of Parquet files DataFusion can read: local, or a prefix in a bucket.
#[derive(Debug, Clone)]
pub enum DataDir {
    /// A local directory.
    Local(PathBuf),
    /// `s3://bucket/prefix/`.
    S3 {
        s3: S3Settings,
        bucket: String,
        prefix: String,
    },
}

impl DataDir {
    /// The table path for DataFusion (ends with `/`: a directory).
    pub fn url(&self) -> String {
        match self {
            DataDir::Local(p) => format!("{}/", p.display()),
            DataDir::S3 { bucket, prefix, .. } => format!("s3://{bucket}/{prefix}/"),
        }
    }

    /// Makes the directory readable in `ctx` (registers the bucket's client).
    pub fn register(&self, ctx: &SessionContext) -> Result<()> {
        if let DataDir::S3 { s3, bucket, .. } = self {
            s3.register(ctx, bucket)?;
        }
        Ok(())
    }
}

impl std::fmt::Display for DataDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url())
    }
}

impl From<&Path> for DataDir {
    fn from(p: &Path) -> DataDir {
        DataDir::Local(p.to_path_buf())
    }
}
