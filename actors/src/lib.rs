//! The actors of the vidaud daemon and the adapters each one owns.
//!
//! Every long-lived concern of a node is one actor (HTTP front, auth, queue
//! bridge and transcoder pool, notifier, retention sweep) in its own folder
//! or file. The actors reach storage, queues and users only through the
//! traits of `backends` (one `Backends` value, chosen by configuration);
//! the adapters to MongoDB, RabbitMQ and MySQL live under
//! `backends/cluster`. The shared vocabulary — ids, times, job records,
//! queue messages and events — is `domain`, which names no driver type.
//! `ARCHITECTURE.md` at the repository root is the map.

pub mod auth;
pub mod backends;
pub mod background;
pub mod cidr;
pub mod domain;
pub mod erasure;
pub mod http;
pub mod jobs;
pub mod mailbox;
pub mod metrics;
pub mod notifier;
pub use vidaud_output as output;
pub mod retention;
pub mod settings;
pub mod transcoder;
pub mod webhooks;

pub use settings::Settings;
