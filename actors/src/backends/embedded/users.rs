//! The embedded user directory: the `users` table, the same columns as the
//! reference's MySQL table plus `is_admin`, so `vidaud migrate` copies rows
//! as they are (bcrypt hashes included).

use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

use super::db::Db;
use super::jobs::{count, signed};
use crate::backends::{EndedSession, User, UserDirectory, UserLimits, UsersError};
use crate::domain::{Timestamp, UserId};

const COLUMNS: &str = "email, password, is_admin, token_generation, disabled, deleted, user_id, \
                       quota_bytes, max_active_jobs";

fn user(row: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        email: row.get(0)?,
        password_hash: row.get(1)?,
        admin: row.get(2)?,
        generation: row.get(3)?,
        disabled: row.get(4)?,
        deleted: row.get(5)?,
        id: super::jobs::id_at(row, 6, "user_id")?,
        limits: UserLimits {
            quota_bytes: row.get::<_, Option<i64>>(7)?.map(count),
            max_active_jobs: row.get::<_, Option<i64>>(8)?.map(count),
        },
    })
}

impl Db {
    /// The user whose `column` (a unique one) holds `value`.
    async fn user_where(
        &self,
        operation: &'static str,
        column: &'static str,
        value: String,
    ) -> Result<Option<User>, UsersError> {
        self.call(operation, move |conn| {
            Ok(conn
                .query_row(
                    &format!("SELECT {COLUMNS} FROM users WHERE {column} = ?1"),
                    [value],
                    user,
                )
                .optional()?)
        })
        .await
    }
}

#[async_trait]
impl UserDirectory for Db {
    async fn prepare(&self) -> Result<(), UsersError> {
        // The schema is made when the database is opened.
        Ok(())
    }

    async fn find(&self, email: &str) -> Result<Option<User>, UsersError> {
        self.user_where("find_user", "email", email.to_owned())
            .await
    }

    async fn find_by_id(&self, id: UserId) -> Result<Option<User>, UsersError> {
        self.user_where("find_user_by_id", "user_id", id.to_hex())
            .await
    }

    async fn create(&self, new: &User) -> Result<bool, UsersError> {
        let new = new.clone();
        self.call("create_user", move |conn| {
            let now = Timestamp::now().millis();
            let tx = conn.transaction()?;
            // A tombstone gives way, and passes on its generation.
            let tombstone: Option<u32> = tx
                .query_row(
                    "DELETE FROM users WHERE email = ?1 AND deleted = 1 RETURNING token_generation",
                    [&new.email],
                    |row| row.get(0),
                )
                .optional()?;
            let generation = tombstone.map_or(new.generation, |g| new.generation.max(g + 1));
            let inserted = tx.execute(
                "INSERT INTO users (email, password, is_admin, token_generation, disabled, \
                 deleted, created_at, updated_at, user_id, quota_bytes, max_active_jobs) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8, ?9, ?10) \
                 ON CONFLICT (email) DO NOTHING",
                params![
                    new.email,
                    new.password_hash,
                    new.admin,
                    generation,
                    new.disabled,
                    new.deleted,
                    now,
                    new.id.to_hex(),
                    new.limits.quota_bytes.map(signed),
                    new.limits.max_active_jobs.map(signed)
                ],
            )?;
            tx.commit()?;
            Ok(inserted == 1)
        })
        .await
    }

    async fn delete(&self, email: &str) -> Result<bool, UsersError> {
        let email = email.to_owned();
        self.call("delete_user", move |conn| {
            let n = conn.execute(
                "UPDATE users SET deleted = 1, password = '', is_admin = 0, disabled = 0, \
                 token_generation = token_generation + 1, updated_at = ?2 \
                 WHERE email = ?1 AND deleted = 0",
                params![email, Timestamp::now().millis()],
            )?;
            Ok(n == 1)
        })
        .await
    }

