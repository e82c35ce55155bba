//! Chunks: a source larger than `spec.source.chunkSize` is migrated as several jobs and
//! published as one version.
//!
//! **Planning** ([`plan`]) cuts the source into pieces (whole files, runs of row groups
//! of a Parquet file larger than the chunk size, or byte ranges of a CSV or NDJSON file
//! larger than it, cut at record starts by [`crate::boundary`]) and packs consecutive
//! pieces into chunks of at most the chunk size (a single row group larger than it is a
//! chunk of its own). A CSV file is cut only when the spec says its values hold no line
//! breaks (`source.csv.newlinesInValues: false`): otherwise a line break may lie inside
//! a quoted value, the file is read whole as one piece, and the plan logs why.
//! Only a row-by-row transform (columns, filters) can be chunked: one that aggregates,
//! sorts, deduplicates, limits or joins needs every row at once and is refused.
//!
//! **Staging** ([`stage_chunk`]) runs the transform over one chunk's pieces, read with
//! the whole source's schema, and writes its Parquet files into the run's staging area
//! under names that carry the chunk (`part-<run>-c00003-…`), then reads them back and
//! checks their rows and content checksum against the figures computed while writing (the
//! per-chunk verification). Only then is `_chunks/chunk-00003.json` written, so a chunk
//! with a manifest is finished; a rerun reuses it, and a failed chunk removes only its
//! own files.
//!
//! **Combining** ([`combine`]) joins the chunk manifests into the run's one staged
//! manifest (`_staged.json`): files side by side, rows added, and the content checksums
//! added, which is exact because the checksum is a sum over rows. The manifest says it
//! was verified in chunks (`verified_chunks`), so the total is verified without reading a
//! row again (see [`crate::verify::verify_dir`]); from there it is published like any
//! other.
//!
//! ```text
//! staging/<run>/_chunks/plan.json          the plan: pieces of every chunk
//! staging/<run>/_chunks/chunk-00003.json   chunk 3 staged and verified (written last)
//! staging/<run>/part-<run>-c00003-*.parquet chunk 3's files
//! staging/<run>/_staged.json               all chunks combined (written last of all)
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::error::DataFusionError;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::parquet::arrow::ParquetRecordBatchStreamBuilder;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::prelude::SessionContext;
use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStore;
use object_store::path::Path as ObjectPath;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use skein_core::load::{SpecFile, hex};
use skein_core::manifest::{ContentChecksum, Manifest};
use skein_core::spec::SourceFormat;

use crate::checksum::combine as add_checksums;
use crate::error::{Error, Result};
use crate::footer::parquet_reader;
use crate::layout::{PLAN, chunk_manifest};
use crate::session::{Settings, SourceFiles, register_source, register_text_files};
use crate::sqlguard::SOURCE_TABLE;
use crate::target::Target;
use crate::transform::plan_transform;
use crate::writer::{Progress, Sink, chunk_prefix, staged_manifest, write_all};

/// How a dataset's source is cut into chunks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChunkPlan {
    /// Dataset name.
    pub dataset: String,
    /// The spec the plan was made for.
    pub spec_hash: String,
    /// The source listing the plan was made from.
    pub source_fingerprint: String,
    /// `spec.source.chunkSize` in bytes.
    pub chunk_size: u64,
    /// The chunks, in source order.
    pub chunks: Vec<Chunk>,
}

/// One chunk: the pieces of source one job reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Chunk {
    /// 0-based.
    pub index: u32,
    /// Source bytes (compressed row-group bytes for Parquet pieces).
    pub bytes: u64,
    /// What it reads.
    pub pieces: Vec<Piece>,
}

/// A whole source file, a run of row groups of a Parquet file, or a byte range of a CSV
/// or NDJSON file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Piece {
    /// The file (a local path or an S3 key, as listed).
    pub file: String,
    /// The file's size in bytes.
    pub file_size: u64,
    /// This piece's share of the source bytes.
    pub bytes: u64,
    /// Row groups `[start, end)` of a Parquet file; absent: the whole file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_groups: Option<(usize, usize)>,
    /// Bytes `[start, end)` of a CSV or NDJSON file, `start` a record start (0 or right
    /// after a line break); absent: the whole file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<(u64, u64)>,
}

