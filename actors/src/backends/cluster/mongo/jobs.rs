//! The `jobs` collection behind [`JobStore`]. Each transition is one
//! conditional update keyed by job id and guarded by the state (and
//! attempt) it expects.

use std::future::IntoFuture;
use std::time::Duration;

use async_trait::async_trait;
use futures::TryStreamExt;
use mongodb::bson::{Bson, DateTime, Document, doc};
use mongodb::options::ReturnDocument;

use super::job_doc::{AudioDoc, JobDoc, date};
use super::{Mongo, oid};
use crate::backends::{JobQuery, JobStore, StoreError};
use crate::domain::{AudioSummary, JobId, JobRecord, JobState, Owner, Segments, Timestamp};
use crate::metrics::timed;

fn records(docs: Vec<JobDoc>) -> Vec<JobRecord> {
    docs.into_iter().map(JobRecord::from).collect()
}

impl Mongo {
    /// `converting → queued` where `filter` matches, keeping `error`;
    /// `refund` gives the attempt back too (`attempts - 1`).
    async fn back_to_queued(
        &self,
        filter: Document,
        error: &str,
        refund: bool,
    ) -> Result<bool, StoreError> {
        let mut update = doc! { "$set": {
            "state": JobState::Queued.as_str(),
            "error": error,
            "lease_until": null,
            "updated_at": DateTime::now(),
        } };
        if refund {
            update.insert("$inc", doc! { "attempts": -1 });
        }
        Ok(self.jobs.update_one(filter, update).await?.matched_count == 1)
    }

    async fn set_flag(&self, id: JobId, flag: &str) -> Result<(), StoreError> {
        self.jobs
            .update_one(doc! { "_id": oid(id) }, doc! { "$set": { flag: true } })
            .await?;
        Ok(())
    }
}

#[async_trait]
impl JobStore for Mongo {
    async fn insert(&self, job: &JobRecord) -> Result<(), StoreError> {
        let doc = JobDoc::from(job);
        timed(
            "mongodb",
            "insert_job",
            self.jobs.insert_one(doc).into_future(),
        )
        .await?;
        Ok(())
    }

    async fn get(&self, id: JobId) -> Result<Option<JobRecord>, StoreError> {
        let find = self.jobs.find_one(doc! { "_id": oid(id) }).into_future();
        Ok(timed("mongodb", "find_job", find)
            .await?
            .map(JobRecord::from))
    }

    async fn remove(&self, id: JobId) -> Result<(), StoreError> {
        self.jobs.delete_one(doc! { "_id": oid(id) }).await?;
        Ok(())
    }

    async fn list(&self, query: &JobQuery) -> Result<Vec<JobRecord>, StoreError> {
        let mut filter = Document::new();
        if let Some(owner) = &query.owner {
            filter.insert("owner", owner.stored());
        }
        match query.state {
            Some(state) => filter.insert("state", state.as_str()),
            None => filter.insert("state", doc! { "$ne": JobState::Deleted.as_str() }),
        };
        if let Some(before) = query.before {
            filter.insert("_id", doc! { "$lt": oid(before) });
        }
        let list = async {
            self.jobs
                .find(filter)
                .sort(doc! { "_id": -1 })
                .limit(i64::from(query.limit))
                .await?
                .try_collect()
                .await
        };
        Ok(records(timed("mongodb", "list_jobs", list).await?))
    }

