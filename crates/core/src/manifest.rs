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

/// How an output schema differs from the published one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SchemaDiff {
    /// Columns only in the new schema (`name: Type`).
    pub added: Vec<String>,
    /// Columns only in the published schema.
    pub removed: Vec<String>,
    /// Columns whose type changed: `name: Old -> New`.
    pub retyped: Vec<String>,
}

impl SchemaDiff {
    /// Compares two manifest schemas (`name: Type` entries).
    pub fn between(published: &[String], new: &[String]) -> SchemaDiff {
        let split = |c: &String| -> (String, String) {
            match c.split_once(": ") {
                Some((n, t)) => (n.to_string(), t.to_string()),
                None => (c.clone(), String::new()),
            }
        };
        let old: Vec<(String, String)> = published.iter().map(split).collect();
        let new: Vec<(String, String)> = new.iter().map(split).collect();
        let mut d = SchemaDiff::default();
        for (name, ty) in &new {
            match old.iter().find(|(n, _)| n == name) {
                None => d.added.push(format!("{name}: {ty}")),
                Some((_, old_ty)) if old_ty != ty => {
                    d.retyped.push(format!("{name}: {old_ty} -> {ty}"))
                }
                Some(_) => {}
            }
        }
        for (name, ty) in &old {
            if !new.iter().any(|(n, _)| n == name) {
                d.removed.push(format!("{name}: {ty}"));
            }
        }
        d
    }

    /// Whether anything changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.retyped.is_empty()
    }
}

impl std::fmt::Display for SchemaDiff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if !self.added.is_empty() {
            parts.push(format!("added {}", self.added.join(", ")));
        }
        if !self.removed.is_empty() {
            parts.push(format!("removed {}", self.removed.join(", ")));
        }
        if !self.retyped.is_empty() {
            parts.push(format!("retyped {}", self.retyped.join(", ")));
        }
        f.write_str(&parts.join("; "))
    }
}
