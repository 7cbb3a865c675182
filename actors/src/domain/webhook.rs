//! Webhooks: the endpoints users register, and the deliveries of job
//! events to them (or to a job's `callback_url`), whichever backend keeps
//! them.
//!
//! A delivery's id is derived from its target and its event, so the same
//! event queued twice (a redelivered `mp3` message, a retried enqueue) is
//! one delivery: the store keeps the first. That id is also the
//! `webhook-id` a receiver sees, the same on every retry, so it can drop
//! what it already has.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::ids::{Id, IdKind, JobId};
use super::owner::Owner;
use super::time::Timestamp;

#[derive(Debug)]
pub enum EndpointKind {}
impl IdKind for EndpointKind {
    const WHAT: &'static str = "webhook";
}

#[derive(Debug)]
pub enum DeliveryKind {}
impl IdKind for DeliveryKind {
    const WHAT: &'static str = "delivery";
}

pub type EndpointId = Id<EndpointKind>;
pub type DeliveryId = Id<DeliveryKind>;

/// What happened to a job, as webhooks name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum JobEventType {
    #[serde(rename = "job.done")]
    Done,
    #[serde(rename = "job.failed")]
    Failed,
    #[serde(rename = "job.deleted")]
    Deleted,
}

impl JobEventType {
    pub const ALL: [JobEventType; 3] = [
        JobEventType::Done,
        JobEventType::Failed,
        JobEventType::Deleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobEventType::Done => "job.done",
            JobEventType::Failed => "job.failed",
            JobEventType::Deleted => "job.deleted",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

/// A user's registered webhook endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub id: EndpointId,
    pub owner: Owner,
    pub url: String,
    /// `whsec_` and the base64 of the signing key (Standard Webhooks).
    pub secret: String,
    /// The events it wants; all of them when empty.
    pub events: Vec<JobEventType>,
    pub created_at: Timestamp,
}

impl Endpoint {
    pub fn wants(&self, event: JobEventType) -> bool {
        self.events.is_empty() || self.events.contains(&event)
    }

    /// The key that keeps its deliveries one at a time.
    pub fn target(&self) -> String {
        format!("endpoint:{}", self.id)
    }
}

/// A job's own webhook: the `callback_url` given at upload, with the
/// secret made for it then (shown once, in the upload's answer). It gets
/// every event of that job, and nothing of any other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Callback {
    pub url: String,
    /// `whsec_` and the base64 of the signing key, as an endpoint's.
    pub secret: String,
}

impl Callback {
    /// The key that keeps a job's callbacks one at a time.
    pub fn target(job: JobId) -> String {
        format!("callback:{job}")
    }
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    /// Waiting for its next attempt (`next_at`).
    Pending,
    /// A 2xx answer was received.
    Delivered,
    /// Every attempt of the schedule failed (it can be re-sent).
    Failed,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
        }
    }

    pub fn from_stored(name: &str) -> Option<Self> {
        [Self::Pending, Self::Delivered, Self::Failed]
            .into_iter()
            .find(|s| s.as_str() == name)
    }
}

/// One try at a delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Attempt {
    /// When it began.
    #[schema(value_type = String)]
    pub at: Timestamp,
    /// The receiver's HTTP status, if it answered.
    pub status: Option<u16>,
    /// From the request's start to the answer's head (or the failure).
    pub latency_ms: u64,
    /// Why it failed (refused destination, timeout, connection, status).
    pub error: Option<String>,
}

/// The attempts a delivery keeps (the oldest are dropped).
pub const KEPT_ATTEMPTS: usize = 20;

/// One event on its way to one destination.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub id: DeliveryId,
    /// Deliveries with the same target go one at a time, oldest first.
    pub target: String,
    /// The registered endpoint; `None` for a job's `callback_url`.
    pub endpoint: Option<EndpointId>,
    pub owner: Owner,
    pub job_id: JobId,
    pub url: String,
    pub secret: String,
    pub event: JobEventType,
    /// The JSON body, as signed and sent.
    pub payload: String,
    pub state: DeliveryState,
    pub attempts: u32,
    /// When the next attempt is due (pending only).
    pub next_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub history: Vec<Attempt>,
}

impl Delivery {
    /// The id of `event` for `target`: the same however often it is made.
    pub fn id_for(target: &str, event_key: &str) -> DeliveryId {
        let digest = Sha256::new()
            .chain_update(target.as_bytes())
            .chain_update([0])
            .chain_update(event_key.as_bytes())
            .finalize();
        let mut bytes = [0u8; 12];
        bytes.copy_from_slice(&digest[..12]);
        Id::from_bytes(bytes)
    }

    /// The `webhook-id` header: the same on every attempt.
    pub fn message_id(&self) -> String {
        format!("msg_{}", self.id)
    }

    /// Records `attempt`: delivered on a 2xx, else pending until `retry_in`
    /// (the schedule's next pause) or failed when the schedule is spent.
    pub fn after(&mut self, attempt: Attempt, retry_in: Option<std::time::Duration>) {
        let ok = attempt.status.is_some_and(|s| (200..300).contains(&s));
        self.attempts += 1;
        self.history.push(attempt.clone());
        if self.history.len() > KEPT_ATTEMPTS {
            self.history.remove(0);
        }
        (self.state, self.next_at) = match (ok, retry_in) {
            (true, _) => (DeliveryState::Delivered, None),
            (false, Some(pause)) => (DeliveryState::Pending, Some(attempt.at.plus(pause))),
            (false, None) => (DeliveryState::Failed, None),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_event_for_the_same_target_is_one_delivery() {
        let a = Delivery::id_for("endpoint:1", "job.done:abc:0");
        assert_eq!(a, Delivery::id_for("endpoint:1", "job.done:abc:0"));
        assert_ne!(a, Delivery::id_for("endpoint:2", "job.done:abc:0"));
        assert_ne!(a, Delivery::id_for("endpoint:1", "job.done:abc:1"));
    }

    #[test]
    fn event_names_round_trip() {
        for t in JobEventType::ALL {
            assert_eq!(JobEventType::parse(t.as_str()), Some(t));
            assert_eq!(
                serde_json::to_string(&t).unwrap(),
                format!("\"{}\"", t.as_str())
            );
        }
    }
}
