//! Where two versions of a dataset differ, found the way data-diff does: checksums per
//! key bucket, bisecting the buckets that differ down to rows.
//!
//! 1. Each side (the transformed source, and a target directory) is streamed once into a
//!    compact Parquet file of `(kh, rh, k)`: a 62-bit hash of the key, a 62-bit hash of
//!    the whole row (canonical types, Arrow row format, XXH3), and the key as text. Memory
//!    stays bounded: batches stream through.
//! 2. The key-hash space `[0, 2^62)` is split into `factor` buckets; per bucket each side
//!    gives `count`, `bit_xor(rh)` and `sum(rh >> 31)` (one SQL aggregate over the
//!    compact files). Buckets that agree are done; those that differ are split again,
//!    until a bucket holds at most `threshold` rows on either side.
//! 3. The rows of the differing leaf buckets are compared in memory, a bounded batch of
//!    leaves at a time: keys only in the source, only in the target, or in both with a
//!    different row hash (changed). For up to `examples` changed keys the full rows are
//!    read from both sides to name the changed columns.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::prelude::{DataFrame, ParquetReadOptions, SessionContext};
use futures::StreamExt;
use serde::Serialize;
use skein_core::load::SpecFile;
use xxhash_rust::xxh3::xxh3_64;

use crate::checksum::canonical_type;
use crate::error::{Error, Result};
use crate::session::{Settings, list_source, register_source};
use crate::target::DataDir;
use crate::transform::plan_transform;

/// How to bisect.
#[derive(Debug, Clone, Copy)]
pub struct DiffOptions {
    /// Sub-buckets per differing bucket.
    pub bisection_factor: u64,
    /// A bucket with at most this many rows on each side is compared row by row.
    pub row_threshold: u64,
    /// Examples kept per kind of difference.
    pub examples: usize,
}

impl Default for DiffOptions {
    fn default() -> DiffOptions {
        DiffOptions {
            bisection_factor: 32,
            row_threshold: 4096,
            examples: 20,
        }
    }
}

/// One column of a changed row.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ColumnChange {
    pub column: String,
    pub source: String,
    pub target: String,
}

/// A changed row: its key and the columns that differ.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangedRow {
    pub key: String,
    pub columns: Vec<ColumnChange>,
}

/// Where source and target differ.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DiffReport {
    pub dataset: String,
    /// The key column, if the spec has one.
    pub key: Option<String>,
    pub source_rows: u64,
    pub target_rows: u64,
    /// Keys only in the transformed source (missing from the target).
    pub only_in_source: u64,
    /// Keys only in the target (extra).
    pub only_in_target: u64,
    /// Keys in both whose rows differ.
    pub changed: u64,
    /// Up to `examples` keys of each kind.
    pub only_in_source_keys: Vec<String>,
    pub only_in_target_keys: Vec<String>,
    pub changed_rows: Vec<ChangedRow>,
    /// Bisection levels used.
    pub levels: u32,
    /// Why the report is partial (no key), if it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl DiffReport {
    /// Whether the two sides hold the same rows.
    pub fn is_same(&self) -> bool {
        self.only_in_source == 0
            && self.only_in_target == 0
            && self.changed == 0
            && self.source_rows == self.target_rows
    }
}

const SOURCE: &str = "diff_source";
const TARGET: &str = "diff_target";

