//! `skein migrate`, `skein verify`, `skein rollback`: the use cases over many datasets.

use skein_core::names;
use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::json;
use skein_core::catalog::{Catalog, RunRecord};
use skein_core::load::SpecFile;
use skein_core::{Status, plan};
use skein_data::Progress;
use skein_embedded::SqliteCatalog;
use skein_usecases::lease::{self, Renewal};
use skein_usecases::{DatasetResult, MigrateOptions, Outcome, Part, new_run_id};

use crate::datasets::{open_catalog, resolve};
use crate::flags::{Global, MigrateArgs, RollbackArgs, TargetArgs};
use crate::output::{self, Spinner};
use crate::{EXIT_DATASET_FAILED, EXIT_OK, EXIT_USAGE};

/// Resolves targets and runs the spec checks that need no data; prints problems.
pub async fn specs_or_problems(
    g: &Global,
    catalog: &dyn Catalog,
    targets: &[String],
) -> anyhow::Result<Option<Vec<SpecFile>>> {
    let resolved = resolve(catalog, targets).await?;
    let mut problems = resolved.problems;
    let settings = g.settings();
    for f in &resolved.files {
        problems.extend(skein_data::inspect::check_spec(&settings, f, false).await);
    }
    if problems.is_empty() {
        Ok(Some(resolved.files))
    } else {
        if g.json {
            println!("{}", json!({ "ok": false, "problems": problems }));
        }
        output::problems(&problems);
        Ok(None)
    }
}

/// This process as the driver of `run_id` (its lease renewed while it lives), so that
/// when it is killed the next command takes over its datasets' leases at once.
async fn drive(catalog: Arc<dyn Catalog>, run_id: &str) -> anyhow::Result<Renewal> {
    let key = lease::run_key(run_id);
    lease::claim(catalog.as_ref(), &key, run_id, false).await?;
    Ok(Renewal::start(catalog, vec![key], run_id))
}

/// `skein migrate`.
pub async fn migrate(g: &Global, args: &MigrateArgs) -> anyhow::Result<u8> {
    let catalog = Arc::new(open_catalog(g)?);
    let Some(files) = specs_or_problems(g, catalog.as_ref(), &args.target.targets).await? else {
        return Ok(EXIT_USAGE);
    };
    let run_id = new_run_id();
    let renewal = drive(catalog.clone(), &run_id).await?;
    let mut run = RunRecord {
        run_id: run_id.clone(),
        started_at: skein_core::time::now(),
        finished_at: None,
        status: skein_core::catalog::RunStatus::Running,
        total: files.len() as u64,
        succeeded: 0,
        failed: 0,
        rows: 0,
    };
    catalog.put_run(&run).await?;
    let settings = g.settings();
    let by_name: BTreeMap<&str, &SpecFile> = files.iter().map(|f| (f.name(), f)).collect();
    let specs: Vec<&skein_core::DatasetSpec> = files.iter().map(|f| &f.spec).collect();
    let mut results: Vec<DatasetResult> = Vec::new();
    let mut ended: BTreeMap<String, Outcome> = BTreeMap::new();
    if !g.json && !g.quiet {
        eprintln!("run {run_id}: {} dataset(s)", files.len());
    }
    for wave in plan::waves(&specs) {
        for spec in wave {
            let file = by_name[spec.name()];
            let result = match blocked_by(&catalog, file, &ended).await? {
                Some(reason) => {
                    let mut r = DatasetResult::new(file.name(), &run_id, Outcome::Skipped);
                    r.error = Some(reason);
                    r.error_name = Some(names::DEPENDENCY_FAILED.into());
                    r
                }
                None => {
                    let progress = Arc::new(Progress::default());
                    let spinner = Spinner::start(file.name(), progress.clone(), g.quiet || g.json);
                    let opts = MigrateOptions {
                        run_id: run_id.clone(),
                        publish: !args.no_publish,
                        approved: args.approve,
                        progress,
                        allow_schema_change: args.allow_schema_change,
                        part: Part::All,
                        large: None,
                    };
                    let r = guarded(skein_usecases::migrate(
                        catalog.as_ref(),
                        &settings,
                        file,
                        &opts,
                    ))
                    .await;
                    spinner.finish();
                    let r = match r {
                        Ok(r) => r?,
                        Err(message) => {
                            // a bug: this dataset fails with the message, the others go on
                            let mut r = DatasetResult::new(file.name(), &run_id, Outcome::Failed);
                            r.error = Some(format!(
                                "dataset `{}`: the migration panicked (a bug in skein; please report it): {message}",
                                file.name()
                            ));
                            r.error_name = Some(names::INTERNAL.into());
                            let _ = catalog
                                .transition(
                                    file.name(),
                                    Status::InProgress,
                                    Status::Failed,
                                    r.error.as_deref(),
                                    Some(&run_id),
                                )
                                .await;
                            let _ = catalog.release_lease(file.name(), &run_id).await;
                            r
                        }
                    };
                    discard_failed(&settings, file, &r).await;
                    r
                }
            };
            if !g.json {
                print_result(&result);
            }
            ended.insert(result.dataset.clone(), result.outcome);
            results.push(result);
        }
    }
    let ok = results.iter().all(|r| r.outcome.is_success());
    run.finished_at = Some(skein_core::time::now());
    run.status = if ok {
        skein_core::catalog::RunStatus::Succeeded
    } else {
        skein_core::catalog::RunStatus::Failed
    };
    run.succeeded = results.iter().filter(|r| r.outcome.is_success()).count() as u64;
    run.failed = results.len() as u64 - run.succeeded;
    run.rows = results.iter().map(|r| r.rows).sum();
    catalog.put_run(&run).await?;
    renewal.release(catalog.as_ref()).await?;
    finish(g, &run_id, &results, ok)
}