impl ChunkPlan {
    /// The identity chunk manifests are matched against: a chunk staged under another
    /// plan (another spec, source or chunk size) is never reused.
    pub fn key(&self) -> String {
        let mut h = Sha256::new();
        h.update(format!(
            "{}|{}|{}",
            self.spec_hash, self.source_fingerprint, self.chunk_size
        ));
        hex(&h.finalize())
    }

    /// Chunk `index`, or an error saying how many there are.
    pub fn chunk(&self, index: u32) -> Result<&Chunk> {
        self.chunks.get(index as usize).ok_or_else(|| {
            Error::Internal(format!(
                "dataset `{}` has {} chunks; there is no chunk {index}",
                self.dataset,
                self.chunks.len()
            ))
        })
    }
}

/// Plans the chunks of a dataset, or `None` when it runs as one job: no `chunkSize`, a
/// source no larger than it, or pieces that all fit one chunk.
pub async fn plan(
    settings: &Settings,
    file: &SpecFile,
    source: &SourceFiles,
) -> Result<Option<ChunkPlan>> {
    let Some(size) = file.spec.spec.source.chunk_size.map(|s| s.0.max(1)) else {
        return Ok(None);
    };
    if source.bytes <= size {
        return Ok(None);
    }
    let parquet = file.spec.spec.source.format == SourceFormat::Parquet;
    if parquet {
        source.check_parquet(file).await?; // footers are read below
    }
    let mut pieces = Vec::new();
    for (name, &file_size) in source.files.iter().zip(&source.sizes) {
        if file_size <= size {
            pieces.push(whole_file(name, file_size));
        } else if parquet {
            let groups = row_group_sizes(file, source, name, file_size).await?;
            pieces.extend(split_row_groups(name, file_size, &groups, size));
        } else if let Some(why) = not_splittable(file).or_else(|| whole_only(file, source)) {
            tracing::warn!(
                dataset = file.name(),
                file = %source.url(name),
                "{}",
                not_split_message(source, name, file_size, size, why)
            );
            pieces.push(whole_file(name, file_size));
        } else {
            pieces.extend(split_text_file(file, source, name, file_size, size).await?);
        }
    }
    let chunks = pack(pieces, size);
    if chunks.len() <= 1 {
        return Ok(None);
    }
    check_row_wise(settings, file, source).await?;
    Ok(Some(ChunkPlan {
        dataset: file.name().to_string(),
        spec_hash: file.hash.clone(),
        source_fingerprint: source.fingerprint.clone(),
        chunk_size: size,
        chunks,
    }))
}

/// A whole source file as one piece.
fn whole_file(name: &str, file_size: u64) -> Piece {
    Piece {
        file: name.to_string(),
        file_size,
        bytes: file_size,
        row_groups: None,
        range: None,
    }
}

/// Why a text file larger than the chunk size cannot be cut into byte ranges, if not.
pub fn not_splittable(file: &SpecFile) -> Option<&'static str> {
    let source = &file.spec.spec.source;
    match source.format {
        SourceFormat::Csv if source.csv.as_ref().is_none_or(|c| c.newlines_in_values()) => Some(
            "values may hold line breaks (set source.csv.newlinesInValues: false if they never do)",
        ),
        _ => None,
    }
}

/// Why a file of a format that is not cut into byte ranges (a compressed text file, an
/// Avro file) is read whole.
fn whole_only(file: &SpecFile, source: &SourceFiles) -> Option<&'static str> {
    if file.spec.spec.source.format == SourceFormat::Avro {
        return Some("Avro files are read whole");
    }
    source
        .compression
        .map(|_| "it is compressed (a compressed file is read whole)")
}

