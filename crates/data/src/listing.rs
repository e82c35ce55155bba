//! The source of a dataset: its files listed (locally or under an S3 prefix) and
//! fingerprinted, so a rerun over the same source is recognised. Reading it is elsewhere:
//! [`crate::session`] registers it, [`crate::csv_source`] infers a CSV source's schema
//! and [`crate::footer`] checks a Parquet source's files.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use datafusion::arrow::datatypes::SchemaRef;
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};
use sha2::{Digest, Sha256};
use skein_core::load::{SpecFile, hex};
use skein_core::spec::{SourceCompression, SourceFormat};

use crate::error::{Error, Result};
use crate::location::Location;
use crate::s3::{S3Settings, explain};

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
    /// Each file of `files` relative to the source's directory or prefix.
    pub relative: Vec<String>,
    /// Each file's version stamp: modification time in ns (local) or e-tag (S3).
    pub stamps: Vec<String>,
    /// Whether the source is a directory or prefix (not one file).
    pub directory: bool,
    /// Whether `files` are only some of the directory's (an incremental run's new files):
    /// they are then read by name, not by listing `table_path`.
    pub(crate) only_listed: bool,
    /// The types to read CSV or NDJSON files with instead of inferring them (an
    /// incremental run's new files, read as its published version's files were).
    pub(crate) fixed_schema: Option<SchemaRef>,
    /// Their total size in bytes.
    pub bytes: u64,
    /// Common file extension (with the dot) used to list a directory.
    pub extension: String,
    /// How the CSV or NDJSON files are compressed (`source.compression`, else their
    /// extension); a compressed file is read whole, never cut into byte ranges.
    pub compression: Option<SourceCompression>,
    /// sha256 over the files' relative paths, sizes and modification times (local) or
    /// e-tags (S3), and the format options: equal fingerprints mean the same source as far
    /// as skein can tell without reading every byte.
    pub fingerprint: String,
    /// The bucket to register with a session, when the source is on S3.
    pub(crate) s3: Option<(S3Settings, String)>,
    /// The CSV schema once inferred (shared by clones: every registration of this
    /// listing, e.g. each chunk's, reads with the same types).
    pub(crate) csv_schema: Arc<OnceLock<SchemaRef>>,
    /// Set once the Parquet files' ends were checked (see [`crate::footer`]).
    pub(crate) parquet_checked: Arc<OnceLock<()>>,
}

impl SourceFiles {
    /// The files as a version records them (see [`skein_core::manifest::SourceFile`]).
    pub fn entries(&self) -> Vec<skein_core::manifest::SourceFile> {
        (0..self.files.len())
            .map(|i| skein_core::manifest::SourceFile {
                path: self.relative[i].clone(),
                size: self.sizes[i],
                stamp: self.stamps[i].clone(),
            })
            .collect()
    }

    /// Only the files at `keep` (indexes into `files`), read by name. The fingerprint stays
    /// the whole listing's; schemas are inferred and checked again, over these files.
    pub(crate) fn only(&self, keep: &[usize]) -> SourceFiles {
        let pick = |v: &Vec<String>| keep.iter().map(|&i| v[i].clone()).collect::<Vec<_>>();
        let sizes: Vec<u64> = keep.iter().map(|&i| self.sizes[i]).collect();
        SourceFiles {
            table_path: self.table_path.clone(),
            files: pick(&self.files),
            bytes: sizes.iter().sum(),
            sizes,
            relative: pick(&self.relative),
            stamps: pick(&self.stamps),
            directory: self.directory,
            only_listed: true,
            fixed_schema: None,
            extension: self.extension.clone(),
            compression: self.compression,
            fingerprint: self.fingerprint.clone(),
            s3: self.s3.clone(),
            csv_schema: Arc::default(),
            parquet_checked: Arc::default(),
        }
    }

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
}

/// One listed source file: its path relative to the source, size, and version stamp.
struct Listed {
    name: String,
    relative: String,
    size: u64,
    stamp: String,
}

