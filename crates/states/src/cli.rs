//! `skein states …`: the ASL engine on the command line.

use std::path::Path;

/// `skein states` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum StatesCommand {
    /// Validate a state machine definition.
    Validate {
        /// The definition (JSON file).
        definition: std::path::PathBuf,
    },
}

/// Runs a `skein states` subcommand with the engine's store under `store_dir`; returns the exit code.
pub async fn run(cmd: StatesCommand, store_dir: &Path) -> Result<i32, std::io::Error> {
    let _ = (cmd, store_dir);
    eprintln!("skein states: the ASL engine is not built yet; see issue 4");
    Ok(2)
}
