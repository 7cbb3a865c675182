//! The node's view of job events from every node: one exclusive,
//! auto-deleted queue bound to the fanout exchange (`vidaud.events`),
//! fanned out in-process to whoever watches (server-sent event streams).
//!
//! Events are best effort: while the broker is away watchers get none, and
//! a watcher that falls behind is told it lagged. Both re-read the job
//! record, which stays the truth; events only make watching prompt.

use std::time::Duration;

use futures::StreamExt;
use lapin::options::{BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use super::{Broker, QueueError};
use crate::job::JobEvent;

/// Events held for a watcher that is slow to read.
const BACKLOG: usize = 1024;

/// Cheap to clone; every clone subscribes to the same feed.
#[derive(Clone)]
pub struct EventHub {
    sender: broadcast::Sender<JobEvent>,
}

impl Default for EventHub {
    fn default() -> Self {
        Self {
            sender: broadcast::channel(BACKLOG).0,
        }
    }
}

impl EventHub {
    /// Starts consuming the events exchange; the task reconnects on its own
    /// until the returned handle is aborted.
    pub fn feed_from(&self, broker: Broker) -> JoinHandle<()> {
        let hub = self.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = hub.consume(&broker).await {
                    debug!("job events feed interrupted: {e}");
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    }

    pub fn subscribe(&self) -> broadcast::Receiver<JobEvent> {
        self.sender.subscribe()
    }

    /// Watchers right now.
    pub fn watchers(&self) -> usize {
        self.sender.receiver_count()
    }

    async fn consume(&self, broker: &Broker) -> Result<(), QueueError> {
        let channel = broker.consumer_channel(0).await?;
        let queue = channel
            .queue_declare(
                "".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        let exchange = broker.settings().events_exchange.clone();
        channel
            .queue_bind(
                queue.name().as_str().into(),
                exchange.as_str().into(),
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let mut consumer = channel
            .basic_consume(
                queue.name().as_str().into(),
                "".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        while let Some(delivery) = consumer.next().await {
            let delivery = delivery?;
            match serde_json::from_slice::<JobEvent>(&delivery.data) {
                // No watcher is not an error.
                Ok(event) => {
                    let _ = self.sender.send(event);
                }
                Err(e) => warn!("ignoring a malformed job event: {e}"),
            }
        }
        Ok(())
    }
}
