//! Whether a token still stands: every node keeps each user's token
//! generation and whether the account is disabled, so that checking a token
//! costs a map lookup, not a database read. A password change, "log out
//! everywhere", disabling and deleting an account bump the generation in the user
//! directory; every node reads the users changed lately every
//! [`REFRESH`], so a token revoked on one node is refused on all of them
//! within that (and a query). The node that revoked knows at once. So it
//! is with one session logged out (the web app's "Log out": its token's
//! `sid` ended, the user's other tokens untouched): each refresh reads the
//! sessions ended lately too.
//!
//! While the directory is away, the last known generations stay in force:
//! valid tokens keep working and revoked ones stay revoked. A user not yet
//! known here (registered since the last refresh), or a token of a newer
//! generation than known here (issued after a revocation this node has not
//! read yet), is read once; if the directory is away then too, the token's
//! signature is all there is to go by, and it is accepted.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use super::Claims;
use crate::backends::{EndedSession, User, UserDirectory, UserLimits, UsersError, chain};
use crate::domain::{Timestamp, UserId};

/// How often a node reads the users changed lately.
pub const REFRESH: Duration = Duration::from_secs(2);
/// How far back each refresh reads: refreshes overlap, so a change is seen
/// even when one refresh is late; after a longer gap, everyone is read.
const WINDOW: Duration = Duration::from_secs(30);
/// Users read per page on a full load.
const PAGE: u32 = 1000;
/// How often everyone is read again, which is how a row removed by hand
/// (not through the API, so no tombstone) is noticed: its tokens are
/// refused within this.
pub const FULL_RELOAD: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Standing {
    account: Account,
    generation: u32,
    disabled: bool,
    deleted: bool,
}

impl From<&User> for Standing {
    fn from(user: &User) -> Self {
        Self {
            account: Account {
                id: user.id,
                limits: user.limits,
            },
            generation: user.generation,
            disabled: user.disabled,
            deleted: user.deleted,
        }
    }
}

/// The account a standing token is for: what a request acts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Account {
    pub id: UserId,
    /// As last read from the directory (the node's defaults while unknown).
    pub limits: UserLimits,
}

/// Why a token does not stand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Revoked {
    #[error("the token was revoked (a new password, or logged out everywhere); log in again")]
    Superseded,
    #[error("the account is disabled")]
    Disabled,
    #[error("the account no longer exists")]
    Gone,
    #[error("this session was logged out; log in again")]
    LoggedOut,
    /// The user directory is away and this node has not met the account
    /// yet, nor does the token say the account's id (a reference token).
    #[error("the user directory is unavailable, and this node does not know the account yet")]
    Unknown,
}

pub struct Standings {
    users: Arc<dyn UserDirectory>,
    known: RwLock<HashMap<String, Standing>>,
    /// When the last refresh succeeded (`None`: never: load everyone).
    fresh_at: std::sync::Mutex<Option<Instant>>,
    /// When everyone was last read.
    loaded_at: std::sync::Mutex<Option<Instant>>,
    /// Accounts a refresh found deleted that were live here: their data is
    /// to be erased (see [`Standings::take_deleted`]).
    deleted: std::sync::Mutex<Vec<UserId>>,
    /// Sessions logged out: their `sid` → when their token expires (ms),
    /// after which they are forgotten.
    ended: RwLock<HashMap<String, i64>>,
}

impl Standings {
    pub fn new(users: Arc<dyn UserDirectory>) -> Self {
        Self {
            users,
            known: RwLock::new(HashMap::new()),
            fresh_at: std::sync::Mutex::new(None),
            loaded_at: std::sync::Mutex::new(None),
            deleted: std::sync::Mutex::new(Vec::new()),
            ended: RwLock::new(HashMap::new()),
        }
    }

    /// Takes in ended sessions (all of them when `whole`: what is not
    /// there is no longer ended, having expired); forgets the expired.
    fn put_ended(&self, sessions: Vec<EndedSession>, whole: bool) {
        let now = Timestamp::now().millis();
        let mut ended = self
            .ended
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if whole {
            ended.clear();
        }
        ended.extend(
            sessions
                .into_iter()
                .map(|s| (s.session, s.expires.millis())),
        );
        ended.retain(|_, expires| *expires >= now);
    }

    fn is_ended(&self, session: &str) -> bool {
        self.ended
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains_key(session)
    }

    /// Logs out the session of the token with `claims` (its `sid`) on every
    /// node: here at once, elsewhere at their next refresh. A token without
    /// a session id has nothing to end.
    pub async fn end_session(&self, claims: &Claims, user: UserId) -> Result<(), UsersError> {
        let Some(session) = claims.sid.clone() else {
            return Ok(());
        };
        let expires = i64::try_from(claims.exp)
            .unwrap_or(i64::MAX / 1000)
            .saturating_mul(1000);
        let ended = EndedSession {
            session,
            user,
            expires: Timestamp::from_millis(expires),
        };
        self.users.end_session(&ended).await?;
        self.put_ended(vec![ended], false);
        Ok(())
    }

    fn get(&self, email: &str) -> Option<Standing> {
        self.known
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(email)
            .copied()
    }

