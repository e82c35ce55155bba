//! skein-embedded: the catalog in one SQLite file, for runs on one machine.
//!
//! [`SqliteCatalog`] implements [`skein_core::catalog::Catalog`], [`SqliteQueue`] the job
//! queue and [`EngineCallbacks`] the task tokens (on the embedded engine's store). The database is opened in
//! WAL mode with a busy timeout, so several `skein` processes (a run and a `skein approve`
//! beside it) can share it.
//!
//! **Invariant:** every status change is one `UPDATE … WHERE name = ? AND status = ?` in
//! the same transaction as its history row: a lost race changes nothing and is reported as
//! [`Error::StatusConflict`]; an illegal change never reaches the database.

mod callbacks;
mod queue;
mod schema;

pub use callbacks::EngineCallbacks;
pub use queue::SqliteQueue;

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, params};
use skein_core::catalog::{
    Attempt, Catalog, Counter, DatasetRecord, Driver, EndCounts, HistoryEntry, RunEnd, RunRecord,
    VersionAction, VersionRecord,
};
use skein_core::manifest::ManifestSummary;
use skein_core::{DatasetSpec, Error, Result, Status};

/// The embedded catalog: one SQLite database.
pub struct SqliteCatalog {
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for SqliteCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteCatalog").finish_non_exhaustive()
    }
}

fn backend(e: impl std::fmt::Display) -> Error {
    Error::Backend {
        message: format!("sqlite: {e}"),
    }
}