/// Compares the spec's transformed source with the Parquet files in `target_dir`.
pub async fn diff(
    settings: &Settings,
    file: &SpecFile,
    target_dir: &DataDir,
    opts: DiffOptions,
) -> Result<DiffReport> {
    let (source_df, target_df) = both_sides(settings, file, target_dir).await?;
    let mut report = DiffReport {
        dataset: file.name().to_string(),
        key: file.spec.key_column().map(str::to_string),
        source_rows: 0,
        target_rows: 0,
        only_in_source: 0,
        only_in_target: 0,
        changed: 0,
        only_in_source_keys: Vec::new(),
        only_in_target_keys: Vec::new(),
        changed_rows: Vec::new(),
        levels: 0,
        note: None,
    };
    let Some(key) = report.key.clone() else {
        report.source_rows = count(source_df).await?;
        report.target_rows = count(target_df).await?;
        report.note = Some(
            "no key: set `verify.key` (or a `unique` rule) in the spec to find the differing rows; counts only".into(),
        );
        return Ok(report);
    };
    // Compare the columns both sides have, in the target's order.
    let source_cols: Vec<String> = source_df
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let columns: Vec<String> = target_df
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .filter(|c| source_cols.contains(c))
        .collect();
    for (side, cols) in [("source", &source_cols), ("target", &columns)] {
        if !cols.contains(&key) {
            return Err(Error::Transform {
                dataset: file.name().to_string(),
                message: format!(
                    "the key column `{key}` is not in the {side}; fix `verify.key` in the spec"
                ),
            });
        }
    }
    let work = tempfile::Builder::new()
        .prefix("skein-diff-")
        .tempdir_in(
            settings
                .spill_dir
                .clone()
                .unwrap_or_else(std::env::temp_dir),
        )
        .map_err(|e| Error::Io {
            op: "create a work directory in",
            path: std::env::temp_dir(),
            source: e,
        })?;
    let select = |df: DataFrame| -> Result<DataFrame> {
        df.select_columns(&columns.iter().map(String::as_str).collect::<Vec<_>>())
            .map_err(Error::engine("select the compared columns"))
    };
    let source_file = work.path().join("source");
    let target_file = work.path().join("target");
    report.source_rows = hash_to_dir(select(source_df)?, &key, &source_file).await?;
    report.target_rows = hash_to_dir(select(target_df)?, &key, &target_file).await?;

    let hashes = settings.session()?;
    for (name, path) in [(SOURCE, &source_file), (TARGET, &target_file)] {
        hashes
            .register_parquet(
                name,
                format!("{}/", path.display()),
                ParquetReadOptions::default(),
            )
            .await
            .map_err(Error::engine("read the row hashes"))?;
    }
    let leaves = bisect(&hashes, opts, &mut report).await?;
    let changed_keys = compare_leaves(&hashes, &leaves, opts, &mut report).await?;
    if !changed_keys.is_empty() {
        report.changed_rows =
            changed_columns(settings, file, target_dir, &key, &columns, &changed_keys).await?;
    }
    Ok(report)
}

/// The transformed source and the Parquet files of `target_dir`, as data frames.
async fn both_sides(
    settings: &Settings,
    file: &SpecFile,
    target_dir: &DataDir,
) -> Result<(DataFrame, DataFrame)> {
    let ctx = settings.session()?;
    let source = list_source(settings, file).await?;
    register_source(&ctx, file, &source).await?;
    let source_df = plan_transform(&ctx, file).await?;
    target_dir.register(&ctx)?;
    let target_df = ctx
        .read_parquet(target_dir.url(), ParquetReadOptions::default())
        .await
        .map_err(Error::engine(format!(
            "read the target files in {target_dir}"
        )))?;
    Ok((source_df, target_df))
}

async fn count(df: DataFrame) -> Result<u64> {
    df.count()
        .await
        .map(|n| n as u64)
        .map_err(Error::engine("count rows"))
}

/// 62-bit hashes, so that bucket arithmetic stays in positive `Int64`.
fn h62(bytes: &[u8]) -> i64 {
    (xxh3_64(bytes) >> 2) as i64
}

/// Streams `df` into `(kh, rh, k)` Parquet files in `dir`, one per partition, hashing the
/// partitions in parallel; returns the row count.
async fn hash_to_dir(df: DataFrame, key: &str, dir: &Path) -> Result<u64> {
    std::fs::create_dir_all(dir).map_err(|e| Error::Io {
        op: "create",
        path: dir.to_path_buf(),
        source: e,
    })?;
    let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    let key_index = schema
        .index_of(key)
        .map_err(|e| Error::Internal(format!("key column: {e}")))?;
    let canonical: Arc<Vec<DataType>> = Arc::new(
        schema
            .fields()
            .iter()
            .map(|f| canonical_type(f.data_type()))
            .collect(),
    );
    let streams = df
        .execute_stream_partitioned()
        .await
        .map_err(Error::engine("read for diff"))?;
    let mut tasks = Vec::new();
    for (i, stream) in streams.into_iter().enumerate() {
        let canonical = canonical.clone();
        let path = dir.join(format!("part-{i:03}.parquet"));
        tasks.push(tokio::spawn(hash_partition(
            stream, canonical, key_index, path,
        )));
    }
    let mut rows = 0;
    for t in tasks {
        rows += t
            .await
            .map_err(|e| Error::Internal(format!("hashing task: {e}")))??;
    }
    Ok(rows)
}

