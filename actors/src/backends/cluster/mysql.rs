//! The cluster's user directory in MySQL/MariaDB, in the reference's table
//! `users(id, email, password, created_at, updated_at)` plus an `is_admin`
//! column. The migration only creates what is missing, so a reference
//! database is adopted as it is and its bcrypt rows keep logging in (and
//! become argon2id at their next login).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mysql_async::prelude::{Query, Queryable, WithParams};
use mysql_async::{Opts, OptsBuilder, Pool};
use tokio::sync::OnceCell;

use crate::backends::{EndedSession, User, UserDirectory, UserLimits, UsersError};
use crate::domain::{Timestamp, UserId};

const BACKEND: &str = "MySQL";

impl From<mysql_async::Error> for UsersError {
    fn from(e: mysql_async::Error) -> Self {
        UsersError::backend(BACKEND, e)
    }
}

/// The user store. Creating it does no I/O: the database and table are
/// made on first use, so a node starts (and serves token-authenticated
/// requests) while MySQL is away, and login/register answer 503 until it
/// is back.
#[derive(Clone)]
pub struct MysqlUsers {
    pool: Pool,
    opts: Opts,
    schema: Arc<OnceCell<()>>,
}

const CREATE_USERS: &str = "CREATE TABLE IF NOT EXISTS users (
    id INT AUTO_INCREMENT PRIMARY KEY,
    email VARCHAR(255) NOT NULL UNIQUE,
    password VARCHAR(255) NOT NULL,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP
)";

/// Sessions logged out before their tokens expire (see `UserDirectory::
/// end_session`); `expires_at` in ms since the epoch, `ended_at` by the
/// server's clock, which every node's refresh compares with.
const CREATE_ENDED_SESSIONS: &str = "CREATE TABLE IF NOT EXISTS ended_sessions (
    session VARCHAR(64) PRIMARY KEY,
    user_id CHAR(24) NOT NULL,
    expires_at BIGINT NOT NULL,
    ended_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    INDEX ended_sessions_by_time (ended_at)
)";

/// Columns added to the reference's `users` table: (name, definition).
const ADDED_COLUMNS: &[(&str, &str)] = &[
    ("is_admin", "BOOLEAN NOT NULL DEFAULT FALSE"),
    ("token_generation", "INT UNSIGNED NOT NULL DEFAULT 0"),
    ("disabled", "BOOLEAN NOT NULL DEFAULT FALSE"),
    ("deleted", "BOOLEAN NOT NULL DEFAULT FALSE"),
    ("user_id", "CHAR(24) NULL"),
    ("quota_bytes", "BIGINT UNSIGNED NULL"),
    ("max_active_jobs", "BIGINT UNSIGNED NULL"),
];

const COLUMNS: &str = "email, password, is_admin, token_generation, disabled, deleted, user_id, \
                       quota_bytes, max_active_jobs";

type Row = (
    String,
    String,
    bool,
    u32,
    bool,
    bool,
    Option<String>,
    Option<u64>,
    Option<u64>,
);

/// A row as a user, if it has its id (see [`MysqlUsers::users`]).
fn user(
    (email, password_hash, admin, generation, disabled, deleted, id, quota_bytes, max_active_jobs): Row,
) -> Option<User> {
    Some(User {
        limits: UserLimits {
            quota_bytes,
            max_active_jobs,
        },
        id: UserId::parse(id.as_deref()?).ok()?,
        email,
        password_hash,
        admin,
        generation,
        disabled,
        deleted,
    })
}

/// Gives every row that has none (the reference's rows, rows made by
/// hand) its stable id.
async fn name_unnamed(conn: &mut mysql_async::Conn) -> Result<(), UsersError> {
    let unnamed: Vec<String> = conn
        .query("SELECT email FROM users WHERE user_id IS NULL OR LENGTH(user_id) <> 24")
        .await?;
    for email in unnamed {
        "UPDATE users SET user_id = ? WHERE email = ? AND (user_id IS NULL OR LENGTH(user_id) <> 24)"
            .with((UserId::new().to_hex(), email))
            .ignore(&mut *conn)
            .await?;
    }
    Ok(())
}

