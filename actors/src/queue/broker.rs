//! The AMQP connection of a node and its publisher.
//!
//! Publishing always waits for the broker's confirm, and messages are
//! persistent on durable queues: once `publish` returns `Ok`, the message
//! survives a broker restart. lapin channels are safe to share between
//! tasks, and each publish awaits its own confirm, so concurrent uploads
//! never interleave on the wire.

use lapin::options::{
    BasicAckOptions, BasicNackOptions, BasicPublishOptions, ConfirmSelectOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::uri::AMQPUri;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use serde::Serialize;

use crate::job::VideoMessage;
use crate::settings::QueueSettings;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("RabbitMQ: {0}")]
    Amqp(#[from] lapin::Error),
    #[error("AMQP URL: {0}")]
    Url(String),
    #[error("the broker refused the message (nack)")]
    Nacked,
    #[error("encoding message: {0}")]
    Encode(#[from] serde_json::Error),
}

/// A `video` delivery handed to the transcoder pool. Whoever holds it last
/// acks (job finished) or nacks (attempt handed back) through `acker`.
pub struct JobDelivery {
    pub message: VideoMessage,
    pub acker: lapin::Acker,
    pub redelivered: bool,
}

impl JobDelivery {
    pub async fn ack(&self) -> Result<(), QueueError> {
        self.acker.ack(BasicAckOptions::default()).await?;
        Ok(())
    }

    /// Returns the delivery to the queue for another attempt.
    pub async fn requeue(&self) -> Result<(), QueueError> {
        self.acker
            .nack(BasicNackOptions {
                requeue: true,
                ..Default::default()
            })
            .await?;
        Ok(())
    }
}

/// A node's broker connection; clones share it.
#[derive(Clone)]
pub struct Broker {
    connection: std::sync::Arc<Connection>,
    publisher: Channel,
    settings: QueueSettings,
}

impl Broker {
    pub async fn connect(settings: &QueueSettings, node_id: &str) -> Result<Self, QueueError> {
        let mut uri: AMQPUri = settings.amqp_url.parse().map_err(QueueError::Url)?;
        uri.query.heartbeat = Some(settings.heartbeat_secs);
        let properties = ConnectionProperties::default()
            .with_connection_name(format!("vidaud {node_id}").into());
        let connection = Connection::connect_uri(uri, properties).await?;
        let publisher = connection.create_channel().await?;
        publisher
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        let broker = Self {
            connection: std::sync::Arc::new(connection),
            publisher,
            settings: settings.clone(),
        };
        broker.declare(&broker.publisher).await?;
        Ok(broker)
    }

    /// Declares the durable queues exactly as the reference does (no extra
    /// arguments), so an existing reference deployment's queues are reused.
    async fn declare(&self, channel: &Channel) -> Result<(), QueueError> {
        for queue in [&self.settings.video_queue, &self.settings.mp3_queue] {
            channel
                .queue_declare(
                    queue.as_str().into(),
                    QueueDeclareOptions::durable(),
                    FieldTable::default(),
                )
                .await?;
        }
        Ok(())
    }

    pub fn settings(&self) -> &QueueSettings {
        &self.settings
    }

    /// A new channel for a consumer, with its prefetch limit set.
    pub async fn consumer_channel(&self, prefetch: u16) -> Result<Channel, QueueError> {
        let channel = self.connection.create_channel().await?;
        channel
            .basic_qos(prefetch, lapin::options::BasicQosOptions::default())
            .await?;
        Ok(channel)
    }

    pub fn is_connected(&self) -> bool {
        self.connection.status().connected()
    }

    /// Publishes `message` as persistent JSON to `queue` and waits for the
    /// broker's confirm.
    pub async fn publish<T: Serialize>(&self, queue: &str, message: &T) -> Result<(), QueueError> {
        let payload = serde_json::to_vec(message)?;
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into());
        let confirm = self
            .publisher
            .basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions::default(),
                &payload,
                properties,
            )
            .await?
            .await?;
        if confirm.is_nack() {
            return Err(QueueError::Nacked);
        }
        Ok(())
    }

    pub async fn publish_video(&self, message: &VideoMessage) -> Result<(), QueueError> {
        self.publish(&self.settings.video_queue, message).await
    }

    pub async fn publish_mp3(&self, message: &crate::job::Mp3Message) -> Result<(), QueueError> {
        self.publish(&self.settings.mp3_queue, message).await
    }
}
