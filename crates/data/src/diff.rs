//! Where two versions of a dataset differ, found the way data-diff does: checksums per
//! key bucket, bisecting the buckets that differ down to rows.
//!
//! 1. Each side (the transformed source, and a target directory) is streamed once. Every
//!    row gets a hash of its key (`kh`) and of the whole row (`rh`), both DataFusion's
//!    vectorised column hashes over canonical types. The key-hash space is cut into `fine` buckets
//!    (`factor^L`, 32,768 for the default factor 32), and each side keeps per fine bucket
//!    the count, xor and wrapping sum of its row hashes, in memory (a few MiB). The
//!    `(kh, rh, key)` records are spilled to one file per key-hash range (64 of them), so
//!    that a bucket's rows can later be read from its range's file alone. Memory stays
//!    bounded: batches stream through.
//! 2. Bisection over the bucket tree: level 1 has `factor` buckets, each split `factor`
//!    ways at the next level, down to the fine buckets; a bucket's sums are its fine
//!    buckets' sums added up. Buckets whose sums agree on both sides are done; those that
//!    differ are split again, until a bucket holds at most `threshold` rows on either side.
//!    No level reads data again: the sums were all computed while hashing.
//! 3. The rows of the differing leaf buckets are read from their spill files only, a
//!    bounded batch at a time, and compared in memory: keys only in the source, only in
//!    the target, or in both with a different row hash (changed). For up to `examples`
//!    changed keys the full rows are read from both sides to name the changed columns.
//!
//! Step 1 (the bucket tree, hashing a side, its spill files) is [`crate::diff_buckets`].

use std::collections::{BTreeMap, HashMap};

use datafusion::arrow::array::{ArrayRef, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::prelude::DataFrame;
use serde::Serialize;
use skein_core::load::SpecFile;

use crate::checksum::canonical_type;
use crate::diff_buckets::{Grid, Side, Sums, hash_side, read_leaf_rows};
use crate::error::{Error, Result};
use crate::layout::DataDir;
use crate::session::{Settings, list_source, register_source};
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
    let key_type = target_df
        .schema()
        .field_with_unqualified_name(&key)
        .map(|f| canonical_type(f.data_type()))
        .map_err(|e| Error::Internal(format!("key column: {e}")))?;
    let grid = Grid::new(opts.bisection_factor);
    let started = std::time::Instant::now();
    let source = hash_side(
        select(source_df)?,
        &key,
        &key_type,
        grid,
        &work.path().join("source"),
    )
    .await?;
    let target = hash_side(
        select(target_df)?,
        &key,
        &key_type,
        grid,
        &work.path().join("target"),
    )
    .await?;
    report.source_rows = source.rows;
    report.target_rows = target.rows;
    tracing::info!(
        dataset = file.name(),
        seconds = started.elapsed().as_secs_f64(),
        "diff: both sides hashed"
    );
    let leaves = bisect(grid, &source.sums, &target.sums, opts, &mut report);
    let leaves_count = leaves.len();
    // Reading the spill files is blocking file I/O: off the async workers.
    let (mut report, changed_keys) = tokio::task::spawn_blocking(move || {
        let mut report = report;
        let keys = compare_leaves(
            grid,
            &source,
            &target,
            &leaves,
            opts,
            &mut report,
            &key_type,
        )?;
        Ok::<_, Error>((report, keys))
    })
    .await
    .map_err(|e| Error::Internal(format!("comparing leaves: {e}")))??;
    tracing::info!(
        dataset = file.name(),
        seconds = started.elapsed().as_secs_f64(),
        leaves = leaves_count,
        "diff: leaves compared"
    );
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
    crate::footer::check_dir(file.name(), target_dir, None).await?;
    let output = source_df.schema().as_arrow().clone();
    let partitions = crate::partition::columns_in(file, &output);
    let order: Vec<String> = output.fields().iter().map(|f| f.name().clone()).collect();
    let target_df = crate::partition::read_dir(&ctx, target_dir, &partitions, &order).await?;
    Ok((source_df, target_df))
}

async fn count(df: DataFrame) -> Result<u64> {
    df.count()
        .await
        .map(|n| n as u64)
        .map_err(Error::engine("count rows"))
}

