//! Moving one node's data into another backend (`vidaud migrate`): users
//! (hashes as they are), jobs and their files, every id kept, so old links
//! and job ids stay valid. Written against the traits only, so it moves
//! between any two backends; the way to grow is embedded → cluster.
//!
//! Restartable: everything already in the target (same id; for a file,
//! the same length) is left as it is, so a second run after a crash or ^C
//! finishes the copy and adds nothing twice. Per job the order is files,
//! then the record, then its queue message, so the target never holds a
//! record whose files are missing. A job still to convert (queued, or
//! converting when the source node stopped) arrives queued, with its
//! message; so does a finished job whose notification had not gone out.
//! A rerun queues such a job's message again while it is still queued in
//! the target: a duplicate message is settled without work by the
//! idempotent claim, never converted twice.

use futures::TryStreamExt;

use super::{
    Backends, Bucket, FileMeta, JobQuery, QueueError, StoreError, Upload, User, UsersError,
    job_files,
};
use crate::domain::{FileId, JobRecord, JobState};

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("jobs or files")]
    Store(#[from] StoreError),
    #[error("users")]
    Users(#[from] UsersError),
    #[error("the job queue")]
    Queue(#[from] QueueError),
    /// `max_jobs` reached (not an error to the caller).
    #[error("stopped at the job limit of this run")]
    Staged,
    #[error("file {id} of job {job}: {what}")]
    Mismatch {
        job: crate::domain::JobId,
        id: FileId,
        what: String,
    },
}

/// What a run did: copied now, or found in the target already.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Moved {
    pub users_copied: u64,
    pub users_present: u64,
    pub jobs_copied: u64,
    pub jobs_present: u64,
    pub files_copied: u64,
    pub files_present: u64,
    pub bytes_copied: u64,
    pub messages_queued: u64,
}

/// What the source holds, counted in the target after a run.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Totals {
    pub users: u64,
    pub jobs: u64,
    pub files: u64,
    pub bytes: u64,
}

const PAGE: u32 = 100;

/// Copies everything of `from` into `to` (at most `max_jobs` jobs when
/// given: a move in stages; the next run goes on); `progress` sees the
/// running totals after each job.
pub async fn migrate(
    from: &Backends,
    to: &Backends,
    max_jobs: Option<u64>,
    progress: &mut (dyn FnMut(&Moved) + Send),
) -> Result<Moved, MigrateError> {
    let mut moved = Moved::default();
    each_user(from, async |user| {
        if to.users.create(user).await? {
            moved.users_copied += 1;
        } else {
            moved.users_present += 1;
        }
        Ok(())
    })
    .await?;
    // Sessions logged out stay logged out in the cluster (the same JWT
    // secret makes their tokens good there otherwise).
    for ended in from.users.ended_sessions(None).await? {
        to.users.end_session(&ended).await?;
    }
    progress(&moved);
    let result = each_job(from, async |job| {
        if max_jobs.is_some_and(|max| moved.jobs_copied + moved.jobs_present >= max) {
            return Err(MigrateError::Staged);
        }
        copy_job(from, to, job, &mut moved).await?;
        progress(&moved);
        Ok(())
    })
    .await;
    match result {
        Ok(()) | Err(MigrateError::Staged) => Ok(moved),
        Err(e) => Err(e),
    }
}

/// Every user of `from`, a page at a time.
async fn each_user(
    from: &Backends,
    mut each: impl AsyncFnMut(&User) -> Result<(), MigrateError>,
) -> Result<(), MigrateError> {
    let mut after: Option<String> = None;
    loop {
        let users = from.users.page(after.as_deref(), PAGE).await?;
        let Some(last) = users.last() else {
            return Ok(());
        };
        after = Some(last.email.clone());
        for user in &users {
            each(user).await?;
        }
    }
}

/// Every job of `from` (tombstones aside), newest first, a page at a time.
async fn each_job(
    from: &Backends,
    mut each: impl AsyncFnMut(&JobRecord) -> Result<(), MigrateError>,
) -> Result<(), MigrateError> {
    let mut before = None;
    loop {
        let query = JobQuery {
            owner: None,
            state: None,
            before,
            limit: PAGE,
        };
        let page = from.jobs.list(&query).await?;
        let Some(last) = page.last() else {
            return Ok(());
        };
        before = Some(last.id);
        for job in &page {
            each(job).await?;
        }
    }
}

