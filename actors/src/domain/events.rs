//! Job events: what watchers of a job are told as it moves. Best effort (a
//! missed event is superseded by the next one; the job record stays the
//! truth), carried by the backend's event bus to every node.

use serde::{Deserialize, Serialize};

use super::ids::JobId;
use super::job::{JobState, event_sequence};
use super::owner::Owner;

/// A job changed state or made progress. The JSON shape is the one the
/// cluster publishes on its events exchange, which others may bind to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobEvent {
    pub job_id: JobId,
    pub owner: Owner,
    pub state: JobState,
    /// Percent converted, while converting and when done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<f64>,
    /// The attempt and the owner's retries the event belongs to (they
    /// order events, see [`event_sequence`]).
    #[serde(default)]
    pub attempts: u32,
    #[serde(default)]
    pub retries: u32,
    /// Why the job failed, on `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub node: String,
}

impl JobEvent {
    pub fn sequence(&self) -> u64 {
        event_sequence(self.retries, self.attempts, self.state, self.progress)
    }
}
