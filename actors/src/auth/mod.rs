//! The auth actor: registration and login against MySQL, token issue.
//!
//! It owns the user store and the signing keys. Each request is served by its
//! own task (password hashing is slow on purpose), so the actor's mailbox
//! only queues the hand-off, never the hashing; each request carries a
//! ticket of the `auth` mailbox until it is answered, which bounds the
//! hashing in flight. Token *verification* does not come here: the HTTP
//! front checks tokens in-process with the shared [`TokenKeys`].

mod password;
mod tokens;
mod users;

pub use password::{HashCost, Verified, check_email, check_rules, hash_now as password_hash};
pub use tokens::{Claims, MIN_SECRET_LEN, TokenError, TokenKeys, TokenRules};
pub use users::{Users, UsersError};

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tracing::warn;

use crate::mailbox::Ticket;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{0}")]
    BadInput(String),
    #[error("wrong e-mail or password")]
    InvalidCredentials,
    #[error("a user with this e-mail already exists")]
    EmailTaken,
    #[error("the user database is unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<UsersError> for AuthError {
    fn from(e: UsersError) -> Self {
        AuthError::Unavailable(e.to_string())
    }
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
    /// Whether MySQL answers.
    Ping { reply: RpcReplyPort<bool> },
}

#[derive(Clone)]
pub struct AuthArgs {
    pub mysql_url: String,
    pub keys: Arc<TokenKeys>,
    pub cost: HashCost,
}

pub struct AuthState {
    users: Users,
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
        let users = Users::new(&args.mysql_url)?;
        let migrating = users.clone();
        tokio::spawn(async move {
            if let Err(e) = migrating.ensure_schema().await {
                warn!("MySQL not reachable yet ({e}); login and register answer 503 until it is");
            }
        });
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
            AuthMsg::Ping { reply } => {
                tokio::spawn(async move {
                    let _ = reply.send(users.ping().await.is_ok());
                });
            }
            AuthMsg::Register {
                email,
                password,
                ticket,
                reply,
            } => {
                let cost = state.cost;
                tokio::spawn(async move {
                    let _ = reply.send(register(&users, email, password, cost).await);
                    drop(ticket);
                });
            }
            AuthMsg::Login {
                email,
                password,
                ticket,
                reply,
            } => {
                let keys = state.keys.clone();
                let dummy = state.dummy_hash.clone();
                let cost = state.cost;
                tokio::spawn(async move {
                    let login = Login {
                        users: &users,
                        keys: &keys,
                        dummy_hash: &dummy,
                        cost,
                    };
                    let _ = reply.send(login.run(email, password).await);
                    drop(ticket);
                });
            }
        }
        Ok(())
    }
}

async fn register(
    users: &Users,
    email: String,
    password: String,
    cost: HashCost,
) -> Result<(), AuthError> {
    check_email(&email)?;
    check_rules(&password, &email)?;
    let hash = password::hash(password, cost).await?;
    if users.create(&email, &hash, false).await? {
        Ok(())
    } else {
        Err(AuthError::EmailTaken)
    }
}

struct Login<'a> {
    users: &'a Users,
    keys: &'a TokenKeys,
    dummy_hash: &'a str,
    cost: HashCost,
}

impl Login<'_> {
    async fn run(&self, email: String, password: String) -> Result<String, AuthError> {
        let Some(user) = self.users.find(&email).await? else {
            let _ = password::verify(password, self.dummy_hash.to_owned(), self.cost).await;
            return Err(AuthError::InvalidCredentials);
        };
        match password::verify(password.clone(), user.password_hash, self.cost).await {
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
                    warn!("could not re-hash a password at login: {e}");
                }
            }
        }
        self.keys
            .issue(&user.email, user.admin)
            .map_err(|e| AuthError::Internal(e.to_string()))
    }
}
