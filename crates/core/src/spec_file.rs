//! A spec as read from a file (or rebuilt from the catalog): the text it came from, for
//! locating fields in problems, and the hash of what decides the migration's result.
//!
//! Below both `load` (which reads files) and `validate` (which checks them), so neither
//! imports the other for the type they share.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::problem::Problem;
use crate::spec::DatasetSpec;

/// File name of the fleet configuration that sits beside the specs; never a spec.
pub const FLEET_FILE: &str = "skein.yaml";

/// One parsed spec and where it came from.
#[derive(Debug, Clone)]
pub struct SpecFile {
    /// The file it was read from.
    pub path: PathBuf,
    /// The YAML text, kept for locating fields in later problems.
    pub text: String,
    /// The parsed spec.
    pub spec: DatasetSpec,
    /// Hash of what decides the migration's result (name and `spec`), hex sha256.
    pub hash: String,
}

impl SpecFile {
    /// The directory relative URIs are resolved against.
    pub fn base_dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    /// The dataset's name.
    pub fn name(&self) -> &str {
        self.spec.name()
    }

    /// A problem at `field` of this file, with its line filled in.
    pub fn problem(
        &self,
        field: &str,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> Problem {
        let mut p = Problem::new(&self.path, field, message, hint);
        p.line = locate(&self.text, field);
        p
    }
}

/// Hash of the parts of a spec that decide the migration's result.
pub fn spec_hash(spec: &DatasetSpec) -> String {
    let canonical = serde_json::json!({ "name": spec.metadata.name, "spec": spec.spec });
    let mut hasher = Sha256::new();
    hasher.update(canonical.to_string().as_bytes());
    hex(&hasher.finalize())
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A spec file rebuilt from a catalog record (its URIs are already absolute).
pub fn from_catalog(spec: crate::spec::DatasetSpec, hash: String) -> SpecFile {
    let text = serde_yaml_ng::to_string(&spec).unwrap_or_default();
    SpecFile {
        path: PathBuf::from(format!("catalog:{}", spec.metadata.name)),
        text,
        spec,
        hash,
    }
}

/// Finds the 1-based line of a dotted field path (`spec.source.uri`, `spec.verify.rules[1]`)
/// in YAML text, following block indentation, and falling back to flow style on one line.
pub fn locate(text: &str, field: &str) -> Option<usize> {
    if field.is_empty() || field.starts_with('(') {
        return None;
    }
    let lines: Vec<&str> = text.lines().collect();
    let mut start = 0usize;
    let mut parent_indent: isize = -1;
    let mut found = None;
    for segment in field.split('.') {
        let (key, index) = match segment.split_once('[') {
            Some((k, rest)) => (k, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (segment, None),
        };
        let mut hit = None;
        for (i, line) in lines.iter().enumerate().skip(start) {
            let trimmed = line.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let indent = (line.len() - trimmed.len()) as isize;
            if i > start && indent <= parent_indent && found.is_some() {
                break; // left the parent's block
            }
            let bare = trimmed.trim_start_matches("- ");
            if bare.starts_with(&format!("{key}:")) {
                hit = Some((i, indent));
                break;
            }
            // flow style: `metadata: {name: x}` on the parent's line
            if found == Some(i + 1) && line.contains(&format!("{key}:")) {
                hit = Some((i, indent));
                break;
            }
        }
        let (i, indent) = match hit {
            Some(h) => h,
            None => return found,
        };
        found = Some(i + 1);
        start = i;
        parent_indent = indent;
        if let Some(n) = index {
            // the n-th list item after the key
            let mut seen = 0;
            for (j, line) in lines.iter().enumerate().skip(i + 1) {
                let trimmed = line.trim_start();
                let ind = (line.len() - trimmed.len()) as isize;
                if !trimmed.is_empty() && ind <= indent && !trimmed.starts_with("- ") {
                    break;
                }
                if trimmed.starts_with("- ") {
                    if seen == n {
                        found = Some(j + 1);
                        start = j;
                        break;
                    }
                    seen += 1;
                }
            }
        }
    }
    found
}
