//! The queue bridge actor: consumes `video` and feeds the transcoder pool.
//!
//! Backpressure is RabbitMQ's: the consumer's prefetch (pool size + the
//! `transcoder` mailbox capacity) caps the deliveries this node holds, and
//! the rest stay durable on the broker where another node can take them. A message that
//! is not a job (bad JSON) goes to the dead-letter queue instead of looping.
//!
//! Draining cancels the consumer but keeps the channel: deliveries in hand
//! are still acked on it. RabbitMQ applies a prefetch change only to
//! consumers created after it, so a new prefetch (after a pool resize)
//! means a new consumer on the same channel.

use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicQosOptions, BasicRejectOptions,
};
use lapin::types::FieldTable;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::Serialize;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::broker::{Broker, JobDelivery};
use crate::job::VideoMessage;
use crate::mailbox::Mailbox;
use crate::transcoder::PoolMsg;

pub enum BridgeMsg {
    /// Consumer `generation`'s stream ended (cancelled, or channel lost).
    ConsumerEnded {
        generation: u64,
        reason: String,
    },
    /// Stop taking deliveries; those in hand finish.
    Drain(RpcReplyPort<BridgeStatus>),
    /// Take deliveries again.
    Resume(RpcReplyPort<Result<BridgeStatus, String>>),
    /// Hold at most this many unacked deliveries from now on.
    SetPrefetch(u16, RpcReplyPort<Result<BridgeStatus, String>>),
    Status(RpcReplyPort<BridgeStatus>),
}

#[derive(Debug, Clone, Serialize)]
pub struct BridgeStatus {
    pub draining: bool,
    pub prefetch: u16,
}

pub struct BridgeArgs {
    pub broker: Broker,
    pub pool: ActorRef<PoolMsg>,
    /// The pool's mailbox: each delivery waits there with a ticket.
    pub mailbox: Mailbox,
    pub prefetch: u16,
    pub node_id: String,
    /// Start without consuming (the node was drained before a restart).
    pub draining: bool,
}

struct Consumer {
    task: JoinHandle<()>,
    tag: String,
}

pub struct BridgeState {
    channel: lapin::Channel,
    args: BridgeArgs,
    generation: u64,
    consumer: Option<Consumer>,
}

impl BridgeState {
    fn status(&self) -> BridgeStatus {
        BridgeStatus {
            draining: self.consumer.is_none(),
            prefetch: self.args.prefetch,
        }
    }

