//! Reading spec files and directories of spec files.
//!
//! Every problem found while reading carries the file and, where it can be found, the
//! line of the field, so `skein validate` can point at it.

use std::path::{Path, PathBuf};

use crate::problem::Problem;
use crate::spec::DatasetSpec;
use crate::validate;

pub use crate::spec_file::{FLEET_FILE, SpecFile, from_catalog, hex, locate, spec_hash};

/// Parses one spec from text; `path` is only used to name the file in problems.
pub fn parse(path: &Path, text: &str) -> Result<SpecFile, Vec<Problem>> {
    let spec: DatasetSpec = match crate::yaml::from_str(text) {
        Ok(spec) => spec,
        Err(err) => return Err(vec![yaml_problem(path, text, &err)]),
    };
    let hash = spec_hash(&spec);
    Ok(SpecFile {
        path: path.to_path_buf(),
        text: text.to_string(),
        spec,
        hash,
    })
}

fn yaml_problem(path: &Path, text: &str, err: &crate::yaml::YamlError) -> Problem {
    let raw = err.message.clone();
    // serde_yaml_ng prefixes the message with the field path ("spec.source: unknown field …")
    // and suffixes " at line L column C"; split both off.
    let without_pos = match raw.rfind(" at line ") {
        Some(i) => raw[..i].to_string(),
        None => raw.clone(),
    };
    let (field, message) = match without_pos.split_once(": ") {
        Some((f, m)) if !f.contains(' ') => (f.to_string(), m.to_string()),
        _ => (String::new(), without_pos.clone()),
    };
    let hint = if message.contains("unknown field") {
        "remove the field or fix its spelling; the fields allowed here are listed above"
    } else if message.contains("missing field") {
        "add the field; see samples/ for a complete spec"
    } else if message.contains("unknown variant") {
        "use one of the values listed above"
    } else {
        "fix the YAML; see samples/ for a complete spec"
    };
    let line = err.line.or_else(|| locate(text, &field));
    let mut p = Problem::new(
        path,
        if field.is_empty() {
            "(document)".into()
        } else {
            field
        },
        message,
        hint,
    );
    p.line = line;
    p
}

/// Reads one spec file and runs the checks that need no data.
pub fn load_file(path: &Path) -> Result<SpecFile, Vec<Problem>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![Problem::new(
            path,
            "(file)",
            format!("cannot read the file: {e}"),
            "check the path and its permissions",
        )]
    })?;
    let mut file = parse(path, &text)?;
    absolutize(&mut file);
    let mut problems = validate::check_file(&file);
    problems.extend(crate::paths::check(&file));
    if problems.is_empty() {
        Ok(file)
    } else {
        Err(problems)
    }
}

/// Rewrites relative source and target URIs as absolute paths (relative to the spec
/// file's directory), so the spec means the same wherever it is read from later (the
/// catalog keeps it), and recomputes the hash.
pub fn absolutize(file: &mut SpecFile) {
    let base = file.base_dir();
    let base = if base.is_absolute() {
        base.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(base))
            .unwrap_or_else(|_| base.to_path_buf())
    };
    let fix = |uri: &mut String| {
        if !uri.contains("://") && !Path::new(uri.as_str()).is_absolute() && !uri.trim().is_empty()
        {
            let joined = normalize(&base.join(uri.as_str()));
            *uri = joined.to_string_lossy().to_string();
        }
    };
    fix(&mut file.spec.spec.source.uri);
    fix(&mut file.spec.spec.target.uri);
    file.hash = spec_hash(&file.spec);
}

/// Removes `.` and `..` components without touching the file system.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Lists the spec files under `dir` (recursively, `*.yaml`/`*.yml`, skipping hidden and
/// `_skein` directories, [`FLEET_FILE`], and YAML that is not a skein document).
pub fn spec_paths(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    walk(dir, &mut out)?;
    out.sort();
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with('.') || name == "_skein" {
            continue;
        }
        if entry.file_type()?.is_dir() {
            walk(&path, out)?;
        } else if (name.ends_with(".yaml") || name.ends_with(".yml"))
            && name != FLEET_FILE
            && name != "skein.yml"
            && is_skein_document(&path)
        {
            out.push(path);
        }
    }
    Ok(())
}

/// Whether a YAML file declares a skein `apiVersion` (other YAML, e.g. Backstage
/// entities, lives beside specs and is not ours to read here).
fn is_skein_document(path: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(path) else {
        return true; // let load_file report the read error
    };
    !text.lines().any(|l| {
        l.starts_with("apiVersion:")
            && !l["apiVersion:".len()..]
                .trim()
                .trim_matches(['"', '\''])
                .starts_with("skein")
    })
}

/// The result of loading a file or a directory: the good specs and every problem found.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Specs that passed every check.
    pub files: Vec<SpecFile>,
    /// All problems of all files (a file with problems is not in `files`).
    pub problems: Vec<Problem>,
}

/// Loads a spec file or a directory of specs, checking each file and then the set
/// (duplicate names, unknown dependencies, cycles). Reports all problems at once.
pub fn load(path: &Path) -> Loaded {
    let mut loaded = Loaded::default();
    let paths = if path.is_dir() {
        match spec_paths(path) {
            Ok(p) if p.is_empty() => {
                loaded.problems.push(Problem::new(
                    path,
                    "(directory)",
                    "no dataset specs (*.yaml with apiVersion: skein/v1) found",
                    "point skein at a spec file or a directory that holds specs",
                ));
                return loaded;
            }
            Ok(p) => p,
            Err(e) => {
                loaded.problems.push(Problem::new(
                    path,
                    "(directory)",
                    format!("cannot list the directory: {e}"),
                    "check the path and its permissions",
                ));
                return loaded;
            }
        }
    } else {
        vec![path.to_path_buf()]
    };
    for p in &paths {
        match load_file(p) {
            Ok(f) => loaded.files.push(f),
            Err(mut problems) => loaded.problems.append(&mut problems),
        }
    }
    let set_problems = validate::check_set(&loaded.files, path.is_dir());
    loaded.problems.extend(set_problems);
    loaded
}
