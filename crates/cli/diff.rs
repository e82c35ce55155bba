//! `skein diff`: where the transformed source and the published target differ.

use skein_data::Target;
use skein_data::diff::{DiffOptions, DiffReport};

use crate::flags::{DiffArgs, Global};
use crate::output;
use crate::pipeline::specs_or_problems;
use crate::{EXIT_DATASET_FAILED, EXIT_OK, EXIT_USAGE};

/// `skein diff DATASET…`.
pub async fn run(g: &Global, args: &DiffArgs) -> anyhow::Result<u8> {
    let catalog = crate::datasets::operator_catalog(g).await?;
    let Some(files) = specs_or_problems(g, catalog.as_ref(), &args.target.targets).await? else {
        return Ok(EXIT_USAGE);
    };
    let opts = DiffOptions {
        bisection_factor: args.bisection_factor,
        row_threshold: args.threshold,
        examples: args.examples,
    };
    let settings = g.settings();
    let mut reports = Vec::new();
    // A dataset that cannot be compared is reported and the others are still compared,
    // as `skein verify` does.
    let mut errors = Vec::new();
    for file in &files {
        let store = Target::open(&settings, file)?;
        let Some(current) = store.current().await? else {
            let e = skein_data::Error::NotPublished {
                dataset: file.name().to_string(),
            };
            if !g.json {
                println!("✗ {e}");
            }
            errors.push(serde_json::json!({"dataset": file.name(), "error": e.error_name(), "cause": e.to_string()}));
            continue;
        };
        let dir = store.version_data(current.version).await?;
        let report = skein_data::diff::diff(&settings, file, &dir, opts).await?;
        if !g.json {
            print(&report, current.version);
        }
        reports.push(report);
    }
    if g.json {
        println!(
            "{}",
            serde_json::json!({ "reports": reports, "errors": errors })
        );
    } else if files.len() > 1 {
        let same = reports.iter().filter(|r| r.is_same()).count();
        println!(
            "{} dataset(s): {same} without differences, {} with differences, {} not compared",
            files.len(),
            reports.len() - same,
            errors.len()
        );
    }
    Ok(
        if errors.is_empty() && reports.iter().all(DiffReport::is_same) {
            EXIT_OK
        } else {
            EXIT_DATASET_FAILED
        },
    )
}

fn print(r: &DiffReport, version: u64) {
    println!(
        "{}: transformed source {} rows, published v{version} {} rows{}",
        r.dataset,
        output::count(r.source_rows),
        output::count(r.target_rows),
        r.key
            .as_ref()
            .map(|k| format!(" (key `{k}`, {} bisection levels)", r.levels))
            .unwrap_or_default()
    );
    if let Some(note) = &r.note {
        println!("  {note}");
        return;
    }
    if r.is_same() {
        println!("  no differences");
        return;
    }
    let keys = |n: u64, ks: &[String]| {
        if ks.is_empty() {
            String::new()
        } else {
            format!(
                " — keys {}{}",
                ks.join(", "),
                if n as usize > ks.len() { ", …" } else { "" }
            )
        }
    };
    println!(
        "  only in source (missing from target): {}{}",
        r.only_in_source,
        keys(r.only_in_source, &r.only_in_source_keys)
    );
    println!(
        "  only in target (extra):               {}{}",
        r.only_in_target,
        keys(r.only_in_target, &r.only_in_target_keys)
    );
    println!("  changed:                              {}", r.changed);
    let rows: Vec<Vec<String>> = r
        .changed_rows
        .iter()
        .flat_map(|c| {
            c.columns
                .iter()
                .map(|col| {
                    vec![
                        c.key.clone(),
                        col.column.clone(),
                        col.source.clone(),
                        col.target.clone(),
                    ]
                })
                .collect::<Vec<_>>()
        })
        .collect();
    if !rows.is_empty() {
        output::table(&["KEY", "COLUMN", "SOURCE", "TARGET"], &rows);
    }
}
