//! `skein`: migrate thousands of datasets safely.
//!
//! The binary only parses flags, sets up logging, opens the embedded catalog and calls a
//! command; every step of a migration is a use case in `skein-usecases`.
//!
//! Exit codes: 0 ok, 1 a dataset failed, 2 usage or spec error.
//!
//! Logs go to stderr (`-v`, `SKEIN_LOG`); `SKEIN_LOG_FORMAT=json` makes them JSON lines.

use std::process::ExitCode;

use clap::Parser;

mod backstage;
mod bench;
mod datasets;
mod diff;
mod executions;
mod flags;
mod gc;
mod inspect;
mod output;
mod pipeline;
mod report;
mod run;
mod stack;
mod ui;
mod worker;

use flags::{Cli, Command};

/// Exit code: every dataset ended well.
pub const EXIT_OK: u8 = 0;
/// Exit code: at least one dataset failed.
pub const EXIT_DATASET_FAILED: u8 = 1;
/// Exit code: bad usage or an invalid spec; nothing ran.
pub const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    quiet_on_broken_pipe();
    let cli = Cli::parse();
    init_tracing(cli.global.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<u8> {
    let g = &cli.global;
    match cli.command {
        Command::Validate(args) => inspect::validate(g, &args).await,
        Command::Migrate(args) => pipeline::migrate(g, &args).await,
        Command::Verify(args) => pipeline::verify(g, &args).await,
        Command::Rollback(args) => pipeline::rollback(g, &args).await,
        Command::Diff(args) => diff::run(g, &args).await,
        Command::Status(args) => inspect::status(g, &args).await,
        Command::History(args) => inspect::history(g, &args).await,
        Command::Bench(args) => bench::run(g, &args).await,
        Command::Run(args) => run::run(g, &args).await,
        Command::Plan(args) => run::plan(g, &args).await,
        Command::Approve(args) => run::answer(g, &args.dataset, None).await,
        Command::Reject(args) => run::answer(g, &args.dataset, Some(&args.reason)).await,
        Command::Runs => run::runs(g).await,
        Command::Gc(args) => gc::run(g, &args).await,
        Command::Ui(args) => ui::serve(g, &args).await,
        Command::Report(args) => report::write(g, &args).await,
        Command::Worker(args) => worker::run(g, &args).await,
        Command::Catalog { cmd } => match cmd {
            flags::CatalogCommand::Import(a) => {
                backstage::import(g, &a.files, a.out.as_deref()).await
            }
            flags::CatalogCommand::Export(a) => backstage::export(g, &a.dir).await,
        },
        Command::States { cmd } => {
            let code = skein_states::cli::run(cmd, &g.catalog_dir(), g.json).await?;
            Ok(u8::try_from(code).unwrap_or(EXIT_USAGE))
        }
    }
}

/// `skein history X | head -1`: when the reader of stdout goes away, end quietly with exit
/// 0, as Unix tools do, instead of a panic and exit 101.
///
/// Rust ignores SIGPIPE, so a write to a closed pipe returns `EPIPE` and `println!` panics
/// with its documented message (`failed printing to stdout: …`). Writing every line
/// through a checked writer would thread an error through each command for one case; the
/// hook recognises that one panic and exits, and hands every other panic to the default
/// hook unchanged.
fn quiet_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        let broken_pipe = std::io::Error::from(std::io::ErrorKind::BrokenPipe).to_string();
        if message.starts_with("failed printing to stdout")
            && (message.contains("os error 32") || message.contains(&broken_pipe))
        {
            std::process::exit(i32::from(EXIT_OK));
        }
        default(info);
    }));
}

/// Colour only for a person: stderr is a terminal and `NO_COLOR` is unset
/// (<https://no-color.org>). A log redirected to a file gets no escape codes.
pub fn colour() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info,datafusion=warn",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("SKEIN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour())
        .with_target(false);
    // SKEIN_LOG_FORMAT=json: one JSON object a line, with the fields (run and dataset ids)
    // of the event and its spans at the top level.
    let _ = if std::env::var("SKEIN_LOG_FORMAT").is_ok_and(|f| f == "json") {
        fmt.json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .try_init()
    } else {
        fmt.try_init()
    };
}
