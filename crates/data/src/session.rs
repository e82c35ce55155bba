//! DataFusion sessions with bounded memory, and the source registered as table `source`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{
    CsvReadOptions, JsonReadOptions, ParquetReadOptions, SessionConfig, SessionContext,
};
use sha2::{Digest, Sha256};
use skein_core::load::{SpecFile, hex};
use skein_core::spec::{CsvOptions, SourceFormat};

use crate::error::{Error, Result};
use crate::location::Location;
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
    /// The resolved path (a file or a directory).
    pub path: PathBuf,
    /// The data files, sorted.
    pub files: Vec<PathBuf>,
    /// Common file extension (with the dot) used to list a directory.
    pub extension: String,
    /// sha256 over the files' relative paths, sizes and modification times, and the
    /// format options: equal fingerprints mean the same source as far as skein can tell
    /// without reading every byte.
    pub fingerprint: String,
}

/// Lists a spec's source files and fingerprints them.
pub fn list_source(file: &SpecFile) -> Result<SourceFiles> {
    let spec = &file.spec.spec;
    let dataset = file.name().to_string();
    let uri = spec.source.uri.clone();
    let unreadable = |message: String| Error::SourceUnreadable {
        dataset: dataset.clone(),
        uri: uri.clone(),
        message,
    };
    let location = Location::resolve(&spec.source.uri, file.base_dir());
    let path = location
        .local(file.name(), "spec.source.uri")?
        .to_path_buf();
    let meta =
        std::fs::metadata(&path).map_err(|e| unreadable(format!("{}: {e}", path.display())))?;
    let mut files = Vec::new();
    if meta.is_dir() {
        collect_files(&path, &mut files)
            .map_err(|e| unreadable(format!("cannot list {}: {e}", path.display())))?;
    } else {
        files.push(path.clone());
    }
    files.sort();
    if files.is_empty() {
        return Err(unreadable(format!(
            "{} holds no data files",
            path.display()
        )));
    }
    let extension = common_extension(&files, spec.source.format)
        .map_err(|m| unreadable(format!("{}: {m}", path.display())))?;
    let mut hasher = Sha256::new();
    hasher.update(format!("{:?}|{:?}\n", spec.source.format, spec.source.csv).as_bytes());
    for f in &files {
        let m = std::fs::metadata(f).map_err(|e| unreadable(format!("{}: {e}", f.display())))?;
        let rel = f.strip_prefix(&path).unwrap_or(f);
        let mtime = m
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        hasher.update(format!("{}|{}|{}\n", rel.display(), m.len(), mtime).as_bytes());
    }
    Ok(SourceFiles {
        path,
        files,
        extension,
        fingerprint: hex(&hasher.finalize()),
    })
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

fn common_extension(files: &[PathBuf], format: SourceFormat) -> Result<String, String> {
    let mut exts: Vec<String> = files
        .iter()
        .map(|f| {
            f.extension()
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

/// Registers the source as table `source` in `ctx`.
pub async fn register_source(
    ctx: &SessionContext,
    file: &SpecFile,
    source: &SourceFiles,
) -> Result<()> {
    let spec = &file.spec.spec;
    let path = source.path.to_string_lossy().to_string();
    let result = match spec.source.format {
        SourceFormat::Csv => {
            let default = CsvOptions::default();
            let csv = spec.source.csv.as_ref().unwrap_or(&default);
            let options = CsvReadOptions::new()
                .has_header(csv.header)
                .delimiter(csv.delimiter.as_bytes()[0])
                .quote(csv.quote.as_bytes()[0])
                .newlines_in_values(true)
                .schema_infer_max_records(10_000)
                .file_extension(&source.extension);
            ctx.register_csv(SOURCE_TABLE, &path, options).await
        }
        SourceFormat::Ndjson => {
            let options = JsonReadOptions::default()
                .file_extension(&source.extension)
                .schema_infer_max_records(10_000);
            ctx.register_json(SOURCE_TABLE, &path, options).await
        }
        SourceFormat::Parquet => {
            let options = ParquetReadOptions::default().file_extension(&source.extension);
            ctx.register_parquet(SOURCE_TABLE, &path, options).await
        }
    };
    result.map_err(|e| Error::SourceUnreadable {
        dataset: file.name().to_string(),
        uri: spec.source.uri.clone(),
        message: e.strip_backtrace(),
    })
}
