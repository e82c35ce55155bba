//! The first pass of [`crate::diff`]: the bucket tree over the key-hash space, and one
//! side of a diff streamed once into per-fine-bucket sums of its row hashes, with its
//! `(kh, rh, key)` records spilled to one file per key-hash range so that a leaf bucket's
//! rows are read back from its range's file alone.
//!
//! A spill record is `kh` (8 bytes, little endian), `rh` (8), the key's length (4) and
//! the key in Arrow's row format.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::common::hash_utils::{RandomState, create_hashes};
use datafusion::prelude::DataFrame;
use futures::StreamExt;

use crate::checksum::canonical_type;
use crate::error::{Error, Result};

/// The row hash: DataFusion's vectorised hash of every column (canonical types), seeded
/// the same for both sides. Both sides are hashed in one process, so it needs no stability
/// across versions (unlike the manifest checksum, which uses the Arrow row format).
const ROW_HASH: RandomState = RandomState::with_seed(0x736b_6569_6e00_0001);
/// The key hash (its top 62 bits place the key in the bucket tree), seeded apart from the
/// row hash.
const KEY_HASH: RandomState = RandomState::with_seed(0x736b_6569_6e00_0002);

/// Fine buckets at least this many (when the factor allows), so that with up to a few
/// hundred million rows a fine bucket holds no more than the row threshold.
const MIN_FINE: u64 = 1 << 15;
/// Fine buckets at most this many: the per-bucket sums of a side stay a few MiB.
const MAX_FINE: u64 = 1 << 20;
/// Spill files per side and partition; a leaf's rows are read from its file only.
const SPILL_FILES: u64 = 64;

/// The bucket tree: level `l` (1-based) has `factor^l` buckets; the finest level has
/// `fine = factor^levels` buckets, whose sums are computed while hashing. A bucket of a
/// coarser level is a run of fine buckets.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Grid {
    factor: u64,
    pub(crate) levels: u32,
    pub(crate) fine: u64,
    files: u64,
}

impl Grid {
    pub(crate) fn new(factor: u64) -> Grid {
        let factor = factor.max(2);
        let (mut fine, mut levels) = (factor.min(MAX_FINE), 1);
        while fine < MIN_FINE && fine.saturating_mul(factor) <= MAX_FINE {
            fine *= factor;
            levels += 1;
        }
        Grid {
            factor,
            levels,
            fine,
            files: SPILL_FILES.min(fine),
        }
    }

    pub(crate) fn fine_of(&self, kh: u64) -> usize {
        ((kh as u128 * self.fine as u128) >> 62) as usize
    }

    pub(crate) fn file_of(&self, fine_bucket: usize) -> usize {
        (fine_bucket as u64 * self.files / self.fine) as usize
    }

    /// Fine buckets per bucket of `level`.
    pub(crate) fn span(&self, level: u32) -> u64 {
        self.factor.pow(self.levels - level)
    }
}

/// Count, xor and wrapping sum of the row hashes in a bucket: equal sums on both sides
/// mean the same rows (up to hash collisions), in any order.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sums {
    pub(crate) n: u64,
    x: u64,
    s: u64,
}

impl Sums {
    pub(crate) fn add(&mut self, rh: u64) {
        self.n += 1;
        self.x ^= rh;
        self.s = self.s.wrapping_add(rh);
    }

    pub(crate) fn merge(&mut self, o: &Sums) {
        self.n += o.n;
        self.x ^= o.x;
        self.s = self.s.wrapping_add(o.s);
    }
}

/// One side hashed: its rows, and the sums of every fine bucket.
pub(crate) struct Side {
    pub(crate) rows: u64,
    pub(crate) sums: Vec<Sums>,
    dir: PathBuf,
    partitions: usize,
}

/// Streams `df` once, hashing every row (`kh` of the key, `rh` of the whole row) into
/// fine-bucket sums and spilling `(kh, rh, key)` records into one file per key-hash
/// range, so that comparing a leaf reads only its range. Partitions run in parallel.
pub(crate) async fn hash_side(
    df: DataFrame,
    key: &str,
    key_type: &DataType,
    grid: Grid,
    dir: &Path,
) -> Result<Side> {
    std::fs::create_dir_all(dir).map_err(Error::io("create", dir))?;
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
    let partitions = streams.len();
    let mut tasks = Vec::new();
    for (i, stream) in streams.into_iter().enumerate() {
        let canonical = canonical.clone();
        let key_type = key_type.clone();
        let dir = dir.to_path_buf();
        tasks.push(tokio::spawn(async move {
            hash_partition(stream, canonical, key_index, key_type, grid, &dir, i).await
        }));
    }
    let mut side = Side {
        rows: 0,
        sums: vec![Sums::default(); grid.fine as usize],
        dir: dir.to_path_buf(),
        partitions,
    };
    for t in tasks {
        let (rows, sums) = t
            .await
            .map_err(|e| Error::Internal(format!("hashing task: {e}")))??;
        side.rows += rows;
        for (a, b) in side.sums.iter_mut().zip(&sums) {
            a.merge(b);
        }
    }
    Ok(side)
}

fn spill_path(dir: &Path, partition: usize, file: usize) -> PathBuf {
    dir.join(format!("p{partition:03}-f{file:03}.bin"))
}

