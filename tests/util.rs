//! Test helpers: temp workspaces with specs and data, and running the `skein` binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::{Digest, Sha256};

/// A temp directory holding specs, data and a catalog; removed on drop.
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new() -> Workspace {
        Workspace {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file (creating parent directories) and returns its path.
    pub fn write(&self, rel: &str, content: &str) -> PathBuf {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
        p
    }

    /// Runs `skein` with this workspace as working directory and catalog under it.
    pub fn skein(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_skein"))
            .args(args)
            .current_dir(self.path())
            .env("SKEIN_CATALOG", self.path().join(".skein"))
            .env_remove("SKEIN_LOG")
            .output()
            .expect("run skein")
    }

    /// Runs `skein … --json` and parses the last line of stdout.
    pub fn skein_json(&self, args: &[&str]) -> (i32, serde_json::Value) {
        let mut all: Vec<&str> = args.to_vec();
        all.push("--json");
        let out = self.skein(&all);
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let last = stdout.lines().last().unwrap_or("null").to_string();
        let json = serde_json::from_str(&last).unwrap_or_else(|e| {
            panic!(
                "skein {args:?}: last stdout line is not JSON ({e}): {stdout}\nstderr: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.code().unwrap_or(-1), json)
    }
}

impl Workspace {
    /// The names of the states execution `name` entered, in order (`skein states history`).
    pub fn states_entered(&self, name: &str) -> Vec<String> {
        let (code, history) = self.skein_json(&["states", "history", name]);
        assert_eq!(code, 0, "{history:#}");
        history["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| {
                e["stateEnteredEventDetails"]["name"]
                    .as_str()
                    .map(str::to_string)
            })
            .collect()
    }
}

/// Rows of a DuckDB query run in `dir` with the project's `.venv`, as JSON (numbers as
/// numbers, everything else as text); `setup` is Python run first with `con` connected
/// (e.g. loading an extension).
pub fn duckdb_rows(dir: &Path, setup: &str, sql: &str) -> serde_json::Value {
    let script = format!(
        "import duckdb, json, sys\ncon = duckdb.connect()\n{setup}\nrows = con.sql(sys.argv[1]).fetchall()\n\
         print(json.dumps([[v if isinstance(v, (int, float)) or v is None else str(v) for v in r] for r in rows]))\n"
    );
    let out = Command::new(repo_root().join(".venv/bin/python"))
        .arg("-c")
        .arg(script)
        .arg(sql)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// stdout and stderr of a run, for assertion messages.
pub fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The repository's root (where `samples/` is).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Copies a directory tree (files and directories only).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name.to_string_lossy() == "lake" {
            continue;
        }
        let target = to.join(&name);
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// sha256 of every `*.parquet` file directly in `dir` (following a symlinked `dir`), by name.
pub fn parquet_checksums(dir: &Path) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            let hash = Sha256::digest(&bytes);
            (
                p.file_name().unwrap().to_string_lossy().to_string(),
                hash.iter().map(|b| format!("{b:02x}")).collect(),
            )
        })
        .collect();
    out.sort();
    out
}

/// Reads `*.parquet` in `dir` with DataFusion and returns `SELECT {select} FROM t ORDER BY {order}`
/// as pretty-printed lines.
pub fn query_parquet(dir: &Path, select: &str, order: &str) -> Vec<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let ctx = datafusion::prelude::SessionContext::new();
        ctx.register_parquet("t", &format!("{}/", dir.display()), Default::default())
            .await
            .unwrap();
        let df = ctx
            .sql(&format!("SELECT {select} FROM t ORDER BY {order}"))
            .await
            .unwrap();
        let batches = df.collect().await.unwrap();
        datafusion::arrow::util::pretty::pretty_format_batches(&batches)
            .unwrap()
            .to_string()
            .lines()
            .map(|l| l.to_string())
            .collect()
    })
}

/// A run record as `skein migrate` writes it before migrating (one dataset, running).
pub fn running_run(run: &str) -> skein_core::catalog::RunRecord {
    skein_core::catalog::RunRecord {
        run_id: run.to_string(),
        started_at: chrono::Utc::now().to_rfc3339(),
        finished_at: None,
        status: skein_core::catalog::RunStatus::Running,
        total: 1,
        succeeded: 0,
        failed: 0,
        rows: 0,
    }
}
