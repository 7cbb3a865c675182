//! The auth actor: registration and login against the user directory,
//! token issue.
//!
//! It owns the user store and the signing keys. Each request is served by its
//! own task (password hashing is slow on purpose), so the actor's mailbox
//! only queues the hand-off, never the hashing; each request carries a
//! ticket of the `auth` mailbox until it is answered, which bounds the
//! hashing in flight. Token *verification* does not come here: the HTTP
//! front checks tokens in-process with the shared [`TokenKeys`].

mod links;
mod password;
mod tokens;

pub use links::{DERIVED_KEY_ID, LinkError, LinkKeyError, LinkKeys, LinkProof};
pub use password::{HashCost, Verified, check_email, check_rules, hash_now as password_hash};
pub use tokens::{Claims, MIN_SECRET_LEN, TokenError, TokenKeys, TokenRules};

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
        admin: false,
    };
    if users.create(&user).await? {
        Ok(())
    } else {
        Err(AuthError::EmailTaken)
    }
}

struct Login<'a> {
    users: &'a Arc<dyn UserDirectory>,
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
                    warn!("could not re-hash a password at login: {}", chain(&e));
                }
            }
        }
        self.keys
            .issue(&user.email, user.admin)
            .map_err(|e| AuthError::Internal(e.to_string()))
    }
}
