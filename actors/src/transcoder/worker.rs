//! A transcoder worker actor: one job at a time. The work itself is in
//! `attempt`; the actor gives it a supervised home, so a panic while
//! converting kills only this worker, and the pool hands its delivery back.

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};

use super::attempt::{WorkerContext, run_attempt};
use super::messages::{PoolMsg, WorkerMsg};

pub struct Worker {
    pub pool: ActorRef<PoolMsg>,
}

impl Actor for Worker {
    type Msg = WorkerMsg;
    type State = Arc<WorkerContext>;
    type Arguments = Arc<WorkerContext>;

    async fn pre_start(
        &self,
        _myself: ActorRef<WorkerMsg>,
        context: Arc<WorkerContext>,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(context)
    }

    async fn handle(
        &self,
        myself: ActorRef<WorkerMsg>,
        msg: WorkerMsg,
        context: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let WorkerMsg::Run(delivery) = msg;
        run_attempt(context, &delivery).await;
        // The pool may be stopping; then nobody needs to know.
        let _ = self.pool.cast(PoolMsg::Idle {
            worker: myself.get_id(),
        });
        Ok(())
    }
}
