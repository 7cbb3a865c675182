//! The cluster's queues in RabbitMQ: the broker connection with its
//! confirming publisher (broker.rs), the job queue over it (this file: the
//! reference's durable queues `video` and `mp3`, and `video.dead`), and the
//! event bus on the fanout exchange (events.rs).

mod broker;
mod events;

pub use broker::Broker;
pub use events::RabbitEvents;

use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicRejectOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel};

use crate::backends::{Consumer, Delivery, JobQueue, Queue, QueueError, Settle};

const BACKEND: &str = "RabbitMQ";

impl From<lapin::Error> for QueueError {
    fn from(e: lapin::Error) -> Self {
        QueueError::backend(BACKEND, e)
    }
}

#[async_trait]
impl JobQueue for Broker {
    async fn publish(&self, queue: Queue, payload: &[u8]) -> Result<(), QueueError> {
        self.publish_bytes(self.queue_name(queue), payload, BasicProperties::default())
            .await
    }

    /// The reason goes in the `x-vidaud-error` header, the node in
    /// `x-vidaud-node`.
    async fn dead_letter(&self, payload: &[u8], reason: &str) -> Result<(), QueueError> {
        let mut headers = FieldTable::default();
        headers.insert(
            "x-vidaud-error".into(),
            AMQPValue::LongString(reason.into()),
        );
        headers.insert(
            "x-vidaud-node".into(),
            AMQPValue::LongString(self.node_id().into()),
        );
        let properties = BasicProperties::default().with_headers(headers);
        self.publish_bytes(self.queue_name(Queue::DeadLetters), payload, properties)
            .await
    }

    async fn consume(
        &self,
        queue: Queue,
        prefetch: u16,
        tag: &str,
    ) -> Result<Box<dyn Consumer>, QueueError> {
        let channel = self.consumer_channel(prefetch).await?;
        let stream = channel
            .basic_consume(
                self.queue_name(queue).into(),
                tag.into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok(Box::new(LapinConsumer {
            channel,
            stream,
            tag: tag.to_owned(),
        }))
    }

    async fn depths(&self) -> Result<Vec<(String, u64)>, QueueError> {
        self.ready_messages().await
    }
}

/// A consumer on a channel of its own (prefetch is per channel).
struct LapinConsumer {
    channel: Channel,
    stream: lapin::Consumer,
    tag: String,
}

#[async_trait]
impl Consumer for LapinConsumer {
    async fn next(&mut self) -> Option<Result<Delivery, QueueError>> {
        let delivery = match self.stream.next().await? {
            Ok(delivery) => delivery,
            Err(e) => return Some(Err(e.into())),
        };
        Some(Ok(Delivery {
            payload: delivery.data,
            redelivered: delivery.redelivered,
            settle: Arc::new(LapinSettle {
                acker: delivery.acker,
                _channel: self.channel.clone(),
            }),
        }))
    }

    /// Cancels the consumer but keeps the channel: deliveries in hand are
    /// settled on it. Whatever is unsettled when the connection goes
    /// returns to the queue.
    async fn cancel(&mut self) {
        let _ = self
            .channel
            .basic_cancel(self.tag.as_str().into(), BasicCancelOptions::default())
            .await;
    }
}

struct LapinSettle {
    acker: lapin::Acker,
    /// The delivery can only be settled on its own channel: kept open for it.
    _channel: Channel,
}

#[async_trait]
impl Settle for LapinSettle {
    async fn ack(&self) -> Result<(), QueueError> {
        self.acker.ack(BasicAckOptions::default()).await?;
        Ok(())
    }

    async fn requeue(&self) -> Result<(), QueueError> {
        let requeue = BasicNackOptions {
            requeue: true,
            ..Default::default()
        };
        self.acker.nack(requeue).await?;
        Ok(())
    }

    async fn reject(&self) -> Result<(), QueueError> {
        self.acker
            .reject(BasicRejectOptions { requeue: false })
            .await?;
        Ok(())
    }
}
