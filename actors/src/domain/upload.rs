//! A resumable upload (tus): a video that arrives over many requests, perhaps
//! on different nodes, perhaps across a node's restart. Its record says how
//! many bytes are stored for good (`offset`), and carries everything the job
//! will need once the last byte is in, ids included, so that completing it
//! twice (a retried final request, two racing ones) makes one job.

use super::ids::{FileId, JobId};
use super::job::JobRecord;
use super::owner::Owner;
use super::time::Timestamp;
use super::webhook::Callback;
use crate::output::ResolvedOutput;

#[derive(Debug, Clone, PartialEq)]
pub struct UploadRecord {
    /// The video's file id; also the upload's id in its URL.
    pub id: FileId,
    /// The owner's user id (hex), and e-mail (for the job).
    pub owner: Owner,
    pub username: String,
    /// The whole upload's size in bytes, declared at creation.
    pub length: u64,
    /// Bytes stored for good so far (the next request starts here).
    pub offset: u64,
    pub filename: String,
    pub content_type: Option<String>,
    /// The `Upload-Metadata` the client gave, as it gave it (echoed back).
    pub metadata: String,
    /// The job's output options, resolved when the upload was created.
    pub output: ResolvedOutput,
    /// The job's own webhook (`callback_url` in the metadata), its secret
    /// made at creation.
    pub callback: Option<Callback>,
    /// The job the upload becomes, minted at creation.
    pub job_id: JobId,
    pub mp3_fid: FileId,
    /// Set once the job is recorded and its message queued.
    pub queued: bool,
    pub created_at: Timestamp,
    /// When an unfinished upload is swept with its data.
    pub expires_at: Timestamp,
}

impl UploadRecord {
    pub fn is_complete(&self) -> bool {
        self.offset == self.length
    }

    /// The job this upload becomes (the same ids however often it is made).
    pub fn job(&self, output: ResolvedOutput) -> JobRecord {
        JobRecord {
            id: self.job_id,
            mp3_fid: self.mp3_fid,
            callback: self.callback.clone(),
            ..JobRecord::new(
                self.owner.clone(),
                &self.username,
                &self.filename,
                self.id,
                output,
            )
        }
    }
}
