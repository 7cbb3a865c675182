//! The auth actor: registration and login against MySQL, token issue.
//!
//! It owns the user store and the signing keys. Each request is served by its
//! own task (bcrypt is slow on purpose), so the actor's mailbox only queues
//! the hand-off, never the hashing; each request carries a ticket of the
//! `auth` mailbox until it is answered, which bounds the hashing in flight. Token *verification* does not come here:
//! the HTTP front checks tokens in-process with the shared [`TokenKeys`].

mod password;
mod tokens;
mod users;

pub use password::{check_email, check_rules};
pub use tokens::{Claims, MIN_SECRET_LEN, TokenError, TokenKeys};
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
    pub bcrypt_cost: u32,
}

pub struct AuthState {
    users: Users,
    keys: Arc<TokenKeys>,
    bcrypt_cost: u32,
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
        let dummy_hash = password::hash("no such account".into(), args.bcrypt_cost).await?;
        Ok(AuthState {
            users,
            keys: args.keys,
            bcrypt_cost: args.bcrypt_cost,
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
                let cost = state.bcrypt_cost;
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
                tokio::spawn(async move {
                    let _ = reply.send(login(&users, &keys, &dummy, email, password).await);
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
    cost: u32,
) -> Result<(), AuthError> {
    check_email(&email)?;
    check_rules(&password)?;
    let hash = password::hash(password, cost).await?;
    if users.create(&email, &hash, false).await? {
        Ok(())
    } else {
        Err(AuthError::EmailTaken)
    }
}

async fn login(
    users: &Users,
    keys: &TokenKeys,
    dummy_hash: &str,
    email: String,
    password: String,
) -> Result<String, AuthError> {
    let Some(user) = users.find(&email).await? else {
        let _ = password::verify(password, dummy_hash.to_owned()).await;
        return Err(AuthError::InvalidCredentials);
    };
    if !password::verify(password, user.password_hash).await {
        return Err(AuthError::InvalidCredentials);
    }
    keys.issue(&user.email, user.admin)
        .map_err(|e| AuthError::Internal(e.to_string()))
}