/// Runs `fut`, turning a panic inside it into `Err(message)`.
async fn guarded<T>(fut: impl std::future::Future<Output = T>) -> Result<T, String> {
    use futures::FutureExt;
    std::panic::AssertUnwindSafe(fut)
        .catch_unwind()
        .await
        .map_err(|panic| {
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "a panic without a message".into())
        })
}

/// A failed attempt's staged copy can never be published (the next `skein migrate` is a
/// new run with its own staging): remove it now rather than leave a full copy behind.
/// Best effort: `skein gc` removes what this could not.
async fn discard_failed(settings: &skein_data::Settings, file: &SpecFile, r: &DatasetResult) {
    let failed = matches!(r.outcome, Outcome::Failed | Outcome::VerificationFailed)
        && r.error_name.as_deref() != Some(names::LEASE_HELD);
    if !failed {
        return;
    }
    let discarded = match skein_data::Target::open(settings, file) {
        Ok(store) => store.discard(&r.run_id).await,
        Err(e) => Err(e),
    };
    if let Err(e) = discarded {
        tracing::warn!(
            "dataset `{}`: the failed attempt's staging was not removed ({e}); `skein gc` removes it",
            r.dataset
        );
    }
}

/// Why `file` must not run now: a dependency that did not end well in this run, or
/// (outside this run) is not completed in the catalog.
async fn blocked_by(
    catalog: &SqliteCatalog,
    file: &SpecFile,
    ended: &BTreeMap<String, Outcome>,
) -> anyhow::Result<Option<String>> {
    for dep in &file.spec.spec.depends_on {
        match ended.get(dep) {
            Some(o)
                if o.is_success() && *o != Outcome::AwaitingApproval && *o != Outcome::Verified =>
            {
                continue;
            }
            Some(o) => return Ok(Some(format!("dependency `{dep}` ended {}", o.as_str()))),
            None => match catalog.dataset(dep).await? {
                Some(d) if d.status == Status::Completed => continue,
                Some(d) => {
                    return Ok(Some(format!(
                        "dependency `{dep}` is {}, not completed",
                        d.status
                    )));
                }
                None => {
                    return Ok(Some(format!(
                        "dependency `{dep}` is not in the catalog; migrate it first"
                    )));
                }
            },
        }
    }
    Ok(None)
}

