//! Reading YAML, for every loader (dataset specs, the fleet's `skein.yaml`, Backstage
//! catalog files): one place where a failure of the YAML library becomes a [`YamlError`]
//! with a line, never a panic.
//!
//! Anchors and aliases are resolved as YAML defines them; an alias to an anchor that does
//! not exist (`x: *a`), or a document nesting deeper than the library allows, is an error
//! at its line. serde_yaml_ng panics if it is asked for the document after such an error
//! in a multi-document stream (it resumes in the middle of the broken document), so
//! [`documents`] stops at the first document that cannot be read as YAML.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::problem::Problem;

/// Why a YAML text could not be read into the type asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    /// What is wrong, as the YAML library says it (with its field path, if any).
    pub message: String,
    /// 1-based line, where known.
    pub line: Option<usize>,
}

impl YamlError {
    fn from_library(e: &serde_yaml_ng::Error) -> YamlError {
        YamlError {
            message: e.to_string(),
            line: e.location().map(|l| l.line()),
        }
    }

    /// A YAML library panic (a bug there), caught so that it reaches nobody as a crash.
    fn panicked() -> YamlError {
        YamlError {
            message: "the YAML reader failed on this text (a bug in the YAML library); check the file for unusual YAML such as anchors and aliases".into(),
            line: None,
        }
    }

    /// This error as a problem of `file` at `(document)`.
    pub fn problem(&self, file: &Path, hint: &str) -> Problem {
        let mut p = Problem::new(file, "(document)", self.message.clone(), hint);
        p.line = self.line;
        p
    }
}

/// Reads a single-document YAML text as a `T`.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, YamlError> {
    catch_unwind(AssertUnwindSafe(|| {
        serde_yaml_ng::from_str::<T>(text).map_err(|e| YamlError::from_library(&e))
    }))
    .unwrap_or_else(|_| Err(YamlError::panicked()))
}

/// Reads every document of a (`---` separated) YAML stream as an optional `T` (an empty
/// document is `None`). A document that is not well-formed YAML (a syntax error, an
/// undefined alias) ends the list: what follows it cannot be read reliably.
pub fn documents<T: DeserializeOwned>(text: &str) -> Vec<Result<Option<T>, YamlError>> {
    catch_unwind(AssertUnwindSafe(|| read_documents(text)))
        .unwrap_or_else(|_| vec![Err(YamlError::panicked())])
}

fn read_documents<T: DeserializeOwned>(text: &str) -> Vec<Result<Option<T>, YamlError>> {
    // First pass: each document as plain YAML, to find the first one that is not.
    let mut readable = 0;
    let mut broken = None;
    for doc in serde_yaml_ng::Deserializer::from_str(text) {
        match serde_yaml_ng::Value::deserialize(doc) {
            Ok(_) => readable += 1,
            Err(e) => {
                broken = Some(YamlError::from_library(&e));
                break;
            }
        }
    }
    // Second pass: the readable documents as `T` (errors keep their lines).
    let mut out: Vec<Result<Option<T>, YamlError>> = serde_yaml_ng::Deserializer::from_str(text)
        .take(readable)
        .map(|doc| Option::<T>::deserialize(doc).map_err(|e| YamlError::from_library(&e)))
        .collect();
    out.extend(broken.map(Err));
    out
}
