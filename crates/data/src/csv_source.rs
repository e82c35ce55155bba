//! CSV sources read per RFC 4180 at any size: column types inferred by a real CSV reader,
//! and quoted fields left open at the end of a file named by file and line.
//!
//! DataFusion's own CSV schema inference cuts the byte stream into chunks on newlines
//! and restarts its parser on each chunk; past the first chunk a newline inside a quoted
//! value can start a "record" in the middle of a field, and inference fails (or infers
//! wrong types) on large files (object_store's `newline_delimited_stream`,
//! arrow-rs-object-store#650). Here the first `inferRecords` records are read through
//! one CSV parser over each file's whole byte stream (local or S3, through
//! `object_store`), and the source is registered with that schema, so DataFusion's read
//! (whole files, `newlines_in_values`, never split by byte range) does no inference.
//!
//! Three choices keep values from being lost: a column with no value in the sample is
//! read as text (arrow's CSV reader turns a `Null`-typed column into nulls whatever the
//! file holds); the files' types merge to the narrowest type that holds both (integers
//! and floats: float; anything else that differs: text); and timestamps without a
//! fraction are read in milliseconds, not seconds, because Parquet has no seconds unit:
//! a seconds column would be written as a plain INT64 that other readers (pyarrow, Spark,
//! DuckDB) see as a number. Timestamps with a zone (`Z`, `+02:00`) are read as UTC.

use std::io::Read;
use std::sync::Arc;

use datafusion::arrow::csv::reader::Format;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use futures::{Stream, StreamExt};
use object_store::ObjectStoreExt;
use skein_core::load::SpecFile;
use skein_core::spec::CsvOptions;

use crate::error::{Error, Result};
use crate::listing::SourceFiles;

/// The UTF-8 byte order mark, which the CSV parser skips at the start of a file.
const BOM: &[u8] = b"\xef\xbb\xbf";

/// Follows RFC 4180 quoting over a file's bytes, fed in pieces: where a quoted field
/// opened, and whether one is still open. A quote opens a quoted field only at the start
/// of a field (as the CSV parser has it); inside one, a doubled quote is a quote.
#[derive(Debug, Clone)]
pub struct QuoteTracker {
    quote: u8,
    delimiter: u8,
    /// Inside a quoted field.
    in_quote: bool,
    /// Inside a quoted field, the last byte was a quote: it closes the field unless the
    /// next byte is a quote too (an escaped quote).
    quote_pending: bool,
    /// The next byte starts a field (a quote there opens a quoted field).
    field_start: bool,
    /// 1-based line of the next byte.
    line: u64,
    /// Records ended so far (a line break outside quotes ends one).
    records: u64,
    /// The line where the open quoted field started.
    opened_at: u64,
    /// Bytes fed so far.
    fed: u64,
    /// Bytes of a leading BOM skipped so far.
    bom_seen: u64,
    /// The line where the first quoted field holding a line break opened.
    quoted_break: Option<u64>,
}

impl QuoteTracker {
    pub fn new(quote: u8, delimiter: u8) -> QuoteTracker {
        QuoteTracker {
            quote,
            delimiter,
            in_quote: false,
            quote_pending: false,
            field_start: true,
            line: 1,
            records: 0,
            opened_at: 0,
            fed: 0,
            bom_seen: 0,
            quoted_break: None,
        }
    }

