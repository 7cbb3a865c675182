//! The auth actor: registration and login against the user directory,
//! token issue.
//!
//! It owns the user store and the signing keys. Each request is served by its
//! own task (password hashing is slow on purpose), so the actor's mailbox
//! only queues the hand-off, never the hashing; each request carries a
//! ticket of the `auth` mailbox until it is answered, which bounds the
//! hashing in flight. Token *verification* does not come here: the HTTP
//! front checks tokens in-process with the shared [`TokenKeys`].

mod password;
mod standings;
mod tokens;

pub use password::{HashCost, Verified, check_email, check_rules, hash_now as password_hash};
pub use standings::{
    Account, FULL_RELOAD as REVOCATION_FULL_RELOAD, REFRESH as REVOCATION_REFRESH, Revoked,
    Standings, refresh_revocations,
};
pub use tokens::{Claims, MIN_SECRET_LEN, TokenError, TokenKeys, TokenRules};
pub use vidaud_links::{DERIVED_KEY_ID, LinkError, LinkKeyError, LinkKeys, LinkProof};

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tracing::warn;

use crate::backends::{User, UserDirectory, UsersError, chain};
use crate::mailbox::Ticket;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{0}")]
    BadInput(String),
    #[error("wrong e-mail or password")]
    InvalidCredentials,
    #[error("a user with this e-mail already exists")]
    EmailTaken,
    #[error("this account is disabled; ask an administrator")]
    Disabled,
    #[error("the user directory is unavailable")]
    Unavailable(#[from] UsersError),
    #[error("internal error: {0}")]
    Internal(String),
}

pub enum AuthMsg {
    Register {
        email: String,
        password: String,
        ticket: Ticket,
        reply: RpcReplyPort<Result<(), AuthError>>,
    },
    Login {
        email: String,
        password: String,
        ticket: Ticket,
        reply: RpcReplyPort<Result<String, AuthError>>,
    },
    /// A new password for `email`, given its current one: every token
    /// issued before is revoked; the answer is a fresh token and the user
    /// as stored now.
    ChangePassword {
        email: String,
        current: String,
        new: String,
        ticket: Ticket,
        reply: RpcReplyPort<Result<(String, User), AuthError>>,
    },
    /// Deletes `email`'s account, given its password: the answer is its
    /// tombstone (every token revoked). Its data is the caller's to erase.
    Delete {
        email: String,
        password: String,
        ticket: Ticket,
        reply: RpcReplyPort<Result<User, AuthError>>,
    },
}

#[derive(Clone)]
pub struct AuthArgs {
    pub users: Arc<dyn UserDirectory>,
    pub keys: Arc<TokenKeys>,
    pub cost: HashCost,
}

pub struct AuthState {
    users: Arc<dyn UserDirectory>,
    keys: Arc<TokenKeys>,
    cost: HashCost,
    /// Checked against when an account does not exist, so that absent
    /// accounts take as long to refuse as wrong passwords.
    dummy_hash: Arc<str>,
}

pub struct AuthActor;

impl Actor for AuthActor {
    type Msg = AuthMsg;
    type State = AuthState;
    type Arguments = AuthArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: AuthArgs,
    ) -> Result<AuthState, ActorProcessingErr> {
        let users = args.users;
        let dummy_hash = password::hash("no such account".into(), args.cost).await?;
        Ok(AuthState {
            users,
            keys: args.keys,
            cost: args.cost,
            dummy_hash: dummy_hash.into(),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: AuthMsg,
        state: &mut AuthState,
    ) -> Result<(), ActorProcessingErr> {
        let users = state.users.clone();
        match msg {
            AuthMsg::Register {
                email,
                password,
                ticket,
                reply,
            } => {
                let cost = state.cost;
                answer(ticket, reply, async move {
                    register(&users, email, password, cost).await
                });
            }
            AuthMsg::Login {
                email,
                password,
                ticket,
                reply,
            } => {
                let login = state.login();
                answer(
                    ticket,
                    reply,
                    async move { login.run(email, password).await },
                );
            }
            AuthMsg::ChangePassword {
                email,
                current,
                new,
                ticket,
                reply,
            } => {
                let login = state.login();
                answer(ticket, reply, async move {
                    login.change_password(email, current, new).await
                });
            }
            AuthMsg::Delete {
                email,
                password,
                ticket,
                reply,
            } => {
                let login = state.login();
                answer(
                    ticket,
                    reply,
                    async move { login.delete(email, password).await },
                );
            }
        }
        Ok(())
    }
}

/// Serves one request in a task of its own; its ticket is held until the
/// answer is sent.
fn answer<T: Send + 'static>(
    ticket: Ticket,
    reply: RpcReplyPort<T>,
    work: impl Future<Output = T> + Send + 'static,
) {
    tokio::spawn(async move {
        let _ = reply.send(work.await);
        drop(ticket);
    });
}

