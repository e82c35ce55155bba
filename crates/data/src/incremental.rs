//! Incremental sources (`source.mode: incremental`): a directory or prefix that grows. A
//! run migrates only the files the published version was not made from and stages a
//! version made of the published version's files plus the new ones:
//!
//! 1. [`base`] compares the listing with the files the published version records
//!    ([`Manifest::source_files`]: path, size, modification time or e-tag). A recorded
//!    file that changed or disappeared is an error naming it ([`Error::SourceChanged`]),
//!    or with `onChange: full` a full migration. The first run, a changed spec and a
//!    version that records no files are full migrations too.
//! 2. [`stage_increment`] writes the new files through the transform (which must be
//!    row-wise: it sees only them), reads the written files back (rows, checksum, schema
//!    and the row-wise rules, as a chunk is checked), brings the published version's files
//!    into the staging without copying their bytes ([`Target::adopt`]: hard links
//!    locally), and writes the staged manifest: the files of both, the rows and checksum of
//!    both (the checksum is a sum of row hashes, so old plus new), the new files' rule
//!    counts, and every source file it is made of.
//!
//! The staged version then goes through the usual verification as a version staged in
//! parts ([`Manifest::verified_chunks`]): its files are listed and their footers read
//! (every file, no rows), the row-wise rules are the new rows' counts (the old rows passed
//! them when their version was verified under the same spec), and `unique` runs over the
//! whole version. Publish and rollback are the usual ones: rollback makes the previous
//! version current again, whose files were never touched.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use datafusion::arrow::datatypes::Schema;
use datafusion::prelude::SessionContext;

use skein_core::load::SpecFile;
use skein_core::manifest::{Manifest, SchemaDiff};
use skein_core::spec::{OnChange, SourceFormat};

use crate::checksum::combine;
use crate::error::{Error, Result};
use crate::listing::SourceFiles;
use crate::session::{Settings, register_source};
use crate::target::Target;
use crate::writer::{Progress, Sink, staged_manifest, write_all};

/// What a run of an incremental source migrates.
#[derive(Debug)]
pub enum Base {
    /// The whole source; with the reason when a published version was there to add to.
    Full(Option<String>),
    /// Only `added` (the listing's new files, read by name), added to `previous`.
    Add {
        previous: Box<Manifest>,
        added: Box<SourceFiles>,
    },
}

/// What the listing says against the published version, before any data is read.
enum Compared {
    /// Migrate everything, for this reason (`None`: nothing was published).
    Full(Option<String>),
    /// A recorded file changed or disappeared (`onChange: fail`).
    Changed(Error),
    /// Only these files of the listing are new.
    Add(Box<Manifest>, Vec<usize>),
}

/// Compares the listing with the files the published version records.
fn compare(file: &SpecFile, source: &SourceFiles, previous: Option<Manifest>) -> Compared {
    let Some(previous) = previous else {
        return Compared::Full(None);
    };
    let v = previous.version;
    if previous.spec_hash != file.hash {
        return Compared::Full(Some(format!(
            "the spec changed since v{v}, so the whole source is migrated again"
        )));
    }
    let Some(recorded) = &previous.source_files else {
        return Compared::Full(Some(format!(
            "v{v} does not record the source files it was made from, so the whole source is migrated"
        )));
    };
    let listed: HashMap<&str, usize> = source
        .relative
        .iter()
        .enumerate()
        .map(|(i, r)| (r.as_str(), i))
        .collect();
    for old in recorded {
        let how = match listed.get(old.path.as_str()) {
            None => Some("disappeared".to_string()),
            Some(&i) if source.sizes[i] != old.size => Some(format!(
                "changed (its size went from {} to {} bytes)",
                old.size, source.sizes[i]
            )),
            Some(&i) if source.stamps[i] != old.stamp => Some(if source.s3.is_some() {
                "changed (its e-tag differs)".to_string()
            } else {
                "changed (it was modified)".to_string()
            }),
            Some(_) => None,
        };
        if let Some(how) = how {
            let uri = match &source.s3 {
                Some(_) => format!("{}{}", source.table_path, old.path),
                None => std::path::Path::new(&source.table_path)
                    .join(&old.path)
                    .display()
                    .to_string(),
            };
            if file.spec.spec.source.on_change == Some(OnChange::Full) {
                return Compared::Full(Some(format!(
                    "`{uri}` {how} since v{v} (onChange: full), so the whole source is migrated again"
                )));
            }
            return Compared::Changed(Error::SourceChanged {
                dataset: file.name().to_string(),
                uri: format!("`{uri}`"),
                how,
                version: v,
            });
        }
    }
    let known: std::collections::HashSet<&str> = recorded.iter().map(|f| f.path.as_str()).collect();
    let new = (0..source.files.len())
        .filter(|&i| !known.contains(source.relative[i].as_str()))
        .collect();
    Compared::Add(Box::new(previous), new)
}

