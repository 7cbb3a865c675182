//! Erasing everything a deleted account owned: its webhooks and their
//! pending deliveries, its jobs with their files, its unfinished uploads
//! with their data, its reservations; the tombstones of its jobs keep no
//! trace of it. One idempotent step, safe to repeat and to run on two
//! nodes at once: the node that deleted the account runs it at once, every
//! node runs it when it learns of a deletion made elsewhere (the CLI), and
//! the retention sweep runs it again for accounts deleted lately, which
//! catches an upload that was still arriving when the account went.

use super::{Backends, JobQuery, StoreError};
use crate::domain::Owner;

/// Records handled per round trip.
const BATCH: u32 = 100;

/// What one erasure removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Erased {
    pub jobs: u64,
    pub uploads: u64,
    pub webhooks: u64,
}

impl Erased {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl Backends {
    /// Removes what `owner` (a user id, hex) owns (see the module docs);
    /// `node` names this node in the deletion events.
    pub async fn erase_owner(&self, owner: &Owner, node: &str) -> Result<Erased, StoreError> {
        // Webhooks first: nothing more is sent on the account's behalf.
        let mut erased = Erased {
            webhooks: self.webhooks.remove_owned(owner).await?,
            ..Erased::default()
        };
        let query = JobQuery {
            owner: Some(owner.to_owned()),
            state: None,
            before: None,
            limit: BATCH,
        };
        loop {
            // Deleted jobs are not listed: each page is new ones.
            let jobs = self.jobs.list(&query).await?;
            if jobs.is_empty() {
                break;
            }
            for job in &jobs {
                self.delete_job_and_files(job).await?;
                let _ = self.events.publish(&job.deleted_event(node)).await;
                erased.jobs += 1;
            }
        }
        loop {
            let uploads = self.uploads.owned(owner, BATCH).await?;
            if uploads.is_empty() {
                break;
            }
            for upload in &uploads {
                // A queued upload's file is its job's, removed above.
                self.discard_upload(upload).await?;
                erased.uploads += 1;
            }
        }
        self.jobs.forget_owner(owner).await?;
        self.reservations.forget(owner).await?;
        // Again, last: a job's end announced while its job was being
        // erased queued a delivery after the first removal (the notifier
        // removes what it queues after this, seeing the job cut loose).
        erased.webhooks += self.webhooks.remove_owned(owner).await?;
        Ok(erased)
    }
}