/// What the plan says about a file it reads whole although it is larger than a chunk.
fn not_split_message(
    source: &SourceFiles,
    name: &str,
    file_size: u64,
    size: u64,
    why: &str,
) -> String {
    format!(
        "{} ({file_size} bytes, chunkSize {size}) is not split: {why}; it is read whole, in one job",
        source.url(name)
    )
}

/// Byte ranges of about `size` bytes of a CSV or NDJSON file, cut at record starts.
async fn split_text_file(
    file: &SpecFile,
    source: &SourceFiles,
    name: &str,
    file_size: u64,
    size: u64,
) -> Result<Vec<Piece>> {
    let (store, path) = source.object(name)?;
    let ranges = crate::boundary::byte_ranges(store.as_ref(), &path, file_size, size)
        .await
        .map_err(|e| Error::SourceUnreadable {
            dataset: file.name().to_string(),
            uri: source.url(name),
            message: format!("cannot read it to find record boundaries: {e}"),
        })?;
    Ok(ranges
        .into_iter()
        .map(|r| Piece {
            file: name.to_string(),
            file_size,
            bytes: r.end - r.start,
            row_groups: None,
            range: Some((r.start, r.end)),
        })
        .collect())
}

/// Runs of row groups of at most `size` bytes (a bigger row group is a run of its own).
fn split_row_groups(name: &str, file_size: u64, groups: &[u64], size: u64) -> Vec<Piece> {
    let mut out = Vec::new();
    let piece = |start: usize, end: usize, bytes: u64| Piece {
        file: name.to_string(),
        file_size,
        bytes,
        row_groups: Some((start, end)),
        range: None,
    };
    let (mut start, mut bytes) = (0usize, 0u64);
    for (i, &g) in groups.iter().enumerate() {
        if i > start && bytes + g > size {
            out.push(piece(start, i, bytes));
            (start, bytes) = (i, 0);
        }
        bytes += g;
    }
    if start < groups.len() {
        out.push(piece(start, groups.len(), bytes));
    }
    out
}

/// Consecutive pieces packed into chunks of at most `size` bytes.
fn pack(pieces: Vec<Piece>, size: u64) -> Vec<Chunk> {
    let mut chunks: Vec<Chunk> = Vec::new();
    let mut current: Vec<Piece> = Vec::new();
    let mut bytes = 0u64;
    let mut close = |current: &mut Vec<Piece>, bytes: &mut u64| {
        if !current.is_empty() {
            chunks.push(Chunk {
                index: 0,
                bytes: *bytes,
                pieces: std::mem::take(current),
            });
            *bytes = 0;
        }
    };
    for p in pieces {
        if !current.is_empty() && bytes + p.bytes > size {
            close(&mut current, &mut bytes);
        }
        bytes += p.bytes;
        current.push(p);
    }
    close(&mut current, &mut bytes);
    for (i, c) in chunks.iter_mut().enumerate() {
        c.index = i as u32;
    }
    chunks
}

/// Compressed bytes of each row group of a Parquet source file (read from its footer).
async fn row_group_sizes(
    file: &SpecFile,
    source: &SourceFiles,
    name: &str,
    file_size: u64,
) -> Result<Vec<u64>> {
    let (store, path) = source.object(name)?;
    let reader = parquet_reader(store, &path, file_size).map_err(|e| Error::SourceUnreadable {
        dataset: file.name().to_string(),
        uri: source.url(name),
        message: e.strip_backtrace(),
    })?;
    let builder = ParquetRecordBatchStreamBuilder::new(reader)
        .await
        .map_err(|e| Error::SourceUnreadable {
            dataset: file.name().to_string(),
            uri: source.url(name),
            message: format!("cannot read the Parquet footer: {e}"),
        })?;
    Ok(builder
        .metadata()
        .row_groups()
        .iter()
        .map(|rg| rg.compressed_size().max(0) as u64)
        .collect())
}

