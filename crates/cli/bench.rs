//! `skein bench`: migrate and verify a generated CSV and print rows/s, MB/s, peak RSS.
//!
//! The CSV has the shape of the design's `orders` example (ids, amounts as text, ISO
//! timestamps with `Z`, an event type to filter on, quoted notes with commas and quotes);
//! the transform casts and filters. Peak RSS is the process's high-water mark
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
        &store.staging_data("bench"),
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

/// Writes `rows` deterministic order rows as CSV with RFC 4180 quirks.
pub fn generate_csv(path: &Path, rows: u64) -> anyhow::Result<()> {
    let f = std::fs::File::create(path).with_context(|| format!("create {}", path.display()))?;
    let mut w = BufWriter::with_capacity(1 << 20, f);
    writeln!(w, "id,user_id,amount,ts,event_type,note")?;
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
        let note = match (x >> 50) % 8 {
            0 => "\"gift, wrapped\"",
            1 => "\"said \"\"hi\"\"\"",
            2 => "",
            _ => "standard",
        };
        writeln!(
            w,
            "{id},{user},{}.{:02},2024-03-{day:02}T{:02}:{:02}:{:02}Z,{event},{note}",
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