/// Bisects the bucket tree from the top, comparing each bucket's sums on both sides and
/// splitting those that differ, until a differing bucket holds at most `threshold` rows
/// on each side (or is a fine bucket). Returns the leaves as runs of fine buckets.
fn bisect(
    grid: Grid,
    source: &[Sums],
    target: &[Sums],
    opts: DiffOptions,
    report: &mut DiffReport,
) -> Vec<std::ops::Range<usize>> {
    let total = |sums: &[Sums], r: std::ops::Range<usize>| {
        let mut t = Sums::default();
        for s in &sums[r] {
            t.merge(s);
        }
        t
    };
    let mut leaves = Vec::new();
    // The buckets to look into at the next level, as runs of fine buckets.
    let whole = 0..grid.fine as usize;
    let mut open: Vec<std::ops::Range<usize>> = Vec::from([whole]);
    for level in 1..=grid.levels {
        report.levels = level;
        let span = grid.span(level) as usize;
        let mut next = Vec::new();
        for parent in open {
            for start in parent.step_by(span) {
                let r = start..start + span;
                let (a, b) = (total(source, r.clone()), total(target, r.clone()));
                if a == b {
                    continue;
                }
                if a.n.max(b.n) <= opts.row_threshold || level == grid.levels {
                    leaves.push(r);
                } else {
                    next.push(r);
                }
            }
        }
        if next.is_empty() {
            break;
        }
        open = next;
    }
    leaves
}

/// Rows per side held in memory at once while comparing leaves.
const LEAF_BATCH_ROWS: u64 = 1_000_000;

/// Compares the rows of the leaf buckets, reading for each leaf only its spill file, a
/// bounded batch of fine buckets at a time; returns up to `examples` changed keys (as key
/// bytes) and fills in the counts and the other examples.
fn compare_leaves(
    grid: Grid,
    source: &Side,
    target: &Side,
    leaves: &[std::ops::Range<usize>],
    opts: DiffOptions,
    report: &mut DiffReport,
    key_type: &DataType,
) -> Result<Vec<String>> {
    let key_text = |keys: &[Vec<u8>]| keys_as_text(key_type, keys);
    // Group the leaves' fine buckets by spill file, then into batches of bounded rows.
    let mut by_file: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for leaf in leaves {
        for fine in leaf.clone() {
            if source.sums[fine] != target.sums[fine] {
                by_file.entry(grid.file_of(fine)).or_default().push(fine);
            }
        }
    }
    let mut batch_of = vec![u32::MAX; grid.fine as usize];
    let (mut only_source, mut only_target, mut changed) = (Vec::new(), Vec::new(), Vec::new());
    let mut next_batch = 0u32;
    for (file, fines) in by_file {
        let mut batches: Vec<u32> = Vec::new();
        let mut rows = u64::MAX;
        for fine in fines {
            let n = source.sums[fine].n.max(target.sums[fine].n);
            if rows.saturating_add(n) > LEAF_BATCH_ROWS {
                batches.push(next_batch);
                next_batch += 1;
                rows = 0;
            }
            rows += n;
            batch_of[fine] = *batches.last().expect("one batch at least");
        }
        for batch in batches {
            let s = read_leaf_rows(source, grid, file, &batch_of, batch)?;
            let t = read_leaf_rows(target, grid, file, &batch_of, batch)?;
            for (k, rh) in &s {
                match t.get(k) {
                    None => {
                        report.only_in_source += 1;
                        if only_source.len() < opts.examples {
                            only_source.push(k.clone());
                        }
                    }
                    Some(other) if other != rh => {
                        report.changed += 1;
                        if changed.len() < opts.examples {
                            changed.push(k.clone());
                        }
                    }
                    Some(_) => {}
                }
            }
            for k in t.keys() {
                if !s.contains_key(k) {
                    report.only_in_target += 1;
                    if only_target.len() < opts.examples {
                        only_target.push(k.clone());
                    }
                }
            }
        }
    }
    report.only_in_source_keys = key_text(&only_source)?;
    report.only_in_target_keys = key_text(&only_target)?;
    report.only_in_source_keys.sort();
    report.only_in_target_keys.sort();
    let mut changed = key_text(&changed)?;
    changed.sort();
    Ok(changed)
}

/// Key bytes (Arrow row format of `key_type`) back to the key as text.
fn keys_as_text(key_type: &DataType, keys: &[Vec<u8>]) -> Result<Vec<String>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let converter = RowConverter::new(vec![SortField::new(key_type.clone())])
        .map_err(|e| Error::Internal(format!("row format: {e}")))?;
    let parser = converter.parser();
    let rows: Vec<_> = keys.iter().map(|k| parser.parse(k)).collect();
    let columns = converter
        .convert_rows(rows)
        .map_err(|e| Error::Internal(format!("key decoding: {e}")))?;
    let format = FormatOptions::default().with_null("NULL");
    let fmt = ArrayFormatter::try_new(columns[0].as_ref(), &format)
        .map_err(|e| Error::Internal(format!("key text: {e}")))?;
    Ok((0..keys.len()).map(|i| fmt.value(i).to_string()).collect())
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
