//! `skein gc`: removes staged copies that no run can still publish.
//!
//! A migration stages its output under the target's staging area, one directory (or S3
//! prefix) per run. A staged copy is kept while it can still be used:
//! - its run is a `skein run` whose execution is still running (a resumed run reuses a
//!   finished staging), or
//! - it is the latest attempt of a dataset that stands between `in_progress` and
//!   `awaiting_approval` (it may still be verified, approved and published).
//!
//! Every other staged copy (a failed attempt, a rolled-back run, a killed `skein migrate`
//! whose dataset has since moved on) is removed. Published versions are never touched.

use std::collections::BTreeSet;

use serde_json::json;
use skein_core::Status;
use skein_core::catalog::Catalog;
use skein_core::load::SpecFile;
use skein_data::Target;
use skein_states::status::ExecutionStatus;

use crate::datasets::{open_catalog, resolve};
use crate::flags::{GcArgs, Global};
use crate::{EXIT_DATASET_FAILED, EXIT_OK, EXIT_USAGE, output};

/// `skein gc [X…] [--dry-run]`.
pub async fn run(g: &Global, args: &GcArgs) -> anyhow::Result<u8> {
    let catalog = open_catalog(g)?;
    let files: Vec<SpecFile> = if args.targets.is_empty() {
        catalog
            .datasets()
            .await?
            .into_iter()
            .map(|r| skein_core::load::from_catalog(r.spec, r.spec_hash))
            .collect()
    } else {
        let resolved = resolve(&catalog, &args.targets).await?;
        if !resolved.problems.is_empty() {
            output::problems(&resolved.problems);
            return Ok(EXIT_USAGE);
        }
        resolved.files
    };
    let running = running_executions(g)?;
    let settings = g.settings();
    let mut removed = Vec::new();
    let mut kept = Vec::new();
    let mut errors = Vec::new();
    for file in &files {
        let name = file.name();
        let store = match Target::open(&settings, file) {
            Ok(s) => s,
            Err(e) => {
                errors.push(json!({"dataset": name, "error": e.to_string()}));
                continue;
            }
        };
        let runs = match store.staging_runs().await {
            Ok(r) => r,
            Err(e) => {
                errors.push(json!({"dataset": name, "error": e.to_string()}));
                continue;
            }
        };
        if runs.is_empty() {
            continue;
        }
        let live_attempt = live_attempt(&catalog, name).await?;
        for run in runs {
            let why_kept = if running.contains(&run) {
                Some("its run is still running".to_string())
            } else if live_attempt.as_deref() == Some(run.as_str()) {
                Some("the dataset's current attempt may still publish it".to_string())
            } else {
                None
            };
            if let Some(why) = why_kept {
                kept.push(json!({"dataset": name, "run": run, "why": why}));
                continue;
            }
            if !args.dry_run
                && let Err(e) = store.discard(&run).await
            {
                errors.push(json!({"dataset": name, "run": run, "error": e.to_string()}));
                continue;
            }
            removed.push(json!({"dataset": name, "run": run}));
        }
    }
    if g.json {
        println!(
            "{}",
            json!({"dryRun": args.dry_run, "removed": removed, "kept": kept, "errors": errors})
        );
    } else {
        let verb = if args.dry_run {
            "would remove"
        } else {
            "removed"
        };
        for r in &removed {
            println!(
                "{verb} the staging of {} by run {}",
                r["dataset"].as_str().unwrap_or(""),
                r["run"].as_str().unwrap_or("")
            );
        }
        for k in &kept {
            println!(
                "kept the staging of {} by run {}: {}",
                k["dataset"].as_str().unwrap_or(""),
                k["run"].as_str().unwrap_or(""),
                k["why"].as_str().unwrap_or("")
            );
        }
        for e in &errors {
            eprintln!("error: {}", e["error"].as_str().unwrap_or(""));
        }
        println!(
            "{} dataset(s): {verb} {} staged cop{}, kept {}",
            files.len(),
            removed.len(),
            if removed.len() == 1 { "y" } else { "ies" },
            kept.len()
        );
    }
    Ok(if errors.is_empty() {
        EXIT_OK
    } else {
        EXIT_DATASET_FAILED
    })
}

/// Runs of the local engine whose execution is still running (resumable).
fn running_executions(g: &Global) -> anyhow::Result<BTreeSet<String>> {
    let path = g.catalog_dir().join("states.db");
    if !path.exists() {
        return Ok(BTreeSet::new());
    }
    let store = skein_states::store::Store::open(&path)?;
    Ok(store
        .executions()?
        .into_iter()
        .filter(|e| e.status == ExecutionStatus::Running)
        .map(|e| e.id)
        .collect())
}

/// The run of the dataset's latest attempt while the dataset is still on its way to
/// publish (`in_progress` … `awaiting_approval`).
async fn live_attempt(
    catalog: &skein_embedded::SqliteCatalog,
    name: &str,
) -> anyhow::Result<Option<String>> {
    let Some(record) = catalog.dataset(name).await? else {
        return Ok(None);
    };
    if !matches!(
        record.status,
        Status::InProgress | Status::Migrated | Status::Verified | Status::AwaitingApproval
    ) {
        return Ok(None);
    }
    Ok(catalog
        .attempts(name)
        .await?
        .into_iter()
        .max_by_key(|a| a.attempt)
        .map(|a| a.run_id))
}
