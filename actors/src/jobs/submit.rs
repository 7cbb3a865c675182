//! Submitting: an uploaded video becomes a job, by either way of uploading.
//! Both end the same: the video visible, the job recorded, its message
//! durably queued — and both keep the invariant that a stored video always
//! has its job and a queued message. They differ only in what a failure
//! leaves, as their clients need: a multipart upload is one request, so a
//! failure undoes everything and the client uploads again; a resumable
//! (tus) upload's bytes are already kept, so completion is idempotent and
//! a failure leaves it for the next request or the sweep to finish.

use crate::backends::{Backends, Bucket, FileMeta, QueueError, StoreError, Upload};
use crate::domain::{JobRecord, UploadRecord};

/// A video not made a job. For a multipart upload, nothing of it was
/// kept; for a resumable one, nothing was lost: the next request (or the
/// sweep) completes it.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("storing the job or its video")]
    Store(#[from] StoreError),
    #[error("queueing the job")]
    Queue(#[from] QueueError),
}

/// Makes a multipart upload's video, written whole, a job: the video made
/// visible, the job recorded, its message queued. On any failure what was
/// done is undone, so nothing is left half-accepted (a stored video always
/// has its job and a queued message): the client is told, and uploads
/// again.
pub async fn submit(
    backends: &Backends,
    upload: Upload,
    job: &JobRecord,
) -> Result<(), SubmitError> {
    upload.finish().await?;
    if let Err(e) = backends.jobs.insert(job).await {
        let _ = backends.blobs.delete(Bucket::Videos, job.video_fid).await;
        return Err(e.into());
    }
    if let Err(e) = backends.publish_job(&job.video_message()).await {
        let _ = backends.jobs.remove(job.id).await;
        let _ = backends.blobs.delete(Bucket::Videos, job.video_fid).await;
        return Err(e.into());
    }
    Ok(())
}

/// Turns a fully stored resumable upload into its job, exactly once however often it
/// is called (a retried final request, a HEAD after a crash, the sweep):
/// the video is made visible unless it is, the job (ids from the upload
/// record) recorded unless it is, its message queued, and the record marked
/// queued. The caller holds the upload, so two completions never overlap.
/// A job message queued twice (a crash between publishing and marking) is
/// harmless: a job is converted once whatever number of messages name it.
pub async fn complete(
    backends: &Backends,
    upload: &UploadRecord,
) -> Result<JobRecord, SubmitError> {
    let job = upload.job(upload.output.clone());
    if upload.queued {
        return Ok(job);
    }
    if backends
        .blobs
        .info(Bucket::Videos, upload.id)
        .await?
        .is_none()
    {
        let meta = FileMeta {
            filename: upload.filename.clone(),
            owner: upload.owner.clone(),
            content_type: upload.content_type.clone(),
            job_id: None,
        };
        let write = backends
            .blobs
            .resume(Bucket::Videos, upload.id, meta, upload.length)
            .await?;
        write.finish().await?;
    }
    if backends.jobs.get(job.id).await?.is_none() {
        backends.jobs.insert(&job).await?;
    }
    backends.publish_job(&job.video_message()).await?;
    backends.uploads.mark_queued(upload.id).await?;
    Ok(job)
}
