//! Parquet files checked at their two ends before anything parses them: a file that is
//! empty, cut off, not Parquet at all, or whose footer length points past its start is
//! refused with its name, instead of reaching a footer parser that may panic on it.
//!
//! A Parquet file is `PAR1`, the data, the metadata, the metadata's length (4 bytes,
//! little endian) and `PAR1` again. Checking costs one ranged read of 12 bytes per file,
//! then one of its metadata, decoded (with its Arrow schema) with any panic caught.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::{
    DefaultParquetFileReaderFactory, ParquetFileReaderFactory,
};
use datafusion::parquet::arrow::ParquetRecordBatchStreamBuilder;
use datafusion::parquet::arrow::async_reader::AsyncFileReader;
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use futures::{StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};
use skein_core::load::SpecFile;

use crate::error::{Error, Result};
use crate::layout::DataDir;
use crate::listing::SourceFiles;

/// The magic at both ends of a Parquet file.
const MAGIC: &[u8; 4] = b"PAR1";

/// The magic of a Parquet file with an encrypted footer.
const ENCRYPTED_MAGIC: &[u8; 4] = b"PARE";

/// Files checked at once.
const CONCURRENCY: usize = 16;

/// What is wrong with a Parquet file's ends, if anything.
/// On success, the Arrow schema the file's metadata describes.
pub(crate) async fn check(
    store: &dyn ObjectStore,
    path: &ObjectPath,
    size: u64,
) -> std::result::Result<Schema, String> {
    if size < 12 {
        return Err(format!(
            "is {size} bytes long, too short for a Parquet file (at least 12: `PAR1`, the footer length, `PAR1`); it is empty or cut off"
        ));
    }
    let ends = store
        .get_ranges(path, &[0..4, size - 8..size])
        .await
        .map_err(|e| format!("cannot read it: {e}"))?;
    let (head, tail) = (&ends[0], &ends[1]);
    if head.len() != 4 || tail.len() != 8 {
        return Err("is shorter than listed; it changed while being read".into());
    }
    if head.as_ref() != MAGIC {
        return Err(format!(
            "does not start with the Parquet magic `PAR1` (it starts with {}); it is not a Parquet file",
            show(head)
        ));
    }
    let magic = &tail[4..8];
    if magic == ENCRYPTED_MAGIC {
        return Err("has an encrypted footer, which skein cannot read".into());
    }
    if magic != MAGIC {
        return Err(format!(
            "does not end with the Parquet magic `PAR1` (it ends with {}); the file is cut off or not a Parquet file",
            show(magic)
        ));
    }
    let length = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]) as u64;
    if length + 12 > size {
        return Err(format!(
            "has a footer that says its metadata is {length} bytes long, more than the file's {size} bytes; the file is corrupt or cut off"
        ));
    }
    let metadata = store
        .get_range(path, size - 8 - length..size - 8)
        .await
        .map_err(|e| format!("cannot read its metadata: {e}"))?;
    readable_schema(&metadata, size)
}

thread_local! {
    /// Whether this thread is decoding a footer under [`readable_schema`].
    static QUIET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Installs, once, a panic hook that stays silent for a panic caught by
/// [`readable_schema`] (it becomes an error naming the file) and reports any other as
/// before.
fn quiet_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.get() {
                previous(info);
            }
        }));
    });
}

/// Decodes a footer's metadata and the Arrow schema it describes (with the `ARROW:schema`
/// it may embed) as DataFusion will, but with a panic caught: arrow-ipc panics
/// (`unimplemented!`) on some embedded schemas, e.g. a field of type NONE, found by
/// fuzzing. A bad one is an error naming what is wrong, never a crash.
fn readable_schema(metadata: &[u8], size: u64) -> std::result::Result<Schema, String> {
    use datafusion::parquet::arrow::parquet_to_arrow_schema;
    use datafusion::parquet::file::metadata::ParquetMetaDataReader;
    quiet_panics();
    QUIET.set(true);
    let decoded = std::panic::catch_unwind(|| {
        let m = ParquetMetaDataReader::decode_metadata(metadata).map_err(|e| e.to_string())?;
        // Every column chunk must lie inside the file: the reader panics on a negative
        // start or length (`byte_range`), found by fuzzing, and would read past the end.
        for (g, group) in m.row_groups().iter().enumerate() {
            for column in group.columns() {
                let (start, length) = column.byte_range();
                if start.saturating_add(length) > size {
                    return Err(format!(
                        "row group {g} says column `{}` lies at bytes {start}..{}, past the file's {size} bytes",
                        column.column_path(),
                        start.saturating_add(length)
                    ));
                }
            }
        }
        let file = m.file_metadata();
        parquet_to_arrow_schema(file.schema_descr(), file.key_value_metadata())
            .map_err(|e| e.to_string())
    });
    QUIET.set(false);
    match decoded {
        Ok(Ok(schema)) => Ok(schema),
        Ok(Err(e)) => Err(format!("has metadata that cannot be read: {e}")),
        Err(panic) => {
            let why = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unreadable".into());
            Err(format!(
                "has a schema in its metadata that cannot be read ({why}); the file is corrupt or written by a tool skein cannot read"
            ))
        }
    }
}

