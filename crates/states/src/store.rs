//! The engine's durable store: executions, frames (one per running branch / iteration),
//! the event history, task tokens, in one SQLite file in WAL mode.
//!
//! **Invariant:** the engine acts on a transition only after [`Store::commit`] returned, and
//! a commit is one SQLite transaction. Commits from concurrent frames are grouped into one
//! transaction by a single writer thread (group commit): every caller still waits for the
//! transaction that holds its writes, so the durability promise holds per transition.
//!
//! Commits use `synchronous=NORMAL`: a committed transition survives the process being
//! killed (what the crash test proves); after a power loss the last few may be lost.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSqlOutput, ValueRef};
use rusqlite::{Connection, OptionalExtension, ToSql, params};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

pub use crate::error::StoreError;
use crate::status::{ExecutionStatus, TokenStatus};

type Result<T> = std::result::Result<T, StoreError>;

/// Status of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameStatus {
    Running,
    Succeeded,
    Failed,
}

impl FrameStatus {
    fn as_str(self) -> &'static str {
        match self {
            FrameStatus::Running => "running",
            FrameStatus::Succeeded => "succeeded",
            FrameStatus::Failed => "failed",
        }
    }

    fn parse(s: &str) -> FrameStatus {
        match s {
            "succeeded" => FrameStatus::Succeeded,
            "failed" => FrameStatus::Failed,
            _ => FrameStatus::Running,
        }
    }
}

/// Where one thread of an execution stands: its current state and that state's input.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub id: String,
    pub state: String,
    pub input: Value,
    /// Transitions taken so far (makes child frame ids unique when a state is re-entered).
    pub step: u64,
    pub status: FrameStatus,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub cause: Option<String>,
    /// Attempts used per retrier of the current state.
    pub retries: Vec<u32>,
    /// Variables (`Assign`) visible in this frame.
    pub vars: Value,
    /// RFC 3339 time a Wait or a retry delay ends.
    pub wake_at: Option<String>,
    /// Task token the current state waits on.
    pub token: Option<String>,
    /// When the current state was entered.
    pub entered_at: String,
}

/// An execution as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Execution {
    pub id: String,
    pub name: String,
    pub arn: String,
    pub definition: Value,
    pub input: Value,
    pub status: ExecutionStatus,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub cause: Option<String>,
    pub started_at: String,
    pub stopped_at: Option<String>,
    /// Bindings, mock config and options needed to resume.
    pub config: Value,
}

/// One history event.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Event {
    pub id: u64,
    pub frame: String,
    pub kind: String,
    pub details: Value,
    pub at: String,
}

/// A task token's state.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenRecord {
    pub token: String,
    pub execution: String,
    pub frame: String,
    pub status: TokenStatus,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub cause: Option<String>,
    pub heartbeat_at: String,
}

/// A write, applied inside a commit.
#[derive(Debug, Clone)]
pub enum Op {
    PutExecution(Box<Execution>),
    EndExecution {
        id: String,
        status: ExecutionStatus,
        output: Option<Value>,
        error: Option<String>,
        cause: Option<String>,
    },
    PutFrame {
        execution: String,
        frame: Box<Frame>,
    },
    Event {
        execution: String,
        frame: String,
        kind: String,
        details: Value,
    },
    /// Marks a running execution ABORTED (a no-op if it already ended).
    Abort {
        id: String,
        error: String,
        cause: String,
    },
    PutToken {
        token: String,
        execution: String,
        frame: String,
    },
    Counter {
        execution: String,
        key: String,
        value: u64,
    },
}

struct Batch {
    ops: Vec<Op>,
    ack: oneshot::Sender<Result<()>>,
}