    /// Follows the next bytes of the file.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        // a BOM at the start of the file, even when it comes in pieces
        while self.fed < BOM.len() as u64
            && self.fed == self.bom_seen
            && bytes.first() == Some(&BOM[self.fed as usize])
        {
            bytes = &bytes[1..];
            self.fed += 1;
            self.bom_seen += 1;
        }
        self.fed += bytes.len() as u64;
        for &b in bytes {
            if b == b'\n' {
                self.line += 1;
            }
            if self.in_quote {
                if self.quote_pending {
                    self.quote_pending = false;
                    if b == self.quote {
                        continue; // an escaped quote
                    }
                    self.in_quote = false; // the quote before closed the field
                } else {
                    if b == self.quote {
                        self.quote_pending = true;
                    } else if b == b'\n' && self.quoted_break.is_none() {
                        self.quoted_break = Some(self.opened_at);
                    }
                    continue;
                }
            }
            if b == self.quote && self.field_start {
                self.in_quote = true;
                self.opened_at = self.line;
                self.field_start = false;
                continue;
            }
            self.field_start = b == self.delimiter || b == b'\n' || b == b'\r';
            if b == b'\n' {
                self.records += 1;
            }
        }
    }

    /// Records ended so far (the header counts as one).
    pub fn records(&self) -> u64 {
        self.records
    }

    /// The 1-based line of the next byte.
    pub fn line(&self) -> u64 {
        self.line
    }

    /// The line where the first quoted field that holds a line break opened.
    pub fn quoted_break_line(&self) -> Option<u64> {
        self.quoted_break
    }

    /// The line where a quoted field opened that is still open (at the end of the file,
    /// the file is cut off inside it).
    pub fn open_quote_line(&self) -> Option<u64> {
        (self.in_quote && !self.quote_pending).then_some(self.opened_at)
    }
}

/// A blocking [`Read`] over an async byte stream, for the CSV parser on a blocking thread.
/// It follows the quoting of every byte it hands out.
struct StreamRead<S, B> {
    runtime: tokio::runtime::Handle,
    stream: S,
    chunk: Option<B>,
    pos: usize,
    ended: bool,
}

impl<S, B, E> Read for StreamRead<S, B>
where
    S: Stream<Item = std::result::Result<B, E>> + Unpin,
    B: AsRef<[u8]>,
    E: std::error::Error + Send + Sync + 'static,
{
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if let Some(chunk) = &self.chunk {
                let rest = &chunk.as_ref()[self.pos..];
                if !rest.is_empty() {
                    let n = rest.len().min(out.len());
                    out[..n].copy_from_slice(&rest[..n]);
                    self.pos += n;
                    return Ok(n);
                }
            }
            if self.ended {
                return Ok(0);
            }
            match self.runtime.block_on(self.stream.next()) {
                Some(Ok(chunk)) => {
                    self.chunk = Some(chunk);
                    self.pos = 0;
                }
                Some(Err(e)) => return Err(std::io::Error::other(e)),
                None => self.ended = true,
            }
        }
    }
}

/// A reader that follows the quoting of every byte it hands out (after decompression).
struct Tracking<R> {
    inner: R,
    tracker: QuoteTracker,
    /// The inner reader reached its end.
    ended: bool,
}

impl<R: Read> Read for Tracking<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(out)?;
        if n == 0 {
            self.ended = true;
        } else {
            self.tracker.feed(&out[..n]);
        }
        Ok(n)
    }
}

/// What sampling one file found.
struct Sampled {
    schema: Schema,
    records: usize,
    /// The line of a quoted field still open at the end of the file (known only when the
    /// sample reached the end).
    open_quote: Option<u64>,
}

/// The schema of a CSV source, inferred from its first `inferRecords` records (across its
/// files, in order) by a CSV parser that honours quotes over each whole file.
pub(crate) async fn infer_schema(file: &SpecFile, source: &SourceFiles) -> Result<SchemaRef> {
    let csv = file.spec.spec.source.csv.clone().unwrap_or_default();
    let mut left = usize::try_from(csv.infer_records()).unwrap_or(usize::MAX);
    let unreadable = |name: String, message: String| Error::SourceUnreadable {
        dataset: file.name().to_string(),
        uri: source.url(&name),
        message,
    };
    let mut merged: Option<Schema> = None;
    for (name, &size) in source.files.iter().zip(&source.sizes) {
        if size == 0 {
            continue; // an empty file adds no rows (and no header)
        }
        let sampled = sample(source, name, &csv, left)
            .await
            .map_err(|m| unreadable(name.clone(), m))?;
        if let Some(line) = sampled.open_quote {
            return Err(unreadable(name.clone(), open_quote_message(line)));
        }
        left -= sampled.records.min(left);
        merged = Some(match merged {
            None => sampled.schema,
            Some(m) => merge(&m, &sampled.schema),
        });
        if left == 0 {
            break;
        }
    }
    let Some(schema) = merged else {
        let name = source.files.first().cloned().unwrap_or_default();
        let message = format!(
            "the source file `{}` is empty (0 bytes): there is no header and no row; put the export there or fix spec.source.uri",
            source.url(&name)
        );
        return Err(unreadable(name, message));
    };
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Null => Field::new(f.name(), DataType::Utf8, true),
            DataType::Timestamp(TimeUnit::Second, tz) => Field::new(
                f.name(),
                DataType::Timestamp(TimeUnit::Millisecond, tz.clone()),
                true,
            ),
            _ => f.as_ref().clone(),
        })
        .collect();
    Ok(Arc::new(Schema::new(fields)))
}