async fn copy_job(
    from: &Backends,
    to: &Backends,
    job: &JobRecord,
    moved: &mut Moved,
) -> Result<(), MigrateError> {
    // The video always; the audio and its waveform once they are final
    // (a split job's segments are work in progress: not carried).
    for (bucket, id) in job_files(job) {
        if bucket == Bucket::Videos
            || (job.state == JobState::Done && Bucket::KEPT.contains(&bucket))
        {
            copy_file(from, to, job, bucket, id, moved).await?;
        }
    }
    let arriving = arriving(job);
    let target = match to.jobs.get(job.id).await? {
        Some(present) => {
            moved.jobs_present += 1;
            present
        }
        None => {
            to.jobs.insert(&arriving).await?;
            moved.jobs_copied += 1;
            arriving
        }
    };
    // Still to convert, or its end not yet handed on: the cluster's nodes
    // take it from the queue (a final job's claim only completes its
    // hand-off).
    let pending = target.state == JobState::Queued || (target.state.is_final() && !target.notified);
    if pending && target.state != JobState::Deleted {
        to.publish_job(&target.video_message()).await?;
        moved.messages_queued += 1;
    }
    Ok(())
}

/// The record as it arrives: a conversion cut short by the source node's
/// stop starts afresh in the target.
fn arriving(job: &JobRecord) -> JobRecord {
    let mut job = job.clone();
    if job.state == JobState::Converting {
        // A split job is planned again there (its segments stay behind).
        job.state = JobState::Queued;
        job.lease_until = None;
        job.progress = None;
        job.segments = None;
    }
    job
}

/// Copies one file unless the target has it whole already (an interrupted
/// copy of it is replaced).
async fn copy_file(
    from: &Backends,
    to: &Backends,
    job: &JobRecord,
    bucket: Bucket,
    id: FileId,
    moved: &mut Moved,
) -> Result<(), MigrateError> {
    let Some(source) = from.blobs.info(bucket, id).await? else {
        // A failed job's video may be gone (deleted by hand): nothing to copy.
        return Ok(());
    };
    if let Some(present) = to.blobs.info(bucket, id).await?
        && present.length == source.length
    {
        moved.files_present += 1;
        return Ok(());
    }
    // Whatever an interrupted copy left (a short file, stray chunks) goes.
    to.blobs.delete(bucket, id).await?;
    let meta = FileMeta {
        filename: source.filename.clone(),
        owner: source.owner.clone().unwrap_or_else(|| job.owner.clone()),
        content_type: source.content_type.clone(),
        job_id: source.job_id,
    };
    let mut upload = Upload::open(to.blobs.as_ref(), bucket, id, meta, u64::MAX).await?;
    let mut stream = from.blobs.read(bucket, &source, None).await?;
    let copied: Result<(), MigrateError> = async {
        while let Some(chunk) = stream.try_next().await.map_err(StoreError::Io)? {
            upload.write(&chunk).await?;
        }
        Ok(())
    }
    .await;
    if let Err(e) = copied {
        let _ = upload.abort().await;
        return Err(e);
    }
    if upload.written() != source.length {
        let written = upload.written();
        let _ = upload.abort().await;
        return Err(MigrateError::Mismatch {
            job: job.id,
            id,
            what: format!("read {written} bytes of {}", source.length),
        });
    }
    upload.finish().await?;
    moved.files_copied += 1;
    moved.bytes_copied += source.length;
    Ok(())
}

/// Counts what `from` holds and what of it `to` holds (same ids, same
/// lengths): after a complete migration the two are equal.
pub async fn verify(from: &Backends, to: &Backends) -> Result<(Totals, Totals), MigrateError> {
    let (mut source, mut target) = (Totals::default(), Totals::default());
    each_user(from, async |user| {
        source.users += 1;
        if to.users.find(&user.email).await?.as_ref() == Some(user) {
            target.users += 1;
        }
        Ok(())
    })
    .await?;
    each_job(from, async |job| {
        source.jobs += 1;
        if to.jobs.get(job.id).await?.is_some() {
            target.jobs += 1;
        }
        let kept = job_files(job)
            .into_iter()
            .filter(|(bucket, _)| Bucket::KEPT.contains(bucket));
        for (bucket, id) in kept {
            let Some(file) = from.blobs.info(bucket, id).await? else {
                continue;
            };
            source.files += 1;
            source.bytes += file.length;
            if let Some(copy) = to.blobs.info(bucket, id).await?
                && copy.length == file.length
            {
                target.files += 1;
                target.bytes += copy.length;
            }
        }
        Ok(())
    })
    .await?;
    Ok((source, target))
}