/// Runs the set-up of a new connection, retrying while another process holds the lock.
/// (Switching a brand-new file to WAL can fail with SQLITE_BUSY without waiting for the
/// busy timeout, when two processes create the file at once.)
pub(crate) fn setup(
    conn: &Connection,
    f: impl Fn(&Connection) -> rusqlite::Result<()>,
) -> rusqlite::Result<()> {
    let mut attempt = 0;
    loop {
        match f(conn) {
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

fn now() -> String {
    skein_core::time::now()
}

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn status_of(text: &str) -> Result<Status> {
    text.parse::<Status>()
        .map_err(|e| Error::Internal(format!("catalog holds {e}")))
}

fn json_of<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> Result<T> {
    serde_json::from_str(text)
        .map_err(|e| Error::Internal(format!("catalog holds a bad {what}: {e}")))
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::Internal(format!("cannot encode: {e}")))
}

impl SqliteCatalog {
    /// Opens the catalog at `path`, creating the file, its directory and the schema if needed.
    pub fn open(path: &Path) -> Result<SqliteCatalog> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::Read {
                path: dir.to_path_buf(),
                source: e,
            })?;
        }
        let conn = Connection::open(path)
            .map_err(|e| backend(format!("cannot open {}: {e}", path.display())))?;
        SqliteCatalog::with_connection(conn)
    }

    /// A catalog in memory (tests, dry runs).
    pub fn open_in_memory() -> Result<SqliteCatalog> {
        SqliteCatalog::with_connection(Connection::open_in_memory().map_err(backend)?)
    }

    fn with_connection(conn: Connection) -> Result<SqliteCatalog> {
        conn.busy_timeout(std::time::Duration::from_secs(30))
            .map_err(backend)?;
        setup(&conn, |c| {
            c.pragma_update(None, "journal_mode", "WAL")?;
            c.pragma_update(None, "synchronous", "NORMAL")?;
            c.pragma_update(None, "foreign_keys", "ON")?;
            schema::migrate(c)
        })
        .map_err(backend)?;
        Ok(SqliteCatalog {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (transactions roll back on
        // drop), so a poisoned lock is safe to reuse.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn record(row: &Row<'_>) -> rusqlite::Result<RawRecord> {
        Ok(RawRecord {
            name: row.get(0)?,
            spec: row.get(1)?,
            spec_hash: row.get(2)?,
            spec_version: row.get(3)?,
            status: row.get(4)?,
            reason: row.get(5)?,
            current_version: row.get(6)?,
            rows: row.get(7)?,
            last_verification: row.get(8)?,
            approval_token: row.get(9)?,
            updated_at: row.get(10)?,
        })
    }

    fn status_now(conn: &Connection, name: &str) -> Result<Option<Status>> {
        let status: Option<String> = conn
            .query_row("SELECT status FROM datasets WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()
            .map_err(backend)?;
        status.as_deref().map(status_of).transpose()
    }

    fn require(conn: &Connection, name: &str) -> Result<()> {
        match SqliteCatalog::status_now(conn, name)? {
            Some(_) => Ok(()),
            None => Err(Error::UnknownDataset {
                dataset: name.to_string(),
            }),
        }
    }
}

const RECORD_COLUMNS: &str = "name, spec, spec_hash, spec_version, status, reason, current_version, rows, \
     last_verification, approval_token, updated_at";

struct RawRecord {
    name: String,
    spec: String,
    spec_hash: String,
    spec_version: u32,
    status: String,
    reason: Option<String>,
    current_version: Option<i64>,
    rows: Option<i64>,
    last_verification: Option<String>,
    approval_token: Option<String>,
    updated_at: String,
}

impl RawRecord {
    fn into_record(self) -> Result<DatasetRecord> {
        Ok(DatasetRecord {
            spec: json_of(&self.spec, "spec")?,
            status: status_of(&self.status)?,
            name: self.name,
            spec_hash: self.spec_hash,
            spec_version: self.spec_version,
            reason: self.reason,
            current_version: self.current_version.map(|v| v as u64),
            rows: self.rows.map(|v| v as u64),
            last_verification: self.last_verification,
            approval_token: self.approval_token,
            updated_at: self.updated_at,
        })
    }
}

fn run_of(row: &Row<'_>) -> rusqlite::Result<RunRecord> {
    Ok(RunRecord {
        run_id: row.get(0)?,
        started_at: row.get(1)?,
        finished_at: row.get(2)?,
        status: row
            .get::<_, String>(3)?
            .parse()
            .map_err(|e: skein_core::Error| {
                rusqlite::Error::FromSqlConversionFailure(
                    3,
                    rusqlite::types::Type::Text,
                    Box::new(e),
                )
            })?,
        total: row.get::<_, i64>(4)? as u64,
        succeeded: row.get::<_, i64>(5)? as u64,
        failed: row.get::<_, i64>(6)? as u64,
        rows: row.get::<_, i64>(7)? as u64,
    })
}

impl SqliteCatalog {
    /// A status change, fenced by an attempt when one is given: the check of the newest
    /// attempt and the change are one immediate transaction.
    fn transition_fenced(
        &self,
        name: &str,
        fence: Option<u32>,
        from: Status,
        to: Status,
        reason: Option<&str>,
        run_id: Option<&str>,
    ) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(backend)?;
        let Some(actual) = SqliteCatalog::status_now(&tx, name)? else {
            return Err(Error::UnknownDataset {
                dataset: name.to_string(),
            });
        };
        if let Some(attempt) = fence {
            let current: u32 = tx
                .query_row(
                    "SELECT COALESCE(MAX(attempt), 0) FROM attempts WHERE name = ?1",
                    [name],
                    |r| r.get(0),
                )
                .map_err(backend)?;
            if current != attempt {
                return Err(Error::Superseded {
                    dataset: name.to_string(),
                    run_id: run_id.unwrap_or_default().to_string(),
                    attempt,
                    current,
                });
            }
        }
        if !from.can_become(to) {
            return Err(Error::IllegalTransition {
                dataset: name.to_string(),
                from,
                to,
            });
        }
        let at = now();
        let changed = tx
            .execute(
                "UPDATE datasets SET status = ?3, reason = ?4, updated_at = ?5 \
                 WHERE name = ?1 AND status = ?2",
                params![name, from.as_str(), to.as_str(), reason, at],
            )
            .map_err(backend)?;
        if changed == 0 {
            return Err(Error::StatusConflict {
                dataset: name.to_string(),
                expected: from,
                actual,
            });
        }
        tx.execute(
            "INSERT INTO history (name, at, from_status, to_status, reason, run_id) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![name, at, from.as_str(), to.as_str(), reason, run_id],
        )
        .map_err(backend)?;
        tx.commit().map_err(backend)
    }
}

#[async_trait]
impl Catalog for SqliteCatalog {
    async fn put_spec(&self, spec: &DatasetSpec, spec_hash: &str) -> Result<DatasetRecord> {
        let name = spec.name();
        let spec_json = to_json(spec)?;
        let at = now();
        {
            let mut conn = self.conn();
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(backend)?;
            let known: Option<String> = tx
                .query_row(
                    "SELECT spec_hash FROM datasets WHERE name = ?1",
                    [name],
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend)?;
            match known {
                None => {
                    tx.execute(
                        "INSERT INTO datasets (name, spec, spec_hash, spec_version, status, updated_at) \
                         VALUES (?1, ?2, ?3, 1, 'pending', ?4)",
                        params![name, spec_json, spec_hash, at],
                    )
                    .map_err(backend)?;
                    tx.execute(
                        "INSERT INTO history (name, at, from_status, to_status, reason) \
                         VALUES (?1, ?2, NULL, 'pending', 'registered')",
                        params![name, at],
                    )
                    .map_err(backend)?;
                }
                Some(hash) if hash == spec_hash => {}
                Some(_) => {
                    tx.execute(
                        "UPDATE datasets SET spec = ?2, spec_hash = ?3, spec_version = spec_version + 1, \
                         updated_at = ?4 WHERE name = ?1",
                        params![name, spec_json, spec_hash, at],
                    )
                    .map_err(backend)?;
                }
            }
            tx.commit().map_err(backend)?;
        }
        self.dataset(name)
            .await?
            .ok_or_else(|| Error::Internal(format!("dataset `{name}` vanished after registration")))
    }

    async fn dataset(&self, name: &str) -> Result<Option<DatasetRecord>> {
        let conn = self.conn();
        let raw = conn
            .query_row(
                &format!("SELECT {RECORD_COLUMNS} FROM datasets WHERE name = ?1"),
                [name],
                SqliteCatalog::record,
            )
            .optional()
            .map_err(backend)?;
        raw.map(RawRecord::into_record).transpose()
    }

    async fn datasets(&self) -> Result<Vec<DatasetRecord>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {RECORD_COLUMNS} FROM datasets ORDER BY name"
            ))
            .map_err(backend)?;
        let raws = stmt
            .query_map([], SqliteCatalog::record)
            .map_err(backend)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(backend)?;
        raws.into_iter().map(RawRecord::into_record).collect()
    }

    async fn transition(
        &self,
        name: &str,
        from: Status,
        to: Status,
        reason: Option<&str>,
        run_id: Option<&str>,
    ) -> Result<()> {
        self.transition_fenced(name, None, from, to, reason, run_id)
    }

    async fn transition_in_attempt(
        &self,
        name: &str,
        attempt: u32,
        from: Status,
        to: Status,
        reason: Option<&str>,
        run_id: Option<&str>,
    ) -> Result<()> {
        self.transition_fenced(name, Some(attempt), from, to, reason, run_id)
    }

    async fn history(&self, name: &str) -> Result<Vec<HistoryEntry>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT at, from_status, to_status, reason, run_id FROM history \
                 WHERE name = ?1 ORDER BY id",
            )
            .map_err(backend)?;
        let rows = stmt
            .query_map([name], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, Option<String>>(4)?,
                ))
            })
            .map_err(backend)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(backend)?;
        rows.into_iter()
            .map(|(at, from, to, reason, run_id)| {
                Ok(HistoryEntry {
                    at,
                    from: from.as_deref().map(status_of).transpose()?,
                    to: status_of(&to)?,
                    reason,
                    run_id,
                })
            })
            .collect()
    }

    async fn record_version(
        &self,
        name: &str,
        action: VersionAction,
        manifest: &ManifestSummary,
    ) -> Result<()> {
        let manifest_json = to_json(manifest)?;
        let action = match action {
            VersionAction::Published => "published",
            VersionAction::Restored => "restored",
        };
        let at = now();
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(backend)?;
        SqliteCatalog::require(&tx, name)?;
        tx.execute(
            "INSERT INTO versions (name, at, action, version, manifest) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![name, at, action, manifest.version as i64, manifest_json],
        )
        .map_err(backend)?;
        tx.execute(
            "UPDATE datasets SET current_version = ?2, rows = ?3, updated_at = ?4 WHERE name = ?1",
            params![name, manifest.version as i64, manifest.rows as i64, at],
        )
        .map_err(backend)?;
        tx.commit().map_err(backend)
    }

    async fn versions(&self, name: &str) -> Result<Vec<VersionRecord>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT at, action, manifest FROM versions WHERE name = ?1 ORDER BY id")
            .map_err(backend)?;
        let rows = stmt
            .query_map([name], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .map_err(backend)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(backend)?;
        rows.into_iter()
            .map(|(at, action, manifest)| {
                let action = match action.as_str() {
                    "published" => VersionAction::Published,
                    "restored" => VersionAction::Restored,
                    other => {
                        return Err(Error::Internal(format!(
                            "catalog holds version action `{other}`"
                        )));
                    }
                };
                Ok(VersionRecord {
                    at,
                    action,
                    manifest: ManifestSummary::from_stored_json(&manifest).map_err(|e| {
                        Error::Internal(format!("unreadable version summary of `{name}`: {e}"))
                    })?,
                })
            })
            .collect()
    }

    async fn set_verification(&self, name: &str, summary: &str) -> Result<()> {
        let conn = self.conn();
        let changed = conn
            .execute(
                "UPDATE datasets SET last_verification = ?2, updated_at = ?3 WHERE name = ?1",
                params![name, summary, now()],
            )
            .map_err(backend)?;
        if changed == 0 {
            return Err(Error::UnknownDataset {
                dataset: name.to_string(),
            });
        }
        Ok(())
    }

    async fn set_approval_token(&self, name: &str, token: Option<&str>) -> Result<()> {
        let conn = self.conn();
        let changed = conn
            .execute(
                "UPDATE datasets SET approval_token = ?2, updated_at = ?3 WHERE name = ?1",
                params![name, token, now()],
            )
            .map_err(backend)?;
        if changed == 0 {
            return Err(Error::UnknownDataset {
                dataset: name.to_string(),
            });
        }
        Ok(())
    }

    async fn start_attempt(&self, name: &str, run_id: &str) -> Result<u32> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(backend)?;
        SqliteCatalog::require(&tx, name)?;
        let next: u32 = tx
            .query_row(
                "SELECT COALESCE(MAX(attempt), 0) + 1 FROM attempts WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .map_err(backend)?;
        tx.execute(
            "INSERT INTO attempts (name, attempt, run_id, started_at) VALUES (?1, ?2, ?3, ?4)",
            params![name, next, run_id, now()],
        )
        .map_err(backend)?;
        tx.commit().map_err(backend)?;
        Ok(next)
    }

    async fn finish_attempt(
        &self,
        name: &str,
        attempt: u32,
        outcome: &str,
        error: Option<&str>,
    ) -> Result<()> {
        let conn = self.conn();
        let changed = conn
            .execute(
                "UPDATE attempts SET finished_at = ?3, outcome = ?4, error = ?5 \
                 WHERE name = ?1 AND attempt = ?2",
                params![name, attempt, now(), outcome, error],
            )
            .map_err(backend)?;
        if changed == 0 {
            return Err(Error::Internal(format!(
                "dataset `{name}` has no attempt {attempt} to finish"
            )));
        }
        Ok(())
    }

    async fn attempts(&self, name: &str) -> Result<Vec<Attempt>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT run_id, attempt, started_at, finished_at, outcome, error FROM attempts \
                 WHERE name = ?1 ORDER BY attempt",
            )
            .map_err(backend)?;
        stmt.query_map([name], |r| {
            Ok(Attempt {
                run_id: r.get(0)?,
                attempt: r.get(1)?,
                started_at: r.get(2)?,
                finished_at: r.get(3)?,
                outcome: r.get(4)?,
                error: r.get(5)?,
            })
        })
        .map_err(backend)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(backend)
    }

    async fn put_run(&self, run: &RunRecord) -> Result<()> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO runs (run_id, started_at, finished_at, status, total, succeeded, failed, rows) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
             ON CONFLICT (run_id) DO UPDATE SET started_at = excluded.started_at, \
             finished_at = excluded.finished_at, status = excluded.status, total = excluded.total, \
             succeeded = excluded.succeeded, failed = excluded.failed, rows = excluded.rows",
            params![
                run.run_id,
                run.started_at,
                run.finished_at,
                run.status.as_str(),
                run.total as i64,
                run.succeeded as i64,
                run.failed as i64,
                run.rows as i64
            ],
        )
        .map_err(backend)?;
        Ok(())
    }

    async fn run(&self, run_id: &str) -> Result<Option<RunRecord>> {
        let conn = self.conn();
        conn.query_row(
            "SELECT run_id, started_at, finished_at, status, total, succeeded, failed, rows \
             FROM runs WHERE run_id = ?1",
            [run_id],
            run_of,
        )
        .optional()
        .map_err(backend)
    }

    async fn runs(&self) -> Result<Vec<RunRecord>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT run_id, started_at, finished_at, status, total, succeeded, failed, rows \
                 FROM runs ORDER BY started_at DESC, run_id DESC",
            )
            .map_err(backend)?;
        stmt.query_map([], run_of)
            .map_err(backend)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(backend)
    }

    async fn add_to_run(&self, run_id: &str, counter: Counter, n: u64) -> Result<()> {
        let column = match counter {
            Counter::Succeeded => "succeeded",
            Counter::Failed => "failed",
            Counter::Rows => "rows",
        };
        let conn = self.conn();
        let changed = conn
            .execute(
                &format!("UPDATE runs SET {column} = {column} + ?2 WHERE run_id = ?1"),
                params![run_id, n as i64],
            )
            .map_err(backend)?;
        if changed == 0 {
            return Err(Error::Internal(format!(
                "run `{run_id}` is not in the catalog"
            )));
        }
        Ok(())
    }

    async fn record_end(&self, run_id: &str, dataset: &str, end: RunEnd) -> Result<()> {
        // One row per dataset and run: the latest end replaces an earlier one, so counting
        // the rows counts each dataset once.
        let conn = self.conn();
        let known: bool = conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM runs WHERE run_id = ?1)",
                [run_id],
                |r| r.get(0),
            )
            .map_err(backend)?;
        if !known {
            return Err(Error::Internal(format!(
                "run `{run_id}` is not in the catalog"
            )));
        }
        conn.execute(
            "INSERT INTO run_ends (run_id, dataset, ending, at) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (run_id, dataset) DO UPDATE SET ending = ?3, at = ?4 \
                 WHERE ending <> ?3",
            params![run_id, dataset, end.as_str(), now()],
        )
        .map_err(backend)?;
        Ok(())
    }

    async fn end_counts(&self, run_id: &str) -> Result<EndCounts> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT ending, COUNT(*) FROM run_ends WHERE run_id = ?1 GROUP BY ending")
            .map_err(backend)?;
        let rows = stmt
            .query_map([run_id], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })
            .map_err(backend)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(backend)?;
        let mut counts = EndCounts::default();
        for (end, n) in rows {
            *counts.of(RunEnd::parse(&end)?) += n as u64;
        }
        Ok(counts)
    }

    async fn acquire_lease(&self, name: &str, holder: &str, ttl_secs: u64) -> Result<()> {
        let now = unix_now();
        let expires = now.saturating_add(ttl_secs as i64);
        let conn = self.conn();
        let changed = conn
            .execute(
                "UPDATE datasets SET lease_holder = ?2, lease_expires = ?3 WHERE name = ?1 AND \
                 (lease_holder IS NULL OR lease_expires <= ?4 OR lease_holder = ?2)",
                params![name, holder, expires, now],
            )
            .map_err(backend)?;
        if changed == 1 {
            return Ok(());
        }
        let held: Option<(Option<String>, Option<i64>)> = conn
            .query_row(
                "SELECT lease_holder, lease_expires FROM datasets WHERE name = ?1",
                [name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(backend)?;
        match held {
            None => Err(Error::UnknownDataset {
                dataset: name.to_string(),
            }),
            Some((holder, expires)) => Err(Error::LeaseHeld {
                dataset: name.to_string(),
                holder: holder.unwrap_or_default(),
                expires: expires
                    .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
                    .map(skein_core::time::format)
                    .unwrap_or_default(),
            }),
        }
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        let conn = self.conn();
        conn.execute(
            "UPDATE datasets SET lease_holder = NULL, lease_expires = NULL \
             WHERE name = ?1 AND lease_holder = ?2",
            params![name, holder],
        )
        .map_err(backend)?;
        Ok(())
    }

    async fn take_over_lease(&self, name: &str, from: &str, to: &str, ttl_secs: u64) -> Result<()> {
        let expires = unix_now().saturating_add(ttl_secs as i64);
        let changed = {
            let conn = self.conn();
            conn.execute(
                "UPDATE datasets SET lease_holder = ?3, lease_expires = ?4 \
                 WHERE name = ?1 AND lease_holder = ?2",
                params![name, from, to, expires],
            )
            .map_err(backend)?
        };
        if changed == 1 {
            return Ok(());
        }
        // Not `from`'s any more: free (take it as usual) or someone else's (refused).
        self.acquire_lease(name, to, ttl_secs).await
    }

    async fn claim_driver(&self, key: &str, me: &Driver, replace: Option<&Driver>) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(backend)?;
        let there = driver_row(&tx, key)?;
        let free = match &there {
            None => true,
            Some(d) => {
                d.expires_at == 0
                    || (d.pid == me.pid && d.host == me.host)
                    || replace.is_some_and(|r| r == d)
            }
        };
        if !free {
            return Err(there.map(|d| d.held(key)).unwrap_or_else(|| {
                Error::Internal(format!("driver of {key} vanished inside a transaction"))
            }));
        }
        tx.execute(
            "INSERT INTO drivers (key, run_id, pid, host, expires_at) VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (key) DO UPDATE SET run_id = excluded.run_id, pid = excluded.pid, \
             host = excluded.host, expires_at = excluded.expires_at",
            params![key, me.run_id, me.pid, me.host, me.expires_at],
        )
        .map_err(backend)?;
        tx.commit().map_err(backend)
    }

    async fn driver(&self, key: &str) -> Result<Option<Driver>> {
        let conn = self.conn();
        driver_row(&conn, key)
    }

    async fn release_driver(&self, key: &str, me: &Driver) -> Result<()> {
        let conn = self.conn();
        conn.execute(
            "UPDATE drivers SET expires_at = 0 WHERE key = ?1 AND pid = ?2 AND host = ?3",
            params![key, me.pid, me.host],
        )
        .map_err(backend)?;
        Ok(())
    }
}

fn driver_row(conn: &Connection, key: &str) -> Result<Option<Driver>> {
    conn.query_row(
        "SELECT run_id, pid, host, expires_at FROM drivers WHERE key = ?1",
        [key],
        |r| {
            Ok(Driver {
                run_id: r.get(0)?,
                pid: r.get(1)?,
                host: r.get(2)?,
                expires_at: r.get(3)?,
            })
        },
    )
    .optional()
    .map_err(backend)
}
