//! The `reservations` table behind [`ReservationStore`], with a version per
//! owner in `reservation_versions`. SQLite has one connection, so each call
//! (a transaction) is atomic on its own.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Transaction, params};

use super::db::Db;
use super::jobs::{count, signed};
use crate::backends::{ReservationStore, StoreError};
use crate::domain::{Held, Owner, Reservation, ReservationId, Timestamp};

fn version(tx: &Transaction<'_>, owner: &str) -> rusqlite::Result<u64> {
    let version: Option<i64> = tx
        .query_row(
            "SELECT version FROM reservation_versions WHERE owner = ?1",
            [owner],
            |row| row.get(0),
        )
        .optional()?;
    Ok(version.map_or(0, count))
}

fn bump(tx: &Transaction<'_>, owner: &str) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO reservation_versions (owner, version) VALUES (?1, 1) \
         ON CONFLICT (owner) DO UPDATE SET version = version + 1",
        [owner],
    )?;
    Ok(())
}

#[async_trait]
impl ReservationStore for Db {
    async fn held(&self, owner: &Owner, now: Timestamp) -> Result<Held, StoreError> {
        let owner = owner.stored();
        self.call("reservations_held", move |conn| {
            let tx = conn.transaction()?;
            let version = version(&tx, &owner)?;
            let (bytes, jobs): (i64, i64) = tx.query_row(
                "SELECT COALESCE(SUM(bytes), 0), COALESCE(SUM(jobs), 0) FROM reservations \
                 WHERE owner = ?1 AND until > ?2",
                params![owner, now.millis()],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )?;
            Ok(Held {
                version,
                bytes: count(bytes),
                jobs: u32::try_from(jobs).unwrap_or(u32::MAX),
            })
        })
        .await
    }

    async fn add_if_unchanged(
        &self,
        reservation: &Reservation,
        expected: u64,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let r = reservation.clone();
        let owner = r.owner.stored();
        self.call("reserve", move |conn| {
            let tx = conn.transaction()?;
            if version(&tx, &owner)? != expected {
                return Ok(false);
            }
            tx.execute(
                "DELETE FROM reservations WHERE owner = ?1 AND until <= ?2",
                params![owner, now.millis()],
            )?;
            tx.execute(
                "INSERT INTO reservations (id, owner, bytes, jobs, until) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    r.id.to_hex(),
                    owner,
                    signed(r.bytes),
                    r.jobs,
                    r.until.millis()
                ],
            )?;
            bump(&tx, &owner)?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn release(&self, owner: &Owner, id: ReservationId) -> Result<(), StoreError> {
        let owner = owner.stored();
        self.call("release_reservation", move |conn| {
            let tx = conn.transaction()?;
            tx.execute(
                "DELETE FROM reservations WHERE id = ?1 AND owner = ?2",
                params![id.to_hex(), owner],
            )?;
            bump(&tx, &owner)?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn forget(&self, owner: &Owner) -> Result<(), StoreError> {
        let owner = owner.stored();
        self.call("forget_reservations", move |conn| {
            let tx = conn.transaction()?;
            tx.execute("DELETE FROM reservations WHERE owner = ?1", [&owner])?;
            tx.execute(
                "DELETE FROM reservation_versions WHERE owner = ?1",
                [&owner],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }
}