/// Checks many files (path, size) of one store: each one's schema, in the order given,
/// or the first bad one with its problem.
pub(crate) async fn check_all(
    store: &dyn ObjectStore,
    files: Vec<(ObjectPath, u64)>,
) -> std::result::Result<Vec<Schema>, (ObjectPath, String)> {
    let mut checks = Vec::with_capacity(files.len());
    for (path, size) in files {
        checks.push(check_named(store, path, size));
    }
    futures::stream::iter(checks)
        .buffered(CONCURRENCY)
        .try_collect::<Vec<Schema>>()
        .await
}

async fn check_named(
    store: &dyn ObjectStore,
    path: ObjectPath,
    size: u64,
) -> std::result::Result<Schema, (ObjectPath, String)> {
    check(store, &path, size).await.map_err(|m| (path, m))
}

/// The first column two files of a source give different types, if any: the column, the
/// first file that has it and its type, the file that differs and its type. Files are read
/// by column name (a column missing from a file reads as nulls there), so only a type
/// conflict stops a read. Struct columns are left to DataFusion's merge, which merges
/// their fields by name the same way.
fn type_conflict<'a>(
    names: &'a [String],
    schemas: &'a [Schema],
) -> Option<(&'a str, &'a str, &'a DataType, &'a str, &'a DataType)> {
    let mut first: std::collections::HashMap<&str, (&str, &DataType)> =
        std::collections::HashMap::new();
    for (name, schema) in names.iter().zip(schemas) {
        for field in schema.fields() {
            let ty = field.data_type();
            match first.get(field.name().as_str()) {
                None => {
                    first.insert(field.name(), (name, ty));
                }
                Some((_, t)) if *t == ty => {}
                Some((_, DataType::Struct(_))) if matches!(ty, DataType::Struct(_)) => {}
                Some((was_in, t)) => {
                    return Some((field.name(), was_in, t, name, ty));
                }
            }
        }
    }
    None
}

/// Bytes as text when they are printable, else as hex.
fn show(bytes: &[u8]) -> String {
    if bytes.iter().all(|b| b.is_ascii_graphic()) {
        format!("`{}`", String::from_utf8_lossy(bytes))
    } else {
        let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
        format!("bytes {}", hex.join(" "))
    }
}

/// Checks the Parquet files of a directory of staged or published files (only `names`,
/// when given) before DataFusion reads them.
pub(crate) async fn check_dir(
    dataset: &str,
    dir: &DataDir,
    names: Option<&[String]>,
) -> Result<()> {
    let (store, prefix) = dir_store(dir)?;
    let fail = |op: &'static str, uri: String, message: String| Error::Storage {
        dataset: dataset.to_string(),
        op,
        uri,
        message,
    };
    let metas: Vec<ObjectMeta> = store
        .list(Some(&prefix))
        .try_collect()
        .await
        .map_err(|e| fail("list", dir.url(), e.to_string()))?;
    let files: Vec<(ObjectPath, u64)> = metas
        .iter()
        .filter_map(|m| {
            let rel = relative(&m.location, &prefix)?;
            let wanted = match names {
                Some(names) => names.contains(&rel),
                None => rel.ends_with(".parquet"),
            };
            wanted.then(|| (m.location.clone(), m.size))
        })
        .collect();
    check_all(store.as_ref(), files)
        .await
        .map(|_| ())
        .map_err(|(path, message)| {
            let rel = relative(&path, &prefix).unwrap_or_else(|| path.to_string());
            let uri = format!("{}{rel}", dir.url());
            fail(
                "read",
                uri,
                format!("the Parquet file {message}; it was written by skein, so the storage changed it: migrate again"),
            )
        })
}

