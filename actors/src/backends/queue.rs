//! What a backend must do to carry jobs between nodes: durable queues with
//! at-least-once delivery. A publish returns once the message is durable
//! (the broker's confirm; the embedded store's commit). A consumer holds at
//! most its prefetch of unsettled deliveries; each delivery is settled once
//! through its handle: acked (done), requeued (another attempt, for any
//! consumer), or rejected (dropped). What is unsettled when its consumer
//! or node goes away is delivered again, marked redelivered.

use std::sync::Arc;

use async_trait::async_trait;

use super::QueueError;

/// The node's queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Queue {
    /// Jobs to convert (the reference's `video`).
    Jobs,
    /// Jobs that ended, for the notifier (the reference's `mp3`).
    Finished,
    /// Messages of jobs that failed for good, and messages that are no
    /// job at all, with the reason: exactly the poison, for an operator.
    DeadLetters,
}

impl Queue {
    pub const ALL: [Queue; 3] = [Queue::Jobs, Queue::Finished, Queue::DeadLetters];
}

#[async_trait]
pub trait JobQueue: Send + Sync {
    /// Publishes `payload` (JSON) durably to `queue`.
    async fn publish(&self, queue: Queue, payload: &[u8]) -> Result<(), QueueError>;

    /// Parks a message that must not be processed again among the dead
    /// letters, with the reason.
    async fn dead_letter(&self, payload: &[u8], reason: &str) -> Result<(), QueueError>;

    /// Starts consuming `queue`, holding at most `prefetch` unsettled
    /// deliveries; `tag` names the consumer (for operators).
    async fn consume(
        &self,
        queue: Queue,
        prefetch: u16,
        tag: &str,
    ) -> Result<Box<dyn Consumer>, QueueError>;

    /// Messages ready in each queue, by the queue's name.
    async fn depths(&self) -> Result<Vec<(String, u64)>, QueueError>;
}

/// A stream of deliveries from one queue.
#[async_trait]
pub trait Consumer: Send {
    /// The next delivery; `None` once cancelled; an error when the consumer
    /// is lost (its deliveries come back to the queue).
    async fn next(&mut self) -> Option<Result<Delivery, QueueError>>;

    /// Stops taking deliveries. Those in hand can still be settled.
    async fn cancel(&mut self);
}

/// One message in hand.
pub struct Delivery {
    pub payload: Vec<u8>,
    /// Delivered before, to someone who did not settle it.
    pub redelivered: bool,
    pub settle: Arc<dyn Settle>,
}

/// Settles one delivery. Only the first call counts.
#[async_trait]
pub trait Settle: Send + Sync {
    async fn ack(&self) -> Result<(), QueueError>;
    /// Back to the queue for another attempt, by any consumer.
    async fn requeue(&self) -> Result<(), QueueError>;
    /// Dropped, not delivered again (after dead-lettering it elsewhere).
    async fn reject(&self) -> Result<(), QueueError>;
}

/// Feeds `consumer`'s deliveries to `handle`, one at a time, until the
/// consumer ends, `handle` gives up (`Err` with the reason), or `stop`
/// fires: then the consumer is cancelled and still hands over what it had
/// received. Returns why it ended.
pub async fn run_consumer<F, Fut>(
    mut consumer: Box<dyn Consumer>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
    mut handle: F,
) -> String
where
    F: FnMut(Delivery) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let mut cancelled = false;
    loop {
        let next = tokio::select! {
            next = consumer.next() => next,
            _ = &mut stop, if !cancelled => {
                consumer.cancel().await;
                cancelled = true;
                continue;
            }
        };
        let delivery = match next {
            Some(Ok(delivery)) => delivery,
            Some(Err(e)) => return super::chain(&e),
            None => return "consumer cancelled".to_owned(),
        };
        if let Err(reason) = handle(delivery).await {
            return reason;
        }
    }
}