async fn register(
    users: &Arc<dyn UserDirectory>,
    email: String,
    password: String,
    cost: HashCost,
) -> Result<(), AuthError> {
    check_email(&email)?;
    check_rules(&password, &email)?;
    let hash = password::hash(password, cost).await?;
    let user = User {
        email,
        password_hash: hash,
        ..User::default()
    };
    if users.create(&user).await? {
        Ok(())
    } else {
        Err(AuthError::EmailTaken)
    }
}

/// What checking a password and issuing a token needs; one per request.
struct Login {
    users: Arc<dyn UserDirectory>,
    keys: Arc<TokenKeys>,
    dummy_hash: Arc<str>,
    cost: HashCost,
}

impl AuthState {
    fn login(&self) -> Login {
        Login {
            users: self.users.clone(),
            keys: self.keys.clone(),
            dummy_hash: self.dummy_hash.clone(),
            cost: self.cost,
        }
    }
}

impl Login {
    /// The user, if `password` is theirs (a reference bcrypt row, or a
    /// cheaper hash, is re-hashed on the way).
    async fn authenticate(&self, email: &str, password: String) -> Result<User, AuthError> {
        // A deleted account's tombstone is no account.
        let Some(user) = self.users.find(email).await?.filter(|u| !u.deleted) else {
            let _ = password::verify(password, self.dummy_hash.to_string(), self.cost).await;
            return Err(AuthError::InvalidCredentials);
        };
        match password::verify(password.clone(), user.password_hash.clone(), self.cost).await {
            Verified::No => return Err(AuthError::InvalidCredentials),
            Verified::Yes => {}
            Verified::Rehash => {
                // A bcrypt row (or a cheaper hash) becomes argon2id now that
                // the password is known; failing that, the old hash still works.
                let rehashed = match password::hash(password, self.cost).await {
                    Ok(hash) => self
                        .users
                        .set_password(&user.email, &hash)
                        .await
                        .map_err(AuthError::from),
                    Err(e) => Err(e),
                };
                if let Err(e) = rehashed {
                    warn!("could not re-hash a password at login: {}", chain(&e));
                }
            }
        }
        if user.disabled {
            return Err(AuthError::Disabled);
        }
        Ok(user)
    }

    fn issue(&self, user: &User) -> Result<String, AuthError> {
        self.keys
            .issue(&user.email, &user.id.to_hex(), user.admin, user.generation)
            .map_err(|e| AuthError::Internal(e.to_string()))
    }

    async fn run(&self, email: String, password: String) -> Result<String, AuthError> {
        let user = self.authenticate(&email, password).await?;
        self.issue(&user)
    }

    async fn change_password(
        &self,
        email: String,
        current: String,
        new: String,
    ) -> Result<(String, User), AuthError> {
        let user = self.authenticate(&email, current).await?;
        check_rules(&new, &user.email)?;
        let hash = password::hash(new, self.cost).await?;
        if !self.users.change_password(&user.email, &hash).await? {
            return Err(AuthError::InvalidCredentials);
        }
        let user = self
            .users
            .find(&user.email)
            .await?
            .ok_or(AuthError::InvalidCredentials)?;
        Ok((self.issue(&user)?, user))
    }

    async fn delete(&self, email: String, password: String) -> Result<User, AuthError> {
        let user = self.authenticate(&email, password).await?;
        delete_account(self.users.as_ref(), &user.email).await
    }
}

/// Turns `email`'s account into its tombstone, which is returned;
/// `InvalidCredentials` when there is no such live account.
pub async fn delete_account(users: &dyn UserDirectory, email: &str) -> Result<User, AuthError> {
    if !users.delete(email).await? {
        return Err(AuthError::InvalidCredentials);
    }
    users
        .find(email)
        .await?
        .ok_or(AuthError::InvalidCredentials)
}