/// What to say about a quoted field that the file ends inside.
pub(crate) fn open_quote_message(line: u64) -> String {
    format!(
        "a quoted field opened on line {line} is not closed before the end of the file (the file is cut off, or a quote is not doubled inside a quoted value); fix or re-export the file"
    )
}

/// Reads up to `records` records of one file with the CSV parser and infers their types.
async fn sample(
    source: &SourceFiles,
    name: &str,
    csv: &CsvOptions,
    records: usize,
) -> std::result::Result<Sampled, String> {
    let (store, path) = source.object(name).map_err(|e| e.to_string())?;
    let stream = store
        .get(&path)
        .await
        .map_err(|e| format!("cannot read it: {e}"))?
        .into_stream();
    let format = Format::default()
        .with_header(csv.header)
        .with_delimiter(csv.delimiter.as_bytes()[0])
        .with_quote(csv.quote.as_bytes()[0]);
    let tracker = QuoteTracker::new(csv.quote.as_bytes()[0], csv.delimiter.as_bytes()[0]);
    let runtime = tokio::runtime::Handle::current();
    let compression = source.compression;
    tokio::task::spawn_blocking(move || {
        let raw = StreamRead {
            runtime,
            stream,
            chunk: None,
            pos: 0,
            ended: false,
        };
        let mut reader = Tracking {
            inner: crate::listing::decompressed(raw, compression).map_err(|e| e.to_string())?,
            tracker,
            ended: false,
        };
        let (schema, read) = format
            .infer_schema(&mut reader, Some(records))
            .map_err(|e| e.to_string())?;
        // The end of the file was reached only if the parser asked past it.
        let open_quote = if reader.ended {
            reader.tracker.open_quote_line()
        } else {
            None
        };
        Ok(Sampled {
            schema,
            records: read,
            open_quote,
        })
    })
    .await
    .map_err(|e| format!("schema inference stopped: {e}"))?
}

/// Two files' schemas as one: columns by name in order of appearance, each with the
/// narrowest type that holds both files' values.
fn merge(a: &Schema, b: &Schema) -> Schema {
    let mut fields: Vec<Field> = a.fields().iter().map(|f| f.as_ref().clone()).collect();
    for f in b.fields() {
        match fields.iter_mut().find(|g| g.name() == f.name()) {
            Some(g) => {
                let t = wider(g.data_type(), f.data_type());
                *g = Field::new(g.name(), t, true);
            }
            None => fields.push(f.as_ref().clone()),
        }
    }
    Schema::new(fields)
}

fn wider(a: &DataType, b: &DataType) -> DataType {
    use DataType::*;
    match (a, b) {
        _ if a == b => a.clone(),
        (Null, t) | (t, Null) => t.clone(),
        (Int64, Float64) | (Float64, Int64) => Float64,
        _ => Utf8,
    }
}

/// The first file of the source that ends inside a quoted field, and the line where that
/// field opened: what explains a failed read (scans every file; used on failures only).
pub(crate) async fn find_open_quote(
    file: &SpecFile,
    source: &SourceFiles,
) -> Option<(String, u64)> {
    let csv = file.spec.spec.source.csv.clone().unwrap_or_default();
    for name in &source.files {
        let (store, path) = source.object(name).ok()?;
        let mut stream = store.get(&path).await.ok()?.into_stream();
        let mut tracker = QuoteTracker::new(csv.quote.as_bytes()[0], csv.delimiter.as_bytes()[0]);
        while let Some(chunk) = stream.next().await {
            tracker.feed(chunk.ok()?.as_ref());
        }
        if let Some(line) = tracker.open_quote_line() {
            return Some((source.url(name), line));
        }
    }
    None
}

