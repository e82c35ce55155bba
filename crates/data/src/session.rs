//! DataFusion sessions with bounded memory, and the source registered as table `source`.

use std::path::PathBuf;
use std::sync::Arc;

use datafusion::arrow::datatypes::Schema;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{
    AvroReadOptions, CsvReadOptions, JsonReadOptions, ParquetReadOptions, SessionConfig,
    SessionContext,
};
use skein_core::load::SpecFile;
use skein_core::spec::{CsvOptions, SourceFormat};

use crate::error::{Error, Result};
use crate::s3::S3Settings;
use crate::sqlguard::SOURCE_TABLE;

pub use crate::listing::SourceFiles;

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
        .file_compression_type(crate::listing::file_compression(source.compression))
}

fn json_options(source: &SourceFiles) -> JsonReadOptions<'_> {
    JsonReadOptions::default()
        .file_extension(&source.extension)
        .file_compression_type(crate::listing::file_compression(source.compression))
        .schema_infer_max_records(10_000)
}

/// Lists a spec's source files and fingerprints them (see [`crate::listing`]).
pub async fn list_source(settings: &Settings, file: &SpecFile) -> Result<SourceFiles> {
    crate::listing::list(&settings.s3, file).await
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
    if source.only_listed {
        return register_listed(ctx, file, source).await;
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
        SourceFormat::Avro => {
            let options = AvroReadOptions {
                file_extension: &source.extension,
                ..AvroReadOptions::default()
            };
            ctx.register_avro(SOURCE_TABLE, &path, options).await
        }
    };
    match result {
        Ok(()) => Ok(()),
        Err(e) => Err(source_failure(file, source, e.strip_backtrace()).await),
    }
}

/// Registers exactly the listed files of `source` as table `source` (an incremental run's
/// new files), each format read as [`register_source`] reads a whole directory.
async fn register_listed(
    ctx: &SessionContext,
    file: &SpecFile,
    source: &SourceFiles,
) -> Result<()> {
    let paths: Vec<String> = source.files.iter().map(|n| source.url(n)).collect();
    let df = match file.spec.spec.source.format {
        SourceFormat::Csv => {
            let schema = match &source.fixed_schema {
                Some(s) => s.clone(),
                None => source.csv_schema(file).await?,
            };
            ctx.read_csv(paths, csv_options(file, source, &schema))
                .await
        }
        SourceFormat::Ndjson => match &source.fixed_schema {
            Some(s) => ctx.read_json(paths, json_options(source).schema(s)).await,
            None => ctx.read_json(paths, json_options(source)).await,
        },
        SourceFormat::Parquet => {
            source.check_parquet(file).await?;
            let options = ParquetReadOptions::default().file_extension(&source.extension);
            ctx.read_parquet(paths, options).await
        }
        SourceFormat::Avro => {
            let options = AvroReadOptions {
                file_extension: &source.extension,
                ..AvroReadOptions::default()
            };
            ctx.read_avro(paths, options).await
        }
    };
    let df = match df {
        Ok(df) => df,
        Err(e) => return Err(source_failure(file, source, e.strip_backtrace()).await),
    };
    ctx.register_table(SOURCE_TABLE, df.into_view())
        .map_err(Error::engine("register the source's new files"))?;
    Ok(())
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
        SourceFormat::Csv => match crate::csv_source::find_open_quote(file, source).await {
            Some((uri, line)) => Some((uri, crate::csv_source::open_quote_message(line))),
            None if message.contains("incorrect number of fields") => {
                crate::csv_source::find_other_header(file, source).await
            }
            None => None,
        },
        SourceFormat::Parquet | SourceFormat::Avro => None,
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
        SourceFormat::Avro => {
            let options = AvroReadOptions {
                file_extension: &source.extension,
                schema: Some(schema),
                ..AvroReadOptions::default()
            };
            ctx.read_avro(paths, options).await
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
