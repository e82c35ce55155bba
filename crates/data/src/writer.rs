//! The writer primitives of staging: the transformed stream written as Parquet files, one
//! writer per output partition in parallel, each file hashed (sha256) and counted as it is
//! written and the content checksum computed on the same batches; and the staged
//! manifest of what was written. [`crate::stage`] and [`crate::chunk`] drive them.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression as PqCompression, GzipLevel, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use skein_core::load::{SpecFile, hex};
use skein_core::manifest::{ContentChecksum, FileEntry, Manifest};
use skein_core::spec::Compression;

use crate::checksum::{Checksum, canonical_schema, combine};
use crate::error::{Error, Result};
use crate::listing::SourceFiles;
use crate::partition::{MAX_PARTITIONS, Partitioning};
use crate::target::{StagingOutput, Target};
use crate::transform::{classify_failure, plan_transform};

/// Default rows per output file.
pub const DEFAULT_MAX_ROWS_PER_FILE: u64 = 10_000_000;

/// Live counters of a running migration, for progress bars.
#[derive(Debug, Default)]
pub struct Progress {
    /// Rows written so far.
    pub rows: AtomicU64,
    /// Source bytes to read in all (known up front).
    pub source_bytes: AtomicU64,
}

/// The manifest of what `parts` wrote (version 0: staged, not published).
pub(crate) fn staged_manifest(
    file: &SpecFile,
    run_id: &str,
    fingerprint: &str,
    schema: &SchemaRef,
    parts: &[PartOutput],
) -> Manifest {
    let mut files: Vec<FileEntry> = parts.iter().flat_map(|p| p.files.clone()).collect();
    files.sort_by(|a, b| a.name.cmp(&b.name));
    let checksums: Vec<ContentChecksum> = parts.iter().map(|p| p.checksum.clone()).collect();
    let checksum = combine(&checksums);
    Manifest {
        dataset: file.name().to_string(),
        version: 0,
        run_id: run_id.to_string(),
        spec_hash: file.hash.clone(),
        source_fingerprint: fingerprint.to_string(),
        rows: checksum.rows,
        bytes: files.iter().map(|f| f.size).sum(),
        files,
        checksum,
        schema: canonical_schema(schema),
        created_at: skein_core::time::now(),
        published_at: None,
        verified_chunks: None,
        rule_violations: None,
        source_files: None,
        source_schema: None,
    }
}

/// Where finished Parquet files go: written into `output.dir`, then (S3) uploaded into
/// the target's staging area and deleted locally, so local disk holds one file per
/// partition at most.
pub(crate) struct Sink<'a> {
    pub output: &'a StagingOutput,
    pub target: &'a Target,
    pub run_id: &'a str,
    /// The chunk being staged, which names its files.
    pub chunk: Option<u32>,
}

impl Sink<'_> {
    async fn close(&self, f: OpenFile) -> Result<FileEntry> {
        let path = f.path.clone();
        let entry = f.finish()?;
        if self.output.upload {
            self.target
                .store_staged_file(self.run_id, &entry.name, &path)
                .await?;
        }
        Ok(entry)
    }
}

pub(crate) struct PartOutput {
    pub files: Vec<FileEntry>,
    pub checksum: ContentChecksum,
}

