//! `skein validate`, `skein status`, `skein history`: reading specs and the catalog.

use serde_json::json;
use skein_core::load;

use crate::datasets::operator_catalog;
use crate::flags::{Global, HistoryArgs, StatusArgs, ValidateArgs};
use crate::output;
use crate::{EXIT_OK, EXIT_USAGE};

/// `skein validate`: every problem of every file, at once.
pub async fn validate(g: &Global, args: &ValidateArgs) -> anyhow::Result<u8> {
    let loaded = load::load(&args.path);
    let mut problems = loaded.problems;
    let settings = g.settings();
    for f in &loaded.files {
        problems.extend(skein_data::inspect::check_spec(&settings, f, !args.no_source).await);
    }
    problems.sort_by(|a, b| a.file.cmp(&b.file).then(a.line.cmp(&b.line)));
    let names: Vec<&str> = loaded.files.iter().map(|f| f.name()).collect();
    if g.json {
        println!(
            "{}",
            json!({ "valid": problems.is_empty(), "datasets": names, "problems": problems })
        );
    } else if problems.is_empty() {
        println!("{} spec(s) valid: {}", names.len(), names.join(", "));
    } else {
        for p in &problems {
            println!("{p}");
        }
        println!("{} problem(s) in {}", problems.len(), args.path.display());
    }
    Ok(if problems.is_empty() {
        EXIT_OK
    } else {
        EXIT_USAGE
    })
}