/// Refuses a transform that needs all rows at once (chunks would each see only theirs).
async fn check_row_wise(settings: &Settings, file: &SpecFile, source: &SourceFiles) -> Result<()> {
    match why_not_row_wise(settings, file, source).await? {
        None => Ok(()),
        Some(reason) => Err(Error::NotChunkable {
            dataset: file.name().to_string(),
            reason,
        }),
    }
}

/// Why the transform needs all rows at once, if it does: a SQL transform's plan that is
/// more than projections and filters, or a command that does not declare `rowWise: true`.
/// Parts of the source (chunks, an incremental run's new files) may go through it apart
/// only when there is no reason.
pub(crate) async fn why_not_row_wise(
    settings: &Settings,
    file: &SpecFile,
    source: &SourceFiles,
) -> Result<Option<String>> {
    // A command is opaque: it says itself whether each part may go through its own process.
    if let Some(t) = file.spec.transform_command() {
        return Ok((!t.row_wise)
            .then(|| "its command transform does not declare `rowWise: true`".to_string()));
    }
    let ctx = settings.session()?;
    register_source(&ctx, file, source).await?;
    let df = plan_transform(&ctx, file).await?;
    Ok(not_row_wise(df.logical_plan()))
}

/// Why a plan is not a row-by-row transform, if it is not.
fn not_row_wise(plan: &LogicalPlan) -> Option<String> {
    let mut why: Option<String> = None;
    let _ = plan.apply(|node| {
        let reason = match node {
            LogicalPlan::Projection(_)
            | LogicalPlan::Filter(_)
            | LogicalPlan::TableScan(_)
            | LogicalPlan::SubqueryAlias(_)
            | LogicalPlan::Unnest(_) => None,
            LogicalPlan::Aggregate(_) => Some("aggregates (GROUP BY or an aggregate function)"),
            LogicalPlan::Window(_) => Some("uses a window function"),
            LogicalPlan::Sort(_) => Some("sorts (ORDER BY)"),
            LogicalPlan::Limit(_) => Some("has a LIMIT"),
            LogicalPlan::Distinct(_) => Some("removes duplicates (DISTINCT)"),
            LogicalPlan::Join(_) => Some("joins"),
            LogicalPlan::Union(_) => Some("has a UNION"),
            _ => Some("is not a plain projection and filter"),
        };
        let reason = reason.or_else(|| {
            node.expressions()
                .iter()
                .any(|e| {
                    e.exists(|e| {
                        Ok(matches!(
                            e,
                            Expr::ScalarSubquery(_) | Expr::Exists(_) | Expr::InSubquery(_)
                        ))
                    })
                    .unwrap_or(false)
                })
                .then_some("has a subquery")
        });
        match reason {
            Some(r) => {
                why = Some(r.to_string());
                Ok(TreeNodeRecursion::Stop)
            }
            None => Ok(TreeNodeRecursion::Continue),
        }
    });
    why
}

/// Stores the plan in the run's staging area. A different plan left by an earlier attempt
/// (the spec, source or chunk size changed since) is replaced, with everything it staged.
pub async fn save_plan(store: &Target, run_id: &str, plan: &ChunkPlan) -> Result<()> {
    match store.staging_json::<ChunkPlan>(run_id, PLAN).await? {
        Some(existing) if existing == *plan => Ok(()),
        existing => {
            if existing.is_some() || store.staged(run_id).await?.is_some() {
                store.discard(run_id).await?;
            }
            store.put_staging_json(run_id, PLAN, plan).await
        }
    }
}

/// The plan an earlier step saved for this run, if it still fits the spec and source.
pub async fn saved_plan(
    store: &Target,
    run_id: &str,
    file: &SpecFile,
) -> Result<Option<ChunkPlan>> {
    Ok(store
        .staging_json::<ChunkPlan>(run_id, PLAN)
        .await?
        .filter(|p| p.spec_hash == file.hash))
}

