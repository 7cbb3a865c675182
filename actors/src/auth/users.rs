//! Users in MySQL/MariaDB, in the reference's table
//! `users(id, email, password, created_at, updated_at)` plus an `is_admin`
//! column. The migration only creates what is missing, so a reference
//! database is adopted as it is and its bcrypt rows keep logging in.

use mysql_async::prelude::{Query, Queryable, WithParams};
use mysql_async::{Opts, OptsBuilder, Pool};

#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    #[error("MySQL: {0}")]
    Mysql(#[from] mysql_async::Error),
    #[error("MySQL URL: {0}")]
    Url(#[from] mysql_async::UrlError),
}

#[derive(Debug, Clone)]
pub struct User {
    pub email: String,
    pub password_hash: String,
    pub admin: bool,
}

#[derive(Clone)]
pub struct Users {
    pool: Pool,
}

const CREATE_USERS: &str = "CREATE TABLE IF NOT EXISTS users (
    id INT AUTO_INCREMENT PRIMARY KEY,
    email VARCHAR(255) NOT NULL UNIQUE,
    password VARCHAR(255) NOT NULL,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP
)";

impl Users {
    /// Connects, creating the database and the table when absent.
    pub async fn connect(url: &str) -> Result<Self, UsersError> {
        let opts = Opts::from_url(url)?;
        if let Some(db) = opts.db_name().map(str::to_owned) {
            let server = Pool::new(OptsBuilder::from_opts(opts.clone()).db_name(None::<String>));
            let mut conn = server.get_conn().await?;
            let quoted = db.replace('`', "``");
            conn.query_drop(format!("CREATE DATABASE IF NOT EXISTS `{quoted}`"))
                .await?;
            drop(conn);
            server.disconnect().await?;
        }
        let users = Self {
            pool: Pool::new(opts),
        };
        users.migrate().await?;
        Ok(users)
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

    pub async fn find(&self, email: &str) -> Result<Option<User>, UsersError> {
        let mut conn = self.pool.get_conn().await?;
        let row: Option<(String, String, bool)> =
            "SELECT email, password, is_admin FROM users WHERE email = ?"
                .with((email,))
                .first(&mut conn)
                .await?;
        Ok(row.map(|(email, password_hash, admin)| User {
            email,
            password_hash,
            admin,
        }))
    }

    /// Inserts a user; `Ok(false)` when the e-mail is already taken.
    pub async fn create(
        &self,
        email: &str,
        password_hash: &str,
        admin: bool,
    ) -> Result<bool, UsersError> {
        let mut conn = self.pool.get_conn().await?;
        let result = "INSERT INTO users (email, password, is_admin) VALUES (?, ?, ?)"
            .with((email, password_hash, admin))
            .ignore(&mut conn)
            .await;
        match result {
            Ok(()) => Ok(true),
            // ER_DUP_ENTRY
            Err(mysql_async::Error::Server(e)) if e.code == 1062 => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn ping(&self) -> Result<(), UsersError> {
        self.pool.get_conn().await?.ping().await?;
        Ok(())
    }
}