/// The first file of the source whose header differs from the first file's, with what
/// differs: what explains a read that fails with "incorrect number of fields" (reads each
/// file's header and first record; used on failures only).
pub(crate) async fn find_other_header(
    file: &SpecFile,
    source: &SourceFiles,
) -> Option<(String, String)> {
    let csv = file.spec.spec.source.csv.clone().unwrap_or_default();
    let columns =
        |s: &Schema| -> Vec<String> { s.fields().iter().map(|f| f.name().clone()).collect() };
    let mut first: Option<(String, Vec<String>)> = None;
    for (name, &size) in source.files.iter().zip(&source.sizes) {
        if size == 0 {
            continue;
        }
        let sampled = sample(source, name, &csv, 1).await.ok()?;
        let these = columns(&sampled.schema);
        match &first {
            None => first = Some((name.clone(), these)),
            Some((first_name, theirs)) if *theirs != these => {
                let what = if csv.header { "columns" } else { "fields" };
                let message = format!(
                    "its header has {} {what} ({}) but `{}` has {} ({}); the files of one CSV source need the same columns in the same order: re-export it, or migrate the files as separate datasets",
                    these.len(),
                    these.join(", "),
                    source.url(first_name),
                    theirs.len(),
                    theirs.join(", ")
                );
                return Some((source.url(name), message));
            }
            Some(_) => {}
        }
    }
    None
}

/// The line of the first quoted value in file `name` of the source that holds a line
/// break: what explains a failed read of a byte range of a CSV declared without line
/// breaks in values (scans the file; used on failures only).
pub(crate) async fn find_quoted_break(
    file: &SpecFile,
    source: &SourceFiles,
    name: &str,
) -> Option<u64> {
    let csv = file.spec.spec.source.csv.clone().unwrap_or_default();
    let (store, path) = source.object(name).ok()?;
    let mut stream = store.get(&path).await.ok()?.into_stream();
    let mut tracker = QuoteTracker::new(csv.quote.as_bytes()[0], csv.delimiter.as_bytes()[0]);
    while let Some(chunk) = stream.next().await {
        tracker.feed(chunk.ok()?.as_ref());
        if let Some(line) = tracker.quoted_break_line() {
            return Some(line);
        }
    }
    None
}

/// The physical line where record `record` (1-based, the header counts) of a source file
/// starts; quoted line breaks make it differ from the record number. Used on failures.
pub(crate) async fn record_line(
    file: &SpecFile,
    source: &SourceFiles,
    name: &str,
    record: u64,
) -> Option<u64> {
    let csv = file.spec.spec.source.csv.clone().unwrap_or_default();
    let (store, path) = source.object(name).ok()?;
    let mut stream = store.get(&path).await.ok()?.into_stream();
    let mut tracker = QuoteTracker::new(csv.quote.as_bytes()[0], csv.delimiter.as_bytes()[0]);
    if record <= 1 {
        return Some(1);
    }
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.ok()?;
        for b in chunk.as_ref().chunks(1) {
            tracker.feed(b);
            if tracker.records() + 1 == record {
                return Some(tracker.line());
            }
        }
    }
    None
}

/// Defined here rather than in [`crate::listing`], so that listing a source needs no CSV
/// parser and this module can take a listing.
impl SourceFiles {
    /// The schema of a CSV source, inferred once per listing (see [`crate::csv_source`]).
    pub(crate) async fn csv_schema(&self, file: &SpecFile) -> Result<SchemaRef> {
        if let Some(schema) = self.csv_schema.get() {
            return Ok(schema.clone());
        }
        let schema = infer_schema(file, self).await?;
        Ok(self.csv_schema.get_or_init(|| schema).clone())
    }
}
