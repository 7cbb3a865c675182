//! The cluster's event bus: job events on the fanout exchange
//! (`vidaud.events`), not persistent. Each node consumes it through one
//! exclusive, auto-deleted queue and fans the events out in-process to
//! whoever watches (server-sent event streams).
//!
//! Events are best effort: while the broker is away watchers get none, and
//! a watcher that falls behind is told it lagged. Both re-read the job
//! record, which stays the truth; events only make watching prompt.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use lapin::options::{BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use super::Broker;
use crate::backends::{EventBus, LocalFeed, QueueError};
use crate::domain::JobEvent;

/// Publishes to the exchange; feeds this node's watchers from it while it
/// lives (the feed task ends with the last clone).
#[derive(Clone)]
pub struct RabbitEvents {
    broker: Broker,
    feed: LocalFeed,
    _task: Arc<AbortOnDrop>,
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl RabbitEvents {
    /// Starts consuming the events exchange; the feed reconnects on its own.
    pub fn start(broker: Broker) -> Self {
        let feed = LocalFeed::default();
        let task = {
            let (broker, feed) = (broker.clone(), feed.clone());
            tokio::spawn(async move {
                loop {
                    if let Err(e) = consume(&broker, &feed).await {
                        debug!("job events feed interrupted: {e}");
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            })
        };
        Self {
            broker,
            feed,
            _task: Arc::new(AbortOnDrop(task)),
        }
    }
}

#[async_trait]
impl EventBus for RabbitEvents {
    async fn publish(&self, event: &JobEvent) -> Result<(), QueueError> {
        let payload = serde_json::to_vec(event)?;
        let exchange = &self.broker.settings().events_exchange;
        self.broker.publish_transient(exchange, &payload).await
    }

    fn subscribe(&self) -> broadcast::Receiver<JobEvent> {
        self.feed.subscribe()
    }
}

async fn consume(broker: &Broker, feed: &LocalFeed) -> Result<(), QueueError> {
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
            Ok(event) => feed.send(event),
            Err(e) => warn!("ignoring a malformed job event: {e}"),
        }
    }
    Ok(())
}
