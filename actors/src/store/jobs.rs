//! The `jobs` collection. Each transition is one conditional update keyed by
//! job id and guarded by the state (and attempt) it expects, so two
//! deliveries of the same job can never both move it.

use std::time::Duration;

use std::future::IntoFuture;

use futures::TryStreamExt;
use mongodb::bson::{DateTime, Document, doc, oid::ObjectId};
use mongodb::options::ReturnDocument;

use super::{Store, StoreError};
use crate::job::{JobRecord, JobState};
use crate::metrics::timed;

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

impl Store {
    pub async fn insert_job(&self, job: &JobRecord) -> Result<(), StoreError> {
        timed(
            "mongodb",
            "insert_job",
            self.jobs.insert_one(job).into_future(),
        )
        .await?;
        Ok(())
    }

    pub async fn job(&self, id: ObjectId) -> Result<Option<JobRecord>, StoreError> {
        Ok(timed(
            "mongodb",
            "find_job",
            self.jobs.find_one(doc! { "_id": id }).into_future(),
        )
        .await?)
    }

    pub async fn delete_job(&self, id: ObjectId) -> Result<(), StoreError> {
        self.jobs.delete_one(doc! { "_id": id }).await?;
        Ok(())
    }

    /// A page of jobs, newest first: `owner`'s (everyone's for `None`),
    /// optionally in one state, older than the job `before` (the cursor).
    /// Deleted jobs are never listed.
    pub async fn list_jobs(
        &self,
        owner: Option<&str>,
        state: Option<JobState>,
        before: Option<ObjectId>,
        limit: u32,
    ) -> Result<Vec<JobRecord>, StoreError> {
        let mut filter = Document::new();
        if let Some(owner) = owner {
            filter.insert("owner", owner);
        }
        match state {
            Some(state) => filter.insert("state", state.as_str()),
            None => filter.insert("state", doc! { "$ne": JobState::Deleted.as_str() }),
        };
        if let Some(before) = before {
            filter.insert("_id", doc! { "$lt": before });
        }
        let list = async {
            self.jobs
                .find(filter)
                .sort(doc! { "_id": -1 })
                .limit(i64::from(limit))
                .await?
                .try_collect()
                .await
        };
        Ok(timed("mongodb", "list_jobs", list).await?)
    }

    /// How many jobs are in each live state (deleted ones not counted).
    pub async fn count_by_state(&self) -> Result<Vec<(JobState, u64)>, StoreError> {
        let mut counts = Vec::new();
        for state in JobState::LIVE {
            let count = self.jobs.count_documents(doc! { "state": state.as_str() });
            counts.push((
                state,
                timed("mongodb", "count_jobs", count.into_future()).await?,
            ));
        }
        Ok(counts)
    }

    /// Jobs of `owner` not yet final (queued or converting).
    pub async fn active_jobs(&self, owner: &str) -> Result<u64, StoreError> {
        Ok(self
            .jobs
            .count_documents(doc! { "owner": owner, "state": { "$in": ["queued", "converting"] } })
            .await?)
    }

    /// Marks a job deleted (from any state) and returns it as it was, or
    /// `None` when there is no such job. A converting attempt notices at its
    /// next lease renewal and stops; a queued message is acked unconverted.
    pub async fn mark_deleted(&self, id: ObjectId) -> Result<Option<JobRecord>, StoreError> {
        Ok(self
            .jobs
            .find_one_and_update(
                doc! { "_id": id },
                doc! { "$set": {
                    "state": JobState::Deleted.as_str(),
                    "lease_until": null,
                    "progress": null,
                    "updated_at": DateTime::now(),
                } },
            )
            .return_document(ReturnDocument::Before)
            .await?)
    }

    /// Deletes a job: marks it deleted, then removes its files. Safe to
    /// repeat (a repeat finishes what a cut-short one left).
    pub async fn delete_job_and_files(&self, job: &JobRecord) -> Result<(), StoreError> {
        if job.state != JobState::Deleted {
            self.mark_deleted(job.id).await?;
        }
        self.delete_video(job.video_fid).await?;
        self.delete_mp3(job.mp3_fid).await
    }

