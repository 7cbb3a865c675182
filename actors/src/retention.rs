//! The retention sweep: jobs older than `storage.retention_days` are
//! deleted with their files, and tombstones of deleted jobs are purged once
//! they are that old too. Every node sweeps; the steps are idempotent, so
//! two nodes sweeping at once only repeat each other's work.

use std::time::Duration;

use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::backends::{Backends, StoreError, chain};
use crate::domain::Timestamp;

/// Jobs deleted per round trip of a sweep.
const BATCH: u32 = 100;

/// Sweeps now and then every `every`, until the handle is aborted. Does
/// nothing when `retention_days` is 0.
pub fn spawn_sweeper(
    backends: Backends,
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
            match sweep(&backends, &node_id, keep).await {
                Ok((0, 0)) => {}
                Ok((jobs, tombstones)) => {
                    info!(jobs, tombstones, "retention sweep deleted old jobs")
                }
                Err(e) => warn!("retention sweep failed (next one retries): {}", chain(&e)),
            }
        }
    }))
}

/// Deletes what is older than `keep`; returns (jobs deleted, tombstones purged).
pub async fn sweep(
    backends: &Backends,
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
            backends.delete_job_and_files(job).await?;
            let _ = backends.events.publish(&job.deleted_event(node_id)).await;
            deleted += 1;
        }
    }
    let purged = backends.jobs.purge_deleted(cutoff).await?;
    Ok((deleted, purged))
}

/// The sweep as a child of the root supervisor: it runs while the actor
/// lives, and a restart starts it afresh.
pub struct Sweeper;

pub struct SweeperArgs {
    pub backends: Backends,
    pub node_id: String,
    pub retention_days: u64,
    pub every: Duration,
}

impl ractor::Actor for Sweeper {
    type Msg = ();
    type State = Option<JoinHandle<()>>;
    type Arguments = SweeperArgs;

    async fn pre_start(
        &self,
        _myself: ractor::ActorRef<()>,
        args: SweeperArgs,
    ) -> Result<Self::State, ractor::ActorProcessingErr> {
        Ok(spawn_sweeper(
            args.backends,
            args.node_id,
            args.retention_days,
            args.every,
        ))
    }

    async fn post_stop(
        &self,
        _myself: ractor::ActorRef<()>,
        task: &mut Self::State,
    ) -> Result<(), ractor::ActorProcessingErr> {
        if let Some(task) = task.take() {
            task.abort();
        }
        Ok(())
    }
}
