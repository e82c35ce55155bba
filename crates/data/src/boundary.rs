//! Record boundaries in a large text file (NDJSON, or CSV whose values hold no line
//! breaks): where a file larger than the chunk size is cut into byte ranges.
//!
//! A cut at byte `c` moves forward to the first record start at or after it: the byte
//! after the first `\n` at or after `c - 1` (so a cut right after a newline stays where
//! it is, and a `\r\n` ending stays with its record). Only a small window around each cut
//! is read (local files and S3 alike, through `object_store` ranged GETs), window after
//! window while a record is longer than one. A cut past the last line break moves to the
//! end of the file: the last record, with or without a trailing newline, is never split.
//!
//! **Invariant:** the ranges of a file are contiguous, non-empty, cover it exactly, and
//! each starts at byte 0 or right after a `\n`; so every record lies in exactly one range.

use std::ops::Range;

use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};

/// Bytes read per look for a line break.
pub const WINDOW: u64 = 64 * 1024;

/// The first record start at or after `cut` in a file of `file_size` bytes: 0, or the
/// offset right after a `\n`, or `file_size` when no line break follows.
pub async fn record_start(
    store: &dyn ObjectStore,
    path: &ObjectPath,
    file_size: u64,
    cut: u64,
) -> object_store::Result<u64> {
    if cut == 0 {
        return Ok(0);
    }
    let mut from = cut - 1;
    while from < file_size {
        let to = (from + WINDOW).min(file_size);
        let bytes = store.get_range(path, from..to).await?;
        if let Some(i) = bytes.iter().position(|&b| b == b'\n') {
            return Ok(from + i as u64 + 1);
        }
        from = to;
    }
    Ok(file_size)
}

/// A file of `file_size` bytes cut every `size` bytes, each cut moved to the record start
/// at or after it (see [`record_start`]): `ceil(file_size / size)` ranges unless records
/// are longer than `size` (a cut that lands in the record before's range adds none). A
/// range is at most `size` plus the rest of the record its end cut fell in.
pub async fn byte_ranges(
    store: &dyn ObjectStore,
    path: &ObjectPath,
    file_size: u64,
    size: u64,
) -> object_store::Result<Vec<Range<u64>>> {
    let size = size.max(1);
    let mut ranges = Vec::new();
    let mut start = 0u64;
    let mut cut = size;
    while start < file_size {
        let end = if cut >= file_size {
            file_size
        } else {
            record_start(store, path, file_size, cut.max(start)).await?
        };
        if end > start {
            ranges.push(start..end);
            start = end;
        }
        cut = cut.saturating_add(size);
    }
    Ok(ranges)
}