async fn hash_partition(
    mut stream: datafusion::physical_plan::SendableRecordBatchStream,
    canonical: Arc<Vec<DataType>>,
    key_index: usize,
    key_type: DataType,
    grid: Grid,
    dir: &Path,
    partition: usize,
) -> Result<(u64, Vec<Sums>)> {
    use std::io::Write;
    let key_converter = RowConverter::new(vec![SortField::new(key_type.clone())])
        .map_err(|e| Error::Internal(format!("row format: {e}")))?;
    let mut files = Vec::with_capacity(grid.files as usize);
    for f in 0..grid.files as usize {
        let path = spill_path(dir, partition, f);
        let file = std::fs::File::create(&path).map_err(Error::io("create", &path))?;
        files.push(std::io::BufWriter::with_capacity(64 * 1024, file));
    }
    let mut sums = vec![Sums::default(); grid.fine as usize];
    let mut rows = 0u64;
    let mut row_hashes: Vec<u64> = Vec::new();
    let mut key_hashes: Vec<u64> = Vec::new();
    let file_of: Vec<u16> = (0..grid.fine as usize)
        .map(|fine| grid.file_of(fine) as u16)
        .collect();
    // Where the time goes (logged at debug level): reading, hashing, bucketing + spilling.
    let mut timing = [std::time::Duration::ZERO; 3];
    let mut clock = std::time::Instant::now();
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(Error::engine("read for diff"))?;
        timing[0] += clock.elapsed();
        clock = std::time::Instant::now();
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
        let n = batch.num_rows();
        row_hashes.clear();
        row_hashes.resize(n, 0);
        create_hashes(&columns, &ROW_HASH, &mut row_hashes)
            .map_err(|e| Error::Internal(format!("row hashes: {e}")))?;
        let key_column = if columns[key_index].data_type() == &key_type {
            columns[key_index].clone()
        } else {
            cast(&columns[key_index], &key_type)
                .map_err(|e| Error::Internal(format!("key cast: {e}")))?
        };
        let keys = key_converter
            .convert_columns(std::slice::from_ref(&key_column))
            .map_err(|e| Error::Internal(format!("key encoding: {e}")))?;
        key_hashes.clear();
        key_hashes.resize(n, 0);
        create_hashes([&key_column], &KEY_HASH, &mut key_hashes)
            .map_err(|e| Error::Internal(format!("key hashes: {e}")))?;
        timing[1] += clock.elapsed();
        clock = std::time::Instant::now();
        let mut head = [0u8; 20];
        for (i, (&kh, &rh)) in key_hashes.iter().zip(&row_hashes).enumerate() {
            let kh = kh >> 2; // 62 bits
            let k = keys.row(i);
            let k = k.as_ref();
            let fine = grid.fine_of(kh);
            sums[fine].add(rh);
            head[0..8].copy_from_slice(&kh.to_le_bytes());
            head[8..16].copy_from_slice(&rh.to_le_bytes());
            head[16..20].copy_from_slice(&(k.len() as u32).to_le_bytes());
            let f = file_of[fine] as usize;
            // (the error is built only on failure: this runs once per row)
            let w = &mut files[f];
            if let Err(e) = w.write_all(&head).and_then(|()| w.write_all(k)) {
                return Err(Error::io("write", spill_path(dir, partition, f))(e));
            }
        }
        rows += n as u64;
        timing[2] += clock.elapsed();
        clock = std::time::Instant::now();
    }
    tracing::debug!(
        partition,
        rows,
        read = timing[0].as_secs_f64(),
        hash = timing[1].as_secs_f64(),
        spill = timing[2].as_secs_f64(),
        "diff: partition hashed"
    );
    for (f, w) in files.into_iter().enumerate() {
        w.into_inner().map_err(|e| Error::Io {
            op: "flush",
            path: spill_path(dir, partition, f),
            source: e.into_error(),
        })?;
    }
    Ok((rows, sums))
}

/// Key bytes (Arrow row format) → row hash, for one side's rows of some fine buckets.
/// Duplicate keys combine their row hashes, so any difference among them shows.
pub(crate) fn read_leaf_rows(
    side: &Side,
    grid: Grid,
    file: usize,
    batch_of: &[u32],
    batch: u32,
) -> Result<HashMap<Vec<u8>, u64>> {
    use std::io::Read;
    let mut out: HashMap<Vec<u8>, u64> = HashMap::new();
    for partition in 0..side.partitions {
        let path = spill_path(&side.dir, partition, file);
        let f = std::fs::File::open(&path).map_err(Error::io("open", &path))?;
        let mut r = std::io::BufReader::with_capacity(256 * 1024, f);
        let mut head = [0u8; 20];
        let mut key = Vec::new();
        loop {
            match r.read_exact(&mut head) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                Err(e) => return Err(Error::io("read", &path)(e)),
            }
            let kh = u64::from_le_bytes(head[0..8].try_into().expect("8 bytes"));
            let rh = u64::from_le_bytes(head[8..16].try_into().expect("8 bytes"));
            let len = u32::from_le_bytes(head[16..20].try_into().expect("4 bytes")) as usize;
            key.resize(len, 0);
            if let Err(e) = r.read_exact(&mut key) {
                return Err(Error::io("read", &path)(e));
            }
            if batch_of[grid.fine_of(kh)] != batch {
                continue;
            }
            match out.get_mut(key.as_slice()) {
                Some(e) => *e = e.wrapping_mul(31).wrapping_add(rh),
                None => {
                    out.insert(key.clone(), rh);
                }
            }
        }
    }
    Ok(out)
}
