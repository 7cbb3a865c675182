//! What a backend must do to carry job events: every event published on
//! any node reaches every subscriber on every node, best effort (a watcher
//! that falls behind is told it lagged and re-reads the job record).

use async_trait::async_trait;
use tokio::sync::broadcast;

use super::QueueError;
use crate::domain::JobEvent;

/// Events held for a watcher that is slow to read.
const BACKLOG: usize = 1024;

#[async_trait]
pub trait EventBus: Send + Sync {
    async fn publish(&self, event: &JobEvent) -> Result<(), QueueError>;

    /// Every event from now on, from every node.
    fn subscribe(&self) -> broadcast::Receiver<JobEvent>;
}

/// The in-process end of a bus: what a node's subscribers read from. The
/// embedded bus is only this; the cluster's feeds it from the broker.
#[derive(Clone)]
pub struct LocalFeed {
    sender: broadcast::Sender<JobEvent>,
}

impl Default for LocalFeed {
    fn default() -> Self {
        Self {
            sender: broadcast::channel(BACKLOG).0,
        }
    }
}

impl LocalFeed {
    /// Hands `event` to the subscribers of this node (none is not an error).
    pub fn send(&self, event: JobEvent) {
        let _ = self.sender.send(event);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<JobEvent> {
        self.sender.subscribe()
    }
}
