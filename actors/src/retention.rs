//! The periodic sweep: jobs older than `storage.retention_days` are
//! deleted with their files, tombstones of deleted jobs are purged once
//! they are that old too, and what uploads cut off by a killed node left
//! in the blob store is removed once no upload begun then can still be
//! running (`upload_grace`). Every node sweeps; the steps are idempotent,
//! so two nodes sweeping at once only repeat each other's work.

use std::time::Duration;

use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::backends::{Backends, StoreError, chain};
use crate::domain::Timestamp;

/// Jobs deleted per round trip of a sweep.
const BATCH: u32 = 100;

/// What to sweep, and how often.
#[derive(Debug, Clone, Copy)]
pub struct SweepPlan {
    /// Jobs older than this are deleted; `None`: kept forever.
    pub keep: Option<Duration>,
    /// Unfinished uploads begun longer ago than this are removed.
    pub upload_grace: Duration,
    pub every: Duration,
}

/// Sweeps now and then every `plan.every`, until the handle is aborted.
pub fn spawn_sweeper(backends: Backends, node_id: String, plan: SweepPlan) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(plan.every.max(Duration::from_secs(1)));
        loop {
            tick.tick().await;
            if let Some(keep) = plan.keep {
                match sweep(&backends, &node_id, keep).await {
                    Ok((0, 0)) => {}
                    Ok((jobs, tombstones)) => {
                        info!(jobs, tombstones, "retention sweep deleted old jobs")
                    }
                    Err(e) => warn!("retention sweep failed (next one retries): {}", chain(&e)),
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
    })
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
    pub plan: SweepPlan,
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
        Ok(Some(spawn_sweeper(args.backends, args.node_id, args.plan)))
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
