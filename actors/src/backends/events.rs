//! What a backend must do to carry job events: every event published on
//! any node reaches every subscriber on every node. Where one may have been
//! lost (the feed reconnected, a publish failed, a watcher fell behind) the
//! subscribers are told so ([`Feed::Gap`], or the channel's lag) and re-read
//! the job record; nothing else reads it, so an idle watcher costs the
//! database nothing.

use async_trait::async_trait;
use tokio::sync::broadcast;

use super::QueueError;
use crate::domain::JobEvent;

/// Events held for a watcher that is slow to read.
const BACKLOG: usize = 1024;

/// What a subscriber receives.
#[derive(Debug, Clone)]
pub enum Feed {
    Event(JobEvent),
    /// Events may have been lost here: re-read what is watched.
    Gap,
}

#[async_trait]
pub trait EventBus: Send + Sync {
    async fn publish(&self, event: &JobEvent) -> Result<(), QueueError>;

    /// Every event from now on, from every node.
    fn subscribe(&self) -> broadcast::Receiver<Feed>;
}

/// The in-process end of a bus: what a node's subscribers read from. The
/// embedded bus is only this; the cluster's feeds it from the broker.
#[derive(Clone)]
pub struct LocalFeed {
    sender: broadcast::Sender<Feed>,
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
        let _ = self.sender.send(Feed::Event(event));
    }

    /// Tells this node's subscribers that events may have been lost.
    pub fn gap(&self) {
        let _ = self.sender.send(Feed::Gap);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Feed> {
        self.sender.subscribe()
    }
}