pub(crate) async fn write_all(
    ctx: &SessionContext,
    file: &SpecFile,
    source: &SourceFiles,
    sink: &Sink<'_>,
    progress: &Progress,
) -> Result<(SchemaRef, Vec<PartOutput>)> {
    crate::command::for_run(ctx, sink.run_id);
    let df = plan_transform(ctx, file).await?;
    let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    let partitioning = Partitioning::new(file, &schema)?;
    let streams = df
        .execute_stream_partitioned()
        .await
        .map_err(|e| Error::Transform {
            dataset: file.name().to_string(),
            message: e.strip_backtrace(),
        })?;
    let props = writer_properties(file.spec.spec.target.compression);
    let max_rows = file
        .spec
        .spec
        .target
        .max_rows_per_file
        .unwrap_or(DEFAULT_MAX_ROWS_PER_FILE);
    let dataset = file.name();
    let results = futures::future::join_all(streams.into_iter().enumerate().map(|(i, stream)| {
        let props = props.clone();
        let schema = schema.clone();
        let partitioning = partitioning.as_ref();
        async move {
            let layout = Layout {
                schema,
                partitioning,
                dataset,
            };
            write_partition(stream, &layout, i, sink, props, max_rows, progress).await
        }
    }))
    .await;
    let mut out = Vec::new();
    for r in results {
        match r {
            Ok(p) => out.push(p),
            Err(PartError::Engine(e)) => return Err(classify_failure(ctx, file, source, e).await),
            Err(PartError::Other(e)) => return Err(e),
        }
    }
    Ok((schema, out))
}

enum PartError {
    Engine(datafusion::error::DataFusionError),
    Other(Error),
}

fn writer_properties(compression: Compression) -> WriterProperties {
    let codec = match compression {
        Compression::Zstd => PqCompression::ZSTD(ZstdLevel::default()),
        Compression::Snappy => PqCompression::SNAPPY,
        Compression::Lz4 => PqCompression::LZ4_RAW,
        Compression::Gzip => PqCompression::GZIP(GzipLevel::default()),
        Compression::None => PqCompression::UNCOMPRESSED,
    };
    WriterProperties::builder()
        .set_compression(codec)
        .set_created_by(format!("skein {}", env!("CARGO_PKG_VERSION")))
        .build()
}

/// A `Write` that hashes and counts what passes through.
struct HashingWriter {
    inner: BufWriter<File>,
    hasher: Sha256,
    bytes: u64,
}

impl Write for HashingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

struct OpenFile {
    name: String,
    path: PathBuf,
    writer: ArrowWriter<HashingWriter>,
    rows: u64,
}

impl OpenFile {
    fn create(
        dir: &Path,
        name: String,
        schema: &SchemaRef,
        props: &WriterProperties,
    ) -> Result<OpenFile> {
        let path = dir.join(&name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(Error::io("create", parent))?;
        }
        let f = File::create(&path).map_err(Error::io("create", &path))?;
        let sink = HashingWriter {
            inner: BufWriter::with_capacity(1 << 20, f),
            hasher: Sha256::new(),
            bytes: 0,
        };
        let writer = ArrowWriter::try_new(sink, schema.clone(), Some(props.clone()))
            .map_err(|e| Error::Internal(format!("parquet writer for {}: {e}", path.display())))?;
        Ok(OpenFile {
            name,
            path,
            writer,
            rows: 0,
        })
    }

    fn finish(self) -> Result<FileEntry> {
        let path = self.path;
        let sink = self.writer.into_inner().map_err(|e| {
            Error::Internal(format!("closing parquet file {}: {e}", path.display()))
        })?;
        let HashingWriter {
            inner,
            hasher,
            bytes,
        } = sink;
        let f = inner.into_inner().map_err(|e| Error::Io {
            op: "flush",
            path: path.clone(),
            source: e.into_error(),
        })?;
        f.sync_all().map_err(Error::io("sync", &path))?;
        Ok(FileEntry {
            name: self.name,
            size: bytes,
            sha256: hex(&hasher.finalize()),
            rows: self.rows,
        })
    }
}

/// What one output partition's files hold: the output's schema, and how it is split.
struct Layout<'a> {
    schema: SchemaRef,
    partitioning: Option<&'a Partitioning>,
    dataset: &'a str,
}

impl Layout<'_> {
    /// The schema of the files (without partition columns).
    fn file_schema(&self) -> &SchemaRef {
        self.partitioning.map_or(&self.schema, |p| p.data_schema())
    }
}

