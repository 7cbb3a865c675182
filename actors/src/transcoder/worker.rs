//! A transcoder worker actor: one job at a time. The work itself is in
//! `attempt`; the actor gives it a supervised home, so a panic while
//! converting kills only this worker, and the pool hands its delivery back.
//!
//! An idle worker holds a conversion child started ahead (a [`Standby`]),
//! so that a job does not wait for a process to start and load GStreamer;
//! a job that converts takes it, and the worker starts the next one before
//! it says it is idle. A stopped worker's child is killed with it.

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tracing::warn;

use super::attempt::{WorkerContext, run_attempt};
use super::isolation::Standby;
use super::messages::{PoolMsg, WorkerMsg};

pub struct Worker {
    pub pool: ActorRef<PoolMsg>,
}

pub struct WorkerState {
    context: Arc<WorkerContext>,
    standby: Option<Standby>,
}

impl WorkerState {
    /// Starts a child ahead unless one waits already (none when conversions
    /// run in the node; a failure to start is left to the job, which tries
    /// again and says why).
    fn stand_by(&mut self) {
        let Some(sandbox) = &self.context.sandbox else {
            return;
        };
        if self.standby.is_none() {
            match Standby::start(sandbox, &self.context.settings.spool_dir) {
                Ok(standby) => self.standby = Some(standby),
                Err(e) => warn!("cannot start a conversion child ahead: {e}"),
            }
        }
    }
}

impl Actor for Worker {
    type Msg = WorkerMsg;
    type State = WorkerState;
    type Arguments = Arc<WorkerContext>;

    async fn pre_start(
        &self,
        _myself: ActorRef<WorkerMsg>,
        context: Arc<WorkerContext>,
    ) -> Result<Self::State, ActorProcessingErr> {
        let mut state = WorkerState {
            context,
            standby: None,
        };
        state.stand_by();
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<WorkerMsg>,
        msg: WorkerMsg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let WorkerMsg::Run(delivery) = msg;
        run_attempt(&state.context, &delivery, &mut state.standby).await;
        state.stand_by();
        // The pool may be stopping; then nobody needs to know.
        let _ = self.pool.cast(PoolMsg::Idle {
            worker: myself.get_id(),
        });
        Ok(())
    }
}