    async fn start_consumer(&mut self, myself: &ActorRef<BridgeMsg>) -> Result<(), lapin::Error> {
        self.generation += 1;
        let generation = self.generation;
        self.channel
            .basic_qos(self.args.prefetch, BasicQosOptions::default())
            .await?;
        let queue = self.args.broker.settings().video_queue.clone();
        let tag = format!("vidaud-{}-{generation}", self.args.node_id);
        let mut stream = self
            .channel
            .basic_consume(
                queue.as_str().into(),
                tag.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        info!(%queue, prefetch = self.args.prefetch, "consuming");
        let (pool, mailbox, broker, myself) = (
            self.args.pool.clone(),
            self.args.mailbox.clone(),
            self.args.broker.clone(),
            myself.clone(),
        );
        let task = tokio::spawn(async move {
            let reason = loop {
                let delivery = match stream.next().await {
                    Some(Ok(delivery)) => delivery,
                    Some(Err(e)) => break e.to_string(),
                    None => break "consumer cancelled".to_owned(),
                };
                if let Err(reason) = route(delivery, &broker, &pool, &mailbox).await {
                    break reason;
                }
            };
            let _ = myself.cast(BridgeMsg::ConsumerEnded { generation, reason });
        });
        self.consumer = Some(Consumer { task, tag });
        Ok(())
    }

    /// Cancels the consumer; its stream hands over what it already received
    /// and ends.
    async fn stop_consumer(&mut self) {
        if let Some(consumer) = self.consumer.take() {
            let _ = self
                .channel
                .basic_cancel(consumer.tag.as_str().into(), BasicCancelOptions::default())
                .await;
            if tokio::time::timeout(std::time::Duration::from_secs(5), consumer.task)
                .await
                .is_err()
            {
                warn!("the video consumer did not end after its cancel");
            }
        }
    }
}

pub struct QueueBridge;

/// Hands a delivery to the pool, or parks it in the dead-letter queue when
/// it is not a job. `Err` means the bridge cannot go on.
async fn route(
    delivery: Delivery,
    broker: &Broker,
    pool: &ActorRef<PoolMsg>,
    mailbox: &Mailbox,
) -> Result<(), String> {
    let Ok(message) = serde_json::from_slice::<VideoMessage>(&delivery.data) else {
        warn!("a `video` message is not a vidaud job; dead-lettering it");
        let settled = match broker
            .dead_letter(&delivery.data, "not a vidaud job message")
            .await
        {
            Ok(()) => delivery.acker.ack(BasicAckOptions::default()).await,
            Err(_) => {
                delivery
                    .acker
                    .reject(BasicRejectOptions { requeue: false })
                    .await
            }
        };
        return settled.map(|_| ()).map_err(|e| e.to_string());
    };
    let job = JobDelivery {
        message,
        payload: delivery.data,
        redelivered: delivery.redelivered,
        acker: delivery.acker,
    };
    // Never refused: the prefetch already bounds what can arrive, and a
    // delivery in hand must reach a worker or go back to the broker.
    let ticket = mailbox.take();
    pool.cast(PoolMsg::Job(job, ticket))
        .map_err(|_| "the transcoder pool is gone".to_owned())
}

impl Actor for QueueBridge {
    type Msg = BridgeMsg;
    type State = BridgeState;
    type Arguments = BridgeArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<BridgeMsg>,
        args: BridgeArgs,
    ) -> Result<BridgeState, ActorProcessingErr> {
        let channel = args.broker.consumer_channel(args.prefetch).await?;
        let draining = args.draining;
        let mut state = BridgeState {
            channel,
            args,
            generation: 0,
            consumer: None,
        };
        if !draining {
            state.start_consumer(&myself).await?;
        }
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<BridgeMsg>,
        msg: BridgeMsg,
        state: &mut BridgeState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            BridgeMsg::ConsumerEnded { generation, reason } => {
                // Only the live consumer ending unasked is a failure; the
                // supervisor then restarts the bridge (and reconnects).
                if generation == state.generation && state.consumer.is_some() {
                    return Err(format!("video consumer ended: {reason}").into());
                }
            }
            BridgeMsg::Drain(reply) => {
                state.stop_consumer().await;
                info!("draining: no new deliveries");
                let _ = reply.send(state.status());
            }
            BridgeMsg::Resume(reply) => {
                let result = match state.consumer {
                    Some(_) => Ok(()),
                    None => state
                        .start_consumer(&myself)
                        .await
                        .map_err(|e| e.to_string()),
                };
                let _ = reply.send(result.map(|()| state.status()));
            }
            BridgeMsg::SetPrefetch(prefetch, reply) => {
                state.args.prefetch = prefetch;
                let result = if state.consumer.is_some() {
                    state.stop_consumer().await;
                    state
                        .start_consumer(&myself)
                        .await
                        .map_err(|e| e.to_string())
                } else {
                    Ok(())
                };
                let _ = reply.send(result.map(|()| state.status()));
            }
            BridgeMsg::Status(reply) => {
                let _ = reply.send(state.status());
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<BridgeMsg>,
        state: &mut BridgeState,
    ) -> Result<(), ActorProcessingErr> {
        // Stop taking deliveries, but keep the channel: workers still hold
        // deliveries from it and ack them there as they finish. Whatever is
        // still unacked when the connection goes returns to the queue.
        state.stop_consumer().await;
        Ok(())
    }
}