    /// `failed → queued` at the owner's request: a fresh set of attempts,
    /// and the mails and hand-off of the new outcome. `None` when the job
    /// is not (or no longer) failed.
    pub async fn retry_job(&self, id: ObjectId) -> Result<Option<JobRecord>, StoreError> {
        Ok(self
            .jobs
            .find_one_and_update(
                doc! { "_id": id, "state": "failed" },
                doc! {
                    "$set": {
                        "state": "queued",
                        "attempts": 0,
                        "error": null,
                        "progress": null,
                        "node": null,
                        "notified": false,
                        "mailed": false,
                        "lease_until": null,
                        "updated_at": DateTime::now(),
                    },
                    "$inc": { "retries": 1 },
                },
            )
            .return_document(ReturnDocument::After)
            .await?)
    }

    /// Undoes `retry_job` when its message could not be queued: the job is
    /// failed again with the reason, unless something moved it meanwhile.
    pub async fn undo_retry(
        &self,
        id: ObjectId,
        retries: u32,
        error: &str,
    ) -> Result<(), StoreError> {
        self.jobs
            .update_one(
                doc! { "_id": id, "state": "queued", "retries": retries, "attempts": 0 },
                doc! { "$set": {
                    "state": "failed",
                    "error": error,
                    "notified": true,
                    "mailed": true,
                    "updated_at": DateTime::now(),
                } },
            )
            .await?;
        Ok(())
    }

    /// Jobs created before `cutoff` that are not deleted yet (oldest first,
    /// at most `limit`): what the retention sweep removes.
    pub async fn jobs_created_before(
        &self,
        cutoff: DateTime,
        limit: u32,
    ) -> Result<Vec<JobRecord>, StoreError> {
        Ok(self
            .jobs
            .find(doc! {
                "created_at": { "$lt": cutoff },
                "state": { "$ne": JobState::Deleted.as_str() },
            })
            .sort(doc! { "created_at": 1 })
            .limit(i64::from(limit))
            .await?
            .try_collect()
            .await?)
    }

    /// Removes tombstones last touched before `cutoff`.
    pub async fn purge_deleted(&self, cutoff: DateTime) -> Result<u64, StoreError> {
        Ok(self
            .jobs
            .delete_many(
                doc! { "state": JobState::Deleted.as_str(), "updated_at": { "$lt": cutoff } },
            )
            .await?
            .deleted_count)
    }

    /// Starts an attempt: `queued → converting`, or takes over a
    /// `converting` job whose lease ran out (its attempt crashed or its node
    /// died); attempts + 1, and a lease of `lease` that the attempt must
    /// renew. A job whose lease is live is `Busy`: two attempts never run
    /// at once, so they never write the same audio file together.
    pub async fn claim_job(
        &self,
        id: ObjectId,
        node: &str,
        max_attempts: u32,
        lease: Duration,
    ) -> Result<Claim, StoreError> {
        let now = DateTime::now();
        let claim = self
            .jobs
            .find_one_and_update(
                doc! { "_id": id, "$or": [
                    { "state": "queued" },
                    { "state": "converting", "lease_until": { "$not": { "$gt": now } } },
                ] },
                doc! {
                    "$set": {
                        "state": "converting",
                        "node": node,
                        "updated_at": now,
                        "lease_until": lease_from(now, lease),
                    },
                    "$inc": { "attempts": 1 },
                },
            )
            .return_document(ReturnDocument::After)
            .into_future();
        let claimed = timed("mongodb", "claim_job", claim).await?;
        let Some(job) = claimed else {
            return Ok(match self.job(id).await? {
                Some(job) if job.state == JobState::Converting => Claim::Busy(job),
                Some(job) => Claim::Final(job),
                None => Claim::Missing,
            });
        };
        if job.attempts > max_attempts {
            let error = format!(
                "gave up after {max_attempts} attempts (last error: {})",
                job.error.as_deref().unwrap_or("none recorded")
            );
            let failed = self
                .finish_job(id, job.attempts, JobState::Failed, Some(&error))
                .await?;
            return Ok(match failed {
                Some(job) => Claim::Exhausted(job),
                None => self.reread_as_final(id).await?,
            });
        }
        Ok(Claim::Run(job))
    }

