//! A [`Problem`] is one thing wrong with one spec, said so a person can fix it.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

/// One problem in one spec file: where, which field, what is wrong, what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The spec file (or directory, for problems across files such as cycles).
    pub file: PathBuf,
    /// 1-based line of the field, where it could be found.
    pub line: Option<usize>,
    /// Dotted path of the field, e.g. `spec.source.format`.
    pub field: String,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub hint: String,
}

impl Problem {
    /// A problem at `field` of `file`; the line is filled in later by [`crate::load`].
    pub fn new(
        file: impl Into<PathBuf>,
        field: impl Into<String>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> Problem {
        Problem {
            file: file.into(),
            line: None,
            field: field.into(),
            message: message.into(),
            hint: hint.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        write!(f, ": {}: {}", self.field, self.message)?;
        if !self.hint.is_empty() {
            write!(f, " (hint: {})", self.hint)?;
        }
        Ok(())
    }
}
