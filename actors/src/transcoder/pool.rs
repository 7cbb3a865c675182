//! The transcoder pool actor: hands deliveries to idle workers, queues the
//! rest, and replaces workers that die.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use mongodb::bson::oid::ObjectId;
use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};
use tracing::{error, info, warn};

use super::attempt::WorkerContext;
use super::worker::{Worker, WorkerMsg};
use crate::queue::JobDelivery;

pub enum PoolMsg {
    /// A delivery from the queue bridge.
    Job(JobDelivery),
    /// Worker `index` finished its job (acked or handed back).
    Idle { index: usize },
}

pub struct PoolArgs {
    pub workers: usize,
    pub context: Arc<WorkerContext>,
}

struct Slot {
    worker: ActorRef<WorkerMsg>,
    /// The job and delivery the worker is on, kept to hand them back if it dies.
    busy: Option<(String, lapin::Acker)>,
}

pub struct PoolState {
    slots: Vec<Slot>,
    waiting: VecDeque<JobDelivery>,
    context: Arc<WorkerContext>,
}

pub struct TranscoderPool;

impl TranscoderPool {
    async fn spawn_worker(
        myself: &ActorRef<PoolMsg>,
        index: usize,
        context: Arc<WorkerContext>,
    ) -> Result<ActorRef<WorkerMsg>, ActorProcessingErr> {
        let (worker, _) = Actor::spawn_linked(
            None,
            Worker {
                index,
                pool: myself.clone(),
            },
            context,
            myself.get_cell(),
        )
        .await?;
        Ok(worker)
    }

    fn dispatch(state: &mut PoolState) {
        while let Some(slot) = state.slots.iter_mut().find(|s| s.busy.is_none()) {
            let Some(delivery) = state.waiting.pop_front() else {
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
        let mut slots = Vec::with_capacity(args.workers);
        for index in 0..args.workers.max(1) {
            let worker = Self::spawn_worker(&myself, index, args.context.clone()).await?;
            slots.push(Slot { worker, busy: None });
        }
        info!(workers = slots.len(), "transcoder pool started");
        Ok(PoolState {
            slots,
            waiting: VecDeque::new(),
            context: args.context,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<PoolMsg>,
        msg: PoolMsg,
        state: &mut PoolState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            PoolMsg::Job(delivery) => state.waiting.push_back(delivery),
            PoolMsg::Idle { index } => {
                if let Some(slot) = state.slots.get_mut(index) {
                    slot.busy = None;
                }
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
                Some(cell.get_id())
            }
            SupervisionEvent::ActorTerminated(cell, _, _) => Some(cell.get_id()),
            _ => None,
        };
        let Some(id) = dead else { return Ok(()) };
        let Some(index) = state.slots.iter().position(|s| s.worker.get_id() == id) else {
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
        state.slots[index].worker =
            Self::spawn_worker(&myself, index, state.context.clone()).await?;
        Self::dispatch(state);
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<PoolMsg>,
        state: &mut PoolState,
    ) -> Result<(), ActorProcessingErr> {
        // Deliveries not yet started go back to the broker now, for any node.
        for delivery in state.waiting.drain(..) {
            let _ = delivery.requeue().await;
        }
        // A worker stops after the job in hand: conversions in progress get
        // the grace period to finish and ack. One that overruns is killed;
        // its delivery stays unacked and returns to the queue.
        let grace = Duration::from_secs(state.context.settings.shutdown_grace_secs);
        let busy = state.slots.iter().filter(|s| s.busy.is_some()).count();
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
