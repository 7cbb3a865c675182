//! The cluster's event bus: job events on the fanout exchange
//! (`vidaud.events`), not persistent. Each node consumes it through one
//! exclusive, auto-deleted queue and fans the events out in-process to
//! whoever watches (server-sent event streams).
//!
//! Events are not persistent, so where they may be lost the watchers are
//! told to re-read the job record (the truth): when a node's feed
//! (re)connects (what was published meanwhile missed it), when a watcher
//! falls behind, and when a publish fails (this node's watchers at once; the
//! event itself, the latest per job, is published again every second until
//! the broker takes it, so other nodes' watchers get it late, not never).
//! Nothing reads the job store while nothing happens.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use lapin::options::{BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use super::Broker;
use crate::backends::{EventBus, Feed, LocalFeed, QueueError};
use crate::domain::{JobEvent, JobId};

/// Publishes to the exchange; feeds this node's watchers from it while it
/// lives (the feed task ends with the last clone).
#[derive(Clone)]
pub struct RabbitEvents {
    broker: Broker,
    feed: LocalFeed,
    /// Events the broker did not take, the latest per job.
    unsent: Arc<Mutex<HashMap<JobId, JobEvent>>>,
    _task: Arc<AbortOnDrop>,
    _resend: Arc<AbortOnDrop>,
}

/// Events held for re-publishing at most (a broker away for long: the
/// job records still say what happened).
const UNSENT: usize = 10_000;

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
        let unsent = Arc::<Mutex<HashMap<JobId, JobEvent>>>::default();
        let resend = {
            let (broker, unsent) = (broker.clone(), unsent.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                loop {
                    tick.tick().await;
                    let held: Vec<JobEvent> = {
                        let mut unsent = unsent.lock().unwrap_or_else(PoisonError::into_inner);
                        unsent.drain().map(|(_, event)| event).collect()
                    };
                    for event in held {
                        if publish(&broker, &event).await.is_err() {
                            hold(&unsent, event);
                        }
                    }
                }
            })
        };
        Self {
            broker,
            feed,
            unsent,
            _task: Arc::new(AbortOnDrop(task)),
            _resend: Arc::new(AbortOnDrop(resend)),
        }
    }
}

async fn publish(broker: &Broker, event: &JobEvent) -> Result<(), QueueError> {
    let payload = serde_json::to_vec(event)?;
    let exchange = &broker.settings().events_exchange;
    broker.publish_transient(exchange, &payload).await
}

/// Keeps `event` for re-publishing unless a newer one of its job is kept.
fn hold(unsent: &Mutex<HashMap<JobId, JobEvent>>, event: JobEvent) {
    let mut unsent = unsent.lock().unwrap_or_else(PoisonError::into_inner);
    if unsent.len() >= UNSENT && !unsent.contains_key(&event.job_id) {
        return;
    }
    let newer = unsent
        .get(&event.job_id)
        .is_some_and(|kept| kept.sequence() > event.sequence());
    if !newer {
        unsent.insert(event.job_id, event);
    }
}

#[async_trait]
impl EventBus for RabbitEvents {
    async fn publish(&self, event: &JobEvent) -> Result<(), QueueError> {
        let published = publish(&self.broker, event).await;
        if published.is_err() {
            hold(&self.unsent, event.clone());
            self.feed.gap();
        }
        published
    }

    fn subscribe(&self) -> broadcast::Receiver<Feed> {
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
    let consumer = channel
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
    // Whatever was published while this node had no queue bound is lost
    // for its watchers: they re-read their jobs once.
    feed.gap();
    let mut consumer = consumer;
    while let Some(delivery) = consumer.next().await {
        let delivery = delivery?;
        match serde_json::from_slice::<JobEvent>(&delivery.data) {
            Ok(event) => feed.send(event),
            Err(e) => warn!("ignoring a malformed job event: {e}"),
        }
    }
    Ok(())
}
