//! The periodic sweep: jobs older than `storage.retention_days` are
//! deleted with their files (and `job.deleted` announced to webhooks), tombstones of deleted jobs are purged once
//! they are that old too, and what uploads cut off by a killed node left
//! in the blob store is removed once no upload begun then can still be
//! running (`upload_grace`). What accounts deleted within the last day
//! still hold is erased again (see `erasure`); finished webhook deliveries
//! older than `webhooks.keep_deliveries_days` go. Resumable uploads past their expiry go with
//! their data (one whose bytes all arrived but whose job was never queued,
//! its request cut short by a crash, is completed instead). Every node sweeps; the steps are idempotent,
//! so two nodes sweeping at once only repeat each other's work.

use std::time::Duration;

use tracing::{info, warn};

use crate::backends::{Backends, StoreError, chain};
use crate::domain::Timestamp;
use crate::jobs::submit::{SubmitError, complete as complete_upload};
use crate::webhooks::Intake;

/// Jobs deleted per round trip of a sweep.
const BATCH: u32 = 100;

/// What to sweep, and how often.
#[derive(Debug, Clone, Copy)]
pub struct SweepPlan {
    /// Jobs older than this are deleted; `None`: kept forever.
    pub keep: Option<Duration>,
    /// Unfinished uploads begun longer ago than this are removed.
    pub upload_grace: Duration,
    /// Finished webhook deliveries older than this are removed; `None`:
    /// kept forever.
    pub keep_deliveries: Option<Duration>,
    pub every: Duration,
}

/// Sweeps now and then every `plan.every`, for ever (run by a
/// [`Background`](crate::background::Background) actor).
pub async fn run_sweeper(backends: Backends, intake: Intake, node_id: String, plan: SweepPlan) {
    let mut tick = tokio::time::interval(plan.every.max(Duration::from_secs(1)));
    loop {
        tick.tick().await;
        if let Some(keep) = plan.keep {
            match sweep(&backends, &intake, &node_id, keep).await {
                Ok((0, 0)) => {}
                Ok((jobs, tombstones)) => {
                    info!(jobs, tombstones, "retention sweep deleted old jobs")
                }
                Err(e) => warn!("retention sweep failed (next one retries): {}", chain(&e)),
            }
        }
        match sweep_expired_uploads(&backends).await {
            Ok(0) => {}
            Ok(uploads) => info!(uploads, "removed expired resumable uploads"),
            Err(e) => warn!(
                "sweeping expired resumable uploads failed (next one retries): {}",
                chain(&e)
            ),
        }
        match crate::erasure::erase_lately_deleted(
            &backends,
            &node_id,
            crate::erasure::SWEEP_WITHIN,
        )
        .await
        {
            Ok(0) => {}
            Ok(accounts) => info!(accounts, "erased what deleted accounts still held"),
            Err(e) => warn!(
                "erasing deleted accounts' data failed (next sweep retries): {}",
                chain(&e)
            ),
        }
        if let Some(keep) = plan.keep_deliveries {
            match backends
                .webhooks
                .prune_deliveries(Timestamp::now().minus(keep))
                .await
            {
                Ok(0) => {}
                Ok(deliveries) => info!(deliveries, "removed old webhook deliveries"),
                Err(e) => warn!(
                    "pruning webhook deliveries failed (next sweep retries): {}",
                    chain(&e)
                ),
            }
        }
        let begun_before = Timestamp::now().minus(plan.upload_grace);
        match backends.blobs.remove_abandoned_uploads(begun_before).await {
            Ok(0) => {}
            Ok(uploads) => info!(uploads, "removed what abandoned uploads left"),
            Err(e) => warn!(
                "sweeping abandoned uploads failed (next one retries): {}",
                chain(&e)
            ),
        }
    }
}

/// Removes resumable uploads past their expiry: the record, and the data
/// of those that never became a job. Returns how many.
pub async fn sweep_expired_uploads(backends: &Backends) -> Result<u64, SubmitError> {
    let mut removed = 0;
    loop {
        let now = Timestamp::now();
        let expired = backends.uploads.expired(now, BATCH).await?;
        if expired.is_empty() {
            return Ok(removed);
        }
        for upload in &expired {
            // Held by a request right now: its hold runs out soon enough.
            let holder = rand::random::<u64>();
            let until = now.plus(Duration::from_secs(60));
            let Some(held) = backends.uploads.hold(upload.id, holder, now, until).await? else {
                continue;
            };
            if held.is_complete() && !held.queued {
                // Its video is its job's now: only the record goes.
                complete_upload(backends, &held).await?;
                backends.uploads.remove(held.id).await?;
            } else {
                backends.discard_upload(&held).await?;
            }
            removed += 1;
        }
        if expired.len() < BATCH as usize {
            return Ok(removed);
        }
    }
}

/// Deletes what is older than `keep`; returns (jobs deleted, tombstones purged).
pub async fn sweep(
    backends: &Backends,
    intake: &Intake,
    node_id: &str,
    keep: Duration,
) -> Result<(u64, u64), StoreError> {
    let cutoff = Timestamp::now().minus(keep);
    let mut deleted = 0;
    loop {
        let old = backends.jobs.created_before(cutoff, BATCH).await?;
        if old.is_empty() {
            break;
        }
        for job in &old {
            // As its owner deletes it: a crash in between announces again
            // (the same delivery) next sweep.
            crate::jobs::delete(backends, intake, node_id, job).await?;
            deleted += 1;
        }
    }
    let purged = backends.jobs.purge_deleted(cutoff).await?;
    Ok((deleted, purged))
}
