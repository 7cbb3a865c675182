//! The actors of the vidaud daemon and the adapters each one owns.
//!
//! Every long-lived concern of a node is one actor (HTTP front, auth, queue
//! bridge, transcoder pool, notifier) and lives in its own folder together
//! with the adapter to the outside system it talks to (hyper, MySQL,
//! RabbitMQ, GStreamer, SMTP). Shared vocabulary — job records, queue
//! messages, settings, metrics — sits at the top level so that no actor has
//! to reach into another's folder. `ARCHITECTURE.md` at the repository root
//! is the map.

pub mod auth;
pub mod health;
pub mod http;
pub mod job;
pub mod mailbox;
pub mod metrics;
pub mod notifier;
pub mod output;
pub mod queue;
pub mod settings;
pub mod store;
pub mod transcoder;

pub use settings::Settings;
