//! `skein ui`: the dashboard (`skein_ui`) over the embedded catalog and engine, or over a
//! deployed stack's catalog and Step Functions with `--stack`.

use std::net::SocketAddr;

use skein_ui::{Config, Sources};

use crate::EXIT_OK;
use crate::flags::{Global, UiArgs};

/// `skein ui`: serves until Ctrl-C (or SIGTERM).
pub async fn serve(g: &Global, args: &UiArgs) -> anyhow::Result<u8> {
    let config = Config {
        addr: SocketAddr::new(args.bind, args.port),
        token: args.token.clone(),
        user: std::env::var("USER").unwrap_or_else(|_| "someone".into()),
    };
    let listener = config.bind().await?;
    let addr = listener.local_addr()?;
    let sources = sources(g).await?;
    let host = addr.to_string();
    // The first stdout line is the address (scripts and tests read it).
    println!("http://{host}/");
    if !g.quiet {
        eprintln!(
            "skein ui: {}; metrics at http://{host}/metrics; Ctrl-C stops",
            sources.place
        );
    }
    tracing::info!(%addr, place = %sources.place, "dashboard listening");
    skein_ui::serve(listener, sources, config, shutdown()).await?;
    Ok(EXIT_OK)
}

/// The embedded catalog directory, or the deployed stack of `--stack`.
pub async fn sources(g: &Global) -> anyhow::Result<Sources> {
    Ok(match &g.stack {
        Some(name) => crate::stack::connect(name).await?.sources().await,
        None => Sources::open(&g.catalog_dir())?,
    })
}

async fn shutdown() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
