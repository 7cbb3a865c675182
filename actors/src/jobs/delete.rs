//! Deleting a job: by its owner (`DELETE /jobs/{id}`) and by age (the
//! retention sweep), one way.
//!
//! Announced to webhooks first, so a failure leaves the job as it was and
//! a repeat announces again (the same deliveries, not new ones); then
//! marked deleted and its files removed, which a repeat also finishes if a
//! first try was cut short between the two; then the event for watchers.

use tracing::warn;

use crate::backends::{Backends, StoreError, chain};
use crate::domain::{JobEventType, JobRecord, JobState};
use crate::webhooks::Intake;

/// Deletes `job` (as read: any state, a tombstone too); safe to repeat.
/// `true` when it was live until now.
pub async fn delete(
    backends: &Backends,
    intake: &Intake,
    node_id: &str,
    job: &JobRecord,
) -> Result<bool, StoreError> {
    let live = job.state != JobState::Deleted;
    if live {
        intake.announce(job, JobEventType::Deleted).await?;
    }
    backends.delete_job_and_files(job).await?;
    if live && let Err(e) = backends.events.publish(&job.deleted_event(node_id)).await {
        warn!(job_id = %job.id, "deleted-job event not published: {}", chain(&e));
    }
    Ok(live)
}
