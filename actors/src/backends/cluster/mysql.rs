//! The cluster's user directory in MySQL/MariaDB, in the reference's table
//! `users(id, email, password, created_at, updated_at)` plus an `is_admin`
//! column. The migration only creates what is missing, so a reference
//! database is adopted as it is and its bcrypt rows keep logging in (and
//! become argon2id at their next login).

use std::sync::Arc;

use async_trait::async_trait;
use mysql_async::prelude::{Query, Queryable, WithParams};
use mysql_async::{Opts, OptsBuilder, Pool};
use tokio::sync::OnceCell;

use crate::backends::{User, UserDirectory, UsersError};

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
        let has_admin: Option<u8> = conn
            .query_first(
                "SELECT 1 FROM information_schema.columns
                 WHERE table_schema = DATABASE() AND table_name = 'users' AND column_name = 'is_admin'",
            )
            .await?;
        if has_admin.is_none() {
            let added = conn
                .query_drop("ALTER TABLE users ADD COLUMN is_admin BOOLEAN NOT NULL DEFAULT FALSE")
                .await;
            match added {
                // ER_DUP_FIELDNAME: another node migrated at the same moment.
                Err(mysql_async::Error::Server(e)) if e.code == 1060 => {}
                other => other?,
            }
        }
        Ok(())
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
        self.ensure_schema().await?;
        let mut conn = self.pool.get_conn().await?;
        let query = "SELECT email, password, is_admin FROM users WHERE email = ?"
            .with((email,))
            .first(&mut conn);
        let row: Option<(String, String, bool)> =
            crate::metrics::timed("mysql", "find_user", query).await?;
        Ok(row.map(|(email, password_hash, admin)| User {
            email,
            password_hash,
            admin,
        }))
    }

    async fn create(&self, user: &User) -> Result<bool, UsersError> {
        self.ensure_schema().await?;
        let mut conn = self.pool.get_conn().await?;
        let insert = "INSERT INTO users (email, password, is_admin) VALUES (?, ?, ?)"
            .with((&user.email, &user.password_hash, user.admin))
            .ignore(&mut conn);
        let result = crate::metrics::timed("mysql", "create_user", insert).await;
        match result {
            Ok(()) => Ok(true),
            // ER_DUP_ENTRY
            Err(mysql_async::Error::Server(e)) if e.code == 1062 => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    async fn set_password(&self, email: &str, password_hash: &str) -> Result<(), UsersError> {
        self.ensure_schema().await?;
        let mut conn = self.pool.get_conn().await?;
        "UPDATE users SET password = ? WHERE email = ?"
            .with((password_hash, email))
            .ignore(&mut conn)
            .await?;
        Ok(())
    }

    async fn page(&self, after: Option<&str>, limit: u32) -> Result<Vec<User>, UsersError> {
        self.ensure_schema().await?;
        let mut conn = self.pool.get_conn().await?;
        let rows: Vec<(String, String, bool)> =
            "SELECT email, password, is_admin FROM users WHERE email > ? ORDER BY email LIMIT ?"
                .with((after.unwrap_or(""), limit))
                .fetch(&mut conn)
                .await?;
        Ok(rows
            .into_iter()
            .map(|(email, password_hash, admin)| User {
                email,
                password_hash,
                admin,
            })
            .collect())
    }
}
