//! Partitioned targets (`target.partitionBy: [col, …]`): the output is split by the values
//! of those columns into `col=value/…` directories (Hive style, for Parquet and Delta
//! alike), and a file holds only the other columns; a partition column's value comes back
//! from the path (Parquet readers with Hive partitioning) or from the Delta log's
//! `partitionValues`. skein reads it back the same way: [`read_dir`] declares the
//! partition columns, so verification, checksums and diffs see every column.
//!
//! A partition value is written as text, so only types whose text is exact can
//! partition ([`partitionable`]: strings, integers, booleans, dates), and a value must be
//! a plain path segment: no null, no empty string, no `/`, `=`, `%` or other character a
//! reader would have to decode ([`Error::PartitionValue`] names the column and value).

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, RecordBatch, UInt32Array};
use datafusion::arrow::compute::{cast, take};
use datafusion::arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::prelude::{DataFrame, ParquetReadOptions, SessionContext, col};
use skein_core::load::SpecFile;

use crate::error::{Error, Result};
use crate::layout::DataDir;

/// Distinct partitions one writer keeps files open for; more is an error, not memory
/// without bound (each open file buffers a row group).
pub const MAX_PARTITIONS: usize = 1000;

/// Whether a column of type `t` can partition: its values survive as text in a path.
pub fn partitionable(t: &DataType) -> bool {
    matches!(
        crate::checksum::canonical_type(t),
        DataType::Utf8
            | DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
            | DataType::Boolean
            | DataType::Date32
    )
}

/// How a dataset's output is split: the partition columns and the schema of the files.
#[derive(Debug, Clone)]
pub(crate) struct Partitioning {
    /// Name and index in the output schema of each partition column, in path order.
    columns: Vec<(String, usize)>,
    /// Indices of the data columns (those written into the files).
    data: Vec<usize>,
    data_schema: SchemaRef,
}

