//! The integration-test harness: real vidaud daemons against the real
//! servers that `scripts/test` provides (RabbitMQ, MariaDB, SecantusDB, an
//! SMTP sink writing a Maildir). Every node group gets its own queues and
//! databases, so tests run side by side without seeing each other's jobs.
//!
//! A node runs on either backend ([`Backend`]): the cluster one on those
//! servers, or the embedded one on a data directory of its own. What a test
//! checks of storage (files kept, job records, queue depths) goes through
//! backend-neutral methods, so one test body serves both; the
//! [`both_backends!`] macro runs it once on each.
//!
//! A file per concern: `node` (processes: a node started, killed,
//! restarted, its admin socket and CLI), `api` (the HTTP API as a client
//! sees it; a `Node` derefs to its `Api`), `stores` (storage checks on
//! either backend), `broker` (RabbitMQ: depths, raw publishes, events),
//! `mail` (the SMTP sink's Maildir), `media` (test media and probes),
//! `disk` (small file systems that fill), `proxy` (a cutting TCP proxy).
//! Everything is re-exported here, so tests say `common::X`.

#![allow(dead_code)]

pub mod api;
pub mod broker;
pub mod disk;
pub mod mail;
pub mod media;
pub mod node;
pub mod proxy;
pub mod stores;

use std::collections::HashSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use mongodb::bson::{Bson, Document, doc};
use serde_json::Value;

// Each test binary uses some of them.
#[allow(unused_imports)]
pub use {api::*, broker::*, mail::*, node::*, stores::*};

/// The secret every test node signs with, so tests can forge tokens.
pub const JWT_SECRET: &str = "integration-test-secret-0123456789abcdef";

/// A token signed with `secret` for `username`, expiring `exp_offset`
/// seconds from now, with the given `admin` claim.
pub fn forge_token(secret: &str, username: &str, exp_offset: i64, admin: bool) -> String {
    let now = jsonwebtoken::get_current_timestamp() as i64;
    let claims = serde_json::json!({
        "username": username, "iat": now, "exp": now + exp_offset, "admin": admin,
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("encode")
}

pub fn mongo_port() -> u16 {
    env_or("VIDAUD_TEST_MONGO_PORT", 27117)
}

pub fn smtp_port() -> u16 {
    env_or("VIDAUD_TEST_SMTP_PORT", 2625)
}

fn env_or(name: &str, default: u16) -> u16 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A name no other test (or earlier run) uses.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}{}x{n}x{nanos:x}", std::process::id())
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

/// Which backend a test node runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Cluster,
    Embedded,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Cluster => "cluster",
            Backend::Embedded => "embedded",
        }
    }
}

/// Runs one async test body on both backends: `both_backends!(name, |backend| async move { .. })`
/// makes `name::cluster` and `name::embedded`.
#[macro_export]
macro_rules! both_backends {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread")]
            async fn cluster() {
                ($body)($crate::common::Backend::Cluster).await
            }
            #[tokio::test(flavor = "multi_thread")]
            async fn embedded() {
                ($body)($crate::common::Backend::Embedded).await
            }
        }
    };
}
