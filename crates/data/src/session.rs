//! DataFusion sessions with bounded memory, and the source registered as table `source`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{
    CsvReadOptions, JsonReadOptions, ParquetReadOptions, SessionConfig, SessionContext,
};
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};
use sha2::{Digest, Sha256};
use skein_core::load::{SpecFile, hex};
use skein_core::spec::{CsvOptions, SourceFormat};

use crate::error::{Error, Result};
use crate::location::Location;
use crate::s3::{S3Settings, explain};
use crate::sqlguard::SOURCE_TABLE;

/// How much the data plane may use of the machine.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Bytes DataFusion's operators may hold before they spill (sorts, aggregates, joins).
    pub memory_limit: usize,
    /// Where spill files go (default: the system temp dir).
    pub spill_dir: Option<PathBuf>,
    /// Parallel partitions (default: the number of cores).
    pub target_partitions: usize,
    /// Rows per Arrow batch.
    pub batch_size: usize,
    /// How to reach S3 for `s3://` sources and targets (default: the AWS environment).
    pub s3: S3Settings,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            memory_limit: 256 * 1024 * 1024,
            spill_dir: None,
            target_partitions: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            batch_size: 8192,
            s3: S3Settings::from_env(),
        }
    }
}

impl Settings {
    /// A fresh DataFusion session with these limits.
    pub fn session(&self) -> Result<SessionContext> {
        let mut disk = DiskManagerBuilder::default();
        if let Some(dir) = &self.spill_dir {
            std::fs::create_dir_all(dir).map_err(Error::io("create spill directory", dir))?;
            disk = disk.with_mode(DiskManagerMode::Directories(vec![dir.clone()]));
        }
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(FairSpillPool::new(self.memory_limit)))
            .with_disk_manager_builder(disk)
            .build_arc()
            .map_err(Error::engine("build the DataFusion runtime"))?;
        let mut config = SessionConfig::new()
            .with_target_partitions(self.target_partitions.max(1))
            .with_batch_size(self.batch_size)
            .with_information_schema(false);
        config
            .options_mut()
            .execution
            .parquet
            .schema_force_view_types = false;
        config.options_mut().execution.parquet.pushdown_filters = true;
        Ok(SessionContext::new_with_config_rt(config, runtime))
    }
}

/// The source of a dataset: where it is and which files it has.
#[derive(Debug, Clone)]
pub struct SourceFiles {
    /// What DataFusion reads: a local path (a file or a directory), `s3://bucket/key` (one
    /// object) or `s3://bucket/prefix/`.
    pub table_path: String,
    /// The data files (local paths or S3 keys), sorted.
    pub files: Vec<String>,
    /// The size in bytes of each file of `files`.
    pub sizes: Vec<u64>,
    /// Their total size in bytes.
    pub bytes: u64,
    /// Common file extension (with the dot) used to list a directory.
    pub extension: String,
    /// sha256 over the files' relative paths, sizes and modification times (local) or
    /// e-tags (S3), and the format options: equal fingerprints mean the same source as far
    /// as skein can tell without reading every byte.
    pub fingerprint: String,
    /// The bucket to register with a session, when the source is on S3.
    s3: Option<(S3Settings, String)>,
    /// The CSV schema once inferred (shared by clones: every registration of this
    /// listing, e.g. each chunk's, reads with the same types).
    csv_schema: Arc<OnceLock<SchemaRef>>,
    /// Set once the Parquet files' ends were checked (see [`crate::footer`]).
    parquet_checked: Arc<OnceLock<()>>,
}

impl SourceFiles {
    /// A source file as DataFusion reads it: the local path, or `s3://bucket/key`.
    pub(crate) fn url(&self, name: &str) -> String {
        match &self.s3 {
            Some((_, bucket)) => format!("s3://{bucket}/{name}"),
            None => name.to_string(),
        }
    }

    /// The object store and path of a source file (`name` from [`SourceFiles::files`]).
    pub(crate) fn object(&self, name: &str) -> Result<(Arc<dyn ObjectStore>, ObjectPath)> {
        match &self.s3 {
            Some((s3, bucket)) => Ok((s3.store(bucket)?, ObjectPath::from(name))),
            None => {
                let path = ObjectPath::from_filesystem_path(name)
                    .map_err(|e| Error::Internal(format!("source path {name}: {e}")))?;
                Ok((Arc::new(object_store::local::LocalFileSystem::new()), path))
            }
        }
    }

