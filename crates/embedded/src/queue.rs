//! The job queue in SQLite: visibility timeouts, receive counts, dead letters.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use skein_core::queue::{Delivery, Job, JobQueue};
use skein_core::{Error, Result};

fn backend(e: impl std::fmt::Display) -> Error {
    Error::Backend {
        message: format!("sqlite queue: {e}"),
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A durable local queue; jobs delivered more than `max_receives` times are dead-lettered.
pub struct SqliteQueue {
    conn: Mutex<Connection>,
    max_receives: u32,
    sent: tokio::sync::Notify,
}

impl SqliteQueue {
    /// Opens (creating) the queue database at `path`.
    pub fn open(path: &Path, max_receives: u32) -> Result<SqliteQueue> {
        let conn = Connection::open(path)
            .map_err(|e| backend(format!("cannot open {}: {e}", path.display())))?;
        conn.busy_timeout(std::time::Duration::from_secs(30))
            .map_err(backend)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(backend)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(backend)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS jobs (
                id INTEGER PRIMARY KEY AUTOINCREMENT, grp TEXT NOT NULL, token TEXT NOT NULL UNIQUE,
                body TEXT NOT NULL, receives INTEGER NOT NULL DEFAULT 0, visible_at INTEGER NOT NULL,
                dead INTEGER NOT NULL DEFAULT 0);
             CREATE INDEX IF NOT EXISTS jobs_ready ON jobs (grp, dead, visible_at, id);",
        )
        .map_err(backend)?;
        Ok(SqliteQueue {
            conn: Mutex::new(conn),
            max_receives,
            sent: tokio::sync::Notify::new(),
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until a job is sent in this process, or `timeout` passes (jobs sent by other
    /// processes, and jobs whose visibility ran out, are found by polling).
    pub async fn wait_for_job(&self, timeout: std::time::Duration) {
        let _ = tokio::time::timeout(timeout, self.sent.notified()).await;
    }

    /// Makes every in-flight job visible now: the workers of a crashed process are gone.
    pub fn release_in_flight(&self) -> Result<usize> {
        self.conn()
            .execute("UPDATE jobs SET visible_at = 0 WHERE dead = 0", [])
            .map_err(backend)
    }
}

#[async_trait]
impl JobQueue for SqliteQueue {
    async fn send(&self, group: &str, job: &Job) -> Result<()> {
        let body = serde_json::to_string(job).map_err(|e| Error::Internal(e.to_string()))?;
        self.conn()
            .execute(
                "INSERT OR IGNORE INTO jobs (grp, token, body, visible_at) VALUES (?1, ?2, ?3, 0)",
                params![group, job.task_token, body],
            )
            .map_err(backend)?;
        self.sent.notify_waiters();
        Ok(())
    }

    async fn receive(&self, group: &str, visibility_secs: u64) -> Result<Option<Delivery>> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(backend)?;
        let now = now_ms();
        loop {
            let next: Option<(i64, String, u32)> = tx
                .query_row(
                    "SELECT id, body, receives FROM jobs WHERE grp = ?1 AND dead = 0 AND visible_at <= ?2 \
                     ORDER BY id LIMIT 1",
                    params![group, now],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()
                .map_err(backend)?;
            let Some((id, body, receives)) = next else {
                tx.commit().map_err(backend)?;
                return Ok(None);
            };
            if receives >= self.max_receives {
                tx.execute("UPDATE jobs SET dead = 1 WHERE id = ?1", [id])
                    .map_err(backend)?;
                continue;
            }
            let visible_at = now + (visibility_secs as i64) * 1000;
            tx.execute(
                "UPDATE jobs SET receives = receives + 1, visible_at = ?2 WHERE id = ?1",
                params![id, visible_at],
            )
            .map_err(backend)?;
            tx.commit().map_err(backend)?;
            let job: Job = serde_json::from_str(&body)
                .map_err(|e| Error::Internal(format!("queued job: {e}")))?;
            return Ok(Some(Delivery {
                receipt: id.to_string(),
                receives: receives + 1,
                job,
            }));
        }
    }

    async fn extend(&self, delivery: &Delivery, visibility_secs: u64) -> Result<()> {
        let visible_at = now_ms() + (visibility_secs as i64) * 1000;
        self.conn()
            .execute(
                "UPDATE jobs SET visible_at = ?2 WHERE id = ?1",
                params![delivery.receipt, visible_at],
            )
            .map_err(backend)?;
        Ok(())
    }

    async fn delete(&self, delivery: &Delivery) -> Result<()> {
        self.conn()
            .execute("DELETE FROM jobs WHERE id = ?1", [&delivery.receipt])
            .map_err(backend)?;
        Ok(())
    }

    async fn depth(&self, group: &str) -> Result<u64> {
        self.conn()
            .query_row(
                "SELECT COUNT(*) FROM jobs WHERE grp = ?1 AND dead = 0",
                [group],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(backend)
    }

    async fn dead_letters(&self, group: &str) -> Result<Vec<Job>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT body FROM jobs WHERE grp = ?1 AND dead = 1 ORDER BY id")
            .map_err(backend)?;
        let bodies = stmt
            .query_map([group], |r| r.get::<_, String>(0))
            .map_err(backend)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(backend)?;
        bodies
            .iter()
            .map(|b| {
                serde_json::from_str(b).map_err(|e| Error::Internal(format!("queued job: {e}")))
            })
            .collect()
    }
}
