//! The AMQP connection of a node and its publisher.
//!
//! Three durable queues: `video` (jobs), `mp3` (finished jobs, for the
//! notifier) and the dead-letter queue (`video.dead` by default) where a
//! job's message is parked when the job fails for good, so an operator can
//! see and replay exactly the poison inputs.
//!
//! Job events go to a fanout exchange (`vidaud.events`), not persistent:
//! they are for live progress, and the job record stays the truth.
//!
//! Publishing always waits for the broker's confirm, and messages are
//! persistent on durable queues: once `publish` returns `Ok`, the message
//! survives a broker restart. lapin channels are safe to share between
//! tasks, and each publish awaits its own confirm, so concurrent uploads
//! never interleave on the wire.

use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::uri::AMQPUri;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use std::sync::Arc;
use tokio::sync::{Mutex, RwLock};
use tracing::info;

use super::BACKEND;
use crate::backends::{Queue, QueueError};
use crate::settings::QueueSettings;

/// One live connection with its confirming publisher channel.
#[derive(Clone)]
struct Link {
    connection: Arc<Connection>,
    publisher: Channel,
}

impl Link {
    fn is_open(&self) -> bool {
        self.connection.status().connected() && self.publisher.status().connected()
    }
}

/// A node's broker connection; clones share it. When the connection is
/// lost, the next user re-establishes it (one reconnect at a time), so a
/// broker restart costs the requests made while it was away, nothing more.
#[derive(Clone)]
pub struct Broker {
    link: Arc<RwLock<Option<Link>>>,
    reconnecting: Arc<Mutex<()>>,
    settings: QueueSettings,
    node_id: String,
}

impl Broker {
    pub async fn connect(settings: &QueueSettings, node_id: &str) -> Result<Self, QueueError> {
        let broker = Self {
            link: Arc::new(RwLock::new(None)),
            reconnecting: Arc::new(Mutex::new(())),
            settings: settings.clone(),
            node_id: node_id.to_owned(),
        };
        broker.link().await?;
        Ok(broker)
    }

    async fn open_link(&self) -> Result<Link, QueueError> {
        let mut uri: AMQPUri = self
            .settings
            .amqp_url
            .parse()
            .map_err(|e: String| QueueError::backend(BACKEND, format!("AMQP URL: {e}")))?;
        uri.query.heartbeat = Some(self.settings.heartbeat_secs);
        let properties = ConnectionProperties::default()
            .with_connection_name(format!("vidaud {}", self.node_id).into());
        let connection = Connection::connect_uri(uri, properties).await?;
        let publisher = connection.create_channel().await?;
        publisher
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        self.declare(&publisher).await?;
        Ok(Link {
            connection: Arc::new(connection),
            publisher,
        })
    }

    /// The current link, reconnecting first when it is down.
    async fn link(&self) -> Result<Link, QueueError> {
        if let Some(link) = self.link.read().await.as_ref().filter(|l| l.is_open()) {
            return Ok(link.clone());
        }
        let _single_flight = self.reconnecting.lock().await;
        if let Some(link) = self.link.read().await.as_ref().filter(|l| l.is_open()) {
            return Ok(link.clone());
        }
        let link = self.open_link().await?;
        info!("connected to RabbitMQ");
        *self.link.write().await = Some(link.clone());
        Ok(link)
    }

    /// Declares the durable queues exactly as the reference does (no extra
    /// arguments), so an existing reference deployment's queues are reused.
    async fn declare(&self, channel: &Channel) -> Result<(), QueueError> {
        let s = &self.settings;
        for queue in [&s.video_queue, &s.mp3_queue, &s.dead_letter_queue] {
            channel
                .queue_declare(
                    queue.as_str().into(),
                    QueueDeclareOptions::durable(),
                    FieldTable::default(),
                )
                .await?;
        }
        channel
            .exchange_declare(
                s.events_exchange.as_str().into(),
                ExchangeKind::Fanout,
                ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        Ok(())
    }

    pub fn settings(&self) -> &QueueSettings {
        &self.settings
    }

    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// The name of one of our queues on this broker.
    pub fn queue_name(&self, queue: Queue) -> &str {
        match queue {
            Queue::Jobs => &self.settings.video_queue,
            Queue::Finished => &self.settings.mp3_queue,
            Queue::DeadLetters => &self.settings.dead_letter_queue,
        }
    }

    /// A new channel for a consumer, with its prefetch limit set.
    pub(super) async fn consumer_channel(&self, prefetch: u16) -> Result<Channel, QueueError> {
        let channel = self.link().await?.connection.create_channel().await?;
        channel
            .basic_qos(prefetch, lapin::options::BasicQosOptions::default())
            .await?;
        Ok(channel)
    }

    /// Messages ready in each of the node's queues (`video`, `mp3`, dead
    /// letters), read with passive declares on a channel of their own.
    pub async fn ready_messages(&self) -> Result<Vec<(String, u64)>, QueueError> {
        let channel = self.link().await?.connection.create_channel().await?;
        let mut depths = Vec::new();
        for queue in Queue::ALL.map(|q| self.queue_name(q)) {
            let declared = channel
                .queue_declare(
                    queue.into(),
                    QueueDeclareOptions {
                        passive: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await?;
            depths.push((queue.to_owned(), u64::from(declared.message_count())));
        }
        let _ = channel.close(200, "sampled".into()).await;
        Ok(depths)
    }

    /// Whether the broker is reachable now (reconnecting if needed).
    pub async fn check(&self) -> bool {
        self.link().await.is_ok()
    }

    /// Publishes `payload` as persistent JSON to `queue` and waits for the
    /// broker's confirm.
    pub(super) async fn publish_bytes(
        &self,
        queue: &str,
        payload: &[u8],
        properties: BasicProperties,
    ) -> Result<(), QueueError> {
        let link = self.link().await?;
        let properties = properties
            .with_delivery_mode(2)
            .with_content_type("application/json".into());
        let confirm = crate::metrics::timed("rabbitmq", "publish_confirmed", async {
            link.publisher
                .basic_publish(
                    "".into(),
                    queue.into(),
                    BasicPublishOptions::default(),
                    payload,
                    properties,
                )
                .await?
                .await
        })
        .await?;
        if confirm.is_nack() {
            return Err(QueueError::Nacked);
        }
        Ok(())
    }

    /// Publishes `payload` (JSON, transient) to the fanout `exchange`.
    pub(super) async fn publish_transient(
        &self,
        exchange: &str,
        payload: &[u8],
    ) -> Result<(), QueueError> {
        let link = self.link().await?;
        let properties = BasicProperties::default().with_content_type("application/json".into());
        link.publisher
            .basic_publish(
                exchange.into(),
                "".into(),
                BasicPublishOptions::default(),
                payload,
                properties,
            )
            .await?
            .await?;
        Ok(())
    }
}
