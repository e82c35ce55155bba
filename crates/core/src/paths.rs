//! The path policy for local sources and targets.
//!
//! A spec may read and write local paths only inside its own directory or inside a root
//! listed in the `skein.yaml` found beside it or above it (`spec.roots`, relative to that
//! file), and its target may not be inside its source nor its source inside its target.
//! So a typo such as `../../elsewhere` cannot publish outside the project, and a target
//! inside the source cannot be read back as source by the next migration. S3 URIs are not
//! affected.

use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

use crate::problem::Problem;
use crate::spec_file::{FLEET_FILE, SpecFile};

/// Problems with the spec's local source and target paths.
pub fn check(file: &SpecFile) -> Vec<Problem> {
    let mut out = Vec::new();
    if file.path.to_string_lossy().starts_with("catalog:") {
        return out; // checked when it was registered
    }
    let spec_dir = resolve(&absolute(file.base_dir()));
    let (roots, fleet) = roots_for(&spec_dir);
    let mut allowed = vec![spec_dir.clone()];
    allowed.extend(roots.iter().cloned());
    let s = &file.spec.spec;
    let source = local(&s.source.uri, &spec_dir);
    let target = local(&s.target.uri, &spec_dir);
    for (field, uri, path) in [
        ("spec.source.uri", &s.source.uri, &source),
        ("spec.target.uri", &s.target.uri, &target),
    ] {
        let Some(path) = path else { continue };
        if !allowed.iter().any(|root| path.starts_with(root)) {
            let listed = if roots.is_empty() {
                String::new()
            } else {
                format!(
                    " nor under a root of {} ({})",
                    fleet
                        .as_deref()
                        .map(Path::display)
                        .map(|d| d.to_string())
                        .unwrap_or_default(),
                    roots
                        .iter()
                        .map(|r| r.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            out.push(file.problem(
                field,
                format!(
                    "`{uri}` resolves to {}, which is not under the spec's directory {}{listed}",
                    path.display(),
                    spec_dir.display()
                ),
                "keep the data under the spec's directory, or list its directory in `spec.roots` of skein.yaml",
            ));
        }
    }
    if let (Some(src), Some(tgt)) = (&source, &target) {
        let problem = if src == tgt {
            Some("is the source itself")
        } else if tgt.starts_with(src) {
            Some("is inside the source, so the next migration would read its own output")
        } else if src.starts_with(tgt) {
            Some("contains the source, so publishing would replace the data it reads")
        } else {
            None
        };
        if let Some(what) = problem {
            out.push(file.problem(
                "spec.target.uri",
                format!("the target {} {what} ({})", tgt.display(), src.display()),
                "give the target a place of its own, beside the source rather than inside it",
            ));
        }
    }
    out
}

/// A local URI as an absolute, resolved path; `None` for S3 and other schemes.
fn local(uri: &str, base: &Path) -> Option<PathBuf> {
    let path = match uri.strip_prefix("file://") {
        Some(p) => p,
        None if uri.contains("://") || uri.trim().is_empty() => return None,
        None => uri,
    };
    Some(resolve(&base.join(path)))
}

/// `path` made absolute against the working directory.
fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    }
}

/// `.` and `..` removed, then the longest existing ancestor resolved through symlinks (so
/// `/tmp/x` and a symlinked spelling of it compare equal). The last component is kept as
/// written: a published target is itself a symlink into its versions.
fn resolve(path: &Path) -> PathBuf {
    let mut lexical = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                lexical.pop();
            }
            other => lexical.push(other),
        }
    }
    let Some(name) = lexical.file_name().map(|n| n.to_os_string()) else {
        return lexical;
    };
    let mut parent = lexical.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = std::fs::canonicalize(&parent) {
            let mut out = real;
            for r in rest.iter().rev() {
                out.push(r);
            }
            out.push(name);
            return out;
        }
        match (
            parent.file_name().map(|n| n.to_os_string()),
            parent.parent(),
        ) {
            (Some(n), Some(up)) => {
                rest.push(n);
                parent = up.to_path_buf();
            }
            _ => return lexical,
        }
    }
}

#[derive(Deserialize, Default)]
struct RootsFile {
    #[serde(default)]
    spec: RootsSpec,
}

#[derive(Deserialize, Default)]
struct RootsSpec {
    #[serde(default)]
    roots: Vec<String>,
}

/// The roots of the nearest `skein.yaml` at or above `dir`, resolved, and that file.
/// An unreadable `skein.yaml` adds no roots (the fleet loader reports its problems).
fn roots_for(dir: &Path) -> (Vec<PathBuf>, Option<PathBuf>) {
    let mut at = Some(dir);
    while let Some(d) = at {
        let fleet = d.join(FLEET_FILE);
        if let Ok(text) = std::fs::read_to_string(&fleet) {
            let parsed: RootsFile = serde_yaml_ng::from_str(&text).unwrap_or_default();
            let roots = parsed
                .spec
                .roots
                .iter()
                .map(|r| resolve(&d.join(r)))
                .collect();
            return (roots, Some(fleet));
        }
        at = d.parent();
    }
    (Vec::new(), None)
}
