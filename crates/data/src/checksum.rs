//! The order-independent content checksum.
//!
//! Algorithm (the same on the source side and the target side):
//! 1. Each column is brought to a canonical Arrow type, so that representation choices of
//!    readers do not matter: `Utf8View`/`LargeUtf8` → `Utf8`, `BinaryView`/`LargeBinary` →
//!    `Binary`, dictionaries → their value type.
//! 2. Each row is encoded with the Arrow row format (`arrow::row::RowConverter`, one
//!    ascending, nulls-first sort field per column), which is a deterministic byte string
//!    for the row's values, nulls included.
//! 3. Each row's bytes are hashed with XXH3-128; the checksum is the row count and the
//!    wrapping (mod 2^128) sum of the row hashes.
//!
//! A sum is independent of row order and of how rows are split into batches, files or
//! partitions, and sensitive to duplicates (a multiset hash). Partial checksums add up.

use datafusion::arrow::array::{ArrayRef, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::arrow::row::{RowConverter, SortField};
use skein_core::manifest::ContentChecksum;
use xxhash_rust::xxh3::xxh3_128;

use crate::error::{Error, Result};

/// The canonical type a column is checksummed as.
pub fn canonical_type(dt: &DataType) -> DataType {
    match dt {
        DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
        DataType::BinaryView | DataType::LargeBinary => DataType::Binary,
        DataType::Dictionary(_, value) => canonical_type(value),
        other => other.clone(),
    }
}

/// A schema with canonical types, for comparing the two sides.
pub fn canonical_schema(schema: &Schema) -> Vec<String> {
    schema
        .fields()
        .iter()
        .map(|f| format!("{}: {}", f.name(), canonical_type(f.data_type())))
        .collect()
}

/// A running checksum over batches of one schema.
pub struct Checksum {
    converter: RowConverter,
    canonical: Vec<DataType>,
    rows: u64,
    sum: u128,
}

impl Checksum {
    /// A checksum for batches of `schema`.
    pub fn new(schema: &SchemaRef) -> Result<Checksum> {
        let canonical: Vec<DataType> = schema
            .fields()
            .iter()
            .map(|f| canonical_type(f.data_type()))
            .collect();
        let fields = canonical
            .iter()
            .map(|dt| SortField::new(dt.clone()))
            .collect();
        let converter = RowConverter::new(fields)
            .map_err(|e| Error::Internal(format!("no row format for schema {schema}: {e}")))?;
        Ok(Checksum {
            converter,
            canonical,
            rows: 0,
            sum: 0,
        })
    }

    /// Adds a batch's rows.
    pub fn update(&mut self, batch: &RecordBatch) -> Result<()> {
        let columns: Vec<ArrayRef> = batch
            .columns()
            .iter()
            .zip(&self.canonical)
            .map(|(col, dt)| {
                if col.data_type() == dt {
                    Ok(col.clone())
                } else {
                    cast(col, dt)
                }
            })
            .collect::<Result<_, _>>()
            .map_err(|e| Error::Internal(format!("canonical cast for checksum: {e}")))?;
        let rows = self
            .converter
            .convert_columns(&columns)
            .map_err(|e| Error::Internal(format!("row encoding for checksum: {e}")))?;
        let mut sum = self.sum;
        for row in rows.iter() {
            sum = sum.wrapping_add(xxh3_128(row.as_ref()));
        }
        self.sum = sum;
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    /// Adds another partial checksum.
    pub fn merge(&mut self, other: &ContentChecksum) {
        self.rows += other.rows;
        self.sum = self
            .sum
            .wrapping_add(u128::from_str_radix(&other.sum, 16).unwrap_or(0));
    }

    /// The checksum so far.
    pub fn value(&self) -> ContentChecksum {
        ContentChecksum {
            rows: self.rows,
            sum: format!("{:032x}", self.sum),
        }
    }
}

/// Adds partial checksums.
pub fn combine(parts: &[ContentChecksum]) -> ContentChecksum {
    let mut rows = 0u64;
    let mut sum = 0u128;
    for p in parts {
        rows += p.rows;
        sum = sum.wrapping_add(u128::from_str_radix(&p.sum, 16).unwrap_or(0));
    }
    ContentChecksum {
        rows,
        sum: format!("{sum:032x}"),
    }
}