/// What staging one chunk produced.
#[derive(Debug, Clone)]
pub struct ChunkStaged {
    /// The chunk's manifest: its files, rows and source-side checksum.
    pub manifest: Manifest,
    /// True when an earlier attempt had staged and verified it.
    pub reused: bool,
}

/// Stages chunk `index` of `plan` and verifies it (rows and checksum of its files read
/// back). A chunk finished by an earlier attempt is reused; a failure removes this
/// chunk's files only. `source` is the listing the caller made (once for all chunks).
#[allow(clippy::too_many_arguments)]
pub async fn stage_chunk(
    settings: &Settings,
    file: &SpecFile,
    source: &SourceFiles,
    store: &Target,
    run_id: &str,
    plan: &ChunkPlan,
    index: u32,
    progress: &Progress,
) -> Result<ChunkStaged> {
    let chunk = plan.chunk(index)?;
    let key = plan.key();
    if let Some(m) = store
        .staging_json::<Manifest>(run_id, &chunk_manifest(index))
        .await?
        && m.source_fingerprint == key
    {
        progress.rows.fetch_add(m.rows, Ordering::Relaxed);
        return Ok(ChunkStaged {
            manifest: m,
            reused: true,
        });
    }
    let prefix = chunk_prefix(run_id, index);
    store.discard_prefix(run_id, &prefix).await?; // a failed earlier attempt's files
    let result =
        stage_chunk_files(settings, file, source, store, run_id, chunk, &key, progress).await;
    match result {
        Ok(manifest) => {
            store
                .put_staging_json(run_id, &chunk_manifest(index), &manifest)
                .await?;
            Ok(ChunkStaged {
                manifest,
                reused: false,
            })
        }
        Err(e) => {
            let _ = store.discard_prefix(run_id, &prefix).await;
            Err(explain_range_failure(file, source, chunk, e).await)
        }
    }
}

/// A failed read of a CSV byte range, explained: when the file does hold a line break in
/// a quoted value (so a cut may have split that value although the spec said it could
/// not), that value's line and the setting; else a value that does not convert is placed
/// by its byte range (the reader counts records from the start of its range, not of the
/// file, so the line it names would be wrong).
async fn explain_range_failure(
    file: &SpecFile,
    source: &SourceFiles,
    chunk: &Chunk,
    e: Error,
) -> Error {
    let ranges: Vec<&Piece> = chunk.pieces.iter().filter(|p| p.range.is_some()).collect();
    if file.spec.spec.source.format != SourceFormat::Csv || ranges.is_empty() {
        return e;
    }
    for piece in &ranges {
        if let Some(line) = crate::csv_source::find_quoted_break(file, source, &piece.file).await {
            return Error::SourceUnreadable {
                dataset: file.name().to_string(),
                uri: source.url(&piece.file),
                message: format!(
                    "the quoted value opened on line {line} holds a line break, but spec.source.csv.newlinesInValues is false, so the file was cut into byte ranges at line breaks and a cut may split such a value; remove newlinesInValues: false (the file is then read whole, as one job)"
                ),
            };
        }
    }
    match e {
        Error::BadValue {
            dataset,
            column,
            value,
            ..
        } => {
            let places: Vec<String> = ranges
                .iter()
                .filter_map(|p| {
                    let (start, end) = p.range?;
                    Some(format!("bytes {start}..{end} of `{}`", source.url(&p.file)))
                })
                .collect();
            Error::BadValue {
                dataset,
                column,
                value,
                message: format!(
                    "it is in chunk {} ({}), and the column's type was inferred from the first records of the source; raise spec.source.csv.inferRecords so that the sample reaches it, or fix the file",
                    chunk.index,
                    places.join(", ")
                ),
            }
        }
        e => e,
    }
}