/// `skein status`.
pub async fn status(g: &Global, args: &StatusArgs) -> anyhow::Result<u8> {
    let catalog = operator_catalog(g).await?;
    let mut datasets = catalog.datasets().await?;
    if !args.names.is_empty() {
        for n in &args.names {
            if !datasets.iter().any(|d| &d.name == n) {
                eprintln!(
                    "error: dataset `{n}` is not in the catalog; `skein status` lists the known ones"
                );
                return Ok(EXIT_USAGE);
            }
        }
        datasets.retain(|d| args.names.contains(&d.name));
    }
    if g.json {
        println!("{}", json!({ "datasets": datasets }));
        return Ok(EXIT_OK);
    }
    if datasets.is_empty() {
        println!(
            "the catalog at {} is empty; run `skein migrate <specs>` first",
            g.catalog.display()
        );
        return Ok(EXIT_OK);
    }
    let rows: Vec<Vec<String>> = datasets
        .iter()
        .map(|d| {
            vec![
                d.name.clone(),
                d.status.to_string(),
                d.spec.metadata.owner.clone().unwrap_or_default(),
                d.spec.spec.group.clone(),
                d.spec.spec.criticality.to_string(),
                d.current_version
                    .map(|v| format!("v{v}"))
                    .unwrap_or_else(|| "-".into()),
                d.rows.map(output::count).unwrap_or_else(|| "-".into()),
                d.last_verification.clone().unwrap_or_else(|| "-".into()),
                d.reason.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let was_cut = output::fit_table(
        &[
            "DATASET",
            "STATUS",
            "OWNER",
            "GROUP",
            "CRITICALITY",
            "VERSION",
            "ROWS",
            "LAST VERIFICATION",
            "REASON",
        ],
        &rows,
    );
    if was_cut {
        println!(
            "(long texts cut to fit; `skein history NAME` or `skein status --json` shows them whole)"
        );
    }
    let waiting: Vec<&str> = datasets
        .iter()
        .filter(|d| d.status == skein_core::Status::AwaitingApproval)
        .map(|d| d.name.as_str())
        .collect();
    if !waiting.is_empty() {
        println!(
            "awaiting approval: {} (answer with `skein approve NAME` or `skein reject NAME --reason …`)",
            waiting.join(", ")
        );
    }
    Ok(EXIT_OK)
}

/// `skein history`.
pub async fn history(g: &Global, args: &HistoryArgs) -> anyhow::Result<u8> {
    let catalog = operator_catalog(g).await?;
    let Some(record) = catalog.dataset(&args.name).await? else {
        eprintln!(
            "error: dataset `{}` is not in the catalog; `skein status` lists the known ones",
            args.name
        );
        return Ok(EXIT_USAGE);
    };
    let history = catalog.history(&args.name).await?;
    let versions = catalog.versions(&args.name).await?;
    let attempts = catalog.attempts(&args.name).await?;
    let file = load::from_catalog(record.spec, record.spec_hash);
    let commits = delta_commits(g, &file).await;
    let tables = table_versions(&versions, &commits);
    if g.json {
        let versions: Vec<serde_json::Value> = versions
            .iter()
            .zip(&tables)
            .map(|(v, t)| {
                let mut v = json!(v);
                v["tableVersion"] = json!(t);
                v
            })
            .collect();
        let delta: Vec<serde_json::Value> = commits
            .iter()
            .map(|c| {
                json!({
                    "tableVersion": c.table_version,
                    "operation": c.operation,
                    "timestamp": c.timestamp,
                    "version": c.skein.as_ref().map(|s| s.version),
                    "action": c.skein.as_ref().map(|s| s.action.clone()),
                })
            })
            .collect();
        println!(
            "{}",
            json!({ "dataset": args.name, "history": history, "versions": versions, "attempts": attempts, "delta": delta })
        );
        return Ok(EXIT_OK);
    }
    println!("status history of {}:", args.name);
    let rows: Vec<Vec<String>> = history
        .iter()
        .map(|h| {
            vec![
                h.at.clone(),
                h.from.map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
                h.to.to_string(),
                h.run_id.clone().unwrap_or_default(),
                h.reason.clone().unwrap_or_default(),
            ]
        })
        .collect();
    output::table(&["AT", "FROM", "TO", "RUN", "REASON"], &rows);
    println!("\nversions:");
    let rows: Vec<Vec<String>> = versions
        .iter()
        .zip(&tables)
        .map(|(v, t)| {
            let mut row = vec![
                v.at.clone(),
                format!("{:?}", v.action).to_lowercase(),
                format!("v{}", v.manifest.version),
            ];
            if !commits.is_empty() {
                row.push(t.map(|t| t.to_string()).unwrap_or_else(|| "-".into()));
            }
            row.extend([
                output::count(v.manifest.rows),
                v.manifest.file_count.to_string(),
                v.manifest.checksum.sum.clone(),
            ]);
            row
        })
        .collect();
    if commits.is_empty() {
        output::table(
            &["AT", "ACTION", "VERSION", "ROWS", "FILES", "CHECKSUM"],
            &rows,
        );
    } else {
        output::table(
            &[
                "AT", "ACTION", "VERSION", "DELTA", "ROWS", "FILES", "CHECKSUM",
            ],
            &rows,
        );
    }
    println!("\nattempts:");
    let rows: Vec<Vec<String>> = attempts
        .iter()
        .map(|a| {
            vec![
                a.attempt.to_string(),
                a.run_id.clone(),
                a.started_at.clone(),
                a.outcome.clone().unwrap_or_else(|| "running".into()),
                a.error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    output::table(&["#", "RUN", "STARTED", "OUTCOME", "ERROR"], &rows);
    Ok(EXIT_OK)
}

/// The Delta commits of a Delta Lake target, oldest first (none for other targets, or
/// when the log cannot be read: then a warning says why).
async fn delta_commits(g: &Global, file: &load::SpecFile) -> Vec<skein_data::delta::DeltaCommit> {
    if !file.spec.spec.target.is_delta() {
        return Vec::new();
    }
    let log = skein_data::Target::open(&g.settings(), file)
        .ok()
        .and_then(|t| t.delta().cloned());
    let Some(log) = log else {
        return Vec::new();
    };
    match log.history().await {
        Ok(mut commits) => {
            commits.reverse();
            commits
        }
        Err(e) => {
            eprintln!("warning: the Delta log is not readable: {e}");
            Vec::new()
        }
    }
}

/// The table version each version record made: the first commit not yet matched that
/// carries the same skein version (records and commits are both in time order).
fn table_versions(
    versions: &[skein_core::catalog::VersionRecord],
    commits: &[skein_data::delta::DeltaCommit],
) -> Vec<Option<u64>> {
    let mut used = vec![false; commits.len()];
    versions
        .iter()
        .map(|v| {
            let i = commits.iter().enumerate().position(|(i, c)| {
                !used[i]
                    && c.skein
                        .as_ref()
                        .is_some_and(|s| s.version == v.manifest.version)
            })?;
            used[i] = true;
            Some(commits[i].table_version)
        })
        .collect()
}
