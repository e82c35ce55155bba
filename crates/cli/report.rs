//! `skein report RUN --html FILE`: the self-contained HTML report of a run.

use anyhow::Context;
use serde_json::json;
use skein_ui::Sources;

use crate::flags::{Global, ReportArgs};
use crate::{EXIT_OK, EXIT_USAGE};

/// `skein report`.
pub async fn write(g: &Global, args: &ReportArgs) -> anyhow::Result<u8> {
    let sources = Sources::open(&g.catalog_dir())?;
    // `latest` (as in `skein report latest --html run.html`): the newest run.
    let run = if args.run == "latest" {
        use skein_core::catalog::Catalog;
        match sources.catalog.runs().await?.into_iter().next() {
            Some(r) => r.run_id,
            None => {
                eprintln!(
                    "error: no run in {} yet; start one with `skein run DIR`",
                    g.catalog_dir().display()
                );
                return Ok(EXIT_USAGE);
            }
        }
    } else {
        args.run.clone()
    };
    let html = match skein_ui::report::html(&sources, &run).await {
        Ok(h) => h,
        Err(e @ skein_ui::Error::UnknownRun { .. }) => {
            eprintln!("error: {e}");
            return Ok(EXIT_USAGE);
        }
        Err(e) => return Err(e.into()),
    };
    std::fs::write(&args.html, &html)
        .with_context(|| format!("cannot write the report to {}", args.html.display()))?;
    if g.json {
        println!(
            "{}",
            json!({"run": run, "html": args.html, "bytes": html.len()})
        );
    } else {
        println!("wrote the report of {} to {}", run, args.html.display());
    }
    Ok(EXIT_OK)
}
