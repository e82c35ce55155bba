//! What a staged or published version records.
//!
//! The manifest is written next to the data files of every version; on object stores
//! without atomic directory swaps it is the commit point of a publish.

use serde::{Deserialize, Serialize};

/// One data file of a version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// File name within the version's directory.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Hex sha256 of the file's bytes.
    pub sha256: String,
    /// Rows in the file.
    pub rows: u64,
}

/// The order-independent content checksum of a table: row count and the wrapping sum of
/// per-row 128-bit hashes (see the data plane's `checksum` module for the algorithm).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentChecksum {
    /// Rows summed.
    pub rows: u64,
    /// Hex of the 128-bit wrapping sum of row hashes.
    pub sum: String,
}

/// Manifest of one version of a dataset's target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Dataset name.
    pub dataset: String,
    /// Version number, 1-based, increasing per publish (0 while only staged).
    pub version: u64,
    /// The run that produced it.
    pub run_id: String,
    /// Hash of the spec that produced it.
    pub spec_hash: String,
    /// Fingerprint of the source it was read from.
    pub source_fingerprint: String,
    /// Data files.
    pub files: Vec<FileEntry>,
    /// Total rows.
    pub rows: u64,
    /// Total bytes of data files.
    pub bytes: u64,
    /// Content checksum computed on the transformed source stream.
    pub checksum: ContentChecksum,
    /// Output schema, one `name: type` per column.
    pub schema: Vec<String>,
    /// RFC 3339 time the version was staged.
    pub created_at: String,
    /// RFC 3339 time it was published, if it was.
    #[serde(default)]
    pub published_at: Option<String>,
}