/// Lists a spec's source files and fingerprints them (S3 sources through `s3`).
pub async fn list(s3_settings: &S3Settings, file: &SpecFile) -> Result<SourceFiles> {
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
            let (table_path, listed) = list_s3(s3_settings, bucket, key, &unreadable).await?;
            (
                table_path,
                listed,
                Some((s3_settings.clone(), bucket.to_string())),
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
    let directory = match &s3 {
        Some(_) => table_path.ends_with('/'),
        None => Path::new(&table_path).is_dir(),
    };
    listed.sort_by(|a, b| a.name.cmp(&b.name));
    let names: Vec<String> = listed.iter().map(|l| l.name.clone()).collect();
    let extension = common_extension(&names, spec.source.format)
        .map_err(|m| unreadable(format!("{table_path}: {m}")))?;
    let compression = match spec.source.format {
        SourceFormat::Csv | SourceFormat::Ndjson => spec
            .source
            .compression
            .or_else(|| names.first().and_then(|n| SourceCompression::of_name(n))),
        SourceFormat::Parquet | SourceFormat::Avro => None,
    };
    let mut hasher = Sha256::new();
    hasher.update(format!("{:?}|{}\n", spec.source.format, read_options(spec)).as_bytes());
    if let Some(c) = compression {
        hasher.update(format!("compression {c}\n").as_bytes());
    }
    for l in &listed {
        hasher.update(format!("{}|{}|{}\n", l.relative, l.size, l.stamp).as_bytes());
    }
    Ok(SourceFiles {
        table_path,
        bytes: listed.iter().map(|l| l.size).sum(),
        sizes: listed.iter().map(|l| l.size).collect(),
        relative: listed.iter().map(|l| l.relative.clone()).collect(),
        stamps: listed.iter().map(|l| l.stamp.clone()).collect(),
        directory,
        only_listed: false,
        fixed_schema: None,
        files: names,
        extension,
        compression,
        fingerprint: hex(&hasher.finalize()),
        s3,
        csv_schema: Arc::default(),
        parquet_checked: Arc::default(),
    })
}

/// The options that decide which values are read, spelt as fingerprints always spelt them
/// (so that a source fingerprinted by an earlier skein still matches). `newlinesInValues`
/// is left out: it only decides whether a large file may be read in byte ranges, not what
/// is read (a changed spec changes the spec hash anyway).
fn read_options(spec: &skein_core::spec::Spec) -> String {
    match &spec.source.csv {
        None => "None".to_string(),
        Some(c) => format!(
            "Some(CsvOptions {{ header: {:?}, delimiter: {:?}, quote: {:?}, infer_records: {:?} }})",
            c.header, c.delimiter, c.quote, c.infer_records
        ),
    }
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

/// `raw` decompressed as `compression` says (as is when it says none).
pub(crate) fn decompressed<R: std::io::Read + Send + 'static>(
    raw: R,
    compression: Option<SourceCompression>,
) -> std::io::Result<Box<dyn std::io::Read + Send>> {
    let buffered = std::io::BufReader::new(raw);
    Ok(match compression {
        None => Box::new(buffered),
        Some(SourceCompression::Gzip) => Box::new(flate2::read::MultiGzDecoder::new(buffered)),
        Some(SourceCompression::Zstd) => {
            Box::new(zstd::stream::read::Decoder::with_buffer(buffered)?)
        }
        Some(SourceCompression::Bzip2) => Box::new(bzip2::read::MultiBzDecoder::new(buffered)),
        Some(SourceCompression::Xz) => {
            Box::new(liblzma::read::XzDecoder::new_multi_decoder(buffered))
        }
    })
}

/// DataFusion's name for a source compression.
pub(crate) fn file_compression(
    c: Option<SourceCompression>,
) -> datafusion::datasource::file_format::file_compression_type::FileCompressionType {
    use datafusion::datasource::file_format::file_compression_type::FileCompressionType as F;
    match c {
        None => F::UNCOMPRESSED,
        Some(SourceCompression::Gzip) => F::GZIP,
        Some(SourceCompression::Zstd) => F::ZSTD,
        Some(SourceCompression::Bzip2) => F::BZIP2,
        Some(SourceCompression::Xz) => F::XZ,
    }
}
