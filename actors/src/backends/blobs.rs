//! What a backend must do to keep files: uploaded videos, converted audio
//! and the audio's waveform data, each in its own bucket. Files are written once, streamed in and
//! out a piece at a time (nothing holds a whole file), and become visible
//! only when their write is finished; an abandoned write leaves nothing a
//! reader can see, and `abort` (or a later `delete`) removes its pieces.

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;

use super::StoreError;
use crate::domain::{FileId, JobId, JobRecord, Owner, Timestamp, segment_file};

/// Which of a node's kinds of file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bucket {
    /// Uploads (the cluster's GridFS database `videos`).
    Videos,
    /// Converted audio (the cluster's GridFS database `mp3s`).
    Audio,
    /// The audio's waveform data, under the audio's id (the cluster's
    /// GridFS database `waveforms`).
    Waveforms,
    /// A split job's converted segments until they are joined, each under
    /// `domain::segment_file` (the cluster's GridFS bucket `segments` in
    /// the database `mp3s`): work in progress, not what an owner keeps.
    Segments,
    /// The segments' waveforms, under the same ids (GridFS bucket
    /// `segment_waveforms` in `mp3s`).
    SegmentWaveforms,
}

/// The waveform data's MIME type (audiowaveform's JSON).
pub const WAVEFORM_CONTENT_TYPE: &str = "application/json";

impl Bucket {
    pub const ALL: [Bucket; 5] = [
        Bucket::Videos,
        Bucket::Audio,
        Bucket::Waveforms,
        Bucket::Segments,
        Bucket::SegmentWaveforms,
    ];

    /// What an owner keeps: counted toward their quota (segments are
    /// counted once, as the joined audio).
    pub const KEPT: [Bucket; 3] = [Bucket::Videos, Bucket::Audio, Bucket::Waveforms];

    /// What a conversion stores, each under the job's audio id (`mp3_fid`).
    pub const OUTPUTS: [Bucket; 2] = [Bucket::Audio, Bucket::Waveforms];

    /// What a segment's conversion stores, under its `segment_file` id.
    pub const SEGMENT_OUTPUTS: [Bucket; 2] = [Bucket::Segments, Bucket::SegmentWaveforms];

    pub fn name(self) -> &'static str {
        match self {
            Bucket::Videos => "videos",
            Bucket::Audio => "audio",
            Bucket::Waveforms => "waveforms",
            Bucket::Segments => "segments",
            Bucket::SegmentWaveforms => "segment_waveforms",
        }
    }
}

/// Every file a job can have, with its bucket: its video, its audio and
/// waveform under the audio's id, and a split job's segments and their
/// waveforms. The one list that deleting, erasing and migrating a job go
/// through.
pub fn job_files(job: &JobRecord) -> Vec<(Bucket, FileId)> {
    let mut files = vec![
        (Bucket::Videos, job.video_fid),
        (Bucket::Audio, job.mp3_fid),
        (Bucket::Waveforms, job.mp3_fid),
    ];
    files.extend(segment_files(job));
    files
}

/// A split job's segments' files (none for a job converted in one pass).
pub fn segment_files(job: &JobRecord) -> impl Iterator<Item = (Bucket, FileId)> + use<> {
    let (audio, total) = (job.mp3_fid, job.segments.map_or(0, |s| s.total));
    (0..total).flat_map(move |index| {
        let id = segment_file(audio, index);
        Bucket::SEGMENT_OUTPUTS.map(|bucket| (bucket, id))
    })
}

/// What the service keeps about a stored file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    pub id: FileId,
    pub length: u64,
    pub filename: String,
    pub owner: Option<Owner>,
    /// The MIME type recorded with the file, if any.
    pub content_type: Option<String>,
    /// The job an audio file belongs to.
    pub job_id: Option<JobId>,
    /// Bytes per stored piece, the backend's unit of reading (the last may
    /// be shorter); 0 for a file stored whole.
    pub block_size: u32,
}

/// What a new file is recorded with.
#[derive(Debug, Clone)]
pub struct FileMeta {
    pub filename: String,
    pub owner: Owner,
    pub content_type: Option<String>,
    pub job_id: Option<JobId>,
}