    async fn count_by_state(&self) -> Result<Vec<(JobState, u64)>, StoreError> {
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

    async fn active_jobs(&self, owner: &Owner) -> Result<u64, StoreError> {
        let active: Vec<&str> = JobState::ACTIVE.iter().map(|s| s.as_str()).collect();
        Ok(self
            .jobs
            .count_documents(doc! { "owner": owner.stored(), "state": { "$in": active } })
            .await?)
    }

    async fn forget_owner(&self, owner: &Owner) -> Result<u64, StoreError> {
        Ok(self
            .jobs
            .update_many(
                doc! { "owner": owner.stored(), "state": JobState::Deleted.as_str() },
                doc! {
                    "$set": { "owner": Owner::Forgotten.stored(), "filename": "" },
                    "$unset": { "callback": "" },
                },
            )
            .await?
            .modified_count)
    }

    async fn mark_deleted(&self, id: JobId) -> Result<Option<JobRecord>, StoreError> {
        Ok(self
            .jobs
            .find_one_and_update(
                doc! { "_id": oid(id) },
                doc! { "$set": {
                    "state": JobState::Deleted.as_str(),
                    "lease_until": null,
                    "progress": null,
                    "updated_at": DateTime::now(),
                } },
            )
            .return_document(ReturnDocument::Before)
            .await?
            .map(JobRecord::from))
    }

    async fn retry(&self, id: JobId) -> Result<Option<JobRecord>, StoreError> {
        Ok(self
            .jobs
            .find_one_and_update(
                doc! { "_id": oid(id), "state": JobState::Failed.as_str() },
                doc! {
                    "$set": {
                        "state": JobState::Queued.as_str(),
                        "attempts": 0,
                        "error": null,
                        "progress": null,
                        "node": null,
                        "notified": false,
                        "mailed": false,
                        "mail_node": null,
                        "mail_until": null,
                        "audio": null,
                        "lease_until": null,
                        "segments": null,
                        "updated_at": DateTime::now(),
                    },
                    "$inc": { "retries": 1 },
                },
            )
            .return_document(ReturnDocument::After)
            .await?
            .map(JobRecord::from))
    }

    async fn undo_retry(&self, id: JobId, retries: u32, error: &str) -> Result<(), StoreError> {
        self.jobs
            .update_one(
                doc! {
                    "_id": oid(id), "state": JobState::Queued.as_str(),
                    "retries": retries, "attempts": 0,
                },
                doc! { "$set": {
                    "state": JobState::Failed.as_str(),
                    "error": error,
                    "notified": true,
                    "mailed": true,
                    "updated_at": DateTime::now(),
                } },
            )
            .await?;
        Ok(())
    }

    async fn created_before(
        &self,
        cutoff: Timestamp,
        limit: u32,
    ) -> Result<Vec<JobRecord>, StoreError> {
        let found = self
            .jobs
            .find(doc! {
                "created_at": { "$lt": date(cutoff) },
                "state": { "$ne": JobState::Deleted.as_str() },
            })
            .sort(doc! { "created_at": 1 })
            .limit(i64::from(limit))
            .await?
            .try_collect()
            .await?;
        Ok(records(found))
    }

    async fn purge_deleted(&self, cutoff: Timestamp) -> Result<u64, StoreError> {
        Ok(self
            .jobs
            .delete_many(doc! {
                "state": JobState::Deleted.as_str(),
                "updated_at": { "$lt": date(cutoff) },
            })
            .await?
            .deleted_count)
    }

    async fn take(
        &self,
        id: JobId,
        node: &str,
        now: Timestamp,
        lease: Duration,
    ) -> Result<Option<JobRecord>, StoreError> {
        let now_date = date(now);
        let claim = self
            .jobs
            .find_one_and_update(
                doc! { "_id": oid(id), "$or": [
                    { "state": JobState::Queued.as_str() },
                    {
                        "state": JobState::Converting.as_str(),
                        "lease_until": { "$not": { "$gt": now_date } },
                    },
                ] },
                doc! {
                    "$set": {
                        "state": JobState::Converting.as_str(),
                        "node": node,
                        "updated_at": now_date,
                        "lease_until": date(now.plus(lease)),
                    },
                    "$inc": { "attempts": 1 },
                },
            )
            .return_document(ReturnDocument::After)
            .into_future();
        Ok(timed("mongodb", "claim_job", claim)
            .await?
            .map(JobRecord::from))
    }

    async fn renew_lease(
        &self,
        id: JobId,
        attempt: u32,
        lease: Duration,
        progress: Option<f64>,
    ) -> Result<bool, StoreError> {
        let mut set = doc! { "lease_until": date(Timestamp::now().plus(lease)) };
        if let Some(percent) = progress {
            set.insert("progress", percent);
        }
        let renew = self.jobs.update_one(
            doc! { "_id": oid(id), "state": JobState::Converting.as_str(), "attempts": attempt },
            doc! { "$set": set },
        );
        let result = timed("mongodb", "renew_lease", renew.into_future()).await?;
        Ok(result.matched_count == 1)
    }

    async fn finish(
        &self,
        id: JobId,
        attempt: u32,
        state: JobState,
        error: Option<&str>,
        audio: Option<AudioSummary>,
    ) -> Result<Option<JobRecord>, StoreError> {
        debug_assert!(state.is_final());
        let audio = audio
            .map(AudioDoc::from)
            .map(|a| mongodb::bson::to_document(&a))
            .transpose()
            .map_err(|e| StoreError::backend("MongoDB", e))?;
        let finish = self
            .jobs
            .find_one_and_update(
                doc! { "_id": oid(id), "state": JobState::Converting.as_str(), "attempts": attempt },
                doc! { "$set": {
                    "state": state.as_str(),
                    "error": error,
                    "progress": if state == JobState::Done { Some(100.0) } else { None },
                    "notified": false,
                    "lease_until": null,
                    "audio": audio,
                    "updated_at": DateTime::now(),
                } },
            )
            .return_document(ReturnDocument::After)
            .into_future();
        Ok(timed("mongodb", "finish_job", finish)
            .await?
            .map(JobRecord::from))
    }

    async fn requeue(&self, id: JobId, attempt: u32, error: &str) -> Result<bool, StoreError> {
        self.back_to_queued(
            doc! { "_id": oid(id), "state": JobState::Converting.as_str(), "attempts": attempt },
            error,
            false,
        )
        .await
    }

    async fn requeue_refunded(
        &self,
        id: JobId,
        attempt: u32,
        error: &str,
    ) -> Result<bool, StoreError> {
        if attempt == 0 {
            return Ok(false);
        }
        self.back_to_queued(
            doc! { "_id": oid(id), "state": JobState::Converting.as_str(), "attempts": attempt },
            error,
            true,
        )
        .await
    }

    async fn release_crashed(&self, id: JobId, node: &str, error: &str) -> Result<(), StoreError> {
        self.back_to_queued(
            doc! { "_id": oid(id), "state": JobState::Converting.as_str(), "node": node },
            error,
            false,
        )
        .await
        .map(|_| ())
    }

    async fn split(
        &self,
        id: JobId,
        attempt: u32,
        total: u32,
    ) -> Result<Option<JobRecord>, StoreError> {
        let segments = Segments { total, done: 0 };
        let segments =
            mongodb::bson::to_bson(&segments).map_err(|e| StoreError::backend("MongoDB", e))?;
        let attempt_of = doc! {
            "_id": oid(id), "state": JobState::Converting.as_str(), "attempts": attempt,
        };
        let mut first = attempt_of.clone();
        first.insert("segments", Bson::Null);
        let mut again = attempt_of;
        again.insert("segments", doc! { "$ne": Bson::Null });
        let now = DateTime::now();
        // Split the first time (none done yet), or let go again (the
        // segments' tally kept): each one guarded update.
        let updates = [
            (
                first,
                doc! { "$set": {
                    "segments": segments,
                    "lease_until": null,
                    "node": null,
                    "progress": 0.0,
                    "updated_at": now,
                } },
            ),
            (
                again,
                doc! { "$set": {
                    "lease_until": null,
                    "node": null,
                    "updated_at": now,
                } },
            ),
        ];
        for (filter, update) in updates {
            let updated = self
                .jobs
                .find_one_and_update(filter, update)
                .return_document(ReturnDocument::After)
                .await?;
            if let Some(doc) = updated {
                return Ok(Some(JobRecord::from(doc)));
            }
        }
        Ok(None)
    }

    async fn note_segments(&self, id: JobId, done: u32, progress: f64) -> Result<bool, StoreError> {
        let result = self
            .jobs
            .update_one(
                doc! {
                    "_id": oid(id),
                    "state": JobState::Converting.as_str(),
                    "segments": { "$ne": null },
                },
                doc! { "$set": { "segments.done": done, "progress": progress } },
            )
            .await?;
        Ok(result.matched_count == 1)
    }

    async fn claim_mail(
        &self,
        id: JobId,
        node: &str,
        now: Timestamp,
        lease: Duration,
    ) -> Result<Option<JobRecord>, StoreError> {
        let claim = self
            .jobs
            .find_one_and_update(
                doc! {
                    "_id": oid(id),
                    "mailed": { "$ne": true },
                    "state": { "$ne": JobState::Deleted.as_str() },
                    "$or": [
                        { "mail_until": { "$not": { "$gt": date(now) } } },
                        { "mail_node": node },
                    ],
                },
                doc! { "$set": { "mail_node": node, "mail_until": date(now.plus(lease)) } },
            )
            .return_document(ReturnDocument::After)
            .into_future();
        Ok(timed("mongodb", "claim_mail", claim)
            .await?
            .map(JobRecord::from))
    }

    async fn mark_mailed(&self, id: JobId) -> Result<(), StoreError> {
        self.jobs
            .update_one(
                doc! { "_id": oid(id) },
                doc! { "$set": { "mailed": true, "mail_node": null, "mail_until": null } },
            )
            .await?;
        Ok(())
    }

    async fn mark_notified(&self, id: JobId) -> Result<(), StoreError> {
        self.set_flag(id, "notified").await
    }
}
