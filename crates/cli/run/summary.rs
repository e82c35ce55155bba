//! The end of a local run: the summary printed (or its JSON), the quotas' headroom.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{Value, json};
use skein_core::catalog::Catalog;
use skein_core::fleet::{PlanItem, RunPlan};
use skein_states::status::ExecutionStatus;

use super::bindings::Local;
use crate::flags::Global;
use crate::output;
use crate::{EXIT_DATASET_FAILED, EXIT_OK};

pub(super) async fn report(
    g: &Global,
    local: &Local,
    plan: &RunPlan,
    run_id: &str,
    outcome: &skein_states::engine::Outcome,
    took: Duration,
    this_process: Option<Duration>,
) -> anyhow::Result<u8> {
    let c = local.catalog.as_ref();
    let items: Vec<&PlanItem> = plan
        .canary
        .iter()
        .chain(plan.waves.iter().flat_map(|w| w.datasets.iter()))
        .collect();
    let mut rows = Vec::new();
    let mut datasets = Vec::new();
    let mut by_status: BTreeMap<String, usize> = BTreeMap::new();
    for i in &items {
        let r = c.dataset(&i.dataset).await?;
        let (status, version, count, mut reason) = match &r {
            Some(r) => (
                r.status.to_string(),
                r.current_version,
                r.rows,
                r.reason.clone(),
            ),
            None => ("not registered".into(), None, None, None),
        };
        // A completed dataset this run did not touch was up to date: say so rather than
        // repeat the reason of the run that published it.
        if let Some(r) = &r
            && r.status == skein_core::Status::Completed
            && !c
                .history(&i.dataset)
                .await?
                .iter()
                .any(|h| h.run_id.as_deref() == Some(run_id))
        {
            reason = Some(match r.current_version {
                Some(v) => format!("up to date (v{v})"),
                None => "up to date".into(),
            });
        }
        *by_status.entry(status.clone()).or_default() += 1;
        rows.push(vec![
            i.dataset.clone(),
            i.group.clone(),
            status.clone(),
            version
                .map(|v| format!("v{v}"))
                .unwrap_or_else(|| "-".into()),
            count.map(output::count).unwrap_or_else(|| "-".into()),
            reason.clone().unwrap_or_default(),
        ]);
        datasets.push(
            json!({"dataset": i.dataset, "group": i.group, "status": status, "version": version,
                             "rows": count, "reason": reason}),
        );
    }
    let cap_report = |caps: &BTreeMap<String, u32>, prefix: &str| -> BTreeMap<String, Value> {
        caps.iter()
            .map(|(k, cap)| {
                (
                    k.clone(),
                    json!({"cap": cap, "peak": local.peaks.peak(&format!("{prefix}:{k}"))}),
                )
            })
            .collect()
    };
    let summary = match outcome.status {
        ExecutionStatus::Succeeded => outcome.output.clone().unwrap_or(Value::Null),
        _ => match c.run(run_id).await? {
            Some(r) => {
                json!({"runId": r.run_id, "status": r.status, "total": r.total, "completed": r.succeeded, "failed": r.failed})
            }
            None => Value::Null,
        },
    };
    let ok = outcome.status == ExecutionStatus::Succeeded
        && summary.get("status").and_then(Value::as_str) == Some("succeeded");
    // Engine overhead: wall time beyond the data plane's share (its time summed over the
    // jobs, divided by the workers that could run at once), per dataset.
    let workers = plan
        .groups
        .values()
        .sum::<u32>()
        .min(plan.max_concurrency)
        .max(1) as f64;
    let work = local.work_nanos.load(Ordering::Relaxed) as f64 / 1e9;
    let wall = took.as_secs_f64();
    let overhead_ms = if items.is_empty() {
        0.0
    } else {
        (wall - work / workers).max(0.0) * 1000.0 / items.len() as f64
    };
    let timing = json!({
        "wallSeconds": wall,
        "planSeconds": local.plan_nanos.load(Ordering::Relaxed) as f64 / 1e9,
        "dataPlaneSeconds": work,
        "jobs": local.jobs.load(Ordering::Relaxed),
        "parallelWorkers": workers,
        "engineOverheadMsPerDataset": overhead_ms,
    });
    if g.json {
        let quotas = headroom(local, run_id, &items)?;
        println!(
            "{}",
            json!({
                "quotas": quotas,
                "runId": run_id,
                "ok": ok,
                "execution": {"status": outcome.status, "error": outcome.error, "cause": outcome.cause, "executionArn": outcome.execution_arn},
                "summary": summary,
                "datasets": datasets,
                "caps": {"groups": cap_report(&plan.groups, "group"), "systems": cap_report(&plan.systems, "system")},
                "seconds": took.as_secs_f64(),
                "timing": timing,
            })
        );
    } else {
        output::table(
            &["DATASET", "GROUP", "STATUS", "VERSION", "ROWS", "REASON"],
            &rows,
        );
        let peaks = |caps: &BTreeMap<String, u32>, prefix: &str| {
            caps.iter()
                .map(|(k, cap)| format!("{k} {}/{cap}", local.peaks.peak(&format!("{prefix}:{k}"))))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!(
            "peak concurrency: groups {}; readers {}",
            peaks(&plan.groups, "group"),
            if plan.systems.is_empty() {
                "none".into()
            } else {
                peaks(&plan.systems, "system")
            }
        );
        // The counts are the table's statuses, so the line and the rows above it agree
        // whether the run ended through Summarise or stopped before it.
        let count = |k: &str| by_status.get(k).copied().unwrap_or(0);
        let mut line = format!(
            "run {run_id} {}: {} dataset(s), {} completed, {} failed, {} rolled back",
            if ok { "succeeded" } else { "failed" },
            items.len(),
            count("completed"),
            count("failed"),
            count("rolled_back"),
        );
        let others: usize = by_status
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "completed" | "failed" | "rolled_back"))
            .map(|(_, n)| n)
            .sum();
        if others > 0 {
            line.push_str(&format!(", {others} not finished"));
        }
        if let Some(e) = &outcome.error {
            line.push_str(&format!(" — stopped: {e}"));
        }
        line.push_str(&format!(" in {:.1}s", took.as_secs_f64()));
        if let Some(this) = this_process {
            line.push_str(&format!(" ({:.1}s in this process)", this.as_secs_f64()));
        }
        println!("{line}");
    }
    Ok(if ok { EXIT_OK } else { EXIT_DATASET_FAILED })
}

/// How close the run came to AWS's quotas: the run execution's headroom, and the largest
/// event count and payload over its datasets' executions.
fn headroom(local: &Local, run_id: &str, items: &[&PlanItem]) -> anyhow::Result<Value> {
    use skein_states::quotas::headroom as of;
    let run = of(&local.store.events(run_id)?);
    let mut most_events = (0u64, String::new());
    let mut largest = (0usize, String::new(), None::<String>);
    for i in items {
        let name = skein_core::fleet::execution_name(run_id, &i.dataset);
        let h = of(&local.store.events(&name)?);
        if h.events > most_events.0 {
            most_events = (h.events, name.clone());
        }
        if h.largest_payload_bytes > largest.0 {
            largest = (h.largest_payload_bytes, name, h.largest_payload_state);
        }
    }
    Ok(json!({
        "run": run,
        "datasets": {
            "mostEvents": most_events.0,
            "mostEventsExecution": most_events.1,
            "largestPayloadBytes": largest.0,
            "largestPayloadExecution": largest.1,
            "largestPayloadState": largest.2,
        },
        "maxEvents": skein_states::quotas::MAX_HISTORY_EVENTS,
        "maxPayloadBytes": skein_states::quotas::MAX_PAYLOAD_BYTES,
    }))
}
