//! What a backend must do to keep users: accounts by e-mail, each with a
//! stable id (what owns its jobs, files, uploads and webhooks), their
//! password hash (argon2id, or a reference bcrypt row until its next login),
//! whether they are admins, and their token generation: a number every
//! token carries, bumped to revoke all of a user's tokens at once (a new
//! password, "log out everywhere", a disabled or deleted account).
//!
//! A deleted account stays as a tombstone (its e-mail and generation, no
//! password), so that every node learns of the deletion the way it learns
//! of any change, and so that an account registered later on the same
//! e-mail starts at a later generation: the old tokens never fit it.
//!
//! One session (the web app's log-in: a token with a session id) is ended
//! on its own, without touching the user's other tokens: the directory
//! keeps the ended sessions until their tokens would have expired anyway,
//! and every node reads them as it reads the users' changes.

use std::time::Duration;

use async_trait::async_trait;

use super::UsersError;
use crate::domain::{Timestamp, UserId};

/// A session ended before its token expired (logged out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndedSession {
    /// The `sid` of the session's token.
    pub session: String,
    pub user: UserId,
    /// When its token expires: after that it needs no ending.
    pub expires: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct User {
    /// Given at creation, never changed, never reused: a new account on
    /// the same e-mail is another id.
    pub id: UserId,
    pub email: String,
    pub password_hash: String,
    pub admin: bool,
    /// Tokens issued with another generation are revoked.
    pub generation: u32,
    /// A disabled account cannot log in, and its tokens are revoked.
    pub disabled: bool,
    /// A deleted account: a tombstone, as if absent to everyone but the
    /// token checks.
    pub deleted: bool,
    /// Limits set for this user by an administrator.
    pub limits: UserLimits,
}

/// Limits an administrator set for one user; `None`: the node's defaults
/// (`storage.quota_bytes_per_user`, `storage.max_active_jobs_per_user`).
/// As there, 0 is no limit.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
#[serde(deny_unknown_fields)]
pub struct UserLimits {
    /// Bytes of videos and audio the user may keep.
    #[serde(default)]
    pub quota_bytes: Option<u64>,
    /// Jobs queued, converting or uploading at once.
    #[serde(default)]
    pub max_active_jobs: Option<u64>,
}

impl UserLimits {
    /// The storage quota in force, given the node's default.
    pub fn quota_bytes_or(&self, default: u64) -> u64 {
        self.quota_bytes.unwrap_or(default)
    }

    /// The active-job limit in force, given the node's default.
    pub fn max_active_jobs_or(&self, default: u64) -> u64 {
        self.max_active_jobs.unwrap_or(default)
    }
}

#[async_trait]
pub trait UserDirectory: Send + Sync {
    /// Creates what the directory needs (schema) if missing; safe to repeat.
    async fn prepare(&self) -> Result<(), UsersError>;

    async fn find(&self, email: &str) -> Result<Option<User>, UsersError>;

    async fn find_by_id(&self, id: UserId) -> Result<Option<User>, UsersError>;

    /// Inserts a user; `Ok(false)` when the e-mail is already taken. On
    /// the tombstone of a deleted account, the new one replaces it at a
    /// later generation than any token of the old.
    async fn create(&self, user: &User) -> Result<bool, UsersError>;

    /// Deletes an account: it becomes a tombstone (no password, tokens
    /// revoked); `false` when there is no such (live) user.
    async fn delete(&self, email: &str) -> Result<bool, UsersError>;

    /// Replaces a user's password hash (a re-hash at login: tokens stay).
    async fn set_password(&self, email: &str, password_hash: &str) -> Result<(), UsersError>;

    /// Replaces a user's password and revokes every token issued before;
    /// `false` when there is no such user.
    async fn change_password(&self, email: &str, password_hash: &str) -> Result<bool, UsersError>;

    /// Sets `email`'s limits (tokens stay); `false` when there is no such
    /// (live) user.
    async fn set_limits(&self, email: &str, limits: UserLimits) -> Result<bool, UsersError>;

    /// Revokes every token of the user issued before, and disables or
    /// enables the account when `disabled` says so; `false` when there is
    /// no such user.
    async fn revoke(&self, email: &str, disabled: Option<bool>) -> Result<bool, UsersError>;

    /// The users changed (revoked, disabled, a new password) within the
    /// last `within`, by the directory's own clock.
    async fn changed_within(&self, within: Duration) -> Result<Vec<User>, UsersError>;

    /// Every user (tombstones too), ordered by e-mail, after `after`, at
    /// most `limit`.
    async fn page(&self, after: Option<&str>, limit: u32) -> Result<Vec<User>, UsersError>;

    /// Ends one session (safe to repeat); what has expired is forgotten on
    /// the way.
    async fn end_session(&self, ended: &EndedSession) -> Result<(), UsersError>;

    /// The sessions ended within the last `within` (by the directory's own
    /// clock), or every one not yet expired when `None`.
    async fn ended_sessions(
        &self,
        within: Option<Duration>,
    ) -> Result<Vec<EndedSession>, UsersError>;
}
