//! The Prometheus text exposition (format 0.0.4) of the catalog and the queues, written by
//! hand: a handful of families, computed from the catalog on each scrape.
//!
//! Families:
//! - `skein_datasets{status}`: datasets by status (every status, zeros included);
//! - `skein_rows_migrated_total`, `skein_bytes_migrated_total`: rows and bytes of every
//!   version published;
//! - `skein_job_duration_seconds`: histogram of finished migration attempts;
//! - `skein_queue_depth{group}`, `skein_dead_letters{group}`: jobs per group queue;
//! - `skein_runs{status}`: runs by status.

use std::collections::BTreeMap;
use std::fmt::Write;

use skein_core::Status;
use skein_core::catalog::VersionAction;

use crate::Sources;
use crate::error::Result;

/// Upper bounds of the job duration buckets, in seconds.
const BUCKETS: [f64; 10] = [0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];

/// A label value escaped for the text format.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// The exposition text.
pub async fn render(s: &Sources) -> Result<String> {
    let datasets = s.catalog.datasets().await?;
    let mut out = String::new();

    family(
        &mut out,
        "skein_datasets",
        "gauge",
        "Datasets in the catalog by status.",
    );
    for status in Status::ALL {
        let n = datasets.iter().filter(|d| d.status == status).count();
        let _ = writeln!(out, "skein_datasets{{status=\"{status}\"}} {n}");
    }

    let (mut rows, mut bytes) = (0u64, 0u64);
    let mut durations: Vec<f64> = Vec::new();
    let mut groups: BTreeMap<String, ()> = BTreeMap::new();
    for d in &datasets {
        groups.insert(d.spec.spec.group.clone(), ());
        for v in s.catalog.versions(&d.name).await? {
            if v.action == VersionAction::Published {
                rows += v.manifest.rows;
                bytes += v.manifest.bytes;
            }
        }
        for a in s.catalog.attempts(&d.name).await? {
            let Some(end) = a.finished_at.as_deref() else {
                continue;
            };
            if let (Ok(from), Ok(to)) = (
                chrono::DateTime::parse_from_rfc3339(&a.started_at),
                chrono::DateTime::parse_from_rfc3339(end),
            ) {
                durations.push(((to - from).num_milliseconds() as f64 / 1000.0).max(0.0));
            }
        }
    }
    family(
        &mut out,
        "skein_rows_migrated_total",
        "counter",
        "Rows of every version published.",
    );
    let _ = writeln!(out, "skein_rows_migrated_total {rows}");
    family(
        &mut out,
        "skein_bytes_migrated_total",
        "counter",
        "Bytes of data files of every version published.",
    );
    let _ = writeln!(out, "skein_bytes_migrated_total {bytes}");

    family(
        &mut out,
        "skein_job_duration_seconds",
        "histogram",
        "Duration of finished migration attempts (stage and verify).",
    );
    for le in BUCKETS {
        let n = durations.iter().filter(|d| **d <= le).count();
        let _ = writeln!(out, "skein_job_duration_seconds_bucket{{le=\"{le}\"}} {n}");
    }
    let _ = writeln!(
        out,
        "skein_job_duration_seconds_bucket{{le=\"+Inf\"}} {}",
        durations.len()
    );
    let _ = writeln!(
        out,
        "skein_job_duration_seconds_sum {}",
        durations.iter().sum::<f64>()
    );
    let _ = writeln!(out, "skein_job_duration_seconds_count {}", durations.len());

    family(
        &mut out,
        "skein_queue_depth",
        "gauge",
        "Migration jobs visible or in flight, per group queue.",
    );
    let mut dead = Vec::new();
    for g in groups.keys().filter(|_| s.queue.is_some()) {
        let Some(queue) = &s.queue else { break };
        let depth = queue.depth(g).await?;
        let _ = writeln!(out, "skein_queue_depth{{group=\"{}\"}} {depth}", label(g));
        dead.push((g, queue.dead_letters(g).await?.len()));
    }
    family(
        &mut out,
        "skein_dead_letters",
        "gauge",
        "Migration jobs moved to the dead letters, per group queue.",
    );
    for (g, n) in dead {
        let _ = writeln!(out, "skein_dead_letters{{group=\"{}\"}} {n}", label(g));
    }

    family(&mut out, "skein_runs", "gauge", "Runs by status.");
    let mut runs: BTreeMap<String, u64> = ["running", "succeeded", "failed"]
        .into_iter()
        .map(|s| (s.to_string(), 0))
        .collect();
    for r in s.catalog.runs().await? {
        *runs.entry(r.status.to_string()).or_default() += 1;
    }
    for (status, n) in runs {
        let _ = writeln!(out, "skein_runs{{status=\"{}\"}} {n}", label(&status));
    }
    Ok(out)
}
