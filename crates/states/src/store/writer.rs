//! The writer thread: group commit. Commits from concurrent frames wait together for one
//! SQLite transaction; each caller is answered once the transaction that holds its writes
//! is durable.

use rusqlite::{Connection, params};
use tokio::sync::{mpsc, oneshot};

use super::records::Op;
use super::sql::{definition_hash, now, text};
use crate::error::StoreError;
use crate::status::{ExecutionStatus, TokenStatus};

/// One caller's writes, and where to answer it.
pub(super) struct Batch {
    pub(super) ops: Vec<Op>,
    pub(super) ack: oneshot::Sender<Result<(), StoreError>>,
}

/// Crash injection for the durability test: `SKEIN_STATES_CRASH_AFTER=N` kills the process
/// with SIGKILL right after its N-th commit.
fn crash_after() -> Option<u64> {
    std::env::var("SKEIN_STATES_CRASH_AFTER").ok()?.parse().ok()
}

/// Applies batches as they come, grouping those waiting into one transaction, and
/// answers each with the transaction's result.
pub(super) fn writer_loop(
    mut conn: Connection,
    mut rx: mpsc::UnboundedReceiver<Batch>,
    path: String,
) {
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
                    "UPDATE executions SET status = ?2, output = ?3, error = ?4, cause = ?5, stopped_at = ?6 WHERE id = ?1 AND status = ?7",
                )?
                .execute(params![
                    id,
                    status,
                    output.as_ref().map(text),
                    error,
                    cause,
                    at,
                    ExecutionStatus::Running
                ])?;
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
                    "UPDATE executions SET status = ?5, error = ?2, cause = ?3, stopped_at = ?4 \
                     WHERE id = ?1 AND status = ?6",
                )?
                .execute(params![
                    id,
                    error,
                    cause,
                    at,
                    ExecutionStatus::Aborted,
                    ExecutionStatus::Running
                ])?;
            }
            Op::PutToken {
                token,
                execution,
                frame,
            } => {
                tx.prepare_cached(
                    "INSERT OR IGNORE INTO tokens (token, execution, frame, status, heartbeat_at) VALUES (?1, ?2, ?3, ?5, ?4)",
                )?
                .execute(params![token, execution, frame, at, TokenStatus::Waiting])?;
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
