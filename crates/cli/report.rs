//! `skein report RUN --html FILE`: the self-contained HTML report of a run, from the
//! embedded catalog or, with `--stack`, a deployed stack's.

use anyhow::Context;
use serde_json::json;

use crate::flags::{Global, ReportArgs};
use crate::{EXIT_OK, EXIT_USAGE};

/// `skein report`.
pub async fn write(g: &Global, args: &ReportArgs) -> anyhow::Result<u8> {
    let sources = crate::ui::sources(g).await?;
    // `latest` (as in `skein report latest --html run.html`): the newest run.
    let run = if args.run == "latest" {
        match sources.catalog.runs().await?.into_iter().next() {
            Some(r) => r.run_id,
            None => {
                eprintln!(
                    "error: no run in {} yet; start one with `skein run DIR`",
                    sources.place
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
