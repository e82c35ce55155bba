//! `skein bench`: migrate and verify a generated CSV and print rows/s, MB/s, peak RSS.
//!
//! The CSV has the shape of the design's `orders` example (ids, amounts as text, ISO
//! timestamps with `Z`, an event type to filter on) and of a real export (`\r\n` record
//! ends, a free-text note with quoted line breaks, commas, quotes, unicode and nulls);
//! the transform casts and filters. A debug build says its figures are meaningless. Peak RSS is the process's high-water mark
//! (`VmHWM`), reset between phases through `/proc/self/clear_refs`.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use serde_json::json;
use skein_core::load;
use skein_data::{Progress, Target};

use crate::EXIT_OK;
use crate::flags::{BenchArgs, Global};

/// The transform the bench runs (cast and filter).
pub const BENCH_SQL: &str = "SELECT id AS order_id, user_id AS customer_id, CAST(amount AS DECIMAL(12,2)) AS amount, \
CAST(ts AS TIMESTAMP) AS ts, event_type, note FROM source WHERE event_type <> 'test'";

/// `skein bench`.
pub async fn run(g: &Global, args: &BenchArgs) -> anyhow::Result<u8> {
    if cfg!(debug_assertions) {
        eprintln!(
            "warning: this skein is a debug build; its figures are meaningless (10-50x slower than release): build with `cargo build --release` and run target/release/skein bench"
        );
    }
    let tmp;
    let dir: PathBuf = match &args.dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::tempdir().context("create a temp dir")?;
            tmp.path().to_path_buf()
        }
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let csv = dir.join(format!("orders-{}.csv", args.rows));
    if !(args.keep && csv.exists()) {
        let t = Instant::now();
        generate_csv(&csv, args.rows)?;
        if !g.json {
            eprintln!(
                "generated {} rows in {:.1}s: {}",
                args.rows,
                t.elapsed().as_secs_f64(),
                csv.display()
            );
        }
    }
    let input_bytes = std::fs::metadata(&csv)?.len();
    let target = dir.join("target");
    let _ = std::fs::remove_dir_all(dir.join(".target.skein"));
    let _ = std::fs::remove_file(&target);
    let spec_path = dir.join("bench.yaml");
    std::fs::write(
        &spec_path,
        format!(
            "apiVersion: skein/v1\nkind: Dataset\nmetadata: {{name: bench-orders}}\nspec:\n  source: {{uri: {}, format: csv}}\n  target: {{uri: target}}\n  transform:\n    sql: \"{BENCH_SQL}\"\n  verify:\n    rules: [{{notNull: order_id}}]\n",
            csv.file_name().unwrap().to_string_lossy()
        ),
    )?;
    let file = load::load_file(&spec_path).map_err(|p| anyhow::anyhow!("bench spec: {:?}", p))?;
    let settings = g.settings();
    let store = Target::open(&settings, &file)?;

    reset_peak_rss();
    let t = Instant::now();
    let staged = skein_data::stage(
        &settings,
        &file,
        &store,
        "bench",
        &Arc::new(Progress::default()),
    )
    .await?;
    let migrate_secs = t.elapsed().as_secs_f64();
    let migrate_rss = peak_rss_bytes();

    reset_peak_rss();
    let t = Instant::now();
    let report = skein_data::verify_dir(
        &settings,
        &file,
        &store.staging_data("bench").await?,
        &staged.manifest,
    )
    .await?;
    let verify_secs = t.elapsed().as_secs_f64();
    let verify_rss = peak_rss_bytes();
    anyhow::ensure!(
        report.passed,
        "bench verification failed: {}",
        report.summary()
    );

    let mb = input_bytes as f64 / 1e6;
    let figures = json!({
        "rows": args.rows,
        "inputBytes": input_bytes,
        "outputRows": staged.manifest.rows,
        "outputBytes": staged.manifest.bytes,
        "memoryLimit": settings.memory_limit,
        "debugBuild": cfg!(debug_assertions),
        "migrate": {"seconds": migrate_secs, "rowsPerSec": args.rows as f64 / migrate_secs, "mbPerSec": mb / migrate_secs, "peakRssBytes": migrate_rss},
        "verify": {"seconds": verify_secs, "rowsPerSec": staged.manifest.rows as f64 / verify_secs, "peakRssBytes": verify_rss},
    });
    if g.json {
        println!("{figures}");
    } else {
        println!(
            "input: {} rows, {:.1} MB CSV; output {} rows, {:.1} MB parquet; memory limit {} MiB",
            args.rows,
            mb,
            staged.manifest.rows,
            staged.manifest.bytes as f64 / 1e6,
            settings.memory_limit / (1024 * 1024)
        );
        println!(
            "migrate: {migrate_secs:.2} s, {:.0} rows/s, {:.1} MB/s, peak RSS {} MiB",
            args.rows as f64 / migrate_secs,
            mb / migrate_secs,
            migrate_rss
                .map(|b| (b / (1024 * 1024)).to_string())
                .unwrap_or_else(|| "?".into())
        );
        println!(
            "verify:  {verify_secs:.2} s, {:.0} rows/s, peak RSS {} MiB",
            staged.manifest.rows as f64 / verify_secs,
            verify_rss
                .map(|b| (b / (1024 * 1024)).to_string())
                .unwrap_or_else(|| "?".into())
        );
        println!("migrate + verify: {:.2} s", migrate_secs + verify_secs);
    }
    Ok(EXIT_OK)
}

/// Free-text notes as real exports have them, written as CSV fields (RFC 4180): quoted
/// line breaks (`\n` and `\r\n`), commas, doubled quotes, unicode, and empty (null).
const NOTES: [&str; 10] = [
    "standard",
    "",
    "\"gift, wrapped\"",
    "\"said \"\"hi\"\"\"",
    "\"left at the door\nring twice\"",
    "\"call first\r\nthen deliver, not before 9\"",
    "Zoë's café – naïve 李雷 🚚",
    "\"Customer wrote: \"\"box was damaged, please refund\"\"\nThanks,\r\nÅsa\"",
    "standard",
    "",
];

/// Writes `rows` deterministic order rows as CSV shaped like a real export: `\r\n`
/// record ends and a free-text `note` (see [`NOTES`]).
pub fn generate_csv(path: &Path, rows: u64) -> anyhow::Result<()> {
    let f = std::fs::File::create(path).with_context(|| format!("create {}", path.display()))?;
    let mut w = BufWriter::with_capacity(1 << 20, f);
    write!(w, "id,user_id,amount,ts,event_type,note\r\n")?;
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let events = ["purchase", "purchase", "refund", "purchase", "test"];
    for id in 0..rows {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let user = x % 100_000;
        let cents = (x >> 20) % 100_000;
        let day = 1 + (x >> 40) % 28;
        let secs = (x >> 8) % 86_400;
        let event = events[((x >> 33) % 5) as usize];
        let note = NOTES[((x >> 50) % NOTES.len() as u64) as usize];
        writeln!(
            w,
            "{id},{user},{}.{:02},2024-03-{day:02}T{:02}:{:02}:{:02}Z,{event},{note}\r",
            cents / 100,
            cents % 100,
            secs / 3600,
            (secs / 60) % 60,
            secs % 60
        )?;
    }
    w.flush()?;
    Ok(())
}

fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Peak resident set size of this process, from `/proc/self/status`.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
