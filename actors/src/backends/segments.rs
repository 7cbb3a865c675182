//! What a backend must do to keep a split job's segments. Each segment is
//! a unit of work of its own (its state, attempts and lease, as a job's),
//! and every method is one atomic step guarded by what it expects, so two
//! deliveries of one segment never both convert it.

use std::time::Duration;

use async_trait::async_trait;

use super::StoreError;
use crate::domain::{JobId, SegmentRecord, SegmentState, Timestamp};

#[async_trait]
pub trait SegmentStore: Send + Sync {
    /// Makes `segments` the job's segments, in place of any it had (a job
    /// planned again starts over).
    async fn replace(&self, job: JobId, segments: &[SegmentRecord]) -> Result<(), StoreError>;

    /// The job's segments, by index.
    async fn list(&self, job: JobId) -> Result<Vec<SegmentRecord>, StoreError>;

    async fn get(&self, job: JobId, index: u32) -> Result<Option<SegmentRecord>, StoreError>;

    /// `queued → converting`, or a `converting` segment whose lease is not
    /// after `now` taken over: attempts + 1, `node` set, lease until
    /// `now + lease`. The new record, or `None` when it could not be taken.
    async fn take(
        &self,
        job: JobId,
        index: u32,
        node: &str,
        now: Timestamp,
        lease: Duration,
    ) -> Result<Option<SegmentRecord>, StoreError>;

    /// Extends attempt `attempt`'s lease (from now) and records its
    /// progress; `false` when the attempt no longer owns the segment.
    async fn renew(
        &self,
        job: JobId,
        index: u32,
        attempt: u32,
        lease: Duration,
        progress: Option<f64>,
    ) -> Result<bool, StoreError>;

    /// Ends attempt `attempt`: `converting → done | failed` (with `error`),
    /// lease cleared; `false` when it no longer owned the segment.
    async fn finish(
        &self,
        job: JobId,
        index: u32,
        attempt: u32,
        state: SegmentState,
        error: Option<&str>,
    ) -> Result<bool, StoreError>;

    /// Hands attempt `attempt` back (`converting → queued`, keeping
    /// `error`); `refund` gives the attempt back too (a full disk is no
    /// fault of the segment's). `false` when it no longer owned it.
    async fn requeue(
        &self,
        job: JobId,
        index: u32,
        attempt: u32,
        error: &str,
        refund: bool,
    ) -> Result<bool, StoreError>;

    /// The attempt on `node` died with its worker: back to `queued` now.
    async fn release_crashed(
        &self,
        job: JobId,
        index: u32,
        node: &str,
        error: &str,
    ) -> Result<(), StoreError>;

    /// Removes the job's segments (its join is done, or it is deleted).
    async fn remove(&self, job: JobId) -> Result<(), StoreError>;
}

/// The outcome of trying to start an attempt on a segment.
#[derive(Debug)]
pub enum SegmentClaim {
    /// This attempt owns the segment now.
    Run(SegmentRecord),
    /// The segment is done or failed already.
    Final(SegmentRecord),
    /// It used up its attempts and has just been marked failed.
    Exhausted(SegmentRecord),
    /// Another attempt holds a live lease on it.
    Busy(SegmentRecord),
    /// No such segment (its job was deleted, planned again or joined).
    Missing,
}

/// Starts an attempt on a segment, by the rules of [`super::claim`] for a
/// job: taken, or found busy, final or missing; failed once its attempts
/// exceed `max_attempts`.
pub async fn claim_segment(
    segments: &dyn SegmentStore,
    (job, index): (JobId, u32),
    node: &str,
    max_attempts: u32,
    lease: Duration,
) -> Result<SegmentClaim, StoreError> {
    let found = |record: Option<SegmentRecord>| match record {
        Some(s) if s.state == SegmentState::Converting => SegmentClaim::Busy(s),
        Some(s) if s.state.is_final() => SegmentClaim::Final(s),
        // Queued again meanwhile: another delivery of it will take it.
        Some(s) => SegmentClaim::Busy(s),
        None => SegmentClaim::Missing,
    };
    let Some(segment) = segments
        .take(job, index, node, Timestamp::now(), lease)
        .await?
    else {
        return Ok(found(segments.get(job, index).await?));
    };
    if segment.attempts <= max_attempts {
        return Ok(SegmentClaim::Run(segment));
    }
    let error = format!(
        "gave up on segment {index} after {max_attempts} attempts (last error: {})",
        segment.error.as_deref().unwrap_or("none recorded")
    );
    let attempt = segment.attempts;
    if segments
        .finish(job, index, attempt, SegmentState::Failed, Some(&error))
        .await?
    {
        return Ok(SegmentClaim::Exhausted(SegmentRecord {
            state: SegmentState::Failed,
            error: Some(error),
            ..segment
        }));
    }
    Ok(found(segments.get(job, index).await?))
}
