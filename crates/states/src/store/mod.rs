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

mod records;
mod sql;
mod writer;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

pub use records::{Event, Execution, Frame, FrameStatus, Op, TokenAnswer, TokenRecord};
use sql::{SCHEMA, execution_of, json, now, open, retry_busy, text};
use writer::{Batch, writer_loop};

pub use crate::error::StoreError;
use crate::status::{ExecutionStatus, TokenStatus};

type Result<T> = std::result::Result<T, StoreError>;

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
                "UPDATE tokens SET status = ?4, output = ?2, heartbeat_at = ?3 WHERE token = ?1 AND status = ?5",
                params![token, text(output), at, TokenStatus::Succeeded, TokenStatus::Waiting],
            ),
            TokenAnswer::Failure { error, cause } => c.execute(
                "UPDATE tokens SET status = ?5, error = ?2, cause = ?3, heartbeat_at = ?4 WHERE token = ?1 AND status = ?6",
                params![token, error, cause, at, TokenStatus::Failed, TokenStatus::Waiting],
            ),
            TokenAnswer::Heartbeat => c.execute(
                "UPDATE tokens SET heartbeat_at = ?2 WHERE token = ?1 AND status = ?3",
                params![token, at, TokenStatus::Waiting],
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
