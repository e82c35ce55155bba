//! A chunk of CSV or NDJSON pieces (whole files, or byte ranges of one large file) read
//! as the table `source`, with the whole source's schema.
//!
//! Each piece is read by DataFusion's own CSV or JSON file reader (the very reader the
//! whole-file read uses, with the same options), given the piece's byte range: it streams
//! only that range (a ranged GET on S3, a seek locally), batch by batch, so a job's memory
//! does not grow with the file. The ranges come from [`crate::boundary`] and start at
//! record starts; the reader skips the header line only in the range that starts at byte
//! 0, and reads every other range as header-less records of the given schema.
//!
//! A range is read as several partitions at once (one per core, each at least
//! [`MIN_PART`] bytes): DataFusion's reader moves each partition's start to the next
//! record start and ends it with the record its last byte falls in, the same rule as
//! [`crate::boundary`]'s, so the partitions share the range's records without overlap and
//! parse in parallel.

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::common::config::CsvOptions as DfCsvOptions;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::object_store::ObjectStoreUrl;
use datafusion::datasource::physical_plan::{
    CsvSource, FileScanConfigBuilder, FileSource, JsonSource,
};
use datafusion::datasource::source::DataSourceExec;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::prelude::SessionContext;
use skein_core::load::SpecFile;
use skein_core::spec::SourceFormat;

use crate::error::{Error, Result};
use crate::listing::SourceFiles;
use crate::session::Settings;
use crate::sqlguard::SOURCE_TABLE;

/// The smallest share of a range one partition reads.
pub const MIN_PART: u64 = 256 * 1024;

/// `[start, end)` cut into at most `parts` pieces of at least [`MIN_PART`] bytes (not
/// aligned: the reader aligns them).
fn parts(start: u64, end: u64, parts: usize) -> Vec<(u64, u64)> {
    let len = end - start;
    let n = (len / MIN_PART).clamp(1, parts.max(1) as u64);
    (0..n)
        .map(|i| (start + len * i / n, start + len * (i + 1) / n))
        .collect()
}

/// One piece of a chunk as this module reads it: a file, its size, and a byte range of it
/// (absent: the whole file). The chunk planner's pieces map onto it, so this module does
/// not depend on the planner.
pub(crate) struct TextPiece<'a> {
    pub file: &'a str,
    pub file_size: u64,
    pub range: Option<(u64, u64)>,
}

/// Registers a chunk's text pieces as table `source`, each read with `schema`.
pub(crate) fn register_pieces(
    ctx: &SessionContext,
    settings: &Settings,
    file: &SpecFile,
    source: &SourceFiles,
    pieces: &[TextPiece<'_>],
    schema: &SchemaRef,
) -> Result<()> {
    let url = match &source.s3 {
        Some((s3, bucket)) => {
            s3.register(ctx, bucket)?;
            ObjectStoreUrl::parse(format!("s3://{bucket}"))
                .map_err(Error::engine(format!("bucket name `{bucket}`")))?
        }
        None => ObjectStoreUrl::local_filesystem(),
    };
    let format = file.spec.spec.source.format;
    let mut partitions: Vec<Arc<dyn PartitionStream>> = Vec::new();
    for piece in pieces {
        let reader: Arc<dyn FileSource> = match format {
            SourceFormat::Csv => {
                let csv = file.spec.spec.source.csv.clone().unwrap_or_default();
                let options = DfCsvOptions {
                    has_header: Some(csv.header),
                    delimiter: csv.delimiter.as_bytes()[0],
                    quote: csv.quote.as_bytes()[0],
                    // a piece is one range: the reader splits nothing further
                    newlines_in_values: Some(csv.newlines_in_values()),
                    ..DfCsvOptions::default()
                };
                Arc::new(CsvSource::new(schema.clone()).with_csv_options(options))
            }
            SourceFormat::Ndjson => Arc::new(JsonSource::new(schema.clone())),
            SourceFormat::Parquet | SourceFormat::Avro => {
                return Err(Error::Internal(
                    "Parquet and Avro chunks are read by row group or whole file, not as text ranges".into(),
                ));
            }
        };
        let (_, path) = source.object(piece.file)?;
        let files = match piece.range {
            None => vec![PartitionedFile::new(path.to_string(), piece.file_size)],
            Some((start, end)) => {
                let mut files = Vec::new();
                for (start, end) in parts(start, end, settings.target_partitions) {
                    let start = i64::try_from(start).map_err(|_| range_bug(piece))?;
                    let end = i64::try_from(end).map_err(|_| range_bug(piece))?;
                    files.push(
                        PartitionedFile::new(path.to_string(), piece.file_size)
                            .with_range(start, end),
                    );
                }
                files
            }
        };
        for part in files {
            let config = FileScanConfigBuilder::new(url.clone(), reader.clone())
                .with_file(part)
                .with_batch_size(Some(settings.batch_size))
                .build();
            partitions.push(Arc::new(PlanPartition {
                schema: schema.clone(),
                plan: DataSourceExec::from_data_source(config),
            }));
        }
    }
    let table = StreamingTable::try_new(schema.clone(), partitions)
        .map_err(Error::engine("set up the chunk's text pieces"))?;
    ctx.register_table(SOURCE_TABLE, Arc::new(table))
        .map_err(Error::engine("register the chunk"))?;
    Ok(())
}

fn range_bug(piece: &TextPiece<'_>) -> Error {
    Error::Internal(format!(
        "byte range {:?} of {} does not fit an i64",
        piece.range, piece.file
    ))
}

/// One piece's scan, run as one partition of the chunk's table.
#[derive(Debug)]
struct PlanPartition {
    schema: SchemaRef,
    plan: Arc<dyn ExecutionPlan>,
}

impl PartitionStream for PlanPartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        match self.plan.execute(0, ctx) {
            Ok(stream) => stream,
            Err(e) => Box::pin(RecordBatchStreamAdapter::new(
                self.schema.clone(),
                futures::stream::once(async move { Err(e) }),
            )),
        }
    }
}
