//! RabbitMQ: the broker connection with its confirming publisher, and the
//! queue bridge actor that turns `video` deliveries into transcoder jobs, and
//! the feed of job events from every node.

mod bridge;
mod broker;
mod events;

pub use bridge::{BridgeArgs, BridgeMsg, BridgeStatus, QueueBridge};
pub use broker::{Broker, JobDelivery, QueueError};
pub use events::EventHub;
