//! `skein ui`: the dashboard over the embedded catalog and engine (`skein_ui`).

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
    let sources = Sources::open(&g.catalog_dir())?;
    let host = addr.to_string();
    // The first stdout line is the address (scripts and tests read it).
    println!("http://{host}/");
    if !g.quiet {
        eprintln!(
            "skein ui: catalog {}; metrics at http://{host}/metrics; Ctrl-C stops",
            g.catalog_dir().display()
        );
    }
    tracing::info!(%addr, catalog = %g.catalog_dir().display(), "dashboard listening");
    skein_ui::serve(listener, sources, config, shutdown()).await?;
    Ok(EXIT_OK)
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
