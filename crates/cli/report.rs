//! `skein report RUN --html FILE`: the self-contained HTML report of a run.

use anyhow::Context;
use serde_json::json;
use skein_ui::Sources;

use crate::flags::{Global, ReportArgs};
use crate::{EXIT_OK, EXIT_USAGE};

/// `skein report`.
pub async fn write(g: &Global, args: &ReportArgs) -> anyhow::Result<u8> {
    let sources = Sources::open(&g.catalog_dir())?;
    let html = match skein_ui::report::html(&sources, &args.run).await {
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
            json!({"run": args.run, "html": args.html, "bytes": html.len()})
        );
    } else {
        println!(
            "wrote the report of {} to {}",
            args.run,
            args.html.display()
        );
    }
    Ok(EXIT_OK)
}
