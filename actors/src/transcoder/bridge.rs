//! The queue bridge actor: consumes the job queue and feeds the transcoder
//! pool.
//!
//! Backpressure is the queue's: the consumer's prefetch (pool size + the
//! `transcoder` mailbox capacity) caps the deliveries this node holds, and
//! the rest stay durable in the queue where another node can take them. A
//! message that is not a job (bad JSON, ids that are not ids) goes to the
//! dead letters instead of looping.
//!
//! Draining cancels the consumer; deliveries in hand are still settled
//! through their handles. A prefetch change (after a pool resize) means a
//! new consumer: a broker applies a prefetch only to consumers made after it.

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::Serialize;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::messages::{JobDelivery, PoolMsg};
use crate::backends::{Backends, Delivery, Queue, QueueError, chain, run_consumer};
use crate::domain::VideoMessage;
use crate::mailbox::Mailbox;

pub enum BridgeMsg {
    /// Consumer `generation`'s stream ended (cancelled, or lost).
    ConsumerEnded {
        generation: u64,
        reason: String,
    },
    /// Stop taking deliveries; those in hand finish.
    Drain(RpcReplyPort<BridgeStatus>),
    /// Take deliveries again.
    Resume(RpcReplyPort<Result<BridgeStatus, String>>),
    /// Hold at most this many unsettled deliveries from now on.
    SetPrefetch(u16, RpcReplyPort<Result<BridgeStatus, String>>),
    Status(RpcReplyPort<BridgeStatus>),
}

#[derive(Debug, Clone, Serialize)]
pub struct BridgeStatus {
    pub draining: bool,
    pub prefetch: u16,
}

pub struct BridgeArgs {
    pub backends: Backends,
    pub pool: ActorRef<PoolMsg>,
    /// The pool's mailbox: each delivery waits there with a ticket.
    pub mailbox: Mailbox,
    pub prefetch: u16,
    pub node_id: String,
    /// Start without consuming (the node was drained before a restart).
    pub draining: bool,
}

/// The running consumer: its task owns the stream and is asked to stop.
struct Running {
    task: JoinHandle<()>,
    stop: tokio::sync::oneshot::Sender<()>,
}

pub struct BridgeState {
    args: BridgeArgs,
    generation: u64,
    consumer: Option<Running>,
}

impl BridgeState {
    fn status(&self) -> BridgeStatus {
        BridgeStatus {
            draining: self.consumer.is_none(),
            prefetch: self.args.prefetch,
        }
    }

    async fn start_consumer(&mut self, myself: &ActorRef<BridgeMsg>) -> Result<(), QueueError> {
        self.generation += 1;
        let generation = self.generation;
        let tag = format!("vidaud-{}-{generation}", self.args.node_id);
        let consumer = self
            .args
            .backends
            .queue
            .consume(Queue::Jobs, self.args.prefetch, &tag)
            .await?;
        info!(prefetch = self.args.prefetch, "consuming jobs");
        let (pool, mailbox, backends, myself) = (
            self.args.pool.clone(),
            self.args.mailbox.clone(),
            self.args.backends.clone(),
            myself.clone(),
        );
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let reason = run_consumer(consumer, stopped, |delivery| {
                route(delivery, &backends, &pool, &mailbox)
            })
            .await;
            let _ = myself.cast(BridgeMsg::ConsumerEnded { generation, reason });
        });
        self.consumer = Some(Running { task, stop });
        Ok(())
    }

    /// Cancels the consumer; what it already received is handed over.
    async fn stop_consumer(&mut self) {
        if let Some(consumer) = self.consumer.take() {
            let _ = consumer.stop.send(());
            if tokio::time::timeout(std::time::Duration::from_secs(5), consumer.task)
                .await
                .is_err()
            {
                warn!("the job consumer did not end after its cancel");
            }
        }
    }
}

pub struct QueueBridge;

/// Hands a delivery to the pool, or parks it among the dead letters when
/// it is not a job. `Err` means the bridge cannot go on.
async fn route(
    delivery: Delivery,
    backends: &Backends,
    pool: &ActorRef<PoolMsg>,
    mailbox: &Mailbox,
) -> Result<(), String> {
    let Ok(message) = serde_json::from_slice::<VideoMessage>(&delivery.payload) else {
        warn!("a job queue message is not a vidaud job; dead-lettering it");
        let settled = match backends
            .dead_letter(&delivery.payload, "not a vidaud job message")
            .await
        {
            Ok(()) => delivery.settle.ack().await,
            Err(_) => delivery.settle.reject().await,
        };
        return settled.map_err(|e| chain(&e));
    };
    let job = JobDelivery {
        message,
        payload: delivery.payload,
        redelivered: delivery.redelivered,
        settle: delivery.settle,
    };
    // Never refused: the prefetch already bounds what can arrive, and a
    // delivery in hand must reach a worker or go back to the queue.
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
        let draining = args.draining;
        let mut state = BridgeState {
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
                    return Err(format!("job consumer ended: {reason}").into());
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
                    None => state.start_consumer(&myself).await.map_err(|e| chain(&e)),
                };
                let _ = reply.send(result.map(|()| state.status()));
            }
            BridgeMsg::SetPrefetch(prefetch, reply) => {
                state.args.prefetch = prefetch;
                let result = if state.consumer.is_some() {
                    state.stop_consumer().await;
                    state.start_consumer(&myself).await.map_err(|e| chain(&e))
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
        // Stop taking deliveries; workers still hold deliveries and settle
        // them as they finish. Whatever is unsettled when the node goes
        // returns to the queue.
        state.stop_consumer().await;
        Ok(())
    }
}
