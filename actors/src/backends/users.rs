//! What a backend must do to keep users: accounts by e-mail with their
//! password hash (argon2id, or a reference bcrypt row until its next login),
//! whether they are admins, and their token generation: a number every
//! token carries, bumped to revoke all of a user's tokens at once (a new
//! password, "log out everywhere", a disabled or deleted account).
//!
//! A deleted account stays as a tombstone (its e-mail and generation, no
//! password), so that every node learns of the deletion the way it learns
//! of any change, and so that an account registered later on the same
//! e-mail starts at a later generation: the old tokens never fit it.

use std::time::Duration;

use async_trait::async_trait;

use super::UsersError;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct User {
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
}

#[async_trait]
pub trait UserDirectory: Send + Sync {
    /// Creates what the directory needs (schema) if missing; safe to repeat.
    async fn prepare(&self) -> Result<(), UsersError>;

    async fn find(&self, email: &str) -> Result<Option<User>, UsersError>;

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
}
