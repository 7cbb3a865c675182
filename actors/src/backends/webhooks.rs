//! What a backend must do to keep webhooks: users' endpoints, and the
//! deliveries pending to them, durable so that a node's restart (or
//! another node) finishes what one node queued.
//!
//! One delivery at a time per target, across nodes: a node first locks the
//! target (a lease, like a job's), then takes that target's oldest due
//! delivery, records the attempt, and unlocks. A node that dies holding a
//! lock loses it when the lease runs out.

use std::time::Duration;

use async_trait::async_trait;

use super::StoreError;
use crate::domain::{Delivery, DeliveryId, Endpoint, EndpointId, Owner, Timestamp};

#[async_trait]
pub trait WebhookStore: Send + Sync {
    async fn add_endpoint(&self, endpoint: &Endpoint) -> Result<(), StoreError>;

    /// A user's endpoints, oldest first.
    async fn endpoints(&self, owner: &Owner) -> Result<Vec<Endpoint>, StoreError>;

    async fn endpoint(&self, id: EndpointId) -> Result<Option<Endpoint>, StoreError>;

    /// Removes an endpoint and every delivery to it; whether it was there.
    async fn remove_endpoint(&self, id: EndpointId) -> Result<bool, StoreError>;

    /// Removes every endpoint of `owner` and every delivery meant for them
    /// (their endpoints' and their jobs' callbacks'). Returns how many
    /// endpoints.
    async fn remove_owned(&self, owner: &Owner) -> Result<u64, StoreError>;

    /// Removes the deliveries that are over (delivered or failed) and were
    /// made before `before`; returns how many.
    async fn prune_deliveries(&self, before: Timestamp) -> Result<u64, StoreError>;

    /// Stores a delivery unless one with its id is already there (the same
    /// event for the same target): the first one stays.
    async fn enqueue(&self, delivery: &Delivery) -> Result<(), StoreError>;

    /// Targets with a pending delivery due at `now`, at most `limit`.
    async fn due_targets(&self, now: Timestamp, limit: u32) -> Result<Vec<String>, StoreError>;

    /// Locks `target` for `node` until `now + lease` unless another node's
    /// lock on it is live (a node extends its own lock by locking again).
    async fn lock_target(
        &self,
        target: &str,
        node: &str,
        now: Timestamp,
        lease: Duration,
    ) -> Result<bool, StoreError>;

    /// Drops `node`'s lock on `target`.
    async fn unlock_target(&self, target: &str, node: &str) -> Result<(), StoreError>;

    /// The target's oldest pending delivery due at `now`.
    async fn next_due(&self, target: &str, now: Timestamp) -> Result<Option<Delivery>, StoreError>;

    /// Writes a delivery's state, attempts, next time and history (after
    /// an attempt, or a re-send); `false` when it is gone.
    async fn update(&self, delivery: &Delivery) -> Result<bool, StoreError>;

    async fn delivery(&self, id: DeliveryId) -> Result<Option<Delivery>, StoreError>;

    /// A target's deliveries (an endpoint's, a job's callback's), newest
    /// first, at most `limit`.
    async fn deliveries(&self, target: &str, limit: u32) -> Result<Vec<Delivery>, StoreError>;
}