/// The store and prefix of a data directory.
fn dir_store(dir: &DataDir) -> Result<(Arc<dyn ObjectStore>, ObjectPath)> {
    Ok(match dir {
        DataDir::Local(p) => (
            Arc::new(LocalFileSystem::new()),
            ObjectPath::from_filesystem_path(p)
                .map_err(|e| Error::Internal(format!("data directory {}: {e}", p.display())))?,
        ),
        DataDir::S3 {
            s3, bucket, prefix, ..
        } => (s3.store(bucket)?, ObjectPath::from(prefix.as_str())),
    })
}

/// One Parquet file of a directory as listed, with the row count its footer gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Listed {
    /// Name relative to the directory.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Rows, from the footer.
    pub rows: u64,
}

/// The Parquet files of a directory (hidden `.`/`_` names skipped) with their sizes and
/// footer row counts: what the directory holds, learnt without reading a row. Call it
/// after [`check_dir`], which refuses files whose ends are bad.
pub(crate) async fn list_with_rows(dataset: &str, dir: &DataDir) -> Result<Vec<Listed>> {
    let (store, prefix) = dir_store(dir)?;
    let metas: Vec<ObjectMeta> =
        store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|e| Error::Storage {
                dataset: dataset.to_string(),
                op: "list",
                uri: dir.url(),
                message: e.to_string(),
            })?;
    let files: Vec<(String, ObjectPath, u64)> = metas
        .iter()
        .filter_map(|m| {
            let rel = relative(&m.location, &prefix)?;
            rel.ends_with(".parquet")
                .then(|| (rel, m.location.clone(), m.size))
        })
        .collect();
    let reads = files.into_iter().map(|(name, path, size)| {
        let store = store.clone();
        let uri = format!("{}{name}", dir.url());
        async move {
            let fail = |message: String| Error::Storage {
                dataset: dataset.to_string(),
                op: "read",
                uri: uri.clone(),
                message,
            };
            let reader = parquet_reader(store, &path, size).map_err(|e| fail(e.to_string()))?;
            let builder = ParquetRecordBatchStreamBuilder::new(reader)
                .await
                .map_err(|e| fail(format!("cannot read the Parquet footer: {e}")))?;
            let rows = builder.metadata().file_metadata().num_rows().max(0) as u64;
            Ok::<_, Error>(Listed { name, size, rows })
        }
    });
    let mut listed: Vec<Listed> = futures::stream::iter(reads)
        .buffer_unordered(CONCURRENCY)
        .try_collect()
        .await?;
    listed.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(listed)
}

/// `path` relative to `prefix`, unless a part of it is hidden (`.` or `_`: skein's state).
fn relative(path: &ObjectPath, prefix: &ObjectPath) -> Option<String> {
    let parts: Vec<String> = path
        .prefix_match(prefix)?
        .map(|p| p.as_ref().to_string())
        .collect();
    let hidden = parts
        .iter()
        .any(|p| p.starts_with('.') || p.starts_with('_'));
    (!hidden).then(|| parts.join("/"))
}

/// A reader of one Parquet object, through DataFusion's own reader factory.
pub(crate) fn parquet_reader(
    store: Arc<dyn ObjectStore>,
    path: &ObjectPath,
    file_size: u64,
) -> datafusion::error::Result<Box<dyn AsyncFileReader>> {
    let file = PartitionedFile::new(path.to_string(), file_size);
    let reader = DefaultParquetFileReaderFactory::new(store).create_reader(
        0,
        file,
        None,
        &ExecutionPlanMetricsSet::new(),
    )?;
    Ok(reader)
}

/// Defined here rather than in [`crate::listing`], so that listing a source needs no
/// footer check and this module can take a listing.
impl SourceFiles {
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
        let schemas = match check_all(store.as_ref(), files).await {
            Ok(schemas) => schemas,
            Err((path, message)) => {
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
        };
        if let Some((column, a, ta, b, tb)) = type_conflict(&self.files, &schemas) {
            let (a, b) = (self.url(a), self.url(b));
            return Err(Error::SourceUnreadable {
                dataset: file.name().to_string(),
                uri: b.clone(),
                message: format!(
                    "column `{column}` is {ta} in `{a}` but {tb} in `{b}`; the source's Parquet files are read by column name (a column a file lacks reads as null) and each column needs one type in every file: rewrite `{b}` with {ta}, or migrate the files as separate datasets"
                ),
            });
        }
        let _ = self.parquet_checked.set(());
        Ok(())
    }
}
