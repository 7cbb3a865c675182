//! What happens after an account is deleted: the user directory holds its
//! tombstone (tokens revoked at once on the deleting node, on every other
//! within the revocation refresh), and its data is erased
//! ([`Backends::erase_owner`]) by whoever learns of it first:
//!
//! - the node that deleted it (`DELETE /me`, `DELETE /users/{email}`), at
//!   once, before it answers, then mails the confirmation;
//! - every node whose revocation refresh finds an account deleted that was
//!   live before (a deletion by `vidaud user delete`, or by a node that
//!   died before it finished);
//! - the retention sweep, for every account deleted within the last day,
//!   which also removes what an upload still arriving at the deletion left.
//!
//! Erasing twice, or on two nodes at once, only repeats work.

use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use crate::auth::{REVOCATION_REFRESH, Standings};
use crate::backends::{Backends, Erased, StoreError, User, UsersError, chain};
use crate::notifier::Mailer;

/// How far back the sweep looks for deleted accounts.
pub const SWEEP_WITHIN: Duration = Duration::from_secs(86_400);

/// The second half of a deletion made here: the tombstone is taken in,
/// the data erased, the confirmation mailed (a failed mail is logged; the
/// deletion stands).
pub async fn finish_deletion(
    backends: &Backends,
    standings: &Standings,
    mailer: Option<&Mailer>,
    tombstone: &User,
    node: &str,
) -> Result<Erased, StoreError> {
    standings.note(tombstone);
    let erased = backends.erase_owner(&tombstone.id.into(), node).await?;
    info!(
        jobs = erased.jobs,
        uploads = erased.uploads,
        webhooks = erased.webhooks,
        "account deleted"
    );
    if let Some(mailer) = mailer
        && let Err(e) = mailer.send_account_deleted(&tombstone.email).await
    {
        warn!(
            "the account was deleted, but its confirmation was not mailed: {}",
            chain(&e)
        );
    }
    Ok(erased)
}

/// Erases the data of accounts `standings` learns were deleted elsewhere,
/// every revocation refresh, for ever (run by a
/// [`Background`](crate::background::Background) actor).
pub async fn erase_deleted_accounts(backends: Backends, standings: Arc<Standings>, node: String) {
    loop {
        for id in standings.take_deleted() {
            match backends.erase_owner(&id.into(), &node).await {
                Ok(erased) if !erased.is_empty() => info!(
                    jobs = erased.jobs,
                    uploads = erased.uploads,
                    webhooks = erased.webhooks,
                    "erased a deleted account's data"
                ),
                Ok(_) => {}
                Err(e) => warn!(
                    "erasing a deleted account's data failed (the sweep retries): {}",
                    chain(&e)
                ),
            }
        }
        tokio::time::sleep(REVOCATION_REFRESH).await;
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("listing deleted accounts")]
    Users(#[source] UsersError),
    #[error("erasing a deleted account's data")]
    Store(#[source] StoreError),
}

/// Erases again what accounts deleted within `within` may still hold;
/// returns how many held something.
pub async fn erase_lately_deleted(
    backends: &Backends,
    node: &str,
    within: Duration,
) -> Result<u64, SweepError> {
    let changed = backends
        .users
        .changed_within(within)
        .await
        .map_err(SweepError::Users)?;
    let mut held = 0;
    for user in changed.iter().filter(|u| u.deleted) {
        let erased = backends
            .erase_owner(&user.id.into(), node)
            .await
            .map_err(SweepError::Store)?;
        if !erased.is_empty() {
            held += 1;
        }
    }
    Ok(held)
}
