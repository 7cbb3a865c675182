//! RabbitMQ: the broker connection with its confirming publisher, and the
//! queue bridge actor that turns `video` deliveries into transcoder jobs.

mod bridge;
mod broker;

pub use bridge::{BridgeArgs, BridgeMsg, BridgeStatus, QueueBridge};
pub use broker::{Broker, JobDelivery, QueueError};
