//! Command-line flags.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Migrate thousands of datasets safely: plan, migrate, verify, publish, roll back.
#[derive(Debug, Parser)]
#[command(name = "skein", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command takes.
#[derive(Debug, Args)]
pub struct Global {
    /// Directory of the embedded catalog and engine state.
    #[arg(
        long,
        global = true,
        env = "SKEIN_CATALOG",
        default_value = ".skein",
        value_name = "PATH"
    )]
    pub catalog: PathBuf,
    /// Work against a deployed stack (its catalog table and task tokens, from the stack's
    /// outputs) instead of the embedded catalog: status, history, runs, approve, reject,
    /// verify, diff, rollback.
    #[arg(long, global = true, env = "SKEIN_STACK", value_name = "NAME")]
    pub stack: Option<String>,
    /// Print machine-readable JSON on stdout instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// Memory DataFusion operators may hold before spilling (e.g. 256MiB, 1GiB).
    #[arg(long, global = true, env = "SKEIN_MEMORY_LIMIT", default_value = "256MiB", value_parser = parse_size)]
    pub memory_limit: usize,
    /// Where spill files go (default: the system's temp directory).
    #[arg(long, global = true, env = "SKEIN_SPILL_DIR", value_name = "DIR")]
    pub spill_dir: Option<PathBuf>,
    /// More log output on stderr (-v info, -vv debug); SKEIN_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// No progress bars.
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

impl Global {
    /// The catalog directory.
    pub fn catalog_dir(&self) -> PathBuf {
        self.catalog.clone()
    }

    /// Data-plane settings from the flags.
    pub fn settings(&self) -> skein_data::Settings {
        skein_data::Settings {
            memory_limit: self.memory_limit,
            spill_dir: self.spill_dir.clone(),
            ..skein_data::Settings::default()
        }
    }
}

/// Parses sizes such as `512MiB`, `1GiB`, `300MB`, `1048576`.
pub fn parse_size(s: &str) -> Result<usize, String> {
    skein_core::spec::ByteSize::parse(s).map(|b| b.0 as usize)
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check spec files (all problems of all files at once) without running anything.
    Validate(ValidateArgs),
    /// Migrate → verify → publish datasets (a spec file, a directory of specs, or a name).
    Migrate(MigrateArgs),
    /// Re-verify published datasets against their sources.
    Verify(TargetArgs),
    /// Restore the previous published version of datasets.
    Rollback(RollbackArgs),
    /// Find the rows where the transformed source and the published target differ.
    Diff(DiffArgs),
    /// Show datasets in the catalog and their status.
    Status(StatusArgs),
    /// Show a dataset's status history, versions and attempts.
    History(HistoryArgs),
    /// Measure migrate and verify on a generated CSV (rows/s, MB/s, peak RSS).
    Bench(BenchArgs),
    /// Run the migration state machines over a directory of specs (canary, waves, caps).
    Run(RunArgs),
    /// Show what `skein run` would do: waves, groups, caps, canary. Runs nothing.
    Plan(PlanArgs),
    /// Approve a dataset waiting for approval; its run publishes it.
    Approve(ApproveArgs),
    /// Reject a dataset waiting for approval; its run rolls it back.
    Reject(RejectArgs),
    /// List runs, newest first.
    Runs,
    /// Remove staged copies that no run can still publish (failed or abandoned attempts).
    Gc(GcArgs),
    /// Serve the dashboard: catalog, runs, executions, approvals, rollbacks, /metrics.
    Ui(UiArgs),
    /// Write a self-contained HTML report of a run.
    Report(ReportArgs),
    /// Work migrate jobs as a process: one job (`--job`, what a Fargate task runs for a
    /// dataset too large for a Lambda) or a group's queue (`--queue GROUP`).
    Worker(WorkerArgs),
    /// Exchange datasets with a Backstage catalog (catalog-info.yaml entities).
    Catalog {
        #[command(subcommand)]
        cmd: CatalogCommand,
    },
    /// The Amazon States Language engine on its own.
    States {
        #[command(subcommand)]
        cmd: skein_states::cli::StatesCommand,
    },
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// The job as JSON: {"dataset": "orders", "runId": "run-1"} (also `SKEIN_JOB`).
    #[arg(long, value_name = "JSON")]
    pub job: Option<String>,
    /// The task token the job answers, when the job has no `taskToken` (also
    /// `SKEIN_TASK_TOKEN`).
    #[arg(long, value_name = "TOKEN")]
    pub task_token: Option<String>,
    /// Take the jobs of this group's queue until stopped (SIGTERM gives the current job
    /// back), instead of one job.
    #[arg(long, value_name = "GROUP")]
    pub queue: Option<String>,
    /// With --queue: stop once the queue has had no job for SECS seconds.
    #[arg(long, value_name = "SECS")]
    pub until_idle: Option<u64>,
    /// Publishable even if the output schema differs from the published version's (as
    /// `skein run --allow-schema-change`).
    #[arg(long)]
    pub allow_schema_change: bool,
}

