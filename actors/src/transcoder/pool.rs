//! The transcoder pool actor: hands deliveries to idle workers, queues the
//! rest, replaces workers that die, and resizes live.
//!
//! Resizing up starts workers at once. Resizing down retires workers: an
//! idle one stops now, a busy one after the job in hand, so no conversion
//! is cut short. The queue bridge's prefetch follows the size (the root
//! tells it), so the node never holds more deliveries than it can start.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use mongodb::bson::oid::ObjectId;
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use serde::Serialize;
use tracing::{error, info, warn};

use super::attempt::WorkerContext;
use super::worker::{Worker, WorkerMsg};
use crate::mailbox::Ticket;
use crate::queue::JobDelivery;

pub enum PoolMsg {
    /// A delivery from the queue bridge, with its place in the pool's
    /// mailbox (given back when a worker takes it).
    Job(JobDelivery, Ticket),
    /// A worker finished its job (acked or handed back).
    Idle {
        worker: ActorId,
    },
    /// Sets the number of workers; answers with the status after the change.
    Resize {
        workers: usize,
        reply: RpcReplyPort<PoolStatus>,
    },
    Status {
        reply: RpcReplyPort<PoolStatus>,
    },
}

/// What the pool is doing right now.
#[derive(Debug, Clone, Serialize)]
pub struct PoolStatus {
    /// Workers that take new jobs.
    pub size: usize,
    /// Workers converting now (including retiring ones finishing a job).
    pub busy: usize,
    /// Deliveries received and waiting for a worker.
    pub waiting: usize,
    /// Workers replaced after dying (panics) since start.
    pub worker_restarts: u64,
}

pub struct PoolArgs {
    pub workers: usize,
    pub context: Arc<WorkerContext>,
}

struct Slot {
    worker: ActorRef<WorkerMsg>,
    /// The job and delivery the worker is on, kept to hand them back if it dies.
    busy: Option<(String, lapin::Acker)>,
    /// Stops after the job in hand; takes no new one.
    retiring: bool,
}

pub struct PoolState {
    slots: Vec<Slot>,
    waiting: VecDeque<(JobDelivery, Ticket)>,
    context: Arc<WorkerContext>,
    worker_restarts: u64,
}

impl PoolState {
    fn status(&self) -> PoolStatus {
        PoolStatus {
            size: self.slots.iter().filter(|s| !s.retiring).count(),
            busy: self.slots.iter().filter(|s| s.busy.is_some()).count(),
            waiting: self.waiting.len(),
            worker_restarts: self.worker_restarts,
        }
    }

    fn position(&self, worker: ActorId) -> Option<usize> {
        self.slots.iter().position(|s| s.worker.get_id() == worker)
    }
}

pub struct TranscoderPool;

impl TranscoderPool {
    async fn spawn_worker(
        myself: &ActorRef<PoolMsg>,
        context: Arc<WorkerContext>,
    ) -> Result<ActorRef<WorkerMsg>, ActorProcessingErr> {
        let worker = Worker {
            pool: myself.clone(),
        };
        let (worker, _) = Actor::spawn_linked(None, worker, context, myself.get_cell()).await?;
        Ok(worker)
    }

    fn dispatch(state: &mut PoolState) {
        while let Some(slot) = state
            .slots
            .iter_mut()
            .find(|s| s.busy.is_none() && !s.retiring)
        {
            let Some((delivery, _ticket)) = state.waiting.pop_front() else {
                return;
            };
            slot.busy = Some((delivery.message.job_id.clone(), delivery.acker.clone()));
            if let Err(e) = slot.worker.cast(WorkerMsg::Run(delivery)) {
                // The worker is gone; its supervision event will hand the
                // delivery back when the replacement is made.
                warn!("worker mailbox closed: {e}");
                return;
            }
        }
    }

    async fn resize(
        myself: &ActorRef<PoolMsg>,
        state: &mut PoolState,
        workers: usize,
    ) -> Result<(), ActorProcessingErr> {
        let target = workers.max(1);
        let mut size = state.status().size;
        // Growing: take back retiring workers first, then start new ones.
        for slot in state.slots.iter_mut().filter(|s| s.retiring) {
            if size >= target {
                break;
            }
            slot.retiring = false;
            size += 1;
        }
        while size < target {
            let worker = Self::spawn_worker(myself, state.context.clone()).await?;
            state.slots.push(Slot {
                worker,
                busy: None,
                retiring: false,
            });
            size += 1;
        }
        // Shrinking: idle workers stop now, busy ones after their job.
        let mut index = state.slots.len();
        while size > target && index > 0 {
            index -= 1;
            if state.slots[index].retiring {
                continue;
            }
            size -= 1;
            if state.slots[index].busy.is_none() {
                state.slots.remove(index).worker.stop(None);
            } else {
                state.slots[index].retiring = true;
            }
        }
        info!(workers = target, "transcoder pool resized");
        Ok(())
    }
}

