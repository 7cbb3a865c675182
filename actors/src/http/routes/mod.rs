//! The route handlers, grouped by what they serve.

pub mod account;
pub mod events;
pub mod files;
pub mod jobs;
pub mod links;
pub mod me;
pub mod ops;
pub mod options;
pub mod tus;
pub mod upload;
pub mod webhooks;
