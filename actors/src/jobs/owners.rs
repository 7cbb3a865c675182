//! Whose a job is, and the limits that bind it: the one rule every path
//! that weighs a job against its owner (a retry's admission, a
//! conversion's quota) reads them by.

use crate::backends::{Backends, UserLimits, UsersError};
use crate::domain::Owner;

/// The limits an administrator set for `owner`. Data whose owner has no
/// account has none of its own, and the node's defaults bind it: data
/// owned by an e-mail from before user ids that no account took over, and
/// data of an account since removed (its erasure pending). A directory that
/// cannot say is an error, never a guess: the caller retries or answers 503.
pub async fn limits_of(backends: &Backends, owner: &Owner) -> Result<UserLimits, UsersError> {
    let Some(id) = owner.user() else {
        return Ok(UserLimits::default());
    };
    Ok(backends
        .users
        .find_by_id(id)
        .await?
        .map(|user| user.limits)
        .unwrap_or_default())
}