    /// The schema of a CSV source, inferred once per listing (see [`crate::csv_source`]).
    pub(crate) async fn csv_schema(&self, file: &SpecFile) -> Result<SchemaRef> {
        if let Some(schema) = self.csv_schema.get() {
            return Ok(schema.clone());
        }
        let schema = crate::csv_source::infer_schema(file, self).await?;
        Ok(self.csv_schema.get_or_init(|| schema).clone())
    }

    /// Checks the ends of every Parquet file once per listing, so that a corrupt file is
    /// refused with its name before a footer parser sees it.
    pub(crate) async fn check_parquet(&self, file: &SpecFile) -> Result<()> {
        if self.parquet_checked.get().is_some() {
            return Ok(());
        }
        let mut objects = Vec::with_capacity(self.files.len());
        for (name, &size) in self.files.iter().zip(&self.sizes) {
            let (store, path) = self.object(name)?;
            objects.push((store, path, name.clone(), size));
        }
        let store = match objects.first() {
            Some((store, ..)) => store.clone(),
            None => return Ok(()),
        };
        let names: std::collections::HashMap<String, String> = objects
            .iter()
            .map(|(_, path, name, _)| (path.to_string(), name.clone()))
            .collect();
        let files: Vec<(ObjectPath, u64)> = objects
            .into_iter()
            .map(|(_, path, _, size)| (path, size))
            .collect();
        if let Err((path, message)) = crate::footer::check_all(store.as_ref(), files).await {
            let name = names
                .get(path.as_ref())
                .cloned()
                .unwrap_or_else(|| path.to_string());
            let url = self.url(&name);
            return Err(Error::SourceUnreadable {
                dataset: file.name().to_string(),
                uri: url.clone(),
                message: format!(
                    "the Parquet file `{url}` {message}; replace it with a good copy or remove it from the source"
                ),
            });
        }
        let _ = self.parquet_checked.set(());
        Ok(())
    }
}

/// One listed source file: its path relative to the source, size, and version stamp.
struct Listed {
    name: String,
    relative: String,
    size: u64,
    stamp: String,
}

/// Lists a spec's source files and fingerprints them.
pub async fn list_source(settings: &Settings, file: &SpecFile) -> Result<SourceFiles> {
    let spec = &file.spec.spec;
    let dataset = file.name().to_string();
    let uri = spec.source.uri.clone();
    let unreadable = |message: String| Error::SourceUnreadable {
        dataset: dataset.clone(),
        uri: uri.clone(),
        message,
    };
    let location = Location::resolve(&spec.source.uri, file.base_dir());
    let (table_path, mut listed, s3) = match location.s3() {
        Some((bucket, key)) => {
            let (table_path, listed) = list_s3(&settings.s3, bucket, key, &unreadable).await?;
            (
                table_path,
                listed,
                Some((settings.s3.clone(), bucket.to_string())),
            )
        }
        None => {
            let path = location
                .local(file.name(), "spec.source.uri")?
                .to_path_buf();
            let listed = list_local(&path, &unreadable)?;
            (path.to_string_lossy().to_string(), listed, None)
        }
    };
    listed.sort_by(|a, b| a.name.cmp(&b.name));
    let names: Vec<String> = listed.iter().map(|l| l.name.clone()).collect();
    let extension = common_extension(&names, spec.source.format)
        .map_err(|m| unreadable(format!("{table_path}: {m}")))?;
    let mut hasher = Sha256::new();
    hasher.update(format!("{:?}|{:?}\n", spec.source.format, spec.source.csv).as_bytes());
    for l in &listed {
        hasher.update(format!("{}|{}|{}\n", l.relative, l.size, l.stamp).as_bytes());
    }
    Ok(SourceFiles {
        table_path,
        bytes: listed.iter().map(|l| l.size).sum(),
        sizes: listed.iter().map(|l| l.size).collect(),
        files: names,
        extension,
        fingerprint: hex(&hasher.finalize()),
        s3,
        csv_schema: Arc::default(),
        parquet_checked: Arc::default(),
    })
}

