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
    /// For a version staged in chunks: how many, each verified when it was staged (its
    /// files read back: rows and checksum). A staged version (0) that says so is verified
    /// in total without reading its rows again; a published one is always read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_chunks: Option<u32>,
    /// For a chunk and a version staged in chunks: the rows violating each row-wise rule
    /// (all but `unique`), by check name (`rule notNull(id)`), counted on the chunks' own
    /// files; the combined version's rules are then not scanned again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_violations: Option<std::collections::BTreeMap<String, u64>>,
    /// For an incremental source (`source.mode: incremental`): the source files this
    /// version was made from, so that the next run migrates only the others and finds any
    /// of these that changed or disappeared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_files: Option<Vec<SourceFile>>,
    /// For an incremental CSV or NDJSON source: the column types its files were read with
    /// (an Arrow schema as JSON), so that new files are read with the same types rather
    /// than with types inferred from them alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_schema: Option<serde_json::Value>,
}

/// One source file a version was made from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceFile {
    /// Path relative to the source's directory or prefix.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Modification time in nanoseconds since the epoch (a local file) or e-tag (S3).
    pub stamp: String,
}

/// What the catalog keeps of a version: the manifest's summary and where the manifest
/// itself is. Its size does not grow with the number of files, so a version stays one
/// small catalog item however many files it has (a DynamoDB item is at most 400 KB:
/// <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html#limits-items>;
/// a file entry takes ~170 B, so a full manifest would not fit past ~2,400 files).
/// Readers that need the file list read the manifest at [`ManifestSummary::location`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestSummary {
    /// Dataset name.
    pub dataset: String,
    /// Version number.
    pub version: u64,
    /// The run that produced it.
    pub run_id: String,
    /// Hash of the spec that produced it.
    pub spec_hash: String,
    /// Fingerprint of the source it was read from.
    pub source_fingerprint: String,
    /// Number of data files the manifest lists.
    pub file_count: u64,
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
    /// Where the manifest is: the `_manifest.json` next to the version's data (a local
    /// path or an `s3://` URI). Empty for versions recorded before summaries were kept.
    #[serde(default)]
    pub location: String,
    /// Hex sha256 of the manifest's bytes as stored (see [`Manifest::stored_bytes`]).
    /// Empty for versions recorded before summaries were kept.
    #[serde(default)]
    pub sha256: String,
}

impl Manifest {
    /// The bytes both target stores write as `_manifest.json` (pretty JSON).
    pub fn stored_bytes(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("a manifest serialises to JSON")
    }

    /// The summary the catalog keeps, with the manifest stored at `location`.
    pub fn summary(&self, location: impl Into<String>) -> ManifestSummary {
        use sha2::{Digest, Sha256};
        let sha256 = Sha256::digest(self.stored_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        ManifestSummary {
            dataset: self.dataset.clone(),
            version: self.version,
            run_id: self.run_id.clone(),
            spec_hash: self.spec_hash.clone(),
            source_fingerprint: self.source_fingerprint.clone(),
            file_count: self.files.len() as u64,
            rows: self.rows,
            bytes: self.bytes,
            checksum: self.checksum.clone(),
            schema: self.schema.clone(),
            created_at: self.created_at.clone(),
            published_at: self.published_at.clone(),
            location: location.into(),
            sha256,
        }
    }
}

impl ManifestSummary {
    /// Reads a summary as a catalog stored it: a summary, or (catalogs written before
    /// summaries were kept) a whole manifest, summarised with no location.
    pub fn from_stored_json(json: &str) -> serde_json::Result<ManifestSummary> {
        let value: serde_json::Value = serde_json::from_str(json)?;
        if value.get("files").is_some() {
            let m: Manifest = serde_json::from_value(value)?;
            let mut s = m.summary("");
            s.sha256.clear();
            Ok(s)
        } else {
            serde_json::from_value(value)
        }
    }
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
