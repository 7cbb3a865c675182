//! The transcoder: a pool of worker actors, each converting one job at a
//! time with the GStreamer pipeline.
//!
//! The pool owns the workers (it is their supervisor) and the queue of
//! deliveries waiting for a free worker. It keeps a handle on the delivery
//! each worker holds, so a worker that dies mid-job has its delivery
//! returned to RabbitMQ — never acked, never lost.

mod attempt;
mod gapless;
mod id3;
mod lame;
mod mp3_output;
pub mod pipeline;
mod pool;
mod spool;
mod worker;

pub use attempt::WorkerContext;
pub use pipeline::{Control, Progress, Summary, TranscodeError, transcode};
pub use pool::{PoolArgs, PoolMsg, PoolStatus, TranscoderPool};
pub use spool::Spool;
