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

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};
use tracing::{error, info, warn};

use super::attempt::WorkerContext;
use super::messages::{JobDelivery, PoolMsg, PoolStatus, WorkerMsg};
use super::worker::Worker;
use crate::backends::{Settle, chain};
use crate::domain::JobId;
use crate::mailbox::Ticket;

pub struct PoolArgs {
    pub workers: usize,
    pub context: Arc<WorkerContext>,
}

struct Slot {
    worker: ActorRef<WorkerMsg>,
    /// The job and delivery the worker is on, kept to hand them back if it dies.
    /// The job (and segment of it) in hand, and its delivery.
    busy: Option<(JobId, Option<u32>, Arc<dyn Settle>)>,
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
            let message = &delivery.message;
            slot.busy = Some((message.job_id, message.segment, delivery.settle.clone()));
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
        if let Some((job_id, segment, settle)) = state.slots[index].busy.take() {
            // The attempt died with the worker: release the job (or its
            // segment) now, not when its lease runs out, then hand the
            // delivery back for another attempt; the attempt counter
            // bounds how often.
            let ctx = &state.context;
            let why = "the worker converting it crashed";
            let released = match segment {
                Some(index) => {
                    let segments = &ctx.backends.segments;
                    segments
                        .release_crashed(job_id, index, &ctx.node_id, why)
                        .await
                }
                None => {
                    ctx.backends
                        .jobs
                        .release_crashed(job_id, &ctx.node_id, why)
                        .await
                }
            };
            if let Err(e) = released {
                warn!(%job_id, "could not release the dead worker's job: {}", chain(&e));
            }
            if let Err(e) = settle.requeue().await {
                warn!(
                    "could not hand back the dead worker's delivery: {}",
                    chain(&e)
                );
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
            let _ = delivery.settle.requeue().await;
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

#[cfg(test)]
mod tests {
    //! The pool's crash handling against a real embedded backend: no daemon.

    use std::sync::Arc;
    use std::sync::atomic::AtomicU32;
    use std::time::Duration;

    use ractor::Actor;

    use super::{PoolArgs, TranscoderPool};
    use crate::backends::{Backends, Bucket, FileMeta, Queue, Upload};
    use crate::domain::{FileId, JobRecord, JobState, Owner, UserId, VideoMessage};
    use crate::mailbox::Mailbox;
    use crate::metrics::Metrics;
    use crate::output::ResolvedOutput;
    use crate::settings::{BackendKind, Settings};
    use crate::transcoder::{JobDelivery, PoolMsg, WorkerContext};

    #[tokio::test(flavor = "multi_thread")]
    async fn a_worker_dying_mid_job_hands_back_its_job_and_delivery_and_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = Settings::default();
        settings.backend.kind = BackendKind::Embedded;
        settings.backend.data_dir = dir.path().display().to_string();
        let backends = Backends::connect(&settings, "n1").await.unwrap();

        // A stored video, its job, and its message in the queue.
        let video = FileId::new();
        let owner = Owner::from(UserId::new());
        let meta = FileMeta {
            filename: "clip.mp4".into(),
            owner: owner.clone(),
            content_type: None,
            job_id: None,
        };
        let mut upload = Upload::open(
            backends.blobs.as_ref(),
            Bucket::Videos,
            video,
            meta,
            1 << 20,
        )
        .await
        .unwrap();
        upload.write(b"not really a video").await.unwrap();
        upload.finish().await.unwrap();
        let job = JobRecord::new(
            owner,
            "a@example.com",
            "clip.mp4",
            video,
            ResolvedOutput::default(),
        );
        backends.jobs.insert(&job).await.unwrap();
        backends.publish_job(&job.video_message()).await.unwrap();

        let metrics = Arc::new(Metrics::new());
        let mut transcoder = settings.transcoder.clone();
        transcoder.inject_panics = 1;
        let context = Arc::new(WorkerContext {
            backends: backends.clone(),
            node_id: "n1".into(),
            settings: transcoder,
            metrics: metrics.clone(),
            panics_left: AtomicU32::new(1),
            sandbox: None,
            child_crashes_left: AtomicU32::new(0),
            child_runaways_left: AtomicU32::new(0),
            child_escapes_left: AtomicU32::new(0),
            quota_bytes_per_user: 0,
        });
        let (pool, _) = Actor::spawn(
            None,
            TranscoderPool,
            PoolArgs {
                workers: 1,
                context,
            },
        )
        .await
        .unwrap();

        let mut consumer = backends
            .queue
            .consume(Queue::Jobs, 1, "test")
            .await
            .unwrap();
        let delivery = consumer.next().await.unwrap().unwrap();
        let message: VideoMessage = serde_json::from_slice(&delivery.payload).unwrap();
        let mailbox = Mailbox::new("transcoder", 4, &metrics);
        let job_delivery = JobDelivery {
            message,
            payload: delivery.payload,
            redelivered: delivery.redelivered,
            settle: delivery.settle,
        };
        pool.cast(PoolMsg::Job(job_delivery, mailbox.take()))
            .unwrap();

        // The worker panics after spooling the video: the job goes back to
        // queued at once, its message back to the queue, a new worker starts.
        // Generous patience: a loaded CI machine is slow, not wrong.
        let mut seen = None;
        for _ in 0..600 {
            let record = backends.jobs.get(job.id).await.unwrap().unwrap();
            let depth = backends.queue.depths().await.unwrap();
            let status = ractor::call!(pool, |reply| PoolMsg::Status { reply }).unwrap();
            let handed_back = record.state == JobState::Queued
                && record.attempts == 1
                && depth.contains(&("video".to_owned(), 1))
                && status.worker_restarts == 1;
            seen = Some((record, depth, status));
            if handed_back {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (record, depth, status) = seen.unwrap();
        assert_eq!(
            (record.state, record.attempts, status.worker_restarts),
            (JobState::Queued, 1, 1),
            "the job and its delivery were not handed back (queues: {depth:?})"
        );
        assert!(
            depth.contains(&("video".to_owned(), 1)),
            "queues: {depth:?}"
        );
        assert_eq!(
            record.error.as_deref(),
            Some("the worker converting it crashed")
        );
        assert_eq!((status.size, status.busy), (1, 0));
        pool.stop(None);
    }
}
