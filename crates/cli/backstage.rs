//! `skein catalog import` and `skein catalog export`: datasets as Backstage entities.
//!
//! Import reads `catalog-info.yaml` files, turns every dataset Resource into a spec,
//! registers it in the catalog and (with `--out`) writes it as a spec file; export writes
//! one entity per dataset in the catalog, with its migration status, for Backstage to show.
//! The conversion itself is [`skein_backstage`].

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::json;
use skein_backstage::{self as backstage, EntityStatus};
use skein_core::Problem;
use skein_core::catalog::Catalog;
use skein_core::load::SpecFile;
use skein_core::validate;

use crate::datasets::open_catalog;
use crate::flags::Global;
use crate::output;
use crate::{EXIT_OK, EXIT_USAGE};

/// File name export writes (the name Backstage discovers by default).
pub const CATALOG_INFO: &str = "catalog-info.yaml";

/// `skein catalog import FILE… [--out DIR]`: registers every dataset entity of the files in
/// the catalog, and writes each as `<DIR>/<name>.yaml` when `out` is given. Relative URIs
/// are resolved against the directory of the file they were read from. Any problem in any
/// file stops the import before anything is registered or written (exit 2).
pub async fn import(g: &Global, files: &[PathBuf], out: Option<&Path>) -> anyhow::Result<u8> {
    let mut problems: Vec<Problem> = Vec::new();
    let mut specs: Vec<SpecFile> = Vec::new();
    let mut skipped: Vec<String> = Vec::new();
    for file in files {
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(e) => {
                problems.push(Problem::new(
                    file,
                    "(file)",
                    format!("cannot read the file: {e}"),
                    "check the path and its permissions",
                ));
                continue;
            }
        };
        let entities = match backstage::parse_entities(&text, file) {
            Ok(entities) => entities,
            Err(mut p) => {
                problems.append(&mut p);
                continue;
            }
        };
        for entity in &entities {
            if !backstage::is_dataset(entity) {
                skipped.push(entity.metadata.name.clone());
                continue;
            }
            match backstage::from_entity(entity, file) {
                Ok(spec) => specs.push(backstage::resolved_spec_file(spec, file)),
                Err(found) => problems.extend(found.into_iter().map(|mut p| {
                    p.line = p
                        .line
                        .or_else(|| backstage::locate(&text, &entity.metadata.name, &p.field));
                    p
                })),
            }
        }
    }
    if specs.is_empty() && problems.is_empty() {
        problems.push(Problem::new(
            files.first().cloned().unwrap_or_default(),
            "(file)",
            "no dataset entities (kind: Resource with spec.type: dataset) found",
            "give each dataset `kind: Resource`, `spec.type: dataset` and skein.dev/ annotations; `skein catalog export` shows the shape",
        ));
    }
    problems.extend(validate::check_set(&specs, false));
    if !problems.is_empty() {
        if g.json {
            println!("{}", json!({ "ok": false, "problems": problems }));
        }
        output::problems(&problems);
        return Ok(EXIT_USAGE);
    }

    let mut written: Vec<PathBuf> = Vec::new();
    if let Some(dir) = out {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("create the directory {}", dir.display()))?;
        for f in &specs {
            let path = dir.join(format!("{}.yaml", f.name()));
            let text = format!(
                "# Imported by `skein catalog import` from {}.\n{}",
                f.path.display(),
                backstage::render_spec(&f.spec)
            );
            std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
            written.push(path);
        }
    }
    let catalog = open_catalog(g)?;
    for f in &specs {
        catalog
            .put_spec(&f.spec, &f.hash)
            .await
            .with_context(|| format!("register dataset `{}` in the catalog", f.name()))?;
    }

    let imported: Vec<&str> = specs.iter().map(SpecFile::name).collect();
    if g.json {
        println!("{}", json!({ "imported": imported, "skipped": skipped }));
        return Ok(EXIT_OK);
    }
    for (i, f) in specs.iter().enumerate() {
        match written.get(i) {
            Some(path) => println!("imported {} -> {}", f.name(), path.display()),
            None => println!("imported {}", f.name()),
        }
    }
    for name in &skipped {
        println!("skipped {name} (not a dataset)");
    }
    Ok(EXIT_OK)
}

/// `skein catalog export DIR`: writes `<DIR>/catalog-info.yaml` with one entity per dataset
/// in the catalog, carrying its status, published version, rows and last verification,
/// the target's format, a Delta target's table version and the Glue table.
pub async fn export(g: &Global, dir: &Path) -> anyhow::Result<u8> {
    let catalog = open_catalog(g)?;
    let records = catalog.datasets().await?;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("create the directory {}", dir.display()))?;
    // Local paths are written relative to the exported file, as a spec beside it would
    // say them, so the export can be moved with the data and checked in.
    let base = std::fs::canonicalize(dir)
        .with_context(|| format!("resolve the directory {}", dir.display()))?;
    let mut entities: Vec<backstage::Entity> = Vec::new();
    for r in &records {
        let status = EntityStatus {
            status: r.status.as_str().to_string(),
            version: r.current_version,
            rows: r.rows,
            last_verification: r.last_verification.clone(),
            updated_at: r.updated_at.clone(),
            table_version: table_version(g, r).await,
        };
        let mut spec = r.spec.clone();
        spec.spec.source.uri = relative_uri(&spec.spec.source.uri, &base);
        spec.spec.target.uri = relative_uri(&spec.spec.target.uri, &base);
        entities.push(backstage::to_entity(&spec, Some(&status)));
    }
    let path = dir.join(CATALOG_INFO);
    let text = format!(
        "# Written by `skein catalog export`: one Resource per dataset, with its migration status.\n{}",
        backstage::render_entities(&entities)
    );
    std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
    if g.json {
        println!(
            "{}",
            json!({ "file": path.display().to_string(), "datasets": entities.len() })
        );
    } else {
        println!("wrote {} ({} dataset(s))", path.display(), entities.len());
    }
    Ok(EXIT_OK)
}

/// The table version of a Delta target (none for other formats; a log that cannot be read
/// is a warning, not a failed export).
async fn table_version(g: &Global, r: &skein_core::catalog::DatasetRecord) -> Option<u64> {
    if !r.spec.spec.target.is_delta() {
        return None;
    }
    let file = skein_core::load::from_catalog(r.spec.clone(), r.spec_hash.clone());
    let read = async {
        skein_data::Target::open(&g.settings(), &file)?
            .table_version()
            .await
    };
    match read.await {
        Ok(v) => v,
        Err(e) => {
            eprintln!(
                "warning: dataset `{}`: the Delta log is not readable: {e}",
                r.name
            );
            None
        }
    }
}

/// `uri` relative to `base` when both are local absolute paths; other URIs (`s3://`,
/// relative paths) unchanged. A `file://` URI becomes a path first.
fn relative_uri(uri: &str, base: &Path) -> String {
    let path = Path::new(uri.strip_prefix("file://").unwrap_or(uri));
    if uri.contains("://") && !uri.starts_with("file://") || !path.is_absolute() {
        return uri.to_string();
    }
    let from: Vec<_> = base.components().collect();
    let to: Vec<_> = path.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut rel = std::path::PathBuf::new();
    for _ in common..from.len() {
        rel.push("..");
    }
    for c in &to[common..] {
        rel.push(c);
    }
    let mut text = rel.display().to_string();
    if text.is_empty() {
        text = ".".into();
    }
    // Keep a directory's trailing slash: it tells a prefix from a file.
    if uri.ends_with('/') && !text.ends_with('/') {
        text.push('/');
    }
    text
}
