//! What a backend must do to keep resumable uploads (tus) between their
//! requests: the upload records, and a hold that lets one request at a time
//! write an upload. Each method is one atomic step (a single-document update
//! in MongoDB, one statement in SQLite), so two nodes serving requests for
//! the same upload never both write it. The bytes themselves go to the
//! [`BlobStore`](super::BlobStore) as a resumable write under the upload's id.

use async_trait::async_trait;

use super::StoreError;
use crate::domain::{FileId, Timestamp, UploadRecord};

#[async_trait]
pub trait UploadStore: Send + Sync {
    async fn create(&self, upload: &UploadRecord) -> Result<(), StoreError>;

    async fn get(&self, id: FileId) -> Result<Option<UploadRecord>, StoreError>;

    /// Takes the upload for one request (`holder`, a random number) until
    /// `until`, if no other request holds it past `now`: the record as it
    /// is, or `None` when someone else holds it (or there is no such upload).
    async fn hold(
        &self,
        id: FileId,
        holder: u64,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<Option<UploadRecord>, StoreError>;

    /// Records `offset` bytes as stored for good and keeps the hold until
    /// `until`, or lets it go (`None`). `false` when `holder` no longer holds
    /// the upload (its hold ran out and another request took it).
    async fn advance(
        &self,
        id: FileId,
        holder: u64,
        offset: u64,
        until: Option<Timestamp>,
    ) -> Result<bool, StoreError>;

    /// Records that the upload's job is recorded and queued.
    async fn mark_queued(&self, id: FileId) -> Result<(), StoreError>;

    /// Removes the record (not the data); removing none is not an error.
    async fn remove(&self, id: FileId) -> Result<(), StoreError>;

    /// Uploads whose time ran out before `now`, oldest first, at most `limit`.
    async fn expired(&self, now: Timestamp, limit: u32) -> Result<Vec<UploadRecord>, StoreError>;

    /// Bytes `owner`'s unfinished uploads have declared: what they will
    /// hold, counted toward the quota before they are stored files.
    async fn reserved(&self, owner: &str) -> Result<u64, StoreError>;

    /// Up to `limit` of `owner`'s uploads, finished or not.
    async fn owned(&self, owner: &str, limit: u32) -> Result<Vec<UploadRecord>, StoreError>;
}

/// Completing an upload failed; nothing was lost: the next request (or the
/// sweep) completes it.
#[derive(Debug, thiserror::Error)]
pub enum CompleteError {
    #[error("storing the upload's job")]
    Store(#[from] StoreError),
    #[error("queueing the upload's job")]
    Queue(#[from] super::QueueError),
}

/// Turns a fully stored upload into its job, exactly once however often it
/// is called (a retried final request, a HEAD after a crash, the sweep):
/// the video is made visible unless it is, the job (ids from the upload
/// record) recorded unless it is, its message queued, and the record marked
/// queued. The caller holds the upload, so two completions never overlap.
/// A job message queued twice (a crash between publishing and marking) is
/// harmless: a job is converted once whatever number of messages name it.
pub async fn complete(
    backends: &super::Backends,
    upload: &UploadRecord,
) -> Result<crate::domain::JobRecord, CompleteError> {
    use super::{Bucket, FileMeta};
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