#[allow(clippy::too_many_arguments)]
async fn stage_chunk_files(
    settings: &Settings,
    file: &SpecFile,
    source: &SourceFiles,
    store: &Target,
    run_id: &str,
    chunk: &Chunk,
    key: &str,
    progress: &Progress,
) -> Result<Manifest> {
    let ctx = settings.session()?;
    register_chunk(&ctx, settings, file, source, chunk).await?;
    let output = store.staging_output(settings, run_id)?;
    let sink = Sink {
        output: &output,
        target: store,
        run_id,
        chunk: Some(chunk.index),
    };
    let (schema, parts) = write_all(&ctx, file, source, &sink, progress).await?;
    let mut manifest = staged_manifest(file, run_id, key, &schema, &parts);
    // Per-chunk verification: what landed in staging is what was computed while writing.
    let names: Vec<String> = manifest.files.iter().map(|f| f.name.clone()).collect();
    let read =
        crate::verify::files_checksum(settings, file, &store.staging_data(run_id).await?, &names)
            .await?;
    if let Some((check, expected, actual)) = read.differs_from(&manifest) {
        return Err(Error::ChunkMismatch {
            dataset: file.name().to_string(),
            chunk: chunk.index,
            check,
            expected,
            actual,
        });
    }
    manifest.rule_violations = Some(read.rule_violations);
    Ok(manifest)
}

/// Registers one chunk of the source as table `source`, with the whole source's schema.
async fn register_chunk(
    ctx: &SessionContext,
    settings: &Settings,
    file: &SpecFile,
    source: &SourceFiles,
    chunk: &Chunk,
) -> Result<()> {
    let schema: SchemaRef = {
        let whole = settings.session()?;
        register_source(&whole, file, source).await?;
        let table = whole
            .table(SOURCE_TABLE)
            .await
            .map_err(Error::engine("open the source"))?;
        Arc::new(table.schema().as_arrow().clone())
    };
    if file.spec.spec.source.format != SourceFormat::Parquet {
        if chunk.pieces.iter().any(|p| p.range.is_some()) {
            let pieces: Vec<crate::text_range::TextPiece<'_>> = chunk
                .pieces
                .iter()
                .map(|p| crate::text_range::TextPiece {
                    file: &p.file,
                    file_size: p.file_size,
                    range: p.range,
                })
                .collect();
            return crate::text_range::register_pieces(
                ctx, settings, file, source, &pieces, &schema,
            );
        }
        let names: Vec<String> = chunk.pieces.iter().map(|p| p.file.clone()).collect();
        return register_text_files(ctx, file, source, &names, &schema).await;
    }
    let mut partitions: Vec<Arc<dyn PartitionStream>> = Vec::new();
    for piece in &chunk.pieces {
        let (store, path) = source.object(&piece.file)?;
        partitions.push(Arc::new(RowGroups {
            schema: schema.clone(),
            store,
            path,
            file_size: piece.file_size,
            row_groups: piece.row_groups,
            batch_size: settings.batch_size,
            label: source.url(&piece.file),
        }));
    }
    let table = StreamingTable::try_new(schema, partitions)
        .map_err(Error::engine("set up the chunk's Parquet pieces"))?;
    ctx.register_table(SOURCE_TABLE, Arc::new(table))
        .map_err(Error::engine("register the chunk"))?;
    Ok(())
}

/// A run of row groups of one Parquet file, read as one partition.
#[derive(Debug, Clone)]
struct RowGroups {
    schema: SchemaRef,
    store: Arc<dyn ObjectStore>,
    path: ObjectPath,
    file_size: u64,
    row_groups: Option<(usize, usize)>,
    batch_size: usize,
    label: String,
}

impl RowGroups {
    async fn open(
        self,
    ) -> datafusion::error::Result<
        impl futures::Stream<Item = datafusion::error::Result<RecordBatch>> + Send,
    > {
        let label = self.label.clone();
        let fail = move |e: datafusion::parquet::errors::ParquetError| {
            DataFusionError::External(format!("parquet file {label}: {e}").into())
        };
        let reader = parquet_reader(self.store.clone(), &self.path, self.file_size)?;
        let mut builder = ParquetRecordBatchStreamBuilder::new(reader)
            .await
            .map_err(fail.clone())?
            .with_batch_size(self.batch_size);
        if let Some((start, end)) = self.row_groups {
            builder = builder.with_row_groups((start..end).collect());
        }
        let stream = builder.build().map_err(fail.clone())?;
        let schema = self.schema.clone();
        let label = self.label.clone();
        Ok(stream.map(move |batch| {
            let batch = batch.map_err(fail.clone())?;
            conform(&schema, batch, &label)
        }))
    }
}

