//! What a backend must do to keep job records. Every method is one atomic
//! step in the backend (a single-document update in MongoDB, one statement
//! or transaction in SQLite), guarded by the state (and attempt) it expects,
//! so two deliveries of the same job can never both move it.

use std::time::Duration;

use async_trait::async_trait;

use super::StoreError;
use crate::domain::{AudioSummary, JobId, JobRecord, JobState, Owner, Timestamp};

/// A page of jobs, newest first.
#[derive(Debug, Clone, Default)]
pub struct JobQuery {
    /// One user's jobs; everyone's for `None`.
    pub owner: Option<Owner>,
    /// Only jobs in this state; all but deleted ones for `None`.
    pub state: Option<JobState>,
    /// Only jobs older than this one (the cursor).
    pub before: Option<JobId>,
    pub limit: u32,
}

#[async_trait]
pub trait JobStore: Send + Sync {
    async fn insert(&self, job: &JobRecord) -> Result<(), StoreError>;

    async fn get(&self, id: JobId) -> Result<Option<JobRecord>, StoreError>;

    /// Removes the record outright (an upload whose message could not be
    /// queued); deleting a job the API way is [`JobStore::mark_deleted`].
    async fn remove(&self, id: JobId) -> Result<(), StoreError>;

    /// Deleted jobs are never listed.
    async fn list(&self, query: &JobQuery) -> Result<Vec<JobRecord>, StoreError>;

    /// How many jobs are in each live state (deleted ones not counted).
    async fn count_by_state(&self) -> Result<Vec<(JobState, u64)>, StoreError>;

    /// Jobs of `owner` queued or converting.
    async fn active_jobs(&self, owner: &Owner) -> Result<u64, StoreError>;

    /// Cuts the deleted jobs of `owner` (a removed account) loose from it:
    /// their tombstones keep no owner, file name or callback. Returns how
    /// many.
    async fn forget_owner(&self, owner: &Owner) -> Result<u64, StoreError>;

    /// Marks a job deleted (from any state; lease and progress cleared) and
    /// returns it as it was, or `None` when there is no such job.
    async fn mark_deleted(&self, id: JobId) -> Result<Option<JobRecord>, StoreError>;

    /// `failed → queued` at the owner's request: attempts 0, retries + 1,
    /// error, progress, node, lease, segments, notified and mailed cleared. The new
    /// record, or `None` when the job is not (or no longer) failed.
    async fn retry(&self, id: JobId) -> Result<Option<JobRecord>, StoreError>;

    /// Undoes `retry` when its message could not be queued: failed again
    /// with `error` (notified and mailed set), unless something moved it
    /// meanwhile (guarded by queued, `retries` and attempts 0).
    async fn undo_retry(&self, id: JobId, retries: u32, error: &str) -> Result<(), StoreError>;

    /// Jobs created before `cutoff`, not deleted, oldest first, at most `limit`.
    async fn created_before(
        &self,
        cutoff: Timestamp,
        limit: u32,
    ) -> Result<Vec<JobRecord>, StoreError>;

    /// Removes tombstones last touched before `cutoff`; how many.
    async fn purge_deleted(&self, cutoff: Timestamp) -> Result<u64, StoreError>;

    /// `queued → converting`, or a `converting` job whose lease is not after
    /// `now` taken over: attempts + 1, `node` set, lease until `now + lease`.
    /// The new record, or `None` when the job could not be taken.
    async fn take(
        &self,
        id: JobId,
        node: &str,
        now: Timestamp,
        lease: Duration,
    ) -> Result<Option<JobRecord>, StoreError>;

    /// Extends attempt `attempt`'s lease (from now) and records its
    /// progress; `false` when the attempt no longer owns the job.
    async fn renew_lease(
        &self,
        id: JobId,
        attempt: u32,
        lease: Duration,
        progress: Option<f64>,
    ) -> Result<bool, StoreError>;

    /// Ends attempt `attempt`: `converting → done | failed` with `error`
    /// and what the audio turned out to be, progress 100 when done,
    /// notified cleared, lease cleared. The new record, or `None` when the
    /// job was moved by someone else meanwhile.
    async fn finish(
        &self,
        id: JobId,
        attempt: u32,
        state: JobState,
        error: Option<&str>,
        audio: Option<AudioSummary>,
    ) -> Result<Option<JobRecord>, StoreError>;

