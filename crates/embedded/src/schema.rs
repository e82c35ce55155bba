//! The catalog's tables, versioned with `PRAGMA user_version`.

use rusqlite::Connection;

/// Schema steps, in order; step `i` brings the database to version `i + 1`.
const STEPS: &[&str] = &[
    r#"
CREATE TABLE datasets (
    name              TEXT PRIMARY KEY,
    spec              TEXT NOT NULL,
    spec_hash         TEXT NOT NULL,
    spec_version      INTEGER NOT NULL,
    status            TEXT NOT NULL,
    reason            TEXT,
    current_version   INTEGER,
    rows              INTEGER,
    last_verification TEXT,
    approval_token    TEXT,
    updated_at        TEXT NOT NULL,
    lease_holder      TEXT,
    lease_expires     INTEGER
);
CREATE TABLE history (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL REFERENCES datasets (name),
    at          TEXT NOT NULL,
    from_status TEXT,
    to_status   TEXT NOT NULL,
    reason      TEXT,
    run_id      TEXT
);
CREATE INDEX history_by_name ON history (name, id);
CREATE TABLE versions (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    name     TEXT NOT NULL REFERENCES datasets (name),
    at       TEXT NOT NULL,
    action   TEXT NOT NULL,
    version  INTEGER NOT NULL,
    manifest TEXT NOT NULL
);
CREATE INDEX versions_by_name ON versions (name, id);
CREATE TABLE attempts (
    name        TEXT NOT NULL REFERENCES datasets (name),
    attempt     INTEGER NOT NULL,
    run_id      TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    outcome     TEXT,
    error       TEXT,
    PRIMARY KEY (name, attempt)
);
CREATE TABLE runs (
    run_id      TEXT PRIMARY KEY,
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    status      TEXT NOT NULL,
    total       INTEGER NOT NULL DEFAULT 0,
    succeeded   INTEGER NOT NULL DEFAULT 0,
    failed      INTEGER NOT NULL DEFAULT 0,
    rows        INTEGER NOT NULL DEFAULT 0
);
"#,
    r#"
CREATE TABLE drivers (
    key        TEXT PRIMARY KEY,
    run_id     TEXT NOT NULL,
    pid        INTEGER NOT NULL,
    host       TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
"#,
    r#"
CREATE TABLE run_ends (
    run_id  TEXT NOT NULL,
    dataset TEXT NOT NULL,
    ending  TEXT NOT NULL,
    at      TEXT NOT NULL,
    PRIMARY KEY (run_id, dataset)
);
"#,
];

/// Brings the database to the newest schema; refuses one written by a newer skein.
///
/// The version is read inside the write transaction: two processes opening a new catalog
/// at once must not both create the tables.
pub fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    // Up to date (the common case): no write lock, so readers never block a running run.
    let version: usize =
        conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))? as usize;
    if version == STEPS.len() {
        return Ok(());
    }
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let result = migrate_locked(conn);
    match result {
        Ok(()) => conn.execute_batch("COMMIT"),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

fn migrate_locked(conn: &Connection) -> rusqlite::Result<()> {
    let version: usize =
        conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))? as usize;
    if version > STEPS.len() {
        return Err(rusqlite::Error::InvalidParameterName(format!(
            "the catalog has schema version {version}, newer than this skein knows ({}); upgrade skein",
            STEPS.len()
        )));
    }
    for (i, step) in STEPS.iter().enumerate().skip(version) {
        conn.execute_batch(&format!("{step}; PRAGMA user_version = {};", i + 1))?;
    }
    Ok(())
}