fn list_local(path: &Path, unreadable: &(dyn Fn(String) -> Error + Sync)) -> Result<Vec<Listed>> {
    let meta =
        std::fs::metadata(path).map_err(|e| unreadable(format!("{}: {e}", path.display())))?;
    let mut files = Vec::new();
    if meta.is_dir() {
        collect_files(path, &mut files)
            .map_err(|e| unreadable(format!("cannot list {}: {e}", path.display())))?;
    } else {
        files.push(path.to_path_buf());
    }
    if files.is_empty() {
        return Err(unreadable(format!(
            "{} holds no data files",
            path.display()
        )));
    }
    let mut out = Vec::new();
    for f in files {
        let m = std::fs::metadata(&f).map_err(|e| unreadable(format!("{}: {e}", f.display())))?;
        let mtime = m
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        out.push(Listed {
            relative: f.strip_prefix(path).unwrap_or(&f).display().to_string(),
            name: f.to_string_lossy().to_string(),
            size: m.len(),
            stamp: mtime.to_string(),
        });
    }
    Ok(out)
}

/// Lists `s3://bucket/key`: one object if `key` names one, else every object under the
/// prefix (hidden `.`/`_` names skipped, as locally).
async fn list_s3(
    s3: &S3Settings,
    bucket: &str,
    key: &str,
    unreadable: &(dyn Fn(String) -> Error + Sync),
) -> Result<(String, Vec<Listed>)> {
    let store = s3.store(bucket)?;
    let listed = |m: &ObjectMeta, relative: String| Listed {
        name: m.location.to_string(),
        relative,
        size: m.size,
        stamp: m.e_tag.clone().unwrap_or_default(),
    };
    if !key.is_empty() {
        match store.head(&ObjectPath::from(key)).await {
            Ok(m) => {
                let name = m.location.filename().unwrap_or_default().to_string();
                return Ok((format!("s3://{bucket}/{key}"), vec![listed(&m, name)]));
            }
            Err(object_store::Error::NotFound { .. }) => {} // a prefix (or no bucket: listing says)
            Err(e) => return Err(unreadable(explain(bucket, &e))),
        }
    }
    let prefix = if key.is_empty() {
        None
    } else {
        Some(ObjectPath::from(key))
    };
    let metas: Vec<ObjectMeta> = store
        .list(prefix.as_ref())
        .try_collect()
        .await
        .map_err(|e| unreadable(explain(bucket, &e)))?;
    let mut out = Vec::new();
    for m in &metas {
        let full = m.location.to_string();
        let relative = full
            .strip_prefix(key)
            .unwrap_or(&full)
            .trim_start_matches('/')
            .to_string();
        if relative
            .split('/')
            .any(|part| part.starts_with('.') || part.starts_with('_'))
        {
            continue; // hidden files, _SUCCESS markers, _skein state
        }
        out.push(listed(m, relative));
    }
    let table_path = if key.is_empty() {
        format!("s3://{bucket}/")
    } else {
        format!("s3://{bucket}/{key}/")
    };
    if out.is_empty() {
        return Err(unreadable(format!(
            "no data files under {table_path}; upload the source files there or fix spec.source.uri"
        )));
    }
    Ok((table_path, out))
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with('.') || name.starts_with('_') {
            continue; // hidden files, _SUCCESS markers, _skein state
        }
        if entry.file_type()?.is_dir() {
            collect_files(&entry.path(), out)?;
        } else {
            out.push(entry.path());
        }
    }
    Ok(())
}

fn common_extension(files: &[String], format: SourceFormat) -> Result<String, String> {
    let mut exts: Vec<String> = files
        .iter()
        .map(|f| {
            Path::new(f)
                .extension()
                .map(|e| format!(".{}", e.to_string_lossy()))
                .unwrap_or_default()
        })
        .collect();
    exts.sort();
    exts.dedup();
    match exts.as_slice() {
        [one] => Ok(one.clone()),
        _ => Err(format!(
            "the files have different extensions ({}); a {format} source must hold one kind of file",
            exts.join(", ")
        )),
    }
}

/// How DataFusion reads the CSV files: with the given schema (never its own inference),
/// whole files only (`newlines_in_values` turns off byte-range repartitioning).
fn csv_options<'a>(
    file: &'a SpecFile,
    source: &'a SourceFiles,
    schema: &'a Schema,
) -> CsvReadOptions<'a> {
    static DEFAULT: std::sync::LazyLock<CsvOptions> = std::sync::LazyLock::new(CsvOptions::default);
    let csv = file.spec.spec.source.csv.as_ref().unwrap_or(&DEFAULT);
    CsvReadOptions::new()
        .has_header(csv.header)
        .delimiter(csv.delimiter.as_bytes()[0])
        .quote(csv.quote.as_bytes()[0])
        .newlines_in_values(true)
        .schema(schema)
        .file_extension(&source.extension)
}

