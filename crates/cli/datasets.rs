//! Turning command-line targets (spec files, directories, names) into specs.

use std::path::Path;

use anyhow::Context;
use skein_core::Problem;
use std::sync::Arc;

use skein_core::catalog::Catalog;
use skein_core::load::{self, SpecFile};
use skein_embedded::SqliteCatalog;

use crate::flags::Global;

/// Opens (creating if needed) the embedded catalog under `--catalog`.
/// The catalog the operator's read commands use: the deployed stack's with `--stack`,
/// else the embedded one.
pub async fn operator_catalog(g: &Global) -> anyhow::Result<Arc<dyn Catalog>> {
    Ok(match &g.stack {
        Some(name) => Arc::new(crate::stack::connect(name).await?.catalog),
        None => Arc::new(open_catalog(g)?),
    })
}

pub fn open_catalog(g: &Global) -> anyhow::Result<SqliteCatalog> {
    let path = g.catalog_dir().join("catalog.db");
    SqliteCatalog::open(&path).with_context(|| format!("open the catalog {}", path.display()))
}

/// Specs named by the targets, and every problem found while reading them.
#[derive(Debug, Default)]
pub struct Resolved {
    pub files: Vec<SpecFile>,
    pub problems: Vec<Problem>,
    /// True when any target was a directory (dependencies must then be complete).
    pub from_directory: bool,
}

/// Resolves each target: an existing path is read as a spec file or directory; anything
/// else must be a dataset already in the catalog.
pub async fn resolve(catalog: &dyn Catalog, targets: &[String]) -> anyhow::Result<Resolved> {
    let mut out = Resolved::default();
    for t in targets {
        let path = Path::new(t);
        if path.exists() {
            out.from_directory |= path.is_dir();
            let loaded = load::load(path);
            out.files.extend(loaded.files);
            out.problems.extend(loaded.problems);
        } else if let Some(record) = catalog.dataset(t).await? {
            out.files
                .push(load::from_catalog(record.spec, record.spec_hash));
        } else {
            out.problems.push(Problem::new(
                t,
                "(argument)",
                "not a spec file, a directory of specs, nor a dataset in the catalog",
                "check the path, or list known datasets with `skein status`",
            ));
        }
    }
    if targets.len() > 1 {
        // names repeated across several targets
        let mut seen = std::collections::BTreeSet::new();
        out.files.retain(|f| seen.insert(f.name().to_string()));
    }
    Ok(out)
}