/// `skein verify`.
pub async fn verify(g: &Global, args: &TargetArgs) -> anyhow::Result<u8> {
    let catalog = crate::datasets::operator_catalog(g).await?;
    let Some(files) = specs_or_problems(g, catalog.as_ref(), &args.targets).await? else {
        return Ok(EXIT_USAGE);
    };
    let run_id = new_run_id();
    let settings = g.settings();
    let mut results = Vec::new();
    for file in &files {
        let r =
            skein_usecases::verify::verify_published(catalog.as_ref(), &settings, file, &run_id)
                .await?;
        if !g.json {
            print_result(&r);
        }
        results.push(r);
    }
    let ok = results.iter().all(|r| r.outcome.is_success());
    finish(g, &run_id, &results, ok)
}

/// `skein rollback`: each dataset under its lease (refused, exit 1, while a run holds it).
pub async fn rollback(g: &Global, args: &RollbackArgs) -> anyhow::Result<u8> {
    // On a deployed stack (`--stack`): its catalog; the targets are on S3.
    let catalog = crate::datasets::operator_catalog(g).await?;
    let Some(files) = specs_or_problems(g, catalog.as_ref(), &args.target.targets).await? else {
        return Ok(EXIT_USAGE);
    };
    let settings = g.settings();
    let run_id = new_run_id();
    let renewal = drive(catalog.clone(), &run_id).await?;
    let mut results = Vec::new();
    for file in &files {
        // Something may have changed before a failure: exit 1, never 2 ("nothing ran").
        let r = match skein_usecases::rollback::rollback(
            catalog.as_ref(),
            &settings,
            file,
            &run_id,
            &args.reason,
        )
        .await
        {
            Ok(r) => r,
            Err(e) => {
                let mut r = DatasetResult::new(file.name(), &run_id, Outcome::Failed);
                r.error = Some(e.to_string());
                r
            }
        };
        if !g.json {
            print_result(&r);
        }
        results.push(r);
    }
    let ok = results.iter().all(|r| r.outcome == Outcome::RolledBack);
    renewal.release(catalog.as_ref()).await?;
    finish(g, &run_id, &results, ok)
}

fn finish(g: &Global, run_id: &str, results: &[DatasetResult], ok: bool) -> anyhow::Result<u8> {
    if g.json {
        println!(
            "{}",
            json!({ "runId": run_id, "ok": ok, "datasets": results })
        );
    } else {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for r in results {
            *counts.entry(r.outcome.as_str()).or_default() += 1;
        }
        let parts: Vec<String> = counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
        println!(
            "{} dataset(s): {} (run {run_id})",
            results.len(),
            parts.join(", ")
        );
    }
    Ok(if ok { EXIT_OK } else { EXIT_DATASET_FAILED })
}

/// One line per dataset, plus the failed checks or the error beneath it.
pub fn print_result(r: &DatasetResult) {
    let mark = if r.outcome.is_success() { "✓" } else { "✗" };
    let version = r
        .version
        .map(|v| format!("v{v}"))
        .unwrap_or_else(|| "-".into());
    println!(
        "{mark} {:<24} {:<20} {:>4}  {:>12} rows  {:>3} files  {:>10}  {:.1}s",
        r.dataset,
        r.outcome.as_str(),
        version,
        output::count(r.rows),
        r.files,
        output::bytes(r.bytes),
        r.seconds
    );
    if let Some(n) = r.chunks {
        match r.chunks_reused {
            Some(reused) if reused > 0 => {
                println!("    staged in {n} chunks, {reused} reused from an earlier attempt")
            }
            _ => println!("    staged in {n} chunks"),
        }
    }
    if let Some(inc) = &r.incremental {
        println!("    {inc}");
    }
    if let Some(report) = &r.verification {
        for c in report.failures() {
            println!(
                "    check {} failed: expected {}, got {}",
                c.name, c.expected, c.actual
            );
        }
    }
    if let Some(e) = &r.error
        && r.outcome != Outcome::VerificationFailed
    {
        println!("    {e}");
    }
}