fn json_options(source: &SourceFiles) -> JsonReadOptions<'_> {
    JsonReadOptions::default()
        .file_extension(&source.extension)
        .schema_infer_max_records(10_000)
}

/// Registers the source as table `source` in `ctx`.
pub async fn register_source(
    ctx: &SessionContext,
    file: &SpecFile,
    source: &SourceFiles,
) -> Result<()> {
    let spec = &file.spec.spec;
    if let Some((s3, bucket)) = &source.s3 {
        s3.register(ctx, bucket)?;
    }
    let path = source.table_path.clone();
    let result = match spec.source.format {
        SourceFormat::Csv => {
            let schema = source.csv_schema(file).await?;
            ctx.register_csv(SOURCE_TABLE, &path, csv_options(file, source, &schema))
                .await
        }
        SourceFormat::Ndjson => {
            if source.bytes == 0 {
                let name = source.files.first().cloned().unwrap_or_default();
                let url = source.url(&name);
                return Err(Error::SourceUnreadable {
                    dataset: file.name().to_string(),
                    uri: url.clone(),
                    message: format!(
                        "the source file `{url}` is empty (0 bytes): there is no row; put the export there or fix spec.source.uri"
                    ),
                });
            }
            ctx.register_json(SOURCE_TABLE, &path, json_options(source))
                .await
        }
        SourceFormat::Parquet => {
            source.check_parquet(file).await?;
            let options = ParquetReadOptions::default().file_extension(&source.extension);
            ctx.register_parquet(SOURCE_TABLE, &path, options).await
        }
    };
    match result {
        Ok(()) => Ok(()),
        Err(e) => Err(source_failure(file, source, e.strip_backtrace()).await),
    }
}

/// A failed read of the source as the most precise error: the file and line that made
/// it fail when a second look finds them (a bad NDJSON line, a CSV quote left open),
/// else the reader's message.
pub(crate) async fn source_failure(
    file: &SpecFile,
    source: &SourceFiles,
    message: String,
) -> Error {
    let dataset = file.name().to_string();
    let found = match file.spec.spec.source.format {
        SourceFormat::Ndjson => crate::ndjson::first_bad_line(source)
            .await
            .map(|(uri, line, why)| (uri, crate::ndjson::bad_line_message(line, &why))),
        SourceFormat::Csv => crate::csv_source::find_open_quote(file, source)
            .await
            .map(|(uri, line)| (uri, crate::csv_source::open_quote_message(line))),
        SourceFormat::Parquet => None,
    };
    match found {
        Some((uri, message)) => Error::SourceUnreadable {
            dataset,
            uri,
            message,
        },
        None => Error::SourceUnreadable {
            dataset,
            uri: match source.files.as_slice() {
                [one] => source.url(one),
                _ => file.spec.spec.source.uri.clone(),
            },
            message,
        },
    }
}

/// Registers some of the source's CSV or NDJSON files (`names`, from [`SourceFiles::files`])
/// as table `source`, read with `schema` (the whole source's), so that every chunk of a
/// dataset reads its columns as the same types.
pub(crate) async fn register_text_files(
    ctx: &SessionContext,
    file: &SpecFile,
    source: &SourceFiles,
    names: &[String],
    schema: &Schema,
) -> Result<()> {
    if let Some((s3, bucket)) = &source.s3 {
        s3.register(ctx, bucket)?;
    }
    let paths: Vec<String> = names.iter().map(|n| source.url(n)).collect();
    let df = match file.spec.spec.source.format {
        SourceFormat::Csv => ctx.read_csv(paths, csv_options(file, source, schema)).await,
        SourceFormat::Ndjson => {
            ctx.read_json(paths, json_options(source).schema(schema))
                .await
        }
        SourceFormat::Parquet => {
            return Err(Error::Internal(
                "Parquet chunks are read by row group, not as text files".into(),
            ));
        }
    };
    let df = df.map_err(|e| Error::SourceUnreadable {
        dataset: file.name().to_string(),
        uri: names.join(", "),
        message: e.strip_backtrace(),
    })?;
    ctx.register_table(SOURCE_TABLE, df.into_view())
        .map_err(Error::engine("register the chunk's source files"))?;
    Ok(())
}
