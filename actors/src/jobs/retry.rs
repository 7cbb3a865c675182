//! Retrying a failed job: a fresh set of attempts, admitted as an upload
//! is (the owner's active-job limit and quota, reserved so concurrent
//! retries never together go over), queued durably or not at all.

use tracing::{info, warn};

use super::access::{self, Viewer};
use super::admission::{self, Refused, Rules};
use crate::backends::{Backends, Bucket, QueueError, StoreError, UserLimits, UsersError, chain};
use crate::domain::{JobId, JobRecord, JobState};

/// Why a job was not retried.
#[derive(Debug, thiserror::Error)]
pub enum RetryError {
    /// No such job, deleted, or not the asker's to see.
    #[error("no such job")]
    NotFound,
    #[error("only a failed job can be retried; this one is {}", .0.as_str())]
    NotFailed(JobState),
    #[error("the uploaded video is no longer stored; upload it again")]
    VideoGone,
    #[error("the job changed meanwhile; read it again")]
    Moved,
    #[error(transparent)]
    Refused(#[from] Refused),
    #[error("reading the owner's limits")]
    Users(#[source] UsersError),
    #[error("reading or moving the job")]
    Store(#[from] StoreError),
    #[error("queueing the job")]
    Queue(#[source] QueueError),
}

/// Queues failed job `id` again, if `asker` may see it. Its owner's
/// limits bind it: `own_limits` (the asker's, known without a read) when
/// the job is the asker's, else read (an administrator retrying another's).
pub async fn retry(
    backends: &Backends,
    rules: &Rules<'_>,
    node_id: &str,
    asker: &Viewer,
    own_limits: UserLimits,
    id: JobId,
) -> Result<JobRecord, RetryError> {
    let job = &access::job(backends, asker, id)
        .await?
        .ok_or(RetryError::NotFound)?;
    if job.state != JobState::Failed {
        return Err(RetryError::NotFailed(job.state));
    }
    if backends
        .blobs
        .info(Bucket::Videos, job.video_fid)
        .await?
        .is_none()
    {
        return Err(RetryError::VideoGone);
    }
    let limits = if job.owner == asker.owner {
        own_limits
    } else {
        super::limits_of(backends, &job.owner)
            .await
            .map_err(RetryError::Users)?
    };
    // Its place is held until the retried job counts for itself (queued).
    let room = admission::admit(backends, rules, &job.owner, limits, Some(0)).await?;
    let retried = backends.jobs.retry(job.id).await;
    room.release().await;
    let Some(queued) = retried? else {
        return Err(RetryError::Moved);
    };
    if let Err(e) = backends.publish_job(&queued.video_message()).await {
        // Not queued, so not retried: failed again as it was.
        let reason = job.error.as_deref().unwrap_or("failed");
        if let Err(undo) = backends
            .jobs
            .undo_retry(job.id, queued.retries, reason)
            .await
        {
            warn!(job_id = %job.id, "a retry could not be queued nor undone: {}", chain(&undo));
        }
        return Err(RetryError::Queue(e));
    }
    let _ = backends.events.publish(&queued.event(node_id)).await;
    info!(job_id = %job.id, retries = queued.retries, "job retried");
    Ok(queued)
}
