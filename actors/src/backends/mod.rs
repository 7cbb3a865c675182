//! The seams of the node: what it needs from the outside world, as traits
//! named for the domain, and the backends that implement them.
//!
//! - [`JobStore`]: job records and their atomic transitions (jobs.rs)
//! - [`BlobStore`]: uploaded videos and converted audio, streamed (blobs.rs)
//! - [`JobQueue`]: durable queues with settle handles (queue.rs)
//! - [`EventBus`]: job events to every listener on every node (events.rs)
//! - [`UploadStore`]: resumable uploads between their requests (uploads.rs)
//! - [`ReservationStore`]: room held by uploads in progress (reservations.rs)
//! - [`UserDirectory`]: accounts and their password hashes (users.rs)
//! - [`WebhookStore`]: webhook endpoints and pending deliveries (webhooks.rs)
//! - [`SegmentStore`]: a split job's segments, each a unit of work (segments.rs)
//! - [`Check`]: named health checks for `/ready` and metrics (health.rs)
//!
//! One [`Backends`] value, chosen by configuration and built once by the
//! root supervisor, carries one implementation of each; actors get clones.
//!
//! Architecture Invariant: only `cluster/` (and, for the embedded backend,
//! its own folder) names a driver type. Everything above this module talks
//! to storage, queues and users through these traits.

mod blobs;
mod cluster;
mod embedded;
mod erase;
mod errors;
mod events;
mod health;
mod jobs;
pub mod migrate;
mod queue;
mod reservations;
mod segments;
mod space;
mod uploads;
mod users;
mod webhooks;

pub use blobs::{
    BlobStore, BlobWrite, Bucket, ByteStream, FileInfo, FileMeta, ResumableWrite, Upload,
    WAVEFORM_CONTENT_TYPE, job_files, segment_files,
};
pub use erase::Erased;
pub use errors::{Cause, QueueError, StoreError, UsersError, chain};
pub use events::{EventBus, Feed, LocalFeed};
pub use health::{Check, Health, Part};
pub use jobs::{Claim, JobQuery, JobStore, claim};
pub use queue::{Consumer, Delivery, JobQueue, Queue, Settle, run_consumer};
pub use reservations::{ReservationStore, Reserved};
pub use segments::{SegmentClaim, SegmentStore, claim_segment};
pub use space::{Shortage, Space, SpaceCheck, Turn};
pub use uploads::UploadStore;
pub use users::{EndedSession, User, UserDirectory, UserLimits};
pub use webhooks::WebhookStore;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tracing::warn;

use crate::domain::{JobRecord, JobState, Mp3Message, VideoMessage};
use crate::settings::BackendKind;

pub use embedded::DataDirError;

/// A backend that could not be built from its settings.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("the user directory")]
    Users(#[from] UsersError),
    #[error("the storage")]
    Store(#[from] StoreError),
    #[error("the embedded backend")]
    DataDir(#[from] DataDirError),
}

/// One implementation of every seam; cheap to clone.
#[derive(Clone)]
pub struct Backends {
    /// `cluster` or `embedded`, for logs and `status`.
    pub kind: &'static str,
    pub jobs: Arc<dyn JobStore>,
    pub blobs: Arc<dyn BlobStore>,
    pub queue: Arc<dyn JobQueue>,
    pub events: Arc<dyn EventBus>,
    pub users: Arc<dyn UserDirectory>,
    pub uploads: Arc<dyn UploadStore>,
    pub reservations: Arc<dyn ReservationStore>,
    pub webhooks: Arc<dyn WebhookStore>,
    pub segments: Arc<dyn SegmentStore>,
    pub checks: Arc<[Arc<dyn Check>]>,
    /// Whether storage was last found full (a check among `checks`).
    pub space: Arc<Space>,
}

impl Backends {
    /// Connects the backend the settings choose.
    pub async fn connect(
        settings: &crate::settings::Settings,
        node_id: &str,
    ) -> Result<Self, BuildError> {
        match settings.backend.kind {
            BackendKind::Cluster => cluster::connect(settings, node_id).await,
            BackendKind::Embedded => Ok(embedded::open(settings, node_id)?),
        }
    }

    /// Only the user directory the settings choose (`vidaud user`).
    pub fn user_directory(
        settings: &crate::settings::Settings,
    ) -> Result<Arc<dyn UserDirectory>, BuildError> {
        match settings.backend.kind {
            BackendKind::Cluster => cluster::user_directory(settings),
            BackendKind::Embedded => Ok(embedded::user_directory(settings)?),
        }
    }

    pub async fn health(&self) -> Health {
        Health::check(&self.checks).await
    }

    /// Queues a job for conversion (durable once this returns).
    pub async fn publish_job(&self, message: &VideoMessage) -> Result<(), QueueError> {
        let payload = serde_json::to_vec(message)?;
        self.queue.publish(Queue::Jobs, &payload).await
    }

    /// Queues a job's end for the notifier.
    pub async fn publish_finished(&self, message: &Mp3Message) -> Result<(), QueueError> {
        let payload = serde_json::to_vec(message)?;
        self.queue.publish(Queue::Finished, &payload).await
    }

    /// Parks a message that must not be processed again, counted.
    pub async fn dead_letter(&self, payload: &[u8], reason: &str) -> Result<(), QueueError> {
        self.queue.dead_letter(payload, reason).await?;
        crate::metrics::dead_lettered();
        Ok(())
    }

    /// Deletes a job: marks it deleted, then removes its files. Safe to
    /// repeat (a repeat finishes what a cut-short one left).
    pub async fn delete_job_and_files(&self, job: &JobRecord) -> Result<(), StoreError> {
        // The record as deleting found it: a job split since `job` was
        // read has segments to remove too.
        let latest = if job.state != JobState::Deleted {
            self.jobs.mark_deleted(job.id).await?
        } else {
            None
        };
        let job = latest.as_ref().unwrap_or(job);
        for (bucket, id) in job_files(job) {
            self.blobs.delete(bucket, id).await?;
        }
        // A split job's segments: a conversion of one stops at its next
        // renewal, and a message for one finds nothing to do.
        if job.segments.is_some() {
            self.segments.remove(job.id).await?;
        }
        Ok(())
    }
}

/// Retries `connect` with capped exponential backoff until it succeeds: a
/// dependency that is still starting delays the node, it does not kill it.
pub async fn connect_with_backoff<T, E, F, Fut>(what: &str, mut connect: F) -> T
where
    E: std::error::Error + 'static,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut delay = Duration::from_millis(250);
    loop {
        match connect().await {
            Ok(value) => return value,
            Err(e) => {
                warn!(
                    "{what} not reachable yet ({}); retrying in {delay:?}",
                    chain(&e)
                );
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    }
}
