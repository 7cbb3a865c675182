//! The `segments` collection behind [`SegmentStore`], beside `jobs`: one
//! document per segment of a split job (`_id`: the job's id and the
//! index), each transition one conditional update guarded by the state
//! (and attempt) it expects.

use std::future::IntoFuture;
use std::time::Duration;

use async_trait::async_trait;
use futures::TryStreamExt;
use mongodb::bson::{DateTime, Document, doc, oid::ObjectId};
use mongodb::options::ReturnDocument;
use serde::{Deserialize, Serialize};

use super::job_doc::{date, time};
use super::{Mongo, from_oid, oid};
use crate::backends::{SegmentStore, StoreError};
use crate::domain::{JobId, SegmentRecord, SegmentState, Timestamp};
use crate::metrics::timed;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SegmentDoc {
    /// `<job id>:<index>`: one document per segment, whoever writes it.
    #[serde(rename = "_id")]
    pub id: String,
    pub job_id: ObjectId,
    pub index: u32,
    pub work: String,
    pub state: SegmentState,
    #[serde(default)]
    pub attempts: u32,
    #[serde(default)]
    pub node: Option<String>,
    #[serde(default)]
    pub lease_until: Option<DateTime>,
    #[serde(default)]
    pub progress: Option<f64>,
    #[serde(default)]
    pub error: Option<String>,
}

fn key(job: JobId, index: u32) -> String {
    format!("{job}:{index}")
}

impl From<&SegmentRecord> for SegmentDoc {
    fn from(s: &SegmentRecord) -> Self {
        Self {
            id: key(s.job_id, s.index),
            job_id: oid(s.job_id),
            index: s.index,
            work: s.work.clone(),
            state: s.state,
            attempts: s.attempts,
            node: s.node.clone(),
            lease_until: s.lease_until.map(date),
            progress: s.progress,
            error: s.error.clone(),
        }
    }
}

impl From<SegmentDoc> for SegmentRecord {
    fn from(doc: SegmentDoc) -> Self {
        Self {
            job_id: from_oid(doc.job_id),
            index: doc.index,
            work: doc.work,
            state: doc.state,
            attempts: doc.attempts,
            node: doc.node,
            lease_until: doc.lease_until.map(time),
            progress: doc.progress,
            error: doc.error,
        }
    }
}

impl Mongo {
    /// One segment's update where `guard` also holds; whether it matched.
    async fn update_segment(
        &self,
        (job, index): (JobId, u32),
        mut guard: Document,
        update: Document,
    ) -> Result<bool, StoreError> {
        guard.insert("_id", key(job, index));
        let result = self.segment_records.update_one(guard, update).await?;
        Ok(result.matched_count == 1)
    }
}

#[async_trait]
impl SegmentStore for Mongo {
    async fn replace(&self, job: JobId, segments: &[SegmentRecord]) -> Result<(), StoreError> {
        self.segment_records
            .delete_many(doc! { "job_id": oid(job) })
            .await?;
        if !segments.is_empty() {
            let docs: Vec<SegmentDoc> = segments.iter().map(SegmentDoc::from).collect();
            self.segment_records.insert_many(docs).await?;
        }
        Ok(())
    }

    async fn list(&self, job: JobId) -> Result<Vec<SegmentRecord>, StoreError> {
        let found: Vec<SegmentDoc> = self
            .segment_records
            .find(doc! { "job_id": oid(job) })
            .sort(doc! { "index": 1 })
            .await?
            .try_collect()
            .await?;
        Ok(found.into_iter().map(SegmentRecord::from).collect())
    }

    async fn get(&self, job: JobId, index: u32) -> Result<Option<SegmentRecord>, StoreError> {
        Ok(self
            .segment_records
            .find_one(doc! { "_id": key(job, index) })
            .await?
            .map(SegmentRecord::from))
    }

    async fn take(
        &self,
        job: JobId,
        index: u32,
        node: &str,
        now: Timestamp,
        lease: Duration,
    ) -> Result<Option<SegmentRecord>, StoreError> {
        let now_date = date(now);
        let take = self
            .segment_records
            .find_one_and_update(
                doc! { "_id": key(job, index), "$or": [
                    { "state": SegmentState::Queued.as_str() },
                    {
                        "state": SegmentState::Converting.as_str(),
                        "lease_until": { "$not": { "$gt": now_date } },
                    },
                ] },
                doc! {
                    "$set": {
                        "state": SegmentState::Converting.as_str(),
                        "node": node,
                        "lease_until": date(now.plus(lease)),
                        "progress": null,
                    },
                    "$inc": { "attempts": 1 },
                },
            )
            .return_document(ReturnDocument::After)
            .into_future();
        Ok(timed("mongodb", "take_segment", take)
            .await?
            .map(SegmentRecord::from))
    }

    async fn renew(
        &self,
        job: JobId,
        index: u32,
        attempt: u32,
        lease: Duration,
        progress: Option<f64>,
    ) -> Result<bool, StoreError> {
        let mut set = doc! { "lease_until": date(Timestamp::now().plus(lease)) };
        if let Some(percent) = progress {
            set.insert("progress", percent);
        }
        self.update_segment(
            (job, index),
            doc! { "state": SegmentState::Converting.as_str(), "attempts": attempt },
            doc! { "$set": set },
        )
        .await
    }

    async fn finish(
        &self,
        job: JobId,
        index: u32,
        attempt: u32,
        state: SegmentState,
        error: Option<&str>,
    ) -> Result<bool, StoreError> {
        debug_assert!(state.is_final());
        let progress = (state == SegmentState::Done).then_some(100.0);
        self.update_segment(
            (job, index),
            doc! { "state": SegmentState::Converting.as_str(), "attempts": attempt },
            doc! { "$set": {
                "state": state.as_str(),
                "error": error,
                "progress": progress,
                "lease_until": null,
            } },
        )
        .await
    }

    async fn requeue(
        &self,
        job: JobId,
        index: u32,
        attempt: u32,
        error: &str,
        refund: bool,
    ) -> Result<bool, StoreError> {
        if refund && attempt == 0 {
            return Ok(false);
        }
        let mut update = doc! { "$set": {
            "state": SegmentState::Queued.as_str(),
            "error": error,
            "lease_until": null,
        } };
        if refund {
            update.insert("$inc", doc! { "attempts": -1 });
        }
        self.update_segment(
            (job, index),
            doc! { "state": SegmentState::Converting.as_str(), "attempts": attempt },
            update,
        )
        .await
    }

    async fn release_crashed(
        &self,
        job: JobId,
        index: u32,
        node: &str,
        error: &str,
    ) -> Result<(), StoreError> {
        self.update_segment(
            (job, index),
            doc! { "state": SegmentState::Converting.as_str(), "node": node },
            doc! { "$set": {
                "state": SegmentState::Queued.as_str(),
                "error": error,
                "lease_until": null,
            } },
        )
        .await
        .map(|_| ())
    }

    async fn remove(&self, job: JobId) -> Result<(), StoreError> {
        self.segment_records
            .delete_many(doc! { "job_id": oid(job) })
            .await?;
        Ok(())
    }
}
