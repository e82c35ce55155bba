//! Resolving spec URIs to places: a local path or an S3 object prefix.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Where a source or target lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A local file or directory (absolute or relative to the working directory).
    Local(PathBuf),
    /// An S3 bucket and key prefix.
    S3 { bucket: String, key: String },
}

impl Location {
    /// Resolves a spec URI: `s3://bucket/key`, `file:///abs/path`, or a path relative
    /// to `base` (the spec file's directory).
    pub fn resolve(uri: &str, base: &Path) -> Location {
        if let Some(rest) = uri.strip_prefix("s3://") {
            let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
            return Location::S3 {
                bucket: bucket.to_string(),
                key: key.to_string(),
            };
        }
        let path = uri.strip_prefix("file://").unwrap_or(uri);
        let path = Path::new(path);
        if path.is_absolute() {
            Location::Local(path.to_path_buf())
        } else {
            Location::Local(base.join(path))
        }
    }

    /// The local path, or an `UnsupportedUri` error naming the dataset and field.
    pub fn local(&self, dataset: &str, field: &'static str) -> Result<&Path> {
        match self {
            Location::Local(p) => Ok(p),
            Location::S3 { bucket, key } => Err(Error::UnsupportedUri {
                dataset: dataset.to_string(),
                field,
                uri: format!("s3://{bucket}/{key}"),
                message: "this needs a local path or file:// URI (S3 targets open through `Target::open`, S3 sources through `list_source`)".into(),
            }),
        }
    }
}

impl Location {
    /// The bucket and key prefix without surrounding slashes, if on S3.
    pub fn s3(&self) -> Option<(&str, &str)> {
        match self {
            Location::S3 { bucket, key } => Some((bucket, key.trim_matches('/'))),
            Location::Local(_) => None,
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Local(p) => write!(f, "{}", p.display()),
            Location::S3 { bucket, key } => write!(f, "s3://{bucket}/{key}"),
        }
    }
}
