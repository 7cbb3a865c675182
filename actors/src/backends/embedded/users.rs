//! The embedded user directory: the `users` table, the same columns as the
//! reference's MySQL table plus `is_admin`, so `vidaud migrate` copies rows
//! as they are (bcrypt hashes included).

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

use super::db::Db;
use crate::backends::{User, UserDirectory, UsersError};
use crate::domain::Timestamp;

fn user(row: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        email: row.get(0)?,
        password_hash: row.get(1)?,
        admin: row.get(2)?,
    })
}

#[async_trait]
impl UserDirectory for Db {
    async fn prepare(&self) -> Result<(), UsersError> {
        // The schema is made when the database is opened.
        Ok(())
    }

    async fn find(&self, email: &str) -> Result<Option<User>, UsersError> {
        let email = email.to_owned();
        self.call("find_user", move |conn| {
            Ok(conn
                .query_row(
                    "SELECT email, password, is_admin FROM users WHERE email = ?1",
                    [email],
                    user,
                )
                .optional()?)
        })
        .await
    }

    async fn create(&self, new: &User) -> Result<bool, UsersError> {
        let new = new.clone();
        self.call("create_user", move |conn| {
            let now = Timestamp::now().millis();
            let inserted = conn.execute(
                "INSERT INTO users (email, password, is_admin, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?4) ON CONFLICT (email) DO NOTHING",
                params![new.email, new.password_hash, new.admin, now],
            )?;
            Ok(inserted == 1)
        })
        .await
    }

    async fn set_password(&self, email: &str, password_hash: &str) -> Result<(), UsersError> {
        let (email, hash) = (email.to_owned(), password_hash.to_owned());
        self.call("set_password", move |conn| {
            conn.execute(
                "UPDATE users SET password = ?2, updated_at = ?3 WHERE email = ?1",
                params![email, hash, Timestamp::now().millis()],
            )?;
            Ok(())
        })
        .await
    }

    async fn page(&self, after: Option<&str>, limit: u32) -> Result<Vec<User>, UsersError> {
        let after = after.unwrap_or("").to_owned();
        self.call("list_users", move |conn| {
            let mut statement = conn.prepare(
                "SELECT email, password, is_admin FROM users WHERE email > ?1 \
                 ORDER BY email LIMIT ?2",
            )?;
            let rows = statement.query_map(params![after, limit], user)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }
}
