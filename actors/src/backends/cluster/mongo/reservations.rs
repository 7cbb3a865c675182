//! The `reservations` collection behind [`ReservationStore`], beside
//! `jobs`: one document per owner, `{_id: owner, version, held: [{id,
//! bytes, jobs, until}]}`. Adding is a single-document update conditional
//! on the version read (an upsert for an owner's first), so two nodes
//! reserving for one user at once cannot both succeed on the same reading.

use async_trait::async_trait;
use mongodb::bson::{DateTime, Document, doc, oid::ObjectId};
use serde::{Deserialize, Serialize};

use super::job_doc::{date, time};
use super::webhooks::duplicate_key;
use super::{Mongo, oid};
use crate::backends::{ReservationStore, StoreError};
use crate::domain::{Held, Owner, Reservation, ReservationId, Timestamp};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct HeldDoc {
    id: ObjectId,
    bytes: i64,
    jobs: i64,
    until: DateTime,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct OwnerDoc {
    #[serde(rename = "_id")]
    owner: Owner,
    #[serde(default)]
    version: i64,
    #[serde(default)]
    held: Vec<HeldDoc>,
}

impl Mongo {
    async fn owner_doc(&self, owner: &Owner) -> Result<Option<OwnerDoc>, StoreError> {
        Ok(self
            .reservations
            .find_one(doc! { "_id": owner.stored() })
            .await?)
    }
}

fn live(held: &[HeldDoc], now: Timestamp) -> impl Iterator<Item = &HeldDoc> {
    held.iter().filter(move |h| time(h.until) > now)
}

#[async_trait]
impl ReservationStore for Mongo {
    async fn held(&self, owner: &Owner, now: Timestamp) -> Result<Held, StoreError> {
        let Some(doc) = self.owner_doc(owner).await? else {
            return Ok(Held::default());
        };
        let (bytes, jobs) = live(&doc.held, now).fold((0u64, 0u32), |(b, j), h| {
            (
                b.saturating_add(u64::try_from(h.bytes).unwrap_or(0)),
                j.saturating_add(u32::try_from(h.jobs).unwrap_or(0)),
            )
        });
        Ok(Held {
            version: u64::try_from(doc.version).unwrap_or(0),
            bytes,
            jobs,
        })
    }

    async fn add_if_unchanged(
        &self,
        reservation: &Reservation,
        version: u64,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let current = self.owner_doc(&reservation.owner).await?;
        let mut held: Vec<HeldDoc> = current
            .as_ref()
            .map(|d| live(&d.held, now).cloned().collect())
            .unwrap_or_default();
        held.push(HeldDoc {
            id: oid(reservation.id),
            bytes: i64::try_from(reservation.bytes).unwrap_or(i64::MAX),
            jobs: i64::from(reservation.jobs),
            until: date(reservation.until),
        });
        let held = mongodb::bson::to_bson(&held).map_err(|e| StoreError::backend("MongoDB", e))?;
        let version = i64::try_from(version).unwrap_or(i64::MAX);
        let filter: Document = doc! { "_id": reservation.owner.stored(), "version": version };
        let update = doc! { "$set": { "held": held }, "$inc": { "version": 1 } };
        let written = self
            .reservations
            .update_one(filter, update)
            .upsert(version == 0)
            .await;
        match written {
            Ok(result) => Ok(result.matched_count == 1 || result.upserted_id.is_some()),
            // Someone made the owner's document first: read again.
            Err(e) if duplicate_key(&e) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    async fn release(&self, owner: &Owner, id: ReservationId) -> Result<(), StoreError> {
        self.reservations
            .update_one(
                doc! { "_id": owner.stored() },
                doc! { "$pull": { "held": { "id": oid(id) } }, "$inc": { "version": 1 } },
            )
            .await?;
        Ok(())
    }

    async fn forget(&self, owner: &Owner) -> Result<(), StoreError> {
        self.reservations
            .delete_one(doc! { "_id": owner.stored() })
            .await?;
        Ok(())
    }
}