impl MysqlUsers {
    pub fn new(url: &str) -> Result<Self, UsersError> {
        let opts = Opts::from_url(url).map_err(|e| UsersError::backend(BACKEND, e))?;
        Ok(Self {
            pool: Pool::new(opts.clone()),
            opts,
            schema: Arc::new(OnceCell::new()),
        })
    }

    /// Makes sure the database and the `users` table exist (once per process).
    pub async fn ensure_schema(&self) -> Result<(), UsersError> {
        self.schema
            .get_or_try_init(|| async {
                self.create_database().await?;
                self.migrate().await
            })
            .await?;
        Ok(())
    }

    async fn create_database(&self) -> Result<(), UsersError> {
        let Some(db) = self.opts.db_name() else {
            return Ok(());
        };
        let server = Pool::new(OptsBuilder::from_opts(self.opts.clone()).db_name(None::<String>));
        let mut conn = server.get_conn().await?;
        let quoted = db.replace('`', "``");
        conn.query_drop(format!("CREATE DATABASE IF NOT EXISTS `{quoted}`"))
            .await?;
        drop(conn);
        server.disconnect().await?;
        Ok(())
    }

    async fn migrate(&self) -> Result<(), UsersError> {
        let mut conn = self.pool.get_conn().await?;
        conn.query_drop(CREATE_USERS).await?;
        conn.query_drop(CREATE_ENDED_SESSIONS).await?;
        // Columns the reference's table lacks, added in place (its rows
        // keep working: the defaults are what they meant).
        for (column, definition) in ADDED_COLUMNS {
            let present: Option<u8> = "SELECT 1 FROM information_schema.columns \
                 WHERE table_schema = DATABASE() AND table_name = 'users' AND column_name = ?"
                .with((column,))
                .first(&mut conn)
                .await?;
            if present.is_none() {
                let added = conn
                    .query_drop(format!(
                        "ALTER TABLE users ADD COLUMN {column} {definition}"
                    ))
                    .await;
                match added {
                    // ER_DUP_FIELDNAME: another node migrated at the same moment.
                    Err(mysql_async::Error::Server(e)) if e.code == 1060 => {}
                    other => other?,
                }
            }
        }
        // Every user gets a stable id (rows of the reference's table have none).
        name_unnamed(&mut conn).await?;
        match conn
            .query_drop("CREATE UNIQUE INDEX users_by_user_id ON users (user_id)")
            .await
        {
            // ER_DUP_KEYNAME: there already.
            Err(mysql_async::Error::Server(e)) if e.code == 1061 => {}
            other => other?,
        }
        // The revocation cache reads recent changes every few seconds.
        match conn
            .query_drop("CREATE INDEX users_by_change ON users (updated_at)")
            .await
        {
            // ER_DUP_KEYNAME: there already.
            Err(mysql_async::Error::Server(e)) if e.code == 1061 => {}
            other => other?,
        }
        Ok(())
    }

    /// The users `sql` selects (as [`COLUMNS`]) with `params`. A row made
    /// by hand since start-up has no id yet: it is given one, and read again.
    async fn users<P>(
        &self,
        operation: &'static str,
        sql: &str,
        params: P,
    ) -> Result<Vec<User>, UsersError>
    where
        P: Into<mysql_async::Params> + Clone + Send + Sync,
    {
        self.ensure_schema().await?;
        let mut conn = self.pool.get_conn().await?;
        let mut named = false;
        loop {
            let query = sql.with(params.clone()).fetch(&mut conn);
            let rows: Vec<Row> = crate::metrics::timed("mysql", operation, query).await?;
            let read = rows.len();
            let users: Vec<User> = rows.into_iter().filter_map(user).collect();
            // A row whose id is not one even after naming was spoilt by hand.
            if named || users.len() == read {
                return Ok(users);
            }
            name_unnamed(&mut conn).await?;
            named = true;
        }
    }

    pub async fn ping(&self) -> Result<(), UsersError> {
        self.pool.get_conn().await?.ping().await?;
        Ok(())
    }
}

