//! The embedded node's SQLite database (`vidaud.db` in the data directory):
//! users, jobs, the durable queue, the files' records and resumable uploads.
//!
//! One connection, used by one statement (or one transaction) at a time on
//! the blocking pool: SQLite serialises writers anyway, each operation is
//! microseconds, and a single connection makes every multi-statement step
//! atomic without busy retries. WAL journal, `synchronous = FULL`: a commit
//! is on disk when it returns, so what a client was told is stored survives
//! a crash or a power cut, as a broker's confirm does.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

use crate::backends::{QueueError, StoreError, UsersError};
use crate::domain::UserId;

pub const BACKEND: &str = "SQLite";

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull) {
            return StoreError::Full(std::io::Error::new(std::io::ErrorKind::StorageFull, e));
        }
        StoreError::backend(BACKEND, e)
    }
}

impl From<rusqlite::Error> for QueueError {
    fn from(e: rusqlite::Error) -> Self {
        QueueError::backend(BACKEND, e)
    }
}

impl From<rusqlite::Error> for UsersError {
    fn from(e: rusqlite::Error) -> Self {
        UsersError::backend(BACKEND, e)
    }
}

/// The schema, made when missing. Ids are their 24-digit lowercase hex
/// text (so they sort as their bytes do), times are milliseconds since the
/// epoch, output options are their JSON.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    password TEXT NOT NULL,
    is_admin INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS users_by_change ON users (updated_at);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    filename TEXT NOT NULL,
    video_fid TEXT NOT NULL,
    mp3_fid TEXT NOT NULL,
    state TEXT NOT NULL,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    retries INTEGER NOT NULL DEFAULT 0,
    output TEXT NOT NULL,
    progress REAL,
    node TEXT,
    notified INTEGER NOT NULL DEFAULT 0,
    mailed INTEGER NOT NULL DEFAULT 0,
    lease_until INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_by_owner ON jobs (owner, id);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state, updated_at);
CREATE INDEX IF NOT EXISTS jobs_by_age ON jobs (created_at);
CREATE TABLE IF NOT EXISTS files (
    bucket TEXT NOT NULL,
    id TEXT NOT NULL,
    length INTEGER NOT NULL,
    filename TEXT NOT NULL,
    owner TEXT NOT NULL,
    content_type TEXT,
    job_id TEXT,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (bucket, id)
);
CREATE INDEX IF NOT EXISTS files_by_owner ON files (owner);
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    payload BLOB NOT NULL,
    reason TEXT,
    node TEXT,
    deliveries INTEGER NOT NULL DEFAULT 0,
    held_by TEXT,
    created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_ready ON messages (queue, held_by, seq);