async fn hash_partition(
    mut stream: datafusion::physical_plan::SendableRecordBatchStream,
    canonical: Arc<Vec<DataType>>,
    key_index: usize,
    path: PathBuf,
) -> Result<u64> {
    let converter = RowConverter::new(
        canonical
            .iter()
            .map(|t| SortField::new(t.clone()))
            .collect(),
    )
    .map_err(|e| Error::Internal(format!("row format: {e}")))?;
    let key_converter = RowConverter::new(vec![SortField::new(canonical[key_index].clone())])
        .map_err(|e| Error::Internal(format!("row format: {e}")))?;
    // Integer and text keys are kept as they are (no formatting per row); others as text.
    let key_type = canonical[key_index].clone();
    let native_key = key_type.is_integer() || key_type == DataType::Utf8;
    let k_type = if native_key {
        key_type.clone()
    } else {
        DataType::Utf8
    };
    let out_schema = Arc::new(Schema::new(vec![
        Field::new("kh", DataType::Int64, false),
        Field::new("rh", DataType::Int64, false),
        Field::new("k", k_type, true),
    ]));
    let file = std::fs::File::create(&path).map_err(|e| Error::Io {
        op: "create",
        path: path.clone(),
        source: e,
    })?;
    // A scratch file read once or twice: no dictionary, no compression.
    let props = datafusion::parquet::file::properties::WriterProperties::builder()
        .set_dictionary_enabled(false)
        .set_compression(datafusion::parquet::basic::Compression::UNCOMPRESSED)
        .build();
    let mut writer = ArrowWriter::try_new(file, out_schema.clone(), Some(props))
        .map_err(|e| Error::Internal(format!("write row hashes: {e}")))?;
    let format = FormatOptions::default().with_null("NULL");
    let mut rows = 0u64;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(Error::engine("read for diff"))?;
        let columns: Vec<ArrayRef> = batch
            .columns()
            .iter()
            .zip(canonical.iter())
            .map(|(c, t)| {
                if c.data_type() == t {
                    Ok(c.clone())
                } else {
                    cast(c, t)
                }
            })
            .collect::<Result<_, _>>()
            .map_err(|e| Error::Internal(format!("canonical cast: {e}")))?;
        let encoded = converter
            .convert_columns(&columns)
            .map_err(|e| Error::Internal(format!("row encoding: {e}")))?;
        let keys = key_converter
            .convert_columns(&[columns[key_index].clone()])
            .map_err(|e| Error::Internal(format!("key encoding: {e}")))?;
        let n = batch.num_rows();
        let kh: Int64Array = (0..n).map(|i| h62(keys.row(i).as_ref())).collect();
        let rh: Int64Array = (0..n).map(|i| h62(encoded.row(i).as_ref())).collect();
        let k: ArrayRef = if native_key {
            columns[key_index].clone()
        } else {
            let fmt = ArrayFormatter::try_new(columns[key_index].as_ref(), &format)
                .map_err(|e| Error::Internal(format!("key text: {e}")))?;
            Arc::new(
                (0..n)
                    .map(|i| Some(fmt.value(i).to_string()))
                    .collect::<StringArray>(),
            )
        };
        let out = RecordBatch::try_new(out_schema.clone(), vec![Arc::new(kh), Arc::new(rh), k])
            .map_err(|e| Error::Internal(format!("row hashes: {e}")))?;
        writer
            .write(&out)
            .map_err(|e| Error::Internal(format!("write row hashes: {e}")))?;
        rows += n as u64;
    }
    writer
        .close()
        .map_err(|e| Error::Internal(format!("write row hashes: {e}")))?;
    Ok(rows)
}