    /// Hands attempt `attempt` back: `converting → queued`, keeping `error`
    /// for the next attempt (or the give-up) to report. `false` when the
    /// attempt no longer owned the job.
    async fn requeue(&self, id: JobId, attempt: u32, error: &str) -> Result<bool, StoreError>;

    /// Hands attempt `attempt` back as [`requeue`](Self::requeue) does, and
    /// gives the attempt back too (`attempts - 1`): it failed for the
    /// node's want of room (a full disk), which is no fault of the job's.
    async fn requeue_refunded(
        &self,
        id: JobId,
        attempt: u32,
        error: &str,
    ) -> Result<bool, StoreError>;

    /// The attempt on `node` died with its worker: back to `queued` now.
    /// Only that node's attempt is touched.
    async fn release_crashed(&self, id: JobId, node: &str, error: &str) -> Result<(), StoreError>;

    /// Attempt `attempt` split the job into `total` segments (recorded
    /// first in the [`SegmentStore`](super::SegmentStore)): segments set,
    /// none done, lease and node cleared (the segments carry their own; a
    /// later `take` is the join's, or a redelivery's that sees to the
    /// segments). On a job split already, a later attempt lets go of it
    /// so: lease and node cleared, the segments' tally kept. The new
    /// record, or `None` when the attempt no longer owned the job.
    async fn split(
        &self,
        id: JobId,
        attempt: u32,
        total: u32,
    ) -> Result<Option<JobRecord>, StoreError>;

    /// Records how many of a split job's segments are done and its
    /// progress; `false` when the job is not (or no longer) a converting
    /// split job.
    async fn note_segments(&self, id: JobId, done: u32, progress: f64) -> Result<bool, StoreError>;

    /// Claims the sending of the job's mail for `node` until `now + lease`
    /// when it is not mailed yet, not deleted, and no other node's claim
    /// is live (a node renews its own claim by claiming again). The new
    /// record, or `None` when the claim was not taken.
    async fn claim_mail(
        &self,
        id: JobId,
        node: &str,
        now: Timestamp,
        lease: Duration,
    ) -> Result<Option<JobRecord>, StoreError>;

    /// Records that the owner was mailed about the job's end (and drops
    /// the mail claim).
    async fn mark_mailed(&self, id: JobId) -> Result<(), StoreError>;

    /// Records that the job's final `mp3` message is queued.
    async fn mark_notified(&self, id: JobId) -> Result<(), StoreError>;
}

/// The outcome of trying to start an attempt on a job.
#[derive(Debug)]
pub enum Claim {
    /// This attempt owns the job now (state `converting`, attempts bumped).
    Run(JobRecord),
    /// The job already reached a final state: nothing to convert.
    Final(JobRecord),
    /// The job used up its attempts and has just been marked failed.
    Exhausted(JobRecord),
    /// Another attempt holds a live lease on the job (its delivery came
    /// back while it is still converting): leave it be.
    Busy(JobRecord),
    /// No such job record.
    Missing,
}

/// Starts an attempt: takes the job (see [`JobStore::take`]) and gives up
/// on it when its attempts exceed `max_attempts`. A job whose lease is live
/// is `Busy`: two attempts never run at once, so they never write the same
/// audio file together. The same rules for every backend.
pub async fn claim(
    jobs: &dyn JobStore,
    id: JobId,
    node: &str,
    max_attempts: u32,
    lease: Duration,
) -> Result<Claim, StoreError> {
    let Some(job) = jobs.take(id, node, Timestamp::now(), lease).await? else {
        return Ok(match jobs.get(id).await? {
            Some(job) if job.state == JobState::Converting => Claim::Busy(job),
            Some(job) => Claim::Final(job),
            None => Claim::Missing,
        });
    };
    if job.attempts <= max_attempts {
        return Ok(Claim::Run(job));
    }
    let error = format!(
        "gave up after {max_attempts} attempts (last error: {})",
        job.error.as_deref().unwrap_or("none recorded")
    );
    match jobs
        .finish(id, job.attempts, JobState::Failed, Some(&error), None)
        .await?
    {
        Some(job) => Ok(Claim::Exhausted(job)),
        None => Ok(match jobs.get(id).await? {
            Some(job) => Claim::Final(job),
            None => Claim::Missing,
        }),
    }
}