impl Partitioning {
    /// The partitioning of `file`'s output `schema`, `None` when not partitioned; an
    /// unknown column or one of a type that cannot partition is an error naming the field.
    pub fn new(file: &SpecFile, schema: &Schema) -> Result<Option<Partitioning>> {
        let by = &file.spec.spec.target.partition_by;
        if by.is_empty() {
            return Ok(None);
        }
        let listed = || {
            schema
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut columns = Vec::new();
        for (i, name) in by.iter().enumerate() {
            let field = format!("spec.target.partitionBy[{i}]");
            let Ok(index) = schema.index_of(name) else {
                return Err(Error::Partition {
                    dataset: file.name().to_string(),
                    field,
                    message: format!(
                        "`{name}` is not an output column; name one of: {}",
                        listed()
                    ),
                });
            };
            let t = schema.field(index).data_type();
            if !partitionable(t) {
                return Err(Error::Partition {
                    dataset: file.name().to_string(),
                    field,
                    message: format!(
                        "column `{name}` is of type {t}, which cannot partition (its values must be exact as text in a path); partition by a string, integer, boolean or date column, or CAST it in spec.transform.sql"
                    ),
                });
            }
            columns.push((name.clone(), index));
        }
        let data: Vec<usize> = (0..schema.fields().len())
            .filter(|i| !columns.iter().any(|(_, c)| c == i))
            .collect();
        if data.is_empty() {
            return Err(Error::Partition {
                dataset: file.name().to_string(),
                field: "spec.target.partitionBy".into(),
                message:
                    "every output column is a partition column; leave at least one in the files"
                        .into(),
            });
        }
        let data_schema = Arc::new(
            schema
                .project(&data)
                .map_err(|e| Error::Internal(format!("data columns of the output: {e}")))?,
        );
        Ok(Some(Partitioning {
            columns,
            data,
            data_schema,
        }))
    }

    /// The schema of the files: the output without its partition columns.
    pub fn data_schema(&self) -> &SchemaRef {
        &self.data_schema
    }

    /// Splits `batch` (of the full output schema) by partition: each partition's
    /// directory (`a=1/b=x`) and its rows, data columns only.
    pub fn split(&self, dataset: &str, batch: &RecordBatch) -> Result<Vec<(String, RecordBatch)>> {
        let texts = self
            .columns
            .iter()
            .map(|(name, i)| {
                cast(batch.column(*i), &DataType::Utf8)
                    .map_err(|e| Error::Internal(format!("partition column `{name}` as text: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut groups: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        for row in 0..batch.num_rows() {
            let mut dir = String::new();
            for ((name, _), text) in self.columns.iter().zip(&texts) {
                let value = if text.is_null(row) {
                    None
                } else {
                    Some(text.as_string::<i32>().value(row))
                };
                let value = check_value(dataset, name, value)?;
                if !dir.is_empty() {
                    dir.push('/');
                }
                dir.push_str(name);
                dir.push('=');
                dir.push_str(value);
            }
            groups.entry(dir).or_default().push(row as u32);
        }
        groups
            .into_iter()
            .map(|(dir, rows)| {
                let rows = UInt32Array::from(rows);
                let columns = self
                    .data
                    .iter()
                    .map(|i| take(batch.column(*i), &rows, None))
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(|e| Error::Internal(format!("rows of partition {dir}: {e}")))?;
                let part = RecordBatch::try_new(self.data_schema.clone(), columns)
                    .map_err(|e| Error::Internal(format!("batch of partition {dir}: {e}")))?;
                Ok((dir, part))
            })
            .collect()
    }
}

fn check_value<'a>(dataset: &str, column: &str, value: Option<&'a str>) -> Result<&'a str> {
    let fail = |value: &str, message: &str| Error::PartitionValue {
        dataset: dataset.to_string(),
        column: column.to_string(),
        value: value.to_string(),
        message: message.to_string(),
    };
    match value {
        None => Err(fail(
            "NULL",
            "a partition value cannot be null; COALESCE it in spec.transform.sql",
        )),
        Some("") => Err(fail("", "a partition value cannot be empty")),
        Some(v)
            if !v
                .chars()
                .all(|c| c.is_alphanumeric() || " -_.,".contains(c)) =>
        {
            Err(fail(
                v,
                "a partition value may hold letters, digits, spaces and `-_.,` only (it is a directory name); map it in spec.transform.sql",
            ))
        }
        Some(v) => Ok(v),
    }
}

/// The partition columns of `file` with their types, as a version's manifest lists them
/// (`name: Type`), in path order; empty when not partitioned.
pub(crate) fn columns_of(file: &SpecFile, schema: &[String]) -> Result<Vec<(String, DataType)>> {
    file.spec
        .spec
        .target
        .partition_by
        .iter()
        .map(|name| {
            let line = schema
                .iter()
                .find_map(|l| l.strip_prefix(name.as_str())?.strip_prefix(": "))
                .ok_or_else(|| {
                    Error::Internal(format!(
                        "dataset `{}`: partition column `{name}` is not in the version's schema",
                        file.name()
                    ))
                })?;
            let t = DataType::from_str(line)
                .map_err(|e| Error::Internal(format!("type `{line}` of column `{name}`: {e}")))?;
            Ok((name.clone(), t))
        })
        .collect()
}

/// The partition columns of `file` with their (canonical) types in the output `schema`,
/// in path order; a column the output lacks is left out (the read then fails to agree).
pub(crate) fn columns_in(file: &SpecFile, schema: &Schema) -> Vec<(String, DataType)> {
    file.spec
        .spec
        .target
        .partition_by
        .iter()
        .filter_map(|name| {
            let f = schema.field_with_name(name).ok()?;
            Some((name.clone(), crate::checksum::canonical_type(f.data_type())))
        })
        .collect()
}

/// The Parquet files of `dir` as one table, with the partition columns `partitions` read
/// from the paths and the columns in `order` (the output's), or as written when `order`
/// is empty.
pub(crate) async fn read_dir(
    ctx: &SessionContext,
    dir: &DataDir,
    partitions: &[(String, DataType)],
    order: &[String],
) -> Result<DataFrame> {
    dir.register(ctx)?;
    let options = ParquetReadOptions::default().table_partition_cols(partitions.to_vec());
    let df = ctx
        .read_parquet(dir.url(), options)
        .await
        .map_err(Error::engine(format!("read the target files in {dir}")))?;
    if partitions.is_empty() || order.is_empty() {
        return Ok(df);
    }
    df.select(
        order
            .iter()
            .map(|c| col(format!("\"{}\"", c.replace('"', "\"\""))))
            .collect::<Vec<_>>(),
    )
    .map_err(Error::engine(format!(
        "columns of the target files in {dir}"
    )))
}

/// The partition values of a file named `a=1/b=x/part-….parquet` (a path relative to its
/// version), by column.
pub fn values_of(name: &str) -> Vec<(String, String)> {
    let mut dirs: Vec<&str> = name.split('/').collect();
    dirs.pop();
    dirs.iter()
        .filter_map(|d| d.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
