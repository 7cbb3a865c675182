//! The retention sweep: jobs older than `storage.retention_days` are
//! deleted with their files, and tombstones of deleted jobs are purged once
//! they are that old too. Every node sweeps; the steps are idempotent, so
//! two nodes sweeping at once only repeat each other's work.

use std::time::Duration;

use mongodb::bson::DateTime;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::{Store, StoreError};
use crate::queue::Broker;

/// Jobs deleted per round trip of a sweep.
const BATCH: u32 = 100;

/// Sweeps now and then every `every`, until the handle is aborted. Does
/// nothing when `retention_days` is 0.
pub fn spawn_sweeper(
    store: Store,
    broker: Broker,
    node_id: String,
    retention_days: u64,
    every: Duration,
) -> Option<JoinHandle<()>> {
    if retention_days == 0 {
        return None;
    }
    let keep = Duration::from_secs(retention_days.saturating_mul(86_400));
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(every.max(Duration::from_secs(1)));
        loop {
            tick.tick().await;
            match sweep(&store, &broker, &node_id, keep).await {
                Ok((0, 0)) => {}
                Ok((jobs, tombstones)) => {
                    info!(jobs, tombstones, "retention sweep deleted old jobs")
                }
                Err(e) => warn!("retention sweep failed (next one retries): {e}"),
            }
        }
    }))
}

/// Deletes what is older than `keep`; returns (jobs deleted, tombstones purged).
pub async fn sweep(
    store: &Store,
    broker: &Broker,
    node_id: &str,
    keep: Duration,
) -> Result<(u64, u64), StoreError> {
    let cutoff = DateTime::from_millis(
        DateTime::now()
            .timestamp_millis()
            .saturating_sub(keep.as_millis() as i64),
    );
    let mut deleted = 0;
    loop {
        let old = store.jobs_created_before(cutoff, BATCH).await?;
        if old.is_empty() {
            break;
        }
        for job in &old {
            store.delete_job_and_files(job).await?;
            let _ = broker.publish_event(&job.deleted_event(node_id)).await;
            deleted += 1;
        }
    }
    let purged = store.purge_deleted(cutoff).await?;
    Ok((deleted, purged))
}
