//! The `uploads` collection behind [`UploadStore`], beside `jobs`: one
//! document per resumable upload, keyed by the video's file id (so the
//! sweep for abandoned uploads can tell a resumable upload's chunks from an
//! abandoned one's with one `$in`). The hold is two fields (`holder`,
//! `held_until`) moved by conditional single-document updates.

use std::future::IntoFuture;

use async_trait::async_trait;
use futures::TryStreamExt;
use mongodb::Collection;
use mongodb::bson::{DateTime, doc, oid::ObjectId};
use mongodb::options::ReturnDocument;
use serde::{Deserialize, Serialize};

use super::job_doc::{CallbackDoc, date, time};
use super::{Mongo, from_oid, oid};
use crate::backends::{StoreError, UploadStore};
use crate::domain::{FileId, Owner, Timestamp, UploadRecord};
use crate::metrics::timed;
use crate::output::ResolvedOutput;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct UploadDoc {
    #[serde(rename = "_id")]
    id: ObjectId,
    owner: Owner,
    #[serde(default)]
    username: String,
    length: i64,
    stored: i64,
    filename: String,
    #[serde(default)]
    content_type: Option<String>,
    #[serde(default)]
    metadata: String,
    #[serde(default)]
    output: ResolvedOutput,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    callback: Option<CallbackDoc>,
    job_id: ObjectId,
    mp3_fid: ObjectId,
    #[serde(default)]
    queued: bool,
    created_at: DateTime,
    expires_at: DateTime,
    /// The request holding it, as the bits of its random number.
    #[serde(default)]
    holder: Option<i64>,
    #[serde(default)]
    held_until: Option<DateTime>,
    /// The node whose request holds it.
    #[serde(default)]
    held_by: Option<String>,
}

fn signed(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl From<&UploadRecord> for UploadDoc {
    fn from(u: &UploadRecord) -> Self {
        Self {
            id: oid(u.id),
            owner: u.owner.clone(),
            username: u.username.clone(),
            length: signed(u.length),
            stored: signed(u.offset),
            filename: u.filename.clone(),
            content_type: u.content_type.clone(),
            metadata: u.metadata.clone(),
            output: u.output.clone(),
            callback: u.callback.as_ref().map(CallbackDoc::from),
            job_id: oid(u.job_id),
            mp3_fid: oid(u.mp3_fid),
            queued: u.queued,
            created_at: date(u.created_at),
            expires_at: date(u.expires_at),
            holder: None,
            held_until: None,
            held_by: None,
        }
    }
}

impl From<UploadDoc> for UploadRecord {
    fn from(d: UploadDoc) -> Self {
        Self {
            id: from_oid(d.id),
            owner: d.owner,
            username: d.username,
            length: u64::try_from(d.length).unwrap_or(0),
            offset: u64::try_from(d.stored).unwrap_or(0),
            filename: d.filename,
            content_type: d.content_type,
            metadata: d.metadata,
            output: d.output,
            callback: d.callback.map(Into::into),
            job_id: from_oid(d.job_id),
            mp3_fid: from_oid(d.mp3_fid),
            queued: d.queued,
            created_at: time(d.created_at),
            expires_at: time(d.expires_at),
        }
    }
}

impl Mongo {
    fn upload_docs(&self) -> Collection<UploadDoc> {
        self.uploads.clone_with_type()
    }

    /// Lets go of the holds this node's previous process took: a node id
    /// runs once at a time, so those requests died with it (its clients
    /// resume at once instead of waiting for the holds to lapse).
    pub(super) async fn release_upload_holds(&self) -> Result<(), StoreError> {
        self.uploads
            .update_many(
                doc! { "held_by": &self.node_id, "holder": { "$ne": null } },
                doc! { "$set": { "holder": null, "held_until": null, "held_by": null } },
            )
            .await?;
        Ok(())
    }
}

#[async_trait]
impl UploadStore for Mongo {
    async fn create(&self, upload: &UploadRecord) -> Result<(), StoreError> {
        let docs = self.upload_docs();
        let insert = docs.insert_one(UploadDoc::from(upload));
        timed("mongodb", "create_upload", insert.into_future()).await?;
        Ok(())
    }

    async fn get(&self, id: FileId) -> Result<Option<UploadRecord>, StoreError> {
        let docs = self.upload_docs();
        let find = docs.find_one(doc! { "_id": oid(id) });
        Ok(timed("mongodb", "find_upload", find.into_future())
            .await?
            .map(UploadRecord::from))
    }

    async fn hold(
        &self,
        id: FileId,
        holder: u64,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<Option<UploadRecord>, StoreError> {
        let filter = doc! {
            "_id": oid(id),
            "$or": [ { "held_until": null }, { "held_until": { "$lte": date(now) } } ],
        };
        let update = doc! { "$set": {
            "holder": holder as i64,
            "held_until": date(until),
            "held_by": &self.node_id,
        } };
        let docs = self.upload_docs();
        let take = docs
            .find_one_and_update(filter, update)
            .return_document(ReturnDocument::After);
        Ok(timed("mongodb", "hold_upload", take.into_future())
            .await?
            .map(UploadRecord::from))
    }

    async fn advance(
        &self,
        id: FileId,
        holder: u64,
        offset: u64,
        until: Option<Timestamp>,
    ) -> Result<bool, StoreError> {
        let set = match until {
            Some(until) => doc! { "stored": signed(offset), "held_until": date(until) },
            None => doc! { "stored": signed(offset), "held_until": null, "holder": null },
        };
        let update = self.uploads.update_one(
            doc! { "_id": oid(id), "holder": holder as i64 },
            doc! { "$set": set },
        );
        Ok(timed("mongodb", "advance_upload", update.into_future())
            .await?
            .matched_count
            == 1)
    }

    async fn mark_queued(&self, id: FileId) -> Result<(), StoreError> {
        self.uploads
            .update_one(doc! { "_id": oid(id) }, doc! { "$set": { "queued": true } })
            .await?;
        Ok(())
    }

    async fn remove(&self, id: FileId) -> Result<(), StoreError> {
        self.uploads.delete_one(doc! { "_id": oid(id) }).await?;
        Ok(())
    }

    async fn expired(&self, now: Timestamp, limit: u32) -> Result<Vec<UploadRecord>, StoreError> {
        let docs: Vec<UploadDoc> = self
            .upload_docs()
            .find(doc! { "expires_at": { "$lte": date(now) } })
            .sort(doc! { "expires_at": 1 })
            .limit(i64::from(limit))
            .await?
            .try_collect()
            .await?;
        Ok(docs.into_iter().map(UploadRecord::from).collect())
    }

    async fn owned(&self, owner: &Owner, limit: u32) -> Result<Vec<UploadRecord>, StoreError> {
        let docs: Vec<UploadDoc> = self
            .upload_docs()
            .find(doc! { "owner": owner.stored() })
            .limit(i64::from(limit))
            .await?
            .try_collect()
            .await?;
        Ok(docs.into_iter().map(UploadRecord::from).collect())
    }

    async fn reserved(&self, owner: &Owner) -> Result<u64, StoreError> {
        let mut cursor = self
            .upload_docs()
            .find(doc! { "owner": owner.stored(), "queued": false })
            .await?;
        let mut total = 0u64;
        while let Some(upload) = cursor.try_next().await? {
            total = total.saturating_add(u64::try_from(upload.length).unwrap_or(0));
        }
        Ok(total)
    }
}
