//! What a backend must do to keep reservations (see
//! [`Reservation`](crate::domain::Reservation)): read a user's live ones with
//! their version, add one only if that version still holds, release one.
//! Each is one atomic step (a single-document update in MongoDB, one call on
//! SQLite's one connection), so the compare-and-add is atomic across nodes.
//!
//! Correctness rests on an order the callers keep: a reservation is read
//! (with its version) *before* the usage it is checked against, and an
//! upload's file and job become visible *before* its reservation is
//! released (which bumps the version). A check that read usage too early to
//! see a finished upload's file then either still sees that upload's
//! reservation or fails its compare and reads again. The same order can
//! count an upload twice (its reservation and its file or job, read after
//! it finished but before it released): the caller does not refuse on such
//! a reading while reservations are in flight, but reads again once they
//! settle (`http::routes::upload::room_for`).

use std::sync::Arc;

use async_trait::async_trait;

use super::StoreError;
use crate::domain::{Held, Owner, Reservation, ReservationId, Timestamp};

#[async_trait]
pub trait ReservationStore: Send + Sync {
    /// `owner`'s reservations live at `now`, summed, with their version.
    async fn held(&self, owner: &Owner, now: Timestamp) -> Result<Held, StoreError>;

    /// Adds `reservation` if its owner's reservations are still at
    /// `version` (dropping expired ones on the way); `false` when they
    /// moved, and nothing was added.
    async fn add_if_unchanged(
        &self,
        reservation: &Reservation,
        version: u64,
        now: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Releases a reservation (releasing none is not an error).
    async fn release(&self, owner: &Owner, id: ReservationId) -> Result<(), StoreError>;

    /// Drops everything kept for `owner` (a removed account).
    async fn forget(&self, owner: &Owner) -> Result<(), StoreError>;
}

/// A reservation taken: released when dropped (or by [`Reserved::release`]);
/// if even that fails, it expires on its own.
pub struct Reserved {
    store: Arc<dyn ReservationStore>,
    reservation: Option<Reservation>,
}

impl Reserved {
    pub fn new(store: Arc<dyn ReservationStore>, reservation: Reservation) -> Self {
        Self {
            store,
            reservation: Some(reservation),
        }
    }

    /// Releases it now (once the upload's file and job count for themselves).
    pub async fn release(mut self) {
        if let Some(r) = self.reservation.take() {
            release_logged(self.store.as_ref(), &r).await;
        }
    }
}

impl Drop for Reserved {
    fn drop(&mut self) {
        // An upload cut short (an error, a client gone): released in the
        // background.
        if let Some(r) = self.reservation.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let store = self.store.clone();
            runtime.spawn(async move { release_logged(store.as_ref(), &r).await });
        }
    }
}

async fn release_logged(store: &dyn ReservationStore, r: &Reservation) {
    if let Err(e) = store.release(&r.owner, r.id).await {
        tracing::warn!(
            reservation = %r.id,
            "a reservation was not released (it expires on its own): {}",
            super::chain(&e)
        );
    }
}