    /// Extends attempt `attempt`'s lease and records its progress (percent);
    /// `false` when the attempt no longer owns the job.
    pub async fn renew_lease(
        &self,
        id: ObjectId,
        attempt: u32,
        lease: Duration,
        progress: Option<f64>,
    ) -> Result<bool, StoreError> {
        let mut set = doc! { "lease_until": lease_from(DateTime::now(), lease) };
        if let Some(percent) = progress {
            set.insert("progress", percent);
        }
        let renew = self.jobs.update_one(
            doc! { "_id": id, "state": "converting", "attempts": attempt },
            doc! { "$set": set },
        );
        let result = timed("mongodb", "renew_lease", renew.into_future()).await?;
        Ok(result.matched_count == 1)
    }

    async fn reread_as_final(&self, id: ObjectId) -> Result<Claim, StoreError> {
        Ok(match self.job(id).await? {
            Some(job) => Claim::Final(job),
            None => Claim::Missing,
        })
    }

    /// Ends attempt `attempt`: `converting → done | failed`. Returns the new
    /// record, or `None` when the job was moved by someone else meanwhile.
    pub async fn finish_job(
        &self,
        id: ObjectId,
        attempt: u32,
        state: JobState,
        error: Option<&str>,
    ) -> Result<Option<JobRecord>, StoreError> {
        debug_assert!(state.is_final());
        let finish = self
            .jobs
            .find_one_and_update(
                doc! { "_id": id, "state": "converting", "attempts": attempt },
                doc! { "$set": {
                    "state": state.as_str(),
                    "error": error,
                    "progress": if state == JobState::Done { Some(100.0) } else { None },
                    "notified": false,
                    "lease_until": null,
                    "updated_at": DateTime::now(),
                } },
            )
            .return_document(ReturnDocument::After)
            .into_future();
        Ok(timed("mongodb", "finish_job", finish).await?)
    }

    /// Hands attempt `attempt` back for a retry: `converting → queued`,
    /// keeping the error so the next attempt (or the give-up) can report it.
    /// `false` when the attempt no longer owned the job (deleted, taken over).
    pub async fn requeue_job(
        &self,
        id: ObjectId,
        attempt: u32,
        error: &str,
    ) -> Result<bool, StoreError> {
        self.back_to_queued(
            doc! { "_id": id, "state": "converting", "attempts": attempt },
            error,
        )
        .await
    }

    /// The attempt on `node` died with its worker: back to `queued` at once,
    /// rather than when its lease runs out. Only that node's attempt is
    /// touched; attempts on other nodes are not this node's to judge.
    pub async fn release_crashed(
        &self,
        id: ObjectId,
        node: &str,
        error: &str,
    ) -> Result<(), StoreError> {
        self.back_to_queued(
            doc! { "_id": id, "state": "converting", "node": node },
            error,
        )
        .await
        .map(|_| ())
    }

    async fn back_to_queued(&self, filter: Document, error: &str) -> Result<bool, StoreError> {
        let update = doc! { "$set": {
            "state": "queued",
            "error": error,
            "lease_until": null,
            "updated_at": DateTime::now(),
        } };
        Ok(self.jobs.update_one(filter, update).await?.matched_count == 1)
    }

    /// Records that the owner was mailed about the job's end.
    pub async fn mark_mailed(&self, id: ObjectId) -> Result<(), StoreError> {
        self.jobs
            .update_one(doc! { "_id": id }, doc! { "$set": { "mailed": true } })
            .await?;
        Ok(())
    }

    pub async fn mark_notified(&self, id: ObjectId) -> Result<(), StoreError> {
        self.jobs
            .update_one(doc! { "_id": id }, doc! { "$set": { "notified": true } })
            .await?;
        Ok(())
    }
}

fn lease_from(now: DateTime, lease: Duration) -> DateTime {
    DateTime::from_millis(now.timestamp_millis() + lease.as_millis() as i64)
}