#[async_trait]
impl UserDirectory for MysqlUsers {
    async fn prepare(&self) -> Result<(), UsersError> {
        self.ensure_schema().await
    }

    async fn find(&self, email: &str) -> Result<Option<User>, UsersError> {
        let sql = format!("SELECT {COLUMNS} FROM users WHERE email = ?");
        Ok(self.users("find_user", &sql, (email,)).await?.pop())
    }

    async fn find_by_id(&self, id: UserId) -> Result<Option<User>, UsersError> {
        let sql = format!("SELECT {COLUMNS} FROM users WHERE user_id = ?");
        Ok(self
            .users("find_user_by_id", &sql, (id.to_hex(),))
            .await?
            .pop())
    }

    async fn create(&self, user: &User) -> Result<bool, UsersError> {
        self.ensure_schema().await?;
        let mut conn = self.pool.get_conn().await?;
        // No transaction: a locking read of an absent e-mail takes a gap
        // lock, and concurrent registrations then deadlock on it. A plain
        // insert; if the e-mail is a tombstone's, one guarded update.
        let insert = "INSERT INTO users \
                      (email, password, is_admin, token_generation, disabled, deleted, user_id, \
                      quota_bytes, max_active_jobs) \
                      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            .with((
                &user.email,
                &user.password_hash,
                user.admin,
                user.generation,
                user.disabled,
                user.deleted,
                user.id.to_hex(),
                user.limits.quota_bytes,
                user.limits.max_active_jobs,
            ))
            .ignore(&mut conn);
        match crate::metrics::timed("mysql", "create_user", insert).await {
            Ok(()) => return Ok(true),
            // ER_DUP_ENTRY: taken, perhaps by a tombstone.
            Err(mysql_async::Error::Server(e)) if e.code == 1062 => {}
            Err(e) => return Err(e.into()),
        }
        // The new account replaces the tombstone, at a later generation
        // than any token of the old one.
        "UPDATE users SET password = ?, is_admin = ?, \
         token_generation = GREATEST(token_generation + 1, ?), disabled = ?, deleted = ?, \
         user_id = ?, quota_bytes = ?, max_active_jobs = ?, created_at = CURRENT_TIMESTAMP, \
         updated_at = CURRENT_TIMESTAMP WHERE email = ? AND deleted = TRUE"
            .with((
                &user.password_hash,
                user.admin,
                user.generation,
                user.disabled,
                user.deleted,
                user.id.to_hex(),
                user.limits.quota_bytes,
                user.limits.max_active_jobs,
                &user.email,
            ))
            .ignore(&mut conn)
            .await?;
        Ok(conn.affected_rows() == 1)
    }

    async fn delete(&self, email: &str) -> Result<bool, UsersError> {
        self.ensure_schema().await?;
        let mut conn = self.pool.get_conn().await?;
        "UPDATE users SET deleted = TRUE, password = '', is_admin = FALSE, disabled = FALSE, \
         token_generation = token_generation + 1, updated_at = CURRENT_TIMESTAMP \
         WHERE email = ? AND deleted = FALSE"
            .with((email,))
            .ignore(&mut conn)
            .await?;
        Ok(conn.affected_rows() == 1)
    }

    async fn set_password(&self, email: &str, password_hash: &str) -> Result<(), UsersError> {
        self.ensure_schema().await?;
        let mut conn = self.pool.get_conn().await?;
        "UPDATE users SET password = ? WHERE email = ? AND deleted = FALSE"
            .with((password_hash, email))
            .ignore(&mut conn)
            .await?;
        Ok(())
    }

    async fn change_password(&self, email: &str, password_hash: &str) -> Result<bool, UsersError> {
        self.ensure_schema().await?;
        let mut conn = self.pool.get_conn().await?;
        "UPDATE users SET password = ?, token_generation = token_generation + 1, \
         updated_at = CURRENT_TIMESTAMP WHERE email = ? AND deleted = FALSE"
            .with((password_hash, email))
            .ignore(&mut conn)
            .await?;
        Ok(conn.affected_rows() == 1)
    }

    async fn set_limits(&self, email: &str, limits: UserLimits) -> Result<bool, UsersError> {
        self.ensure_schema().await?;
        let mut conn = self.pool.get_conn().await?;
        "UPDATE users SET quota_bytes = ?, max_active_jobs = ?, updated_at = CURRENT_TIMESTAMP \
         WHERE email = ? AND deleted = FALSE"
            .with((limits.quota_bytes, limits.max_active_jobs, email))
            .ignore(&mut conn)
            .await?;
        if conn.affected_rows() == 1 {
            return Ok(true);
        }
        // MySQL counts a row set to what it held as unaffected.
        let live: Option<u8> = "SELECT 1 FROM users WHERE email = ? AND deleted = FALSE"
            .with((email,))
            .first(&mut conn)
            .await?;
        Ok(live.is_some())
    }

    async fn revoke(&self, email: &str, disabled: Option<bool>) -> Result<bool, UsersError> {
        self.ensure_schema().await?;
        let mut conn = self.pool.get_conn().await?;
        "UPDATE users SET token_generation = token_generation + 1, \
         disabled = COALESCE(?, disabled), updated_at = CURRENT_TIMESTAMP \
         WHERE email = ? AND deleted = FALSE"
            .with((disabled, email))
            .ignore(&mut conn)
            .await?;
        Ok(conn.affected_rows() == 1)
    }

    async fn changed_within(&self, within: Duration) -> Result<Vec<User>, UsersError> {
        // The server's clock on both sides: nodes' clocks may differ from it.
        let sql =
            format!("SELECT {COLUMNS} FROM users WHERE updated_at >= NOW() - INTERVAL ? SECOND");
        self.users("changed_users", &sql, (within.as_secs().max(1),))
            .await
    }

    async fn page(&self, after: Option<&str>, limit: u32) -> Result<Vec<User>, UsersError> {
        let sql = format!("SELECT {COLUMNS} FROM users WHERE email > ? ORDER BY email LIMIT ?");
        self.users("list_users", &sql, (after.unwrap_or("").to_owned(), limit))
            .await
    }

    async fn end_session(&self, ended: &EndedSession) -> Result<(), UsersError> {
        self.ensure_schema().await?;
        let mut conn = self.pool.get_conn().await?;
        let now = Timestamp::now().millis();
        let work = async {
            "DELETE FROM ended_sessions WHERE expires_at < ?"
                .with((now,))
                .ignore(&mut conn)
                .await?;
            "INSERT IGNORE INTO ended_sessions (session, user_id, expires_at) VALUES (?, ?, ?)"
                .with((
                    ended.session.as_str(),
                    ended.user.to_hex(),
                    ended.expires.millis(),
                ))
                .ignore(&mut conn)
                .await
        };
        Ok(crate::metrics::timed("mysql", "end_session", work).await?)
    }

    async fn ended_sessions(
        &self,
        within: Option<Duration>,
    ) -> Result<Vec<EndedSession>, UsersError> {
        self.ensure_schema().await?;
        let mut conn = self.pool.get_conn().await?;
        // The server's clock for `ended_at`, as for the users' changes.
        let now = Timestamp::now().millis();
        let query = match within {
            Some(within) => "SELECT session, user_id, expires_at FROM ended_sessions \
                 WHERE ended_at >= NOW() - INTERVAL ? SECOND AND expires_at >= ?"
                .with((within.as_secs().max(1), now))
                .fetch::<(String, String, i64), _>(&mut conn),
            None => "SELECT session, user_id, expires_at FROM ended_sessions WHERE expires_at >= ?"
                .with((now,))
                .fetch::<(String, String, i64), _>(&mut conn),
        };
        let rows = crate::metrics::timed("mysql", "ended_sessions", query).await?;
        Ok(rows
            .into_iter()
            .filter_map(|(session, user, expires)| {
                Some(EndedSession {
                    session,
                    user: UserId::parse(&user).ok()?,
                    expires: Timestamp::from_millis(expires),
                })
            })
            .collect())
    }
}