/// The store: a writer thread for commits and a connection for reads.
#[derive(Clone)]
pub struct Store {
    path: PathBuf,
    tx: mpsc::UnboundedSender<Batch>,
    reader: Arc<Mutex<Connection>>,
    /// Wakes this process's waiting tasks when a token is answered here; answers from
    /// other processes are seen by polling.
    answered: Arc<tokio::sync::Notify>,
}

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS executions (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, arn TEXT NOT NULL, definition TEXT NOT NULL,
    input TEXT NOT NULL, status TEXT NOT NULL, output TEXT, error TEXT, cause TEXT,
    started_at TEXT NOT NULL, stopped_at TEXT, config TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS definitions (
    hash TEXT PRIMARY KEY, body TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS frames (
    execution TEXT NOT NULL, id TEXT NOT NULL, state TEXT NOT NULL, input TEXT NOT NULL,
    step INTEGER NOT NULL, status TEXT NOT NULL, output TEXT, error TEXT, cause TEXT,
    retries TEXT NOT NULL, vars TEXT NOT NULL, wake_at TEXT, token TEXT, entered_at TEXT NOT NULL,
    PRIMARY KEY (execution, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    execution TEXT NOT NULL, id INTEGER NOT NULL, frame TEXT NOT NULL, kind TEXT NOT NULL,
    details TEXT NOT NULL, at TEXT NOT NULL, PRIMARY KEY (execution, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tokens (
    token TEXT PRIMARY KEY, execution TEXT NOT NULL, frame TEXT NOT NULL, status TEXT NOT NULL,
    output TEXT, error TEXT, cause TEXT, heartbeat_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (
    execution TEXT NOT NULL, key TEXT NOT NULL, value INTEGER NOT NULL, PRIMARY KEY (execution, key)
) WITHOUT ROWID;
"#;

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn text(v: &Value) -> String {
    v.to_string()
}

fn json(s: Option<String>) -> Option<Value> {
    s.and_then(|s| serde_json::from_str(&s).ok())
}

/// Retries `f` while another process holds the lock in a way the busy timeout does not
/// cover (switching a brand-new file to WAL, when two processes create it at once).
fn retry_busy<T>(f: impl Fn() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    let mut attempt = 0;
    loop {
        match f() {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if matches!(
                    e.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) && attempt < 200 =>
            {
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(25));
            }
            other => return other,
        }
    }
}

fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    retry_busy(|| {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")
    })?;
    Ok(conn)
}

impl Store {
    /// Opens (creating) the store at `path` and starts its writer thread.
    pub fn open(path: &Path) -> Result<Store> {
        let fail = |e: &dyn std::fmt::Display| StoreError {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| fail(&e))?;
        }
        let writer = open(path).map_err(|e| fail(&e))?;
        retry_busy(|| writer.execute_batch(SCHEMA)).map_err(|e| fail(&e))?;
        let reader = open(path).map_err(|e| fail(&e))?;
        let (tx, rx) = mpsc::unbounded_channel();
        let shown = path.display().to_string();
        std::thread::Builder::new()
            .name("skein-states-writer".into())
            .spawn(move || writer_loop(writer, rx, shown))
            .map_err(|e| fail(&e))?;
        Ok(Store {
            path: path.to_path_buf(),
            tx,
            reader: Arc::new(Mutex::new(reader)),
            answered: Arc::new(tokio::sync::Notify::new()),
        })
    }

    fn error(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError {
            path: self.path.display().to_string(),
            message: e.to_string(),
        }
    }

    /// Commits `ops` in one transaction (possibly shared with concurrent commits) and
    /// returns once it is durable.
    pub async fn commit(&self, ops: Vec<Op>) -> Result<()> {
        let (ack, done) = oneshot::channel();
        self.tx
            .send(Batch { ops, ack })
            .map_err(|_| self.error("the writer thread stopped"))?;
        done.await
            .map_err(|_| self.error("the writer thread stopped"))?
    }

    fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        let conn = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        f(&conn).map_err(|e| self.error(e))
    }

    /// An execution by id (or by its ARN).
    pub fn execution(&self, id: &str) -> Result<Option<Execution>> {
        let id = id.rsplit(':').next().unwrap_or(id).to_string();
        self.read(|c| {
            c.query_row(
                "SELECT e.id, e.name, e.arn, d.body, e.input, e.status, e.output, e.error, e.cause, e.started_at, \
                 e.stopped_at, e.config FROM executions e JOIN definitions d ON d.hash = e.definition WHERE e.id = ?1",
                [&id],
                execution_of,
            )
            .optional()
        })
    }

    /// Only the status of an execution (cheap: what a running engine polls).
    pub fn execution_status(&self, id: &str) -> Result<Option<ExecutionStatus>> {
        self.read(|c| {
            c.query_row("SELECT status FROM executions WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()
        })
    }

    /// All executions, newest first.
    pub fn executions(&self) -> Result<Vec<Execution>> {
        self.read(|c| {
            let mut stmt = c.prepare(
                "SELECT e.id, e.name, e.arn, d.body, e.input, e.status, e.output, e.error, e.cause, e.started_at, \
                 e.stopped_at, e.config FROM executions e JOIN definitions d ON d.hash = e.definition \
                 ORDER BY e.started_at DESC, e.id DESC",
            )?;
            stmt.query_map([], execution_of)?.collect()
        })
    }

    /// A frame of an execution.
    pub fn frame(&self, execution: &str, id: &str) -> Result<Option<Frame>> {
        self.read(|c| {
            c.query_row(
                "SELECT id, state, input, step, status, output, error, cause, retries, vars, wake_at, token, entered_at \
                 FROM frames WHERE execution = ?1 AND id = ?2",
                [execution, id],
                |r| {
                    Ok(Frame {
                        id: r.get(0)?,
                        state: r.get(1)?,
                        input: json(r.get(2)?).unwrap_or(Value::Null),
                        step: r.get::<_, i64>(3)? as u64,
                        status: FrameStatus::parse(&r.get::<_, String>(4)?),
                        output: json(r.get(5)?),
                        error: r.get(6)?,
                        cause: r.get(7)?,
                        retries: json(r.get(8)?)
                            .and_then(|v| serde_json::from_value(v).ok())
                            .unwrap_or_default(),
                        vars: json(r.get(9)?).unwrap_or(Value::Object(Default::default())),
                        wake_at: r.get(10)?,
                        token: r.get(11)?,
                        entered_at: r.get(12)?,
                    })
                },
            )
            .optional()
        })
    }

    /// The event history of an execution, oldest first.
    pub fn events(&self, execution: &str) -> Result<Vec<Event>> {
        self.read(|c| {
            let mut stmt = c.prepare(
                "SELECT id, frame, kind, details, at FROM events WHERE execution = ?1 ORDER BY id",
            )?;
            stmt.query_map([execution], |r| {
                Ok(Event {
                    id: r.get::<_, i64>(0)? as u64,
                    frame: r.get(1)?,
                    kind: r.get(2)?,
                    details: json(r.get(3)?).unwrap_or(Value::Null),
                    at: r.get(4)?,
                })
            })?
            .collect()
        })
    }

    /// Counters of an execution (mocked invocations per state).
    pub fn counters(&self, execution: &str) -> Result<HashMap<String, u64>> {
        self.read(|c| {
            let mut stmt = c.prepare("SELECT key, value FROM counters WHERE execution = ?1")?;
            stmt.query_map([execution], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
            })?
            .collect()
        })
    }

    /// A task token.
    pub fn token(&self, token: &str) -> Result<Option<TokenRecord>> {
        self.read(|c| {
            c.query_row(
                "SELECT token, execution, frame, status, output, error, cause, heartbeat_at FROM tokens WHERE token = ?1",
                [token],
                |r| {
                    Ok(TokenRecord {
                        token: r.get(0)?,
                        execution: r.get(1)?,
                        frame: r.get(2)?,
                        status: r.get(3)?,
                        output: json(r.get(4)?),
                        error: r.get(5)?,
                        cause: r.get(6)?,
                        heartbeat_at: r.get(7)?,
                    })
                },
            )
            .optional()
        })
    }

    /// Notified when a token is answered in this process.
    pub fn answered(&self) -> &tokio::sync::Notify {
        &self.answered
    }

    /// Records the answer to a task token (from `send-task-success` / `-failure`), or a
    /// heartbeat. Fails if the token is unknown or already answered.
    pub fn answer_token(&self, token: &str, answer: TokenAnswer) -> Result<TokenRecord> {
        let at = now();
        let changed = self.read(|c| match &answer {
            TokenAnswer::Success(output) => c.execute(
                "UPDATE tokens SET status = 'succeeded', output = ?2, heartbeat_at = ?3 WHERE token = ?1 AND status = 'waiting'",
                params![token, text(output), at],
            ),
            TokenAnswer::Failure { error, cause } => c.execute(
                "UPDATE tokens SET status = 'failed', error = ?2, cause = ?3, heartbeat_at = ?4 WHERE token = ?1 AND status = 'waiting'",
                params![token, error, cause, at],
            ),
            TokenAnswer::Heartbeat => c.execute(
                "UPDATE tokens SET heartbeat_at = ?2 WHERE token = ?1 AND status = 'waiting'",
                params![token, at],
            ),
        })?;
        if changed == 1 {
            self.answered.notify_waiters();
        }
        let record = self.token(token)?;
        match (changed, record) {
            (1, Some(r)) => Ok(r),
            (_, None) => Err(self.error(format!(
                "task token `{token}` is unknown (TaskDoesNotExist); copy it from the waiting task's input"
            ))),
            (_, Some(r)) => Err(self.error(format!(
                "task token `{token}` was already answered ({}) (TaskTimedOut); nothing changed",
                r.status
            ))),
        }
    }
}

/// A status is kept as its spelling ([`ExecutionStatus::as_str`]).
macro_rules! status_column {
    ($($status:ty),*) => {$(
        impl ToSql for $status {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }

        impl FromSql for $status {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<$status> {
                value
                    .as_str()?
                    .parse()
                    .map_err(|e| FromSqlError::Other(Box::new(e)))
            }
        }
    )*};
}

status_column!(ExecutionStatus, TokenStatus);

/// What `send-task-*` says.
#[derive(Debug, Clone)]
pub enum TokenAnswer {
    Success(Value),
    Failure { error: String, cause: String },
    Heartbeat,
}

fn execution_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<Execution> {
    Ok(Execution {
        id: r.get(0)?,
        name: r.get(1)?,
        arn: r.get(2)?,
        definition: json(r.get(3)?).unwrap_or(Value::Null),
        input: json(r.get(4)?).unwrap_or(Value::Null),
        status: r.get(5)?,
        output: json(r.get(6)?),
        error: r.get(7)?,
        cause: r.get(8)?,
        started_at: r.get(9)?,
        stopped_at: r.get(10)?,
        config: json(r.get(11)?).unwrap_or(Value::Null),
    })
}

/// A definition's key in the `definitions` table.
fn definition_hash(body: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(body.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Crash injection for the durability test: `SKEIN_STATES_CRASH_AFTER=N` kills the process
/// with SIGKILL right after its N-th commit.
fn crash_after() -> Option<u64> {
    std::env::var("SKEIN_STATES_CRASH_AFTER").ok()?.parse().ok()
}

fn writer_loop(mut conn: Connection, mut rx: mpsc::UnboundedReceiver<Batch>, path: String) {
    let crash = crash_after();
    let mut commits = 0u64;
    while let Some(first) = rx.blocking_recv() {
        let mut batches = vec![first];
        while batches.len() < 4096 {
            match rx.try_recv() {
                Ok(b) => batches.push(b),
                Err(_) => break,
            }
        }
        let result = apply(&mut conn, &batches).map_err(|e| StoreError {
            path: path.clone(),
            message: e.to_string(),
        });
        commits += 1;
        if crash == Some(commits) {
            let _ = std::process::Command::new("kill")
                .args(["-9", &std::process::id().to_string()])
                .status();
            std::thread::sleep(std::time::Duration::from_secs(10));
        }
        for b in batches {
            let _ = b.ack.send(result.clone());
        }
    }
}

fn apply(conn: &mut Connection, batches: &[Batch]) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let at = now();
    for op in batches.iter().flat_map(|b| b.ops.iter()) {
        match op {
            Op::PutExecution(e) => {
                // Definitions are stored once (thousands of child executions share one).
                let body = text(&e.definition);
                let hash = definition_hash(&body);
                tx.prepare_cached(
                    "INSERT OR IGNORE INTO definitions (hash, body) VALUES (?1, ?2)",
                )?
                .execute(params![hash, body])?;
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO executions (id, name, arn, definition, input, status, output, error, cause, \
                     started_at, stopped_at, config) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                )?
                .execute(params![
                    e.id,
                    e.name,
                    e.arn,
                    hash,
                    text(&e.input),
                    e.status,
                    e.output.as_ref().map(text),
                    e.error,
                    e.cause,
                    e.started_at,
                    e.stopped_at,
                    text(&e.config)
                ])?;
            }
            Op::EndExecution {
                id,
                status,
                output,
                error,
                cause,
            } => {
                tx.prepare_cached(
                    "UPDATE executions SET status = ?2, output = ?3, error = ?4, cause = ?5, stopped_at = ?6 WHERE id = ?1 AND status = 'RUNNING'",
                )?
                .execute(params![id, status, output.as_ref().map(text), error, cause, at])?;
            }
            Op::PutFrame {
                execution,
                frame: f,
            } => {
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO frames (execution, id, state, input, step, status, output, error, cause, \
                     retries, vars, wake_at, token, entered_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
                )?
                .execute(params![
                    execution,
                    f.id,
                    f.state,
                    text(&f.input),
                    f.step as i64,
                    f.status.as_str(),
                    f.output.as_ref().map(text),
                    f.error,
                    f.cause,
                    serde_json::to_string(&f.retries).unwrap_or_else(|_| "[]".into()),
                    text(&f.vars),
                    f.wake_at,
                    f.token,
                    f.entered_at
                ])?;
            }
            Op::Event {
                execution,
                frame,
                kind,
                details,
            } => {
                // Ids come from the table, not a cache: another process (`skein states
                // stop`) may append to the same history.
                tx.prepare_cached(
                    "INSERT INTO events (execution, id, frame, kind, details, at) \
                     SELECT ?1, COALESCE(MAX(id), 0) + 1, ?2, ?3, ?4, ?5 FROM events WHERE execution = ?1",
                )?
                .execute(params![execution, frame, kind, text(details), at])?;
            }
            Op::Abort { id, error, cause } => {
                tx.prepare_cached(
                    "UPDATE executions SET status = 'ABORTED', error = ?2, cause = ?3, stopped_at = ?4 \
                     WHERE id = ?1 AND status = 'RUNNING'",
                )?
                .execute(params![id, error, cause, at])?;
            }
            Op::PutToken {
                token,
                execution,
                frame,
            } => {
                tx.prepare_cached(
                    "INSERT OR IGNORE INTO tokens (token, execution, frame, status, heartbeat_at) VALUES (?1, ?2, ?3, 'waiting', ?4)",
                )?
                .execute(params![token, execution, frame, at])?;
            }
            Op::Counter {
                execution,
                key,
                value,
            } => {
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO counters (execution, key, value) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![execution, key, *value as i64])?;
            }
        }
    }
    tx.commit()
}
