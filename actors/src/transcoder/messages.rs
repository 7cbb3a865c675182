//! The messages between the queue bridge, the pool and its workers, in one
//! place so that neither actor imports the other's module for them.

use std::sync::Arc;

use ractor::{ActorId, RpcReplyPort};
use serde::Serialize;

use crate::backends::Settle;
use crate::domain::VideoMessage;
use crate::mailbox::Ticket;

/// A job delivery handed to the pool. Whoever holds it last settles it:
/// ack (job finished), requeue (attempt handed back).
pub struct JobDelivery {
    pub message: VideoMessage,
    /// The message as received, for the dead letters.
    pub payload: Vec<u8>,
    pub redelivered: bool,
    pub settle: Arc<dyn Settle>,
}

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

pub enum WorkerMsg {
    Run(JobDelivery),
}