impl Actor for TranscoderPool {
    type Msg = PoolMsg;
    type State = PoolState;
    type Arguments = PoolArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<PoolMsg>,
        args: PoolArgs,
    ) -> Result<PoolState, ActorProcessingErr> {
        let spool_dir = &args.context.settings.spool_dir;
        if !spool_dir.is_empty() {
            std::fs::create_dir_all(spool_dir)
                .map_err(|e| format!("cannot create the spool directory {spool_dir}: {e}"))?;
        }
        let mut state = PoolState {
            slots: Vec::new(),
            waiting: VecDeque::new(),
            context: args.context,
            worker_restarts: 0,
        };
        Self::resize(&myself, &mut state, args.workers).await?;
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<PoolMsg>,
        msg: PoolMsg,
        state: &mut PoolState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            PoolMsg::Job(delivery, ticket) => state.waiting.push_back((delivery, ticket)),
            PoolMsg::Idle { worker } => {
                if let Some(index) = state.position(worker) {
                    state.slots[index].busy = None;
                    if state.slots[index].retiring {
                        state.slots.remove(index).worker.stop(None);
                    }
                }
            }
            PoolMsg::Resize { workers, reply } => {
                Self::resize(&myself, state, workers).await?;
                let _ = reply.send(state.status());
            }
            PoolMsg::Status { reply } => {
                let _ = reply.send(state.status());
            }
        }
        Self::dispatch(state);
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<PoolMsg>,
        event: SupervisionEvent,
        state: &mut PoolState,
    ) -> Result<(), ActorProcessingErr> {
        let dead = match &event {
            SupervisionEvent::ActorFailed(cell, reason) => {
                error!("transcoder worker {} died: {reason}", cell.get_id());
                cell.get_id()
            }
            SupervisionEvent::ActorTerminated(cell, _, _) => cell.get_id(),
            _ => return Ok(()),
        };
        // Workers stopped on purpose (retired) are no longer in a slot.
        let Some(index) = state.position(dead) else {
            return Ok(());
        };
        if let Some((job_id, acker)) = state.slots[index].busy.take() {
            // The attempt died with the worker: release the job now (not
            // when its lease runs out), then hand the delivery back for
            // another attempt; the attempt counter bounds how often.
            let ctx = &state.context;
            if let Ok(id) = ObjectId::parse_str(&job_id)
                && let Err(e) = ctx
                    .store
                    .release_crashed(id, &ctx.node_id, "the worker converting it crashed")
                    .await
            {
                warn!(%job_id, "could not release the dead worker's job: {e}");
            }
            let requeue = lapin::options::BasicNackOptions {
                requeue: true,
                ..Default::default()
            };
            if let Err(e) = acker.nack(requeue).await {
                warn!("could not hand back the dead worker's delivery: {e}");
            }
        }
        if state.slots[index].retiring {
            state.slots.remove(index);
        } else {
            state.slots[index].worker = Self::spawn_worker(&myself, state.context.clone()).await?;
            state.worker_restarts += 1;
            state.context.metrics.restarted("worker");
        }
        Self::dispatch(state);
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<PoolMsg>,
        state: &mut PoolState,
    ) -> Result<(), ActorProcessingErr> {
        // Deliveries not yet started go back to the broker now, for any node.
        for (delivery, _ticket) in state.waiting.drain(..) {
            let _ = delivery.requeue().await;
        }
        // A worker stops after the job in hand: conversions in progress get
        // the grace period to finish and ack. One that overruns is killed;
        // its delivery stays unacked and returns to the queue.
        let grace = Duration::from_secs(state.context.settings.shutdown_grace_secs);
        let busy = state.status().busy;
        if busy > 0 {
            info!(busy, ?grace, "waiting for conversions in progress");
        }
        let stops = state.slots.iter().map(|slot| {
            let worker = slot.worker.clone();
            async move {
                if worker.stop_and_wait(None, Some(grace)).await.is_err() {
                    warn!("a conversion overran the shutdown grace period; abandoning it");
                    worker.kill();
                }
            }
        });
        futures::future::join_all(stops).await;
        Ok(())
    }
}