    /// Takes in `users`; returns those that were live here and are deleted.
    fn put(&self, users: &[User]) -> Vec<UserId> {
        let mut known = self
            .known
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut deleted = Vec::new();
        for user in users {
            let before = known.insert(user.email.clone(), Standing::from(user));
            if user.deleted && before.is_some_and(|s| !s.deleted) {
                deleted.push(user.id);
            }
        }
        deleted
    }

    /// Takes in what a refresh read, keeping the deletions it found.
    fn put_refreshed(&self, users: &[User]) {
        let deleted = self.put(users);
        if !deleted.is_empty() {
            self.deleted
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .extend(deleted);
        }
    }

    /// The accounts deleted elsewhere (another node, the CLI) that this
    /// node has learnt of since the last call: live here before, so this
    /// node may hold data of theirs to erase.
    pub fn take_deleted(&self) -> Vec<UserId> {
        std::mem::take(
            &mut *self
                .deleted
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Whether the token with `claims` still stands; if it does, its
    /// account.
    pub async fn check(&self, claims: &Claims) -> Result<Account, Revoked> {
        if claims.sid.as_deref().is_some_and(|sid| self.is_ended(sid)) {
            return Err(Revoked::LoggedOut);
        }
        // The account the token names (none: a reference token, any
        // account of its e-mail; an id that is no id fits none).
        let named = claims.uid.as_deref().map(|uid| UserId::parse(uid).ok());
        let same_account = |s: &Standing| named.is_none_or(|id| id == Some(s.account.id));
        let standing = match self.get(&claims.username) {
            Some(standing) if claims.r#gen <= standing.generation && same_account(&standing) => {
                standing
            }
            // A token newer than what is known here was issued after a
            // revocation (or to an account made again) that this node has
            // not read yet: read it now.
            _ => match self.users.find(&claims.username).await {
                Ok(Some(user)) => {
                    let _ = self.put(std::slice::from_ref(&user));
                    Standing::from(&user)
                }
                Ok(None) => return Err(Revoked::Gone),
                Err(e) => {
                    debug!(
                        "user directory away; a token newer than what is known here is \
                         taken on its signature: {}",
                        chain(&e)
                    );
                    return named
                        .flatten()
                        .map(|id| Account {
                            id,
                            limits: UserLimits::default(),
                        })
                        .ok_or(Revoked::Unknown);
                }
            },
        };
        // Not the same account: a token of an earlier one on this e-mail.
        if standing.deleted || !same_account(&standing) {
            Err(Revoked::Gone)
        } else if standing.disabled {
            Err(Revoked::Disabled)
        } else if standing.generation != claims.r#gen {
            Err(Revoked::Superseded)
        } else {
            Ok(standing.account)
        }
    }

    /// Takes in a change made on this node at once (the others see it at
    /// their next refresh).
    pub fn note(&self, user: &User) {
        let _ = self.put(std::slice::from_ref(user));
    }

    /// Reads the users changed lately (or everyone, after a gap).
    pub async fn refresh(&self) -> Result<usize, UsersError> {
        let started = Instant::now();
        let last = *self
            .fresh_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let loaded = *self
            .loaded_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let read = match last {
            Some(at)
                if at.elapsed() + REFRESH * 2 < WINDOW
                    && loaded.is_some_and(|at| at.elapsed() < FULL_RELOAD) =>
            {
                let changed = self.users.changed_within(WINDOW).await?;
                self.put_refreshed(&changed);
                self.put_ended(self.users.ended_sessions(Some(WINDOW)).await?, false);
                changed.len()
            }
            _ => {
                let everyone = self.load_everyone().await?;
                self.put_ended(self.users.ended_sessions(None).await?, true);
                everyone
            }
        };
        *self
            .fresh_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(started);
        Ok(read)
    }

    /// Reads every user; forgets those no longer there (removed by hand),
    /// whose tokens are then refused.
    async fn load_everyone(&self) -> Result<usize, UsersError> {
        let started = Instant::now();
        let mut after: Option<String> = None;
        let mut seen = std::collections::HashSet::new();
        loop {
            let page = self.users.page(after.as_deref(), PAGE).await?;
            self.put_refreshed(&page);
            seen.extend(page.iter().map(|u| u.email.clone()));
            match page.last() {
                Some(last) if page.len() == PAGE as usize => after = Some(last.email.clone()),
                _ => break,
            }
        }
        self.known
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|email, _| seen.contains(email));
        *self
            .loaded_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(started);
        Ok(seen.len())
    }
}

/// Refreshes `standings` every [`REFRESH`], for ever (run by a
/// [`Background`](crate::background::Background) actor).
pub async fn refresh_revocations(standings: Arc<Standings>) {
    let mut away = false;
    loop {
        match standings.refresh().await {
            Ok(_) if away => {
                info!("user directory back: token revocations current again");
                away = false;
            }
            Ok(_) => {}
            Err(e) if !away => {
                warn!(
                    "cannot read token revocations (the last known stay in force): {}",
                    chain(&e)
                );
                away = true;
            }
            Err(_) => {}
        }
        tokio::time::sleep(REFRESH).await;
    }
}
