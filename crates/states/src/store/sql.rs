//! The SQLite side: the schema, connections in WAL mode, and how values and statuses are
//! kept in columns.

use std::path::Path;

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSqlOutput, ValueRef};
use rusqlite::{Connection, ToSql};
use serde_json::Value;

use super::records::Execution;
use crate::status::{ExecutionStatus, TokenStatus};

/// The tables: executions (their definitions stored once), frames, events, task tokens,
/// mock counters.
pub(super) const SCHEMA: &str = r#"
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

pub(super) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

pub(super) fn text(v: &Value) -> String {
    v.to_string()
}

pub(super) fn json(s: Option<String>) -> Option<Value> {
    s.and_then(|s| serde_json::from_str(&s).ok())
}

/// Retries `f` while another process holds the lock in a way the busy timeout does not
/// cover (switching a brand-new file to WAL, when two processes create it at once).
pub(super) fn retry_busy<T>(f: impl Fn() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
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

pub(super) fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    retry_busy(|| {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")
    })?;
    Ok(conn)
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

/// An execution from a row of `SELECT e.id, e.name, e.arn, d.body, e.input, e.status, …`.
pub(super) fn execution_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<Execution> {
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
pub(super) fn definition_hash(body: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(body.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