/// A file's batch in the table's schema (same columns; types cast where a file differs,
/// as the whole-source read would).
fn conform(
    schema: &SchemaRef,
    batch: RecordBatch,
    label: &str,
) -> datafusion::error::Result<RecordBatch> {
    if batch.schema().fields() == schema.fields() {
        return RecordBatch::try_new(schema.clone(), batch.columns().to_vec()).map_err(Into::into);
    }
    let mut columns = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let column = batch.column_by_name(field.name()).ok_or_else(|| {
            DataFusionError::External(
                format!("parquet file {label} has no column `{}`", field.name()).into(),
            )
        })?;
        columns.push(cast(column, field.data_type())?);
    }
    RecordBatch::try_new(schema.clone(), columns).map_err(Into::into)
}

impl PartitionStream for RowGroups {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let me = self.clone();
        let stream = futures::stream::once(me.open()).try_flatten();
        Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), stream))
    }
}

/// The chunks' row-wise rule violations added up, if every chunk counted them.
fn add_rule_violations(manifests: &[Manifest]) -> Option<BTreeMap<String, u64>> {
    let mut total = BTreeMap::new();
    for m in manifests {
        for (rule, n) in m.rule_violations.as_ref()? {
            *total.entry(rule.clone()).or_insert(0) += n;
        }
    }
    Some(total)
}

/// Joins the staged chunks into the run's one staged manifest (`_staged.json`). Every
/// chunk must be staged; their schemas must agree.
pub async fn combine(
    file: &SpecFile,
    store: &Target,
    run_id: &str,
    plan: &ChunkPlan,
) -> Result<Manifest> {
    let key = plan.key();
    let mut manifests = Vec::with_capacity(plan.chunks.len());
    let mut missing = Vec::new();
    for c in &plan.chunks {
        match store
            .staging_json::<Manifest>(run_id, &chunk_manifest(c.index))
            .await?
        {
            Some(m) if m.source_fingerprint == key => manifests.push(m),
            _ => missing.push(c.index.to_string()),
        }
    }
    if !missing.is_empty() {
        return Err(Error::ChunksMissing {
            dataset: file.name().to_string(),
            run_id: run_id.to_string(),
            missing: missing.join(", "),
        });
    }
    let schema = manifests[0].schema.clone();
    if let Some(m) = manifests.iter().find(|m| m.schema != schema) {
        return Err(Error::Internal(format!(
            "dataset `{}`: chunks staged different schemas ({} vs {})",
            file.name(),
            schema.join(", "),
            m.schema.join(", ")
        )));
    }
    let mut files: Vec<_> = manifests.iter().flat_map(|m| m.files.clone()).collect();
    files.sort_by(|a, b| a.name.cmp(&b.name));
    let sums: Vec<ContentChecksum> = manifests.iter().map(|m| m.checksum.clone()).collect();
    let checksum = add_checksums(&sums);
    let manifest = Manifest {
        dataset: file.name().to_string(),
        version: 0,
        run_id: run_id.to_string(),
        spec_hash: file.hash.clone(),
        source_fingerprint: plan.source_fingerprint.clone(),
        rows: checksum.rows,
        bytes: files.iter().map(|f| f.size).sum(),
        files,
        checksum,
        schema,
        created_at: skein_core::time::now(),
        published_at: None,
        verified_chunks: Some(plan.chunks.len() as u32),
        rule_violations: add_rule_violations(&manifests),
        source_files: None,
        source_schema: None,
    };
    store.write_staged(run_id, &manifest).await?;
    Ok(manifest)
}