CREATE TABLE IF NOT EXISTS uploads (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    length INTEGER NOT NULL,
    stored INTEGER NOT NULL,
    filename TEXT NOT NULL,
    content_type TEXT,
    output TEXT NOT NULL,
    job_id TEXT NOT NULL,
    mp3_fid TEXT NOT NULL,
    queued INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    metadata TEXT NOT NULL,
    holder INTEGER,
    held_until INTEGER
);
CREATE INDEX IF NOT EXISTS uploads_by_expiry ON uploads (expires_at);
CREATE INDEX IF NOT EXISTS uploads_by_owner ON uploads (owner, queued);
CREATE TABLE IF NOT EXISTS webhook_endpoints (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    url TEXT NOT NULL,
    secret TEXT NOT NULL,
    events TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS webhook_endpoints_by_owner ON webhook_endpoints (owner, id);
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    id TEXT PRIMARY KEY,
    target TEXT NOT NULL,
    endpoint TEXT,
    owner TEXT NOT NULL,
    job_id TEXT NOT NULL,
    url TEXT NOT NULL,
    secret TEXT NOT NULL,
    event TEXT NOT NULL,
    payload TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_at INTEGER,
    created_at INTEGER NOT NULL,
    history TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS webhook_deliveries_due ON webhook_deliveries (state, next_at);
CREATE INDEX IF NOT EXISTS webhook_deliveries_by_target
    ON webhook_deliveries (target, state, created_at);
CREATE INDEX IF NOT EXISTS webhook_deliveries_by_endpoint ON webhook_deliveries (endpoint);
CREATE INDEX IF NOT EXISTS webhook_deliveries_listed ON webhook_deliveries (target, created_at);
CREATE TABLE IF NOT EXISTS reservations (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    jobs INTEGER NOT NULL,
    until INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS reservations_by_owner ON reservations (owner, until);
CREATE TABLE IF NOT EXISTS reservation_versions (
    owner TEXT PRIMARY KEY,
    version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS webhook_targets (
    target TEXT PRIMARY KEY,
    node TEXT NOT NULL,
    until INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS ended_sessions (
    session TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    ended_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS ended_sessions_by_time ON ended_sessions (ended_at);
CREATE TABLE IF NOT EXISTS segments (
    job_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    work TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    node TEXT,
    lease_until INTEGER,
    progress REAL,
    error TEXT,
    PRIMARY KEY (job_id, idx)
);
";

/// Columns added since the first schema: (table, column, type). A database
/// made before them gets them at open; a new one gets them the same way,
/// so this list is the only place they are declared.
const ADDED_COLUMNS: &[(&str, &str, &str)] = &[
    ("users", "token_generation", "INTEGER NOT NULL DEFAULT 0"),
    ("users", "disabled", "INTEGER NOT NULL DEFAULT 0"),
    ("users", "deleted", "INTEGER NOT NULL DEFAULT 0"),
    ("users", "user_id", "TEXT"),
    ("users", "quota_bytes", "INTEGER"),
    ("users", "max_active_jobs", "INTEGER"),
    ("jobs", "username", "TEXT NOT NULL DEFAULT ''"),
    ("uploads", "username", "TEXT NOT NULL DEFAULT ''"),
    ("jobs", "audio_bytes", "INTEGER"),
    ("jobs", "audio_ms", "INTEGER"),
    ("jobs", "audio_loudness", "TEXT"),
    ("jobs", "audio_replaygain", "TEXT"),
    ("jobs", "mail_node", "TEXT"),
    ("jobs", "mail_until", "INTEGER"),
    ("jobs", "callback_url", "TEXT"),
    ("jobs", "callback_secret", "TEXT"),
    ("jobs", "segments_total", "INTEGER"),
    ("jobs", "segments_done", "INTEGER"),
    ("uploads", "callback_url", "TEXT"),
    ("uploads", "callback_secret", "TEXT"),
];

/// Adds the [`ADDED_COLUMNS`] a table lacks.
fn add_missing_columns(connection: &Connection) -> rusqlite::Result<()> {
    for (table, column, kind) in ADDED_COLUMNS {
        let present: bool = connection.query_row(
            &format!("SELECT COUNT(*) > 0 FROM pragma_table_info('{table}') WHERE name = ?1"),
            [column],
            |row| row.get(0),
        )?;
        if !present {
            connection.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {kind}"))?;
        }
    }
    Ok(())
}

/// Gives every user that has none its stable id, then makes whatever a
/// database from before user ids holds owned by e-mail owned by the id of
/// the user with that e-mail (an e-mail no user has any more stays as it
/// is: no id is ever an e-mail, so nobody owns it). Cheap when done: the
/// owners looked for are those with an `@`.
fn carry_over_owners(connection: &Connection) -> rusqlite::Result<()> {
    let unnamed: Vec<String> = connection
        .prepare("SELECT email FROM users WHERE user_id IS NULL")?
        .query_map([], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for email in unnamed {
        connection.execute(
            "UPDATE users SET user_id = ?2 WHERE email = ?1 AND user_id IS NULL",
            [email, UserId::new().to_hex()],
        )?;
    }
    connection.execute_batch(
        "CREATE UNIQUE INDEX IF NOT EXISTS users_by_id ON users (user_id);
         UPDATE jobs SET username = owner WHERE username = '' AND owner LIKE '%@%';
         UPDATE uploads SET username = owner WHERE username = '' AND owner LIKE '%@%';",
    )?;
    for table in [
        "jobs",
        "files",
        "uploads",
        "webhook_endpoints",
        "webhook_deliveries",
        "reservations",
    ] {
        connection.execute_batch(&format!(
            "UPDATE {table} SET owner = (SELECT user_id FROM users WHERE users.email = {table}.owner) \
             WHERE owner LIKE '%@%' \
             AND EXISTS (SELECT 1 FROM users WHERE users.email = {table}.owner)"
        ))?;
    }
    Ok(())
}

/// The database; clones share the connection.
#[derive(Clone)]
pub struct Db {
    connection: Arc<Mutex<Connection>>,
}

impl Db {
    /// Opens (creating) the database at `path` and makes the schema.
    pub fn open(path: &Path) -> Result<Self, rusqlite::Error> {
        let connection = Connection::open(path)?;
        connection.pragma_update(None, "journal_mode", "WAL")?;
        connection.pragma_update(None, "synchronous", "FULL")?;
        connection.pragma_update(None, "foreign_keys", "ON")?;
        connection.busy_timeout(std::time::Duration::from_secs(5))?;
        connection.execute_batch(SCHEMA)?;
        add_missing_columns(&connection)?;
        carry_over_owners(&connection)?;
        Ok(Self {
            connection: Arc::new(Mutex::new(connection)),
        })
    }

    /// Runs `work` on the connection, off the async threads, timed as
    /// `dependency_operation_duration_seconds{dependency="sqlite",operation}`.
    pub async fn call<T, E, F>(&self, operation: &'static str, work: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<rusqlite::Error> + Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
    {
        let db = self.clone();
        let blocking = tokio::task::spawn_blocking(move || db.call_blocking(work));
        match crate::metrics::timed("sqlite", operation, blocking).await {
            Ok(result) => result,
            // The blocking pool is shutting down (the runtime is stopping).
            Err(_) => Err(E::from(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_INTERRUPT),
                Some("the node is stopping".to_owned()),
            ))),
        }
    }

    /// Runs `work` on the connection in this thread (tests, drop guards).
    pub fn call_blocking<T, E, F>(&self, work: F) -> Result<T, E>
    where
        F: FnOnce(&mut Connection) -> Result<T, E>,
    {
        // A panic under the lock leaves no transaction open (rusqlite rolls
        // back on drop): the connection is still sound.
        let mut connection = self
            .connection
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        work(&mut connection)
    }
}
