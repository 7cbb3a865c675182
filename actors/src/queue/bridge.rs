//! The queue bridge actor: consumes `video` and feeds the transcoder pool.
//!
//! Backpressure is RabbitMQ's: the consumer channel's prefetch (pool size +
//! `prefetch_extra`) caps the deliveries this node holds, and the rest stay
//! durable on the broker where another node can take them. A message that
//! is not a job (bad JSON) goes to the dead-letter queue instead of looping.

use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicRejectOptions,
};
use lapin::types::FieldTable;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::broker::{Broker, JobDelivery};
use crate::job::VideoMessage;
use crate::transcoder::PoolMsg;

pub enum BridgeMsg {
    /// The consumer stream ended (channel or connection lost).
    ConsumerEnded(String),
}

pub struct BridgeArgs {
    pub broker: Broker,
    pub pool: ActorRef<PoolMsg>,
    pub prefetch: u16,
    pub node_id: String,
}

pub struct BridgeState {
    consumer: JoinHandle<()>,
    channel: lapin::Channel,
    consumer_tag: String,
}

pub struct QueueBridge;

/// Hands a delivery to the pool, or parks it in the dead-letter queue when
/// it is not a job. `Err` means the bridge cannot go on.
async fn route(
    delivery: Delivery,
    broker: &Broker,
    pool: &ActorRef<PoolMsg>,
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
    pool.cast(PoolMsg::Job(job))
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
        let queue = args.broker.settings().video_queue.clone();
        let consumer_tag = format!("vidaud-{}", args.node_id);
        let mut consumer = channel
            .basic_consume(
                queue.as_str().into(),
                consumer_tag.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        info!(%queue, prefetch = args.prefetch, "consuming");
        let (pool, broker) = (args.pool, args.broker);
        let consumer = tokio::spawn(async move {
            let reason = loop {
                let delivery = match consumer.next().await {
                    Some(Ok(delivery)) => delivery,
                    Some(Err(e)) => break e.to_string(),
                    None => break "consumer cancelled".to_owned(),
                };
                if let Err(reason) = route(delivery, &broker, &pool).await {
                    break reason;
                }
            };
            let _ = myself.cast(BridgeMsg::ConsumerEnded(reason));
        });
        Ok(BridgeState {
            consumer,
            channel,
            consumer_tag,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<BridgeMsg>,
        msg: BridgeMsg,
        _state: &mut BridgeState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            // Failing hands the decision to the supervisor (restart policy).
            BridgeMsg::ConsumerEnded(reason) => {
                Err(format!("video consumer ended: {reason}").into())
            }
        }
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<BridgeMsg>,
        state: &mut BridgeState,
    ) -> Result<(), ActorProcessingErr> {
        // Stop taking deliveries, but keep the channel: workers still hold
        // deliveries from it and ack them there as they finish. Whatever is
        // still unacked when the connection goes returns to the queue.
        let _ = state
            .channel
            .basic_cancel(
                state.consumer_tag.as_str().into(),
                BasicCancelOptions::default(),
            )
            .await;
        state.consumer.abort();
        Ok(())
    }
}