/// Per-bucket `(count, xor, sum)` of one side, for buckets of `width` within `parents`.
async fn buckets(
    ctx: &SessionContext,
    table: &str,
    width: i64,
    parent_width: i64,
    parents: &[i64],
) -> Result<HashMap<i64, (i64, i64, i64)>> {
    let filter = if parents.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = parents.iter().map(i64::to_string).collect();
        format!("WHERE kh / {parent_width} IN ({})", list.join(","))
    };
    let sql = format!(
        "SELECT kh / {width} AS b, count(*) AS n, bit_xor(rh) AS x, sum(rh / 2147483648) AS s FROM {table} {filter} GROUP BY kh / {width}"
    );
    let batches = ctx
        .sql(&sql)
        .await
        .map_err(Error::engine("bucket checksums"))?
        .collect()
        .await
        .map_err(Error::engine("bucket checksums"))?;
    let mut out = HashMap::new();
    for batch in batches {
        let col = |i: usize| -> Result<ArrayRef> {
            cast(batch.column(i), &DataType::Int64)
                .map_err(|e| Error::Internal(format!("bucket column: {e}")))
        };
        let (b, n, x, s) = (col(0)?, col(1)?, col(2)?, col(3)?);
        let (b, n, x, s) = (
            b.as_primitive::<Int64Type>(),
            n.as_primitive::<Int64Type>(),
            x.as_primitive::<Int64Type>(),
            s.as_primitive::<Int64Type>(),
        );
        for i in 0..batch.num_rows() {
            out.insert(b.value(i), (n.value(i), x.value(i), s.value(i)));
        }
    }
    Ok(out)
}

/// Bisects until differing buckets are small; returns the leaves as `(width, bucket)`.
async fn bisect(
    ctx: &SessionContext,
    opts: DiffOptions,
    report: &mut DiffReport,
) -> Result<Vec<(i64, i64)>> {
    let factor = opts.bisection_factor.max(2) as i64;
    let mut width: i64 = 1 << 62;
    let mut parent_width = width;
    let mut parents: Vec<i64> = Vec::new(); // empty: the whole key space
    let mut leaves = Vec::new();
    loop {
        report.levels += 1;
        let child_width = (width / factor).max(1);
        let s = buckets(ctx, SOURCE, child_width, parent_width, &parents).await?;
        let t = buckets(ctx, TARGET, child_width, parent_width, &parents).await?;
        let mut next = Vec::new();
        let mut all: Vec<i64> = s.keys().chain(t.keys()).copied().collect();
        all.sort_unstable();
        all.dedup();
        for b in all {
            let (a, z) = (s.get(&b), t.get(&b));
            if a == z {
                continue;
            }
            let rows = a.map(|v| v.0).unwrap_or(0).max(z.map(|v| v.0).unwrap_or(0));
            if rows as u64 <= opts.row_threshold || child_width == 1 {
                leaves.push((child_width, b));
            } else {
                next.push(b);
            }
        }
        if next.is_empty() {
            return Ok(leaves);
        }
        parents = next;
        parent_width = child_width;
        width = child_width;
    }
}

/// Compares the rows of the leaf buckets, a bounded batch of leaves at a time; returns up
/// to `examples` changed keys.
async fn compare_leaves(
    ctx: &SessionContext,
    leaves: &[(i64, i64)],
    opts: DiffOptions,
    report: &mut DiffReport,
) -> Result<Vec<String>> {
    let mut by_width: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for (w, b) in leaves {
        by_width.entry(*w).or_default().push(*b);
    }
    let per_batch = (1_000_000 / opts.row_threshold.max(1)).max(1) as usize;
    let mut changed_keys = Vec::new();
    for (width, buckets) in by_width {
        for chunk in buckets.chunks(per_batch) {
            let list: Vec<String> = chunk.iter().map(i64::to_string).collect();
            let read = |table: &str| {
                format!(
                    "SELECT k, rh FROM {table} WHERE kh / {width} IN ({})",
                    list.join(",")
                )
            };
            let s = rows_of(ctx, &read(SOURCE)).await?;
            let t = rows_of(ctx, &read(TARGET)).await?;
            for (k, rh) in &s {
                match t.get(k) {
                    None => {
                        report.only_in_source += 1;
                        if report.only_in_source_keys.len() < opts.examples {
                            report.only_in_source_keys.push(k.clone());
                        }
                    }
                    Some(other) if other != rh => {
                        report.changed += 1;
                        if changed_keys.len() < opts.examples {
                            changed_keys.push(k.clone());
                        }
                    }
                    Some(_) => {}
                }
            }
            for k in t.keys() {
                if !s.contains_key(k) {
                    report.only_in_target += 1;
                    if report.only_in_target_keys.len() < opts.examples {
                        report.only_in_target_keys.push(k.clone());
                    }
                }
            }
        }
    }
    report.only_in_source_keys.sort();
    report.only_in_target_keys.sort();
    changed_keys.sort();
    Ok(changed_keys)
}

