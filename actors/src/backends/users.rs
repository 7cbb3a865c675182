//! What a backend must do to keep users: accounts by e-mail with their
//! password hash (argon2id, or a reference bcrypt row until its next login)
//! and whether they are admins.

use async_trait::async_trait;

use super::UsersError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub email: String,
    pub password_hash: String,
    pub admin: bool,
}

#[async_trait]
pub trait UserDirectory: Send + Sync {
    /// Creates what the directory needs (schema) if missing; safe to repeat.
    async fn prepare(&self) -> Result<(), UsersError>;

    async fn find(&self, email: &str) -> Result<Option<User>, UsersError>;

    /// Inserts a user; `Ok(false)` when the e-mail is already taken.
    async fn create(&self, user: &User) -> Result<bool, UsersError>;

    /// Replaces a user's password hash.
    async fn set_password(&self, email: &str, password_hash: &str) -> Result<(), UsersError>;

    /// Every user, ordered by e-mail, after `after`, at most `limit` (for
    /// moving users between backends).
    async fn page(&self, after: Option<&str>, limit: u32) -> Result<Vec<User>, UsersError>;
}
