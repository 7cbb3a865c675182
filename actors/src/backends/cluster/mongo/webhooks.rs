//! The webhook collections behind [`WebhookStore`], beside `jobs`:
//! `webhook_endpoints`, `webhook_deliveries` (the attempt history inside
//! each delivery) and `webhook_targets` (one document per locked target,
//! `_id` the target: a second node's insert fails on the key).

use std::time::Duration;

use async_trait::async_trait;
use futures::TryStreamExt;
use mongodb::bson::oid::ObjectId;
use mongodb::bson::{DateTime, doc};
use mongodb::error::{ErrorKind, WriteFailure};
use serde::{Deserialize, Serialize};

use super::job_doc::{date, time};
use super::{Mongo, from_oid, oid};
use crate::backends::{StoreError, WebhookStore};
use crate::domain::{
    Attempt, Delivery, DeliveryId, DeliveryState, Endpoint, EndpointId, JobEventType, Owner,
    Timestamp,
};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EndpointDoc {
    #[serde(rename = "_id")]
    id: ObjectId,
    owner: Owner,
    url: String,
    secret: String,
    events: Vec<JobEventType>,
    created_at: DateTime,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeliveryDoc {
    #[serde(rename = "_id")]
    id: ObjectId,
    target: String,
    endpoint: Option<ObjectId>,
    owner: Owner,
    job_id: ObjectId,
    url: String,
    secret: String,
    event: JobEventType,
    payload: String,
    state: DeliveryState,
    attempts: u32,
    next_at: Option<DateTime>,
    created_at: DateTime,
    history: Vec<Attempt>,
}

impl From<&Endpoint> for EndpointDoc {
    fn from(e: &Endpoint) -> Self {
        Self {
            id: oid(e.id),
            owner: e.owner.clone(),
            url: e.url.clone(),
            secret: e.secret.clone(),
            events: e.events.clone(),
            created_at: date(e.created_at),
        }
    }
}

impl From<EndpointDoc> for Endpoint {
    fn from(d: EndpointDoc) -> Self {
        Self {
            id: from_oid(d.id),
            owner: d.owner,
            url: d.url,
            secret: d.secret,
            events: d.events,
            created_at: time(d.created_at),
        }
    }
}

impl From<&Delivery> for DeliveryDoc {
    fn from(d: &Delivery) -> Self {
        Self {
            id: oid(d.id),
            target: d.target.clone(),
            endpoint: d.endpoint.map(oid),
            owner: d.owner.clone(),
            job_id: oid(d.job_id),
            url: d.url.clone(),
            secret: d.secret.clone(),
            event: d.event,
            payload: d.payload.clone(),
            state: d.state,
            attempts: d.attempts,
            next_at: d.next_at.map(date),
            created_at: date(d.created_at),
            history: d.history.clone(),
        }
    }
}

impl From<DeliveryDoc> for Delivery {
    fn from(d: DeliveryDoc) -> Self {
        Self {
            id: from_oid(d.id),
            target: d.target,
            endpoint: d.endpoint.map(from_oid),
            owner: d.owner,
            job_id: from_oid(d.job_id),
            url: d.url,
            secret: d.secret,
            event: d.event,
            payload: d.payload,
            state: d.state,
            attempts: d.attempts,
            next_at: d.next_at.map(time),
            created_at: time(d.created_at),
            history: d.history,
        }
    }
}

pub(super) fn duplicate_key(e: &mongodb::error::Error) -> bool {
    matches!(&*e.kind, ErrorKind::Write(WriteFailure::WriteError(w)) if w.code == 11000)
}

fn history(d: &Delivery) -> Result<mongodb::bson::Bson, StoreError> {
    mongodb::bson::to_bson(&d.history).map_err(|e| StoreError::backend("MongoDB", e))
}

#[async_trait]
impl WebhookStore for Mongo {
    async fn add_endpoint(&self, endpoint: &Endpoint) -> Result<(), StoreError> {
        self.webhook_endpoints
            .insert_one(EndpointDoc::from(endpoint))
            .await?;
        Ok(())
    }

    async fn endpoints(&self, owner: &Owner) -> Result<Vec<Endpoint>, StoreError> {
        let docs: Vec<EndpointDoc> = self
            .webhook_endpoints
            .find(doc! { "owner": owner.stored() })
            .sort(doc! { "_id": 1 })
            .await?
            .try_collect()
            .await?;
        Ok(docs.into_iter().map(Endpoint::from).collect())
    }

    async fn endpoint(&self, id: EndpointId) -> Result<Option<Endpoint>, StoreError> {
        Ok(self
            .webhook_endpoints
            .find_one(doc! { "_id": oid(id) })
            .await?
            .map(Endpoint::from))
    }

    async fn remove_endpoint(&self, id: EndpointId) -> Result<bool, StoreError> {
        // The endpoint first: a delivery left by a crash in between (or
        // queued by an announcement racing this) is not sent by the
        // dispatcher, which finds no endpoint for it.
        let removed = self
            .webhook_endpoints
            .delete_one(doc! { "_id": oid(id) })
            .await?
            .deleted_count;
        self.webhook_deliveries
            .delete_many(doc! { "endpoint": oid(id) })
            .await?;
        Ok(removed == 1)
    }

    async fn remove_owned(&self, owner: &Owner) -> Result<u64, StoreError> {
        // Endpoints first, as in `remove_endpoint`.
        let removed = self
            .webhook_endpoints
            .delete_many(doc! { "owner": owner.stored() })
            .await?
            .deleted_count;
        self.webhook_deliveries
            .delete_many(doc! { "owner": owner.stored() })
            .await?;
        Ok(removed)
    }

    async fn prune_deliveries(&self, before: Timestamp) -> Result<u64, StoreError> {
        let over = [
            DeliveryState::Delivered.as_str(),
            DeliveryState::Failed.as_str(),
        ];
        Ok(self
            .webhook_deliveries
            .delete_many(doc! {
                "state": { "$in": over.to_vec() },
                "created_at": { "$lt": date(before) },
            })
            .await?
            .deleted_count)
    }

    async fn enqueue(&self, delivery: &Delivery) -> Result<(), StoreError> {
        match self
            .webhook_deliveries
            .insert_one(DeliveryDoc::from(delivery))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if duplicate_key(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn due_targets(&self, now: Timestamp, limit: u32) -> Result<Vec<String>, StoreError> {
        let pipeline = [
            doc! { "$match": { "state": "pending", "next_at": { "$lte": date(now) } } },
            doc! { "$group": { "_id": "$target", "due": { "$min": "$next_at" } } },
            doc! { "$sort": { "due": 1 } },
            doc! { "$limit": i64::from(limit) },
        ];
        let groups: Vec<mongodb::bson::Document> = self
            .webhook_deliveries
            .aggregate(pipeline)
            .await?
            .try_collect()
            .await?;
        Ok(groups
            .iter()
            .filter_map(|g| g.get_str("_id").ok().map(str::to_owned))
            .collect())
    }

    async fn lock_target(
        &self,
        target: &str,
        node: &str,
        now: Timestamp,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let until = date(now.plus(lease));
        let taken = self
            .webhook_targets
            .update_one(
                doc! { "_id": target, "$or": [
                    { "until": { "$lte": date(now) } },
                    { "node": node },
                ] },
                doc! { "$set": { "node": node, "until": until } },
            )
            .await?;
        if taken.matched_count == 1 {
            return Ok(true);
        }
        let lock = doc! { "_id": target, "node": node, "until": until };
        match self.webhook_targets.insert_one(lock).await {
            Ok(_) => Ok(true),
            Err(e) if duplicate_key(&e) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    async fn unlock_target(&self, target: &str, node: &str) -> Result<(), StoreError> {
        self.webhook_targets
            .delete_one(doc! { "_id": target, "node": node })
            .await?;
        Ok(())
    }

    async fn next_due(&self, target: &str, now: Timestamp) -> Result<Option<Delivery>, StoreError> {
        Ok(self
            .webhook_deliveries
            .find_one(doc! {
                "target": target, "state": "pending", "next_at": { "$lte": date(now) },
            })
            .sort(doc! { "created_at": 1, "_id": 1 })
            .await?
            .map(Delivery::from))
    }

    async fn update(&self, delivery: &Delivery) -> Result<bool, StoreError> {
        let updated = self
            .webhook_deliveries
            .update_one(
                doc! { "_id": oid(delivery.id) },
                doc! { "$set": {
                    "state": delivery.state.as_str(),
                    "attempts": delivery.attempts,
                    "next_at": delivery.next_at.map(date),
                    "history": history(delivery)?,
                } },
            )
            .await?;
        Ok(updated.matched_count == 1)
    }

    async fn delivery(&self, id: DeliveryId) -> Result<Option<Delivery>, StoreError> {
        Ok(self
            .webhook_deliveries
            .find_one(doc! { "_id": oid(id) })
            .await?
            .map(Delivery::from))
    }

    async fn deliveries(&self, target: &str, limit: u32) -> Result<Vec<Delivery>, StoreError> {
        let docs: Vec<DeliveryDoc> = self
            .webhook_deliveries
            .find(doc! { "target": target })
            .sort(doc! { "created_at": -1, "_id": -1 })
            .limit(i64::from(limit))
            .await?
            .try_collect()
            .await?;
        Ok(docs.into_iter().map(Delivery::from).collect())
    }
}