/// Writes one output partition's stream: a file at a time per `target.partitionBy`
/// directory (one directory, `""`, when not partitioned), a new one after `max_rows`.
async fn write_partition(
    mut stream: SendableRecordBatchStream,
    layout: &Layout<'_>,
    partition: usize,
    sink: &Sink<'_>,
    props: WriterProperties,
    max_rows: u64,
    progress: &Progress,
) -> Result<PartOutput, PartError> {
    let mut checksum = Checksum::new(&layout.schema).map_err(PartError::Other)?;
    let mut done: Vec<FileEntry> = Vec::new();
    let mut open: BTreeMap<String, OpenFile> = BTreeMap::new();
    let mut seqs: BTreeMap<String, usize> = BTreeMap::new();
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(PartError::Engine)?;
        if batch.num_rows() == 0 {
            continue;
        }
        checksum.update(&batch).map_err(PartError::Other)?;
        let rows = batch.num_rows() as u64;
        let pieces = match layout.partitioning {
            Some(p) => p.split(layout.dataset, &batch).map_err(PartError::Other)?,
            None => vec![(String::new(), batch)],
        };
        for (dir, piece) in pieces {
            if open.get(&dir).is_some_and(|f| f.rows >= max_rows) {
                let f = open.remove(&dir).expect("checked");
                done.push(sink.close(f).await.map_err(PartError::Other)?);
            }
            if !open.contains_key(&dir) {
                if open.len() >= MAX_PARTITIONS {
                    return Err(PartError::Other(Error::Partition {
                        dataset: layout.dataset.to_string(),
                        field: "spec.target.partitionBy".into(),
                        message: format!(
                            "the output has more than {MAX_PARTITIONS} partitions; partition by columns with fewer distinct values"
                        ),
                    }));
                }
                let seq = seqs.entry(dir.clone()).or_default();
                let name = file_name(sink.run_id, sink.chunk, partition, *seq);
                let name = if dir.is_empty() {
                    name
                } else {
                    format!("{dir}/{name}")
                };
                *seq += 1;
                let f = OpenFile::create(&sink.output.dir, name, layout.file_schema(), &props)
                    .map_err(PartError::Other)?;
                open.insert(dir.clone(), f);
            }
            let f = open.get_mut(&dir).expect("just opened");
            f.writer.write(&piece).map_err(|e| {
                PartError::Other(Error::Internal(format!(
                    "writing {}: {e}",
                    f.path.display()
                )))
            })?;
            f.rows += piece.num_rows() as u64;
        }
        progress.rows.fetch_add(rows, Ordering::Relaxed);
    }
    // Partition 0 always writes a file, so an empty result still has its schema on disk.
    if open.is_empty() && done.is_empty() && partition == 0 {
        let f = OpenFile::create(
            &sink.output.dir,
            file_name(sink.run_id, sink.chunk, partition, 0),
            layout.file_schema(),
            &props,
        )
        .map_err(PartError::Other)?;
        open.insert(String::new(), f);
    }
    for f in open.into_values() {
        done.push(sink.close(f).await.map_err(PartError::Other)?);
    }
    Ok(PartOutput {
        files: done,
        checksum: checksum.value(),
    })
}

/// Data file names carry the run, so a reader holding a stale path of an older version
/// fails to open it rather than reading another version's file; a chunk's files also
/// carry the chunk ([`chunk_prefix`]).
fn file_name(run_id: &str, chunk: Option<u32>, partition: usize, seq: usize) -> String {
    match chunk {
        Some(c) => format!("{}{partition:03}-{seq:04}.parquet", chunk_prefix(run_id, c)),
        None => format!("part-{run_id}-{partition:03}-{seq:04}.parquet"),
    }
}

/// The start of every file name of chunk `chunk`.
pub(crate) fn chunk_prefix(run_id: &str, chunk: u32) -> String {
    format!("part-{run_id}-c{chunk:05}-")
}