#[derive(Debug, Args)]
pub struct GcArgs {
    /// Spec files, directories of specs, or dataset names (default: every dataset in
    /// the catalog).
    #[arg(value_name = "SPEC|DIR|NAME")]
    pub targets: Vec<String>,
    /// Say what would be removed; remove nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Spec file or directory of specs.
    pub path: PathBuf,
    /// Skip the checks that read the source (schema, columns named by rules).
    #[arg(long)]
    pub no_source: bool,
}

/// A spec file, a directory of specs, or dataset names in the catalog.
#[derive(Debug, Args)]
pub struct TargetArgs {
    /// Spec files, directories of specs, or names of datasets in the catalog.
    #[arg(required = true, value_name = "SPEC|DIR|NAME")]
    pub targets: Vec<String>,
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Stop after verification; leave the verified version staged.
    #[arg(long)]
    pub no_publish: bool,
    /// Publish datasets that require approval without waiting (you approve them now).
    #[arg(long)]
    pub approve: bool,
    /// Publish even if a dataset's output schema differs from its published version's.
    #[arg(long)]
    pub allow_schema_change: bool,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Why, recorded in the history.
    #[arg(long, default_value = "requested by operator")]
    pub reason: String,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Only these datasets (names); all when empty.
    pub names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Dataset name.
    pub name: String,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Rows of the generated CSV.
    #[arg(long, default_value_t = 2_000_000)]
    pub rows: u64,
    /// Working directory for the generated data and target (default: a temp dir).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Keep the generated CSV between runs (regenerated only when missing).
    #[arg(long)]
    pub keep: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Directory of dataset specs (with an optional skein.yaml fleet file); with --stack,
    /// their S3 prefix (`s3://bucket/specs/`).
    #[arg(value_name = "DIR", required_unless_present = "resume")]
    pub dir: Option<PathBuf>,
    /// Continue this run (the default when DIR has a run that did not finish).
    #[arg(long, value_name = "RUN")]
    pub resume: Option<String>,
    /// Start a new run even if DIR has one that did not finish.
    #[arg(long, conflicts_with = "resume")]
    pub new: bool,
    /// Approve datasets that need approval as soon as they are verified (demos, tests).
    #[arg(long)]
    pub auto_approve: bool,
    /// Publish even if a dataset's output schema differs from its published version's.
    #[arg(long)]
    pub allow_schema_change: bool,
    /// Take the run over from a driver on another host whose lease expired (one on this
    /// host whose process is gone is taken over without asking).
    #[arg(long)]
    pub takeover: bool,
    /// If another process drives DIR, follow its progress (read-only) instead of being
    /// refused; report how its run ended, or resume it if its driver died first.
    #[arg(long, conflicts_with = "new")]
    pub wait: bool,
    /// With --stack: start the run and return, without following it.
    #[arg(long)]
    pub detach: bool,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Directory of dataset specs (with an optional skein.yaml fleet file).
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// The dataset waiting for approval.
    pub dataset: String,
}

#[derive(Debug, Args)]
pub struct RejectArgs {
    /// The dataset waiting for approval.
    pub dataset: String,
    /// Why; recorded in the dataset's history.
    #[arg(long, default_value = "rejected")]
    pub reason: String,
}

#[derive(Debug, Args)]
pub struct UiArgs {
    /// Address to listen on; anything but loopback needs --token.
    #[arg(long, env = "SKEIN_UI_BIND", default_value = "127.0.0.1")]
    pub bind: std::net::IpAddr,
    /// Port to listen on (0: any free port, printed at start).
    #[arg(long, short, env = "SKEIN_UI_PORT", default_value_t = 8470)]
    pub port: u16,
    /// Token clients must present (open /?token=… once); required outside loopback.
    #[arg(long, env = "SKEIN_UI_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The run (`skein runs` lists them), or `latest` for the newest.
    pub run: String,
    /// Write the HTML report to this file.
    #[arg(long, value_name = "FILE")]
    pub html: PathBuf,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Sub-buckets per differing bucket at each bisection level.
    #[arg(long, default_value_t = 32)]
    pub bisection_factor: u64,
    /// Buckets with at most this many rows on each side are compared row by row.
    #[arg(long, default_value_t = 4096)]
    pub threshold: u64,
    /// Example keys (and changed rows) reported per kind of difference.
    #[arg(long, default_value_t = 20)]
    pub examples: usize,
}

/// `skein catalog …`.
#[derive(Debug, Subcommand)]
pub enum CatalogCommand {
    /// Read Backstage `Resource` entities of type `dataset` and register them as specs.
    Import(CatalogImportArgs),
    /// Write the catalog as Backstage entities with migration status (`DIR/catalog-info.yaml`).
    Export(CatalogExportArgs),
}

#[derive(Debug, Args)]
pub struct CatalogImportArgs {
    /// catalog-info.yaml files.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Also write each dataset as a skein spec file into this directory.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CatalogExportArgs {
    /// Directory to write catalog-info.yaml into.
    pub dir: PathBuf,
}