/// A file's bytes, a piece at a time.
pub type ByteStream = BoxStream<'static, std::io::Result<Bytes>>;

#[async_trait]
pub trait BlobStore: Send + Sync {
    /// The file's record; `None` when there is no such (finished) file.
    async fn info(&self, bucket: Bucket, id: FileId) -> Result<Option<FileInfo>, StoreError>;

    /// Starts writing file `id`, invisible until finished.
    async fn create(
        &self,
        bucket: Bucket,
        id: FileId,
        meta: FileMeta,
    ) -> Result<Box<dyn BlobWrite>, StoreError>;

    /// Continues the resumable write of file `id` (an upload that arrives
    /// over many requests) from exactly `offset` bytes: whatever is stored
    /// past `offset` is dropped first; `offset` 0 starts it. Unlike a
    /// [`create`](BlobStore::create)d write, its pieces outlive the process:
    /// they stay, invisible, until it is finished or the file deleted.
    async fn resume(
        &self,
        bucket: Bucket,
        id: FileId,
        meta: FileMeta,
        offset: u64,
    ) -> Result<Box<dyn ResumableWrite>, StoreError>;

    /// Bytes `first..=last` of `file` (all of it without a range; a range
    /// lies within the file). `Gone` when the file was deleted since `file`
    /// was read: found out before the stream is returned, so a caller can
    /// still answer cleanly.
    async fn read(
        &self,
        bucket: Bucket,
        file: &FileInfo,
        range: Option<(u64, u64)>,
    ) -> Result<ByteStream, StoreError>;

    /// Deletes the file and any pieces of it, finished or not (resumable
    /// writes included); deleting a file that does not exist is not an
    /// error.
    async fn delete(&self, bucket: Bucket, id: FileId) -> Result<(), StoreError>;

    /// Bytes `owner` keeps in every bucket (finished files).
    async fn usage(&self, owner: &Owner) -> Result<u64, StoreError>;

    /// Removes what uploads begun before `begun_before` left without ever
    /// finishing (a node killed mid-upload); returns how many. Uploads
    /// only (`Videos`): their ids are minted as writing begins, so an id's
    /// time says when; an audio id is minted at upload, long before its
    /// file is written, and an audio file's pieces go with its job.
    async fn remove_abandoned_uploads(&self, begun_before: Timestamp) -> Result<u64, StoreError>;
}

/// A file being written; ends with `finish` or `abort`.
#[async_trait]
pub trait BlobWrite: Send {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), StoreError>;

    /// Makes the file visible, durably.
    async fn finish(self: Box<Self>) -> Result<(), StoreError>;

    /// Removes every piece written so far.
    async fn abort(self: Box<Self>) -> Result<(), StoreError>;
}

/// A write that can be left unfinished and resumed later, by any node.
#[async_trait]
pub trait ResumableWrite: BlobWrite {
    /// Makes every byte written so far durable, leaving the file unfinished;
    /// writing may go on after.
    async fn checkpoint(&mut self) -> Result<(), StoreError>;
}

/// An upload in progress, refused once it outgrows its limit. The same
/// limit rules whatever backend stores it.
pub struct Upload {
    write: Box<dyn BlobWrite>,
    id: FileId,
    written: u64,
    limit: u64,
}

impl Upload {
    /// Starts file `id` in `bucket`, refusing to grow past `limit` bytes.
    pub async fn open(
        blobs: &dyn BlobStore,
        bucket: Bucket,
        id: FileId,
        meta: FileMeta,
        limit: u64,
    ) -> Result<Self, StoreError> {
        Ok(Self {
            write: blobs.create(bucket, id, meta).await?,
            id,
            written: 0,
            limit,
        })
    }

    pub fn id(&self) -> FileId {
        self.id
    }

    pub fn written(&self) -> u64 {
        self.written
    }

    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), StoreError> {
        self.written += chunk.len() as u64;
        if self.written > self.limit {
            return Err(StoreError::TooLarge { limit: self.limit });
        }
        self.write.write(chunk).await
    }

    pub async fn finish(self) -> Result<FileId, StoreError> {
        self.write.finish().await?;
        Ok(self.id)
    }

    pub async fn abort(self) -> Result<(), StoreError> {
        self.write.abort().await
    }
}