    async fn set_password(&self, email: &str, password_hash: &str) -> Result<(), UsersError> {
        let (email, hash) = (email.to_owned(), password_hash.to_owned());
        self.call("set_password", move |conn| {
            conn.execute(
                "UPDATE users SET password = ?2, updated_at = ?3 WHERE email = ?1 AND deleted = 0",
                params![email, hash, Timestamp::now().millis()],
            )?;
            Ok(())
        })
        .await
    }

    async fn change_password(&self, email: &str, password_hash: &str) -> Result<bool, UsersError> {
        let (email, hash) = (email.to_owned(), password_hash.to_owned());
        self.call("change_password", move |conn| {
            let n = conn.execute(
                "UPDATE users SET password = ?2, token_generation = token_generation + 1, \
                 updated_at = ?3 WHERE email = ?1 AND deleted = 0",
                params![email, hash, Timestamp::now().millis()],
            )?;
            Ok(n == 1)
        })
        .await
    }

    async fn set_limits(&self, email: &str, limits: UserLimits) -> Result<bool, UsersError> {
        let email = email.to_owned();
        self.call("set_user_limits", move |conn| {
            let n = conn.execute(
                "UPDATE users SET quota_bytes = ?2, max_active_jobs = ?3, updated_at = ?4 \
                 WHERE email = ?1 AND deleted = 0",
                params![
                    email,
                    limits.quota_bytes.map(signed),
                    limits.max_active_jobs.map(signed),
                    Timestamp::now().millis()
                ],
            )?;
            Ok(n == 1)
        })
        .await
    }

    async fn revoke(&self, email: &str, disabled: Option<bool>) -> Result<bool, UsersError> {
        let email = email.to_owned();
        self.call("revoke_tokens", move |conn| {
            let n = conn.execute(
                "UPDATE users SET token_generation = token_generation + 1, \
                 disabled = COALESCE(?2, disabled), updated_at = ?3 WHERE email = ?1 AND deleted = 0",
                params![email, disabled, Timestamp::now().millis()],
            )?;
            Ok(n == 1)
        })
        .await
    }

    async fn changed_within(&self, within: Duration) -> Result<Vec<User>, UsersError> {
        let since = Timestamp::now().minus(within).millis();
        self.call("changed_users", move |conn| {
            let mut statement = conn.prepare(&format!(
                "SELECT {COLUMNS} FROM users WHERE updated_at >= ?1"
            ))?;
            let rows = statement.query_map([since], user)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn page(&self, after: Option<&str>, limit: u32) -> Result<Vec<User>, UsersError> {
        let after = after.unwrap_or("").to_owned();
        self.call("list_users", move |conn| {
            let mut statement = conn.prepare(&format!(
                "SELECT {COLUMNS} FROM users WHERE email > ?1 ORDER BY email LIMIT ?2"
            ))?;
            let rows = statement.query_map(params![after, limit], user)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn end_session(&self, ended: &EndedSession) -> Result<(), UsersError> {
        let ended = ended.clone();
        let now = Timestamp::now().millis();
        self.call("end_session", move |conn| {
            conn.execute("DELETE FROM ended_sessions WHERE expires_at < ?1", [now])?;
            conn.execute(
                "INSERT OR IGNORE INTO ended_sessions (session, user_id, expires_at, ended_at) \
                 VALUES (?1, ?2, ?3, ?4)",
                params![
                    ended.session,
                    ended.user.to_hex(),
                    ended.expires.millis(),
                    now
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn ended_sessions(
        &self,
        within: Option<Duration>,
    ) -> Result<Vec<EndedSession>, UsersError> {
        let now = Timestamp::now();
        let since = within.map_or(i64::MIN, |within| now.minus(within).millis());
        self.call("ended_sessions", move |conn| {
            let mut statement = conn.prepare(
                "SELECT session, user_id, expires_at FROM ended_sessions \
                 WHERE ended_at >= ?1 AND expires_at >= ?2",
            )?;
            let rows = statement.query_map(params![since, now.millis()], |row| {
                Ok(EndedSession {
                    session: row.get(0)?,
                    user: super::jobs::id_at(row, 1, "user_id")?,
                    expires: Timestamp::from_millis(row.get(2)?),
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }
}
