//! The transcoder: a pool of worker actors, each converting one job at a
//! time with the GStreamer pipeline.
//!
//! The queue bridge (bridge.rs) feeds the pool from the job queue. The pool
//! owns the workers (it is their supervisor) and the queue of deliveries
//! waiting for a free worker. It keeps a handle on the delivery each worker
//! holds, so a worker that dies mid-job has its delivery returned to the
//! job queue — never acked, never lost.

mod attempt;
mod bridge;
mod crc;
pub mod isolation;
mod messages;
mod ogg;
pub mod pipeline;
mod pool;
pub mod segments;
mod split;
mod spool;
mod worker;

pub use attempt::WorkerContext;
pub use bridge::{BridgeArgs, BridgeMsg, BridgeStatus, QueueBridge};
pub use isolation::Sandbox;
pub use messages::{JobDelivery, PoolMsg, PoolStatus};
pub use pipeline::{
    Control, Output, Progress, Segment, Summary, TranscodeError, transcode, transcode_segment,
};
pub use pool::{PoolArgs, TranscoderPool};
pub use spool::Spool;
