//! What a backend must do to keep resumable uploads (tus) between their
//! requests: the upload records, and a hold that lets one request at a time
//! write an upload. Each method is one atomic step (a single-document update
//! in MongoDB, one statement in SQLite), so two nodes serving requests for
//! the same upload never both write it. The bytes themselves go to the
//! [`BlobStore`](super::BlobStore) as a resumable write under the upload's id.

use async_trait::async_trait;

use super::StoreError;
use crate::domain::{FileId, Owner, Timestamp, UploadRecord};

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
    async fn reserved(&self, owner: &Owner) -> Result<u64, StoreError>;

    /// Up to `limit` of `owner`'s uploads, finished or not.
    async fn owned(&self, owner: &Owner, limit: u32) -> Result<Vec<UploadRecord>, StoreError>;
}

impl super::Backends {
    /// Removes a resumable upload: its record, and its bytes unless it
    /// became a job (then the video is the job's, and stays). What a
    /// client's DELETE, the sweep of expired uploads and an account's
    /// erasure all do.
    pub async fn discard_upload(&self, upload: &UploadRecord) -> Result<(), StoreError> {
        if !upload.queued {
            self.blobs.delete(super::Bucket::Videos, upload.id).await?;
        }
        self.uploads.remove(upload.id).await
    }
}