/// Key → row hash (duplicate keys: the row hashes combined, so any difference shows).
async fn rows_of(ctx: &SessionContext, sql: &str) -> Result<HashMap<String, i64>> {
    let batches = ctx
        .sql(sql)
        .await
        .map_err(Error::engine("leaf rows"))?
        .collect()
        .await
        .map_err(Error::engine("leaf rows"))?;
    let mut out: HashMap<String, i64> = HashMap::new();
    for batch in batches {
        let k = cast(batch.column(0), &DataType::Utf8)
            .map_err(|e| Error::Internal(format!("leaf keys: {e}")))?;
        let k = k.as_string::<i32>();
        let rh = batch.column(1).as_primitive::<Int64Type>();
        for i in 0..batch.num_rows() {
            let e = out.entry(k.value(i).to_string()).or_insert(0);
            *e = e.wrapping_mul(31).wrapping_add(rh.value(i));
        }
    }
    Ok(out)
}

/// Reads the full rows of `keys` from both sides and names the columns that differ.
async fn changed_columns(
    settings: &Settings,
    file: &SpecFile,
    target_dir: &DataDir,
    key: &str,
    columns: &[String],
    keys: &[String],
) -> Result<Vec<ChangedRow>> {
    let (source_df, target_df) = both_sides(settings, file, target_dir).await?;
    let cols: Vec<&str> = columns.iter().map(String::as_str).collect();
    let fetch = |df: DataFrame| async {
        let df = df
            .select_columns(&cols)
            .map_err(Error::engine("select columns"))?;
        use datafusion::prelude::{Expr, cast as cast_expr, col, lit};
        let key_col = col(format!("\"{key}\""));
        let key_type = df
            .schema()
            .field_with_unqualified_name(key)
            .map(|f| f.data_type().clone())
            .unwrap_or(DataType::Utf8);
        // Integer and text keys compare in their own type, so Parquet statistics can skip
        // row groups; other keys compare as text.
        let typed = key_type.is_integer()
            || matches!(
                key_type,
                DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8
            );
        let predicate = if typed {
            let list: Vec<Expr> = keys
                .iter()
                .map(|k| cast_expr(lit(k.clone()), key_type.clone()))
                .collect();
            key_col.in_list(list, false)
        } else {
            let list: Vec<Expr> = keys.iter().map(|k| lit(k.clone())).collect();
            cast_expr(key_col, DataType::Utf8).in_list(list, false)
        };
        let df = df
            .filter(predicate)
            .map_err(Error::engine("filter changed keys"))?;
        let batches = df
            .collect()
            .await
            .map_err(Error::engine("read changed rows"))?;
        rows_as_text(&batches, key)
    };
    let s = fetch(source_df).await?;
    let t = fetch(target_df).await?;
    let mut out = Vec::new();
    for k in keys {
        let (Some(a), Some(b)) = (s.get(k), t.get(k)) else {
            continue;
        };
        let changes = columns
            .iter()
            .zip(a.iter().zip(b.iter()))
            .filter(|(_, (x, y))| x != y)
            .map(|(c, (x, y))| ColumnChange {
                column: c.clone(),
                source: x.clone(),
                target: y.clone(),
            })
            .collect();
        out.push(ChangedRow {
            key: k.clone(),
            columns: changes,
        });
    }
    Ok(out)
}

fn rows_as_text(batches: &[RecordBatch], key: &str) -> Result<HashMap<String, Vec<String>>> {
    let format = FormatOptions::default().with_null("NULL");
    let mut out = HashMap::new();
    for batch in batches {
        let key_index = batch
            .schema()
            .index_of(key)
            .map_err(|e| Error::Internal(format!("key column: {e}")))?;
        let formatters = batch
            .columns()
            .iter()
            .map(|c| {
                let canonical =
                    cast(c, &canonical_type(c.data_type())).unwrap_or_else(|_| c.clone());
                Ok::<_, Error>(canonical)
            })
            .collect::<Result<Vec<ArrayRef>>>()?;
        let fmts = formatters
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &format))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::Internal(format!("format rows: {e}")))?;
        for i in 0..batch.num_rows() {
            let values: Vec<String> = fmts.iter().map(|f| f.value(i).to_string()).collect();
            out.insert(values[key_index].clone(), values);
        }
    }
    Ok(out)
}