/// The source bytes a run of `file` reads: the whole listing's, or for an incremental
/// source that adds to its published version only the new files' (what decides whether
/// the run needs a container). Reads one manifest, no data.
pub async fn bytes_to_migrate(
    file: &SpecFile,
    source: &SourceFiles,
    store: &Target,
) -> Result<u64> {
    if !file.spec.spec.source.is_incremental() || !source.directory {
        return Ok(source.bytes);
    }
    Ok(match compare(file, source, store.current().await?) {
        Compared::Add(_, new) => new.iter().map(|&i| source.sizes[i]).sum(),
        Compared::Full(_) | Compared::Changed(_) => source.bytes,
    })
}

/// Decides what a run of `file` migrates: everything (not incremental, the first run, a
/// changed spec, `onChange: full` after a change) or only the new files.
pub async fn base(
    settings: &Settings,
    file: &SpecFile,
    source: &SourceFiles,
    store: &Target,
) -> Result<Base> {
    if !file.spec.spec.source.is_incremental() {
        return Ok(Base::Full(None));
    }
    if !source.directory {
        return Err(Error::NotIncremental {
            dataset: file.name().to_string(),
            reason: format!(
                "its source `{}` is one file; an incremental source is a directory or prefix that new files are added to",
                source.table_path
            ),
        });
    }
    let (previous, new) = match compare(file, source, store.current().await?) {
        Compared::Changed(e) => return Err(e),
        Compared::Full(why) => {
            row_wise(settings, file, source).await?;
            return Ok(Base::Full(why));
        }
        Compared::Add(previous, new) => (previous, new),
    };
    let mut added = source.only(&new);
    added.fixed_schema = previous
        .source_schema
        .as_ref()
        .and_then(|v| serde_json::from_value::<Schema>(v.clone()).ok())
        .map(Arc::new);
    if !new.is_empty() {
        if let Some(fixed) = &added.fixed_schema {
            same_columns(settings, file, &added, fixed).await?;
        }
        row_wise(settings, file, &added).await?;
    }
    Ok(Base::Add {
        previous,
        added: Box::new(added),
    })
}

/// Refuses new CSV or NDJSON files whose columns are not the recorded ones: read with the
/// recorded schema, a new NDJSON field would be dropped without a word and a CSV header
/// that differs would fail on its first line. Their own columns are inferred from them
/// alone (for CSV, the header and sampled types; for NDJSON, every key).
async fn same_columns(
    settings: &Settings,
    file: &SpecFile,
    added: &SourceFiles,
    recorded: &Schema,
) -> Result<()> {
    let mut probe = added.clone();
    probe.fixed_schema = None;
    probe.csv_schema = Arc::default();
    let ctx = settings.session()?;
    register_source(&ctx, file, &probe).await?;
    let table = ctx
        .table(crate::sqlguard::SOURCE_TABLE)
        .await
        .map_err(Error::engine("open the new files"))?;
    let theirs: Vec<String> = table
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let ours: Vec<String> = recorded.fields().iter().map(|f| f.name().clone()).collect();
    let extra: Vec<String> = theirs
        .iter()
        .filter(|c| !ours.contains(c))
        .map(|c| format!("`{c}`"))
        .collect();
    let missing: Vec<String> = ours
        .iter()
        .filter(|c| !theirs.contains(c))
        .map(|c| format!("`{c}`"))
        .collect();
    let csv = file.spec.spec.source.format == SourceFormat::Csv;
    if extra.is_empty() && (missing.is_empty() || !csv) {
        return Ok(());
    }
    let files: Vec<String> = added.files.iter().take(3).map(|f| added.url(f)).collect();
    let more = if added.files.len() > 3 { ", …" } else { "" };
    let mut what = Vec::new();
    if !extra.is_empty() {
        what.push(format!(
            "have column(s) {} that the version's files do not",
            extra.join(", ")
        ));
    }
    if csv && !missing.is_empty() {
        what.push(format!("lack column(s) {}", missing.join(", ")));
    }
    Err(Error::NotIncremental {
        dataset: file.name().to_string(),
        reason: format!(
            "the new files ({}{more}) {}; one version holds one schema: migrate the whole source once with `mode: full`",
            files.join(", "),
            what.join(" and ")
        ),
    })
}

/// Refuses a transform that needs all rows at once: an incremental run sends only the new
/// files through it. Planned over `source` (the new files when there are some, so that
/// the old ones are not read).
async fn row_wise(settings: &Settings, file: &SpecFile, source: &SourceFiles) -> Result<()> {
    match crate::chunk::why_not_row_wise(settings, file, source).await? {
        None => Ok(()),
        Some(reason) => Err(Error::NotIncremental {
            dataset: file.name().to_string(),
            reason: format!(
                "the transform {reason}, and an incremental run sends only the new files through it; make it row by row (columns and filters only) or remove `mode: incremental`"
            ),
        }),
    }
}

/// For an incremental CSV or NDJSON source registered in `ctx`: the types its files are
/// read with, for the version to record (see [`Manifest::source_schema`]).
pub(crate) async fn source_schema(
    ctx: &SessionContext,
    file: &SpecFile,
) -> Result<Option<serde_json::Value>> {
    let spec = &file.spec.spec;
    if !spec.source.is_incremental()
        || !matches!(spec.source.format, SourceFormat::Csv | SourceFormat::Ndjson)
    {
        return Ok(None);
    }
    let table = ctx
        .table(crate::sqlguard::SOURCE_TABLE)
        .await
        .map_err(Error::engine("open the source"))?;
    let schema: Schema = table.schema().as_arrow().clone();
    Ok(serde_json::to_value(&schema).ok())
}

/// What staging an increment produced: the staged manifest, and the new files' share.
#[derive(Debug, Clone)]
pub struct Increment {
    /// The staged manifest of the whole new version.
    pub manifest: Manifest,
    /// The version it adds to.
    pub base_version: u64,
    /// New source files read.
    pub new_files: usize,
    /// Rows the new files gave.
    pub new_rows: u64,
}

/// Stages a version of `previous`'s files plus the new source files `added` (see the
/// module's doc); `source` is the whole listing, which the version records. The staged
/// manifest is written last, as for any staging.
#[allow(clippy::too_many_arguments)]
pub async fn stage_increment(
    settings: &Settings,
    file: &SpecFile,
    source: &SourceFiles,
    store: &Target,
    run_id: &str,
    progress: &Progress,
    previous: &Manifest,
    added: &SourceFiles,
) -> Result<Increment> {
    let dataset = file.name().to_string();
    store.discard(run_id).await?; // a half-written earlier attempt
    progress.source_bytes.store(added.bytes, Ordering::Relaxed);
    let part = if added.files.is_empty() {
        None
    } else {
        match write_new(settings, file, added, store, run_id, progress).await {
            Ok(m) => Some(m),
            Err(e) => {
                let _ = store.discard(run_id).await;
                return Err(e);
            }
        }
    };
    if let Some(m) = &part {
        let diff = SchemaDiff::between(&previous.schema, &m.schema);
        if !diff.is_empty() {
            let _ = store.discard(run_id).await;
            return Err(Error::NotIncremental {
                dataset,
                reason: format!(
                    "the new files' output schema differs from v{}'s: {diff}; one version holds one schema: make the new files match, or migrate the whole source once with `mode: full`",
                    previous.version
                ),
            });
        }
    }
    let old_names: Vec<String> = previous.files.iter().map(|f| f.name.clone()).collect();
    store.adopt(run_id, previous.version, &old_names).await?;
    let mut files = previous.files.clone();
    let mut checksums = vec![previous.checksum.clone()];
    let (mut new_rows, mut violations) = (0, std::collections::BTreeMap::new());
    if let Some(m) = &part {
        files.extend(m.files.iter().cloned());
        checksums.push(m.checksum.clone());
        new_rows = m.rows;
        violations = m.rule_violations.clone().unwrap_or_default();
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    let checksum = combine(&checksums);
    let manifest = Manifest {
        dataset: dataset.clone(),
        version: 0,
        run_id: run_id.to_string(),
        spec_hash: file.hash.clone(),
        source_fingerprint: source.fingerprint.clone(),
        rows: checksum.rows,
        bytes: files.iter().map(|f| f.size).sum(),
        files,
        checksum,
        schema: previous.schema.clone(),
        created_at: skein_core::time::now(),
        published_at: None,
        // two parts, each verified: the published version, and the new files (read back
        // above)
        verified_chunks: Some(2),
        rule_violations: Some(violations),
        source_files: Some(source.entries()),
        source_schema: previous.source_schema.clone(),
    };
    skein_core::crash::point("stage.parts", file.name());
    store.write_staged(run_id, &manifest).await?;
    Ok(Increment {
        manifest,
        base_version: previous.version,
        new_files: added.files.len(),
        new_rows,
    })
}

/// Writes the new files through the transform and reads what was written back: its
/// manifest, with the new rows' rule counts.
async fn write_new(
    settings: &Settings,
    file: &SpecFile,
    added: &SourceFiles,
    store: &Target,
    run_id: &str,
    progress: &Progress,
) -> Result<Manifest> {
    let output = store.staging_output(settings, run_id)?;
    let ctx = settings.session()?;
    register_source(&ctx, file, added).await?;
    let sink = Sink {
        output: &output,
        target: store,
        run_id,
        chunk: None,
    };
    let (schema, parts) = write_all(&ctx, file, added, &sink, progress).await?;
    let mut manifest = staged_manifest(file, run_id, &added.fingerprint, &schema, &parts);
    if manifest.files.is_empty() {
        return Ok(manifest); // the new files gave no row
    }
    // Alone in the staging so far: read back as the version will be read (partition
    // columns from `col=value/` paths).
    let read = crate::verify::dir_checksum(
        settings,
        file,
        &store.staging_data(run_id).await?,
        &manifest,
    )
    .await?;
    if let Some((check, expected, actual)) = read.differs_from(&manifest) {
        return Err(Error::IncrementMismatch {
            dataset: file.name().to_string(),
            check,
            expected,
            actual,
        });
    }
    manifest.rule_violations = Some(read.rule_violations);
    Ok(manifest)
}
