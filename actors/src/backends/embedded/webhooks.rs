//! The webhook tables behind [`WebhookStore`]: `webhook_endpoints`,
//! `webhook_deliveries` (events and attempt histories as JSON text) and
//! `webhook_targets` (one row per locked target: who, until when).

use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Row, params};

use super::db::Db;
use super::jobs::{bad, id_at, owner_at};
use crate::backends::{StoreError, WebhookStore};
use crate::domain::{
    Delivery, DeliveryId, DeliveryState, Endpoint, EndpointId, Id, JobEventType, Owner, Timestamp,
};

const ENDPOINT_COLUMNS: &str = "id, owner, url, secret, events, created_at";
const DELIVERY_COLUMNS: &str = "id, target, endpoint, owner, job_id, url, secret, event, \
                                payload, state, attempts, next_at, created_at, history";

fn json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::backend("SQLite", e))
}

fn endpoint(row: &Row<'_>) -> rusqlite::Result<Endpoint> {
    let events: String = row.get(4)?;
    Ok(Endpoint {
        id: id_at(row, 0, "id")?,
        owner: owner_at(row, 1, "owner")?,
        url: row.get(2)?,
        secret: row.get(3)?,
        events: serde_json::from_str(&events).map_err(|_| bad("events", events.clone(), 4))?,
        created_at: Timestamp::from_millis(row.get(5)?),
    })
}

fn delivery(row: &Row<'_>) -> rusqlite::Result<Delivery> {
    let endpoint: Option<String> = row.get(2)?;
    let event: String = row.get(7)?;
    let state: String = row.get(9)?;
    let history: String = row.get(13)?;
    Ok(Delivery {
        id: id_at(row, 0, "id")?,
        target: row.get(1)?,
        endpoint: match endpoint {
            Some(text) => Some(Id::parse(&text).map_err(|_| bad("endpoint", text, 2))?),
            None => None,
        },
        owner: owner_at(row, 3, "owner")?,
        job_id: id_at(row, 4, "job_id")?,
        url: row.get(5)?,
        secret: row.get(6)?,
        event: JobEventType::parse(&event).ok_or_else(|| bad("event", event.clone(), 7))?,
        payload: row.get(8)?,
        state: DeliveryState::from_stored(&state).ok_or_else(|| bad("state", state.clone(), 9))?,
        attempts: row.get(10)?,
        next_at: row.get::<_, Option<i64>>(11)?.map(Timestamp::from_millis),
        created_at: Timestamp::from_millis(row.get(12)?),
        history: serde_json::from_str(&history).map_err(|_| bad("history", history.clone(), 13))?,
    })
}

#[async_trait]
impl WebhookStore for Db {
    async fn add_endpoint(&self, e: &Endpoint) -> Result<(), StoreError> {
        let events = json(&e.events)?;
        let e = e.clone();
        self.call("add_webhook", move |conn| {
            conn.execute(
                &format!(
                    "INSERT INTO webhook_endpoints ({ENDPOINT_COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
                ),
                params![
                    e.id.to_hex(),
                    e.owner.stored(),
                    e.url,
                    e.secret,
                    events,
                    e.created_at.millis()
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn endpoints(&self, owner: &Owner) -> Result<Vec<Endpoint>, StoreError> {
        let owner = owner.stored();
        self.call("list_webhooks", move |conn| {
            let mut statement = conn.prepare(&format!(
                "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE owner = ?1 ORDER BY id"
            ))?;
            let rows = statement.query_map([owner], endpoint)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn endpoint(&self, id: EndpointId) -> Result<Option<Endpoint>, StoreError> {
        self.call("find_webhook", move |conn| {
            Ok(conn
                .query_row(
                    &format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = ?1"),
                    [id.to_hex()],
                    endpoint,
                )
                .optional()?)
        })
        .await
    }

    async fn remove_endpoint(&self, id: EndpointId) -> Result<bool, StoreError> {
        self.call("remove_webhook", move |conn| {
            let tx = conn.transaction()?;
            tx.execute(
                "DELETE FROM webhook_deliveries WHERE endpoint = ?1",
                [id.to_hex()],
            )?;
            let n = tx.execute("DELETE FROM webhook_endpoints WHERE id = ?1", [id.to_hex()])?;
            tx.commit()?;
            Ok(n == 1)
        })
        .await
    }

    async fn remove_owned(&self, owner: &Owner) -> Result<u64, StoreError> {
        let owner = owner.stored();
        self.call("remove_owned_webhooks", move |conn| {
            let tx = conn.transaction()?;
            tx.execute("DELETE FROM webhook_deliveries WHERE owner = ?1", [&owner])?;
            let n = tx.execute("DELETE FROM webhook_endpoints WHERE owner = ?1", [&owner])?;
            tx.commit()?;
            Ok(n as u64)
        })
        .await
    }

    async fn prune_deliveries(&self, before: Timestamp) -> Result<u64, StoreError> {
        self.call("prune_webhook_deliveries", move |conn| {
            let n = conn.execute(
                "DELETE FROM webhook_deliveries \
                 WHERE state IN ('delivered', 'failed') AND created_at < ?1",
                [before.millis()],
            )?;
            Ok(n as u64)
        })
        .await
    }

    async fn enqueue(&self, d: &Delivery) -> Result<(), StoreError> {
        let history = json(&d.history)?;
        let d = d.clone();
        self.call("enqueue_webhook", move |conn| {
            conn.execute(
                &format!(
                    "INSERT OR IGNORE INTO webhook_deliveries ({DELIVERY_COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
                ),
                params![
                    d.id.to_hex(),
                    d.target,
                    d.endpoint.map(|e| e.to_hex()),
                    d.owner.stored(),
                    d.job_id.to_hex(),
                    d.url,
                    d.secret,
                    d.event.as_str(),
                    d.payload,
                    d.state.as_str(),
                    d.attempts,
                    d.next_at.map(Timestamp::millis),
                    d.created_at.millis(),
                    history,
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn due_targets(&self, now: Timestamp, limit: u32) -> Result<Vec<String>, StoreError> {
        self.call("due_webhooks", move |conn| {
            let mut statement = conn.prepare(
                "SELECT target FROM webhook_deliveries \
                 WHERE state = 'pending' AND next_at <= ?1 \
                 GROUP BY target ORDER BY MIN(next_at) LIMIT ?2",
            )?;
            let rows = statement.query_map(params![now.millis(), limit], |row| row.get(0))?;
            Ok(rows.collect::<Result<Vec<String>, _>>()?)
        })
        .await
    }

    async fn lock_target(
        &self,
        target: &str,
        node: &str,
        now: Timestamp,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let (target, node) = (target.to_owned(), node.to_owned());
        self.call("lock_webhook_target", move |conn| {
            let n = conn.execute(
                "INSERT INTO webhook_targets (target, node, until) VALUES (?1, ?2, ?4) \
                 ON CONFLICT (target) DO UPDATE SET node = ?2, until = ?4 \
                 WHERE webhook_targets.until <= ?3 OR webhook_targets.node = ?2",
                params![target, node, now.millis(), now.plus(lease).millis()],
            )?;
            Ok(n == 1)
        })
        .await
    }

    async fn unlock_target(&self, target: &str, node: &str) -> Result<(), StoreError> {
        let (target, node) = (target.to_owned(), node.to_owned());
        self.call("unlock_webhook_target", move |conn| {
            conn.execute(
                "DELETE FROM webhook_targets WHERE target = ?1 AND node = ?2",
                params![target, node],
            )?;
            Ok(())
        })
        .await
    }

    async fn next_due(&self, target: &str, now: Timestamp) -> Result<Option<Delivery>, StoreError> {
        let target = target.to_owned();
        self.call("next_webhook", move |conn| {
            Ok(conn
                .query_row(
                    &format!(
                        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries \
                         WHERE target = ?1 AND state = 'pending' AND next_at <= ?2 \
                         ORDER BY created_at, id LIMIT 1"
                    ),
                    params![target, now.millis()],
                    delivery,
                )
                .optional()?)
        })
        .await
    }

    async fn update(&self, d: &Delivery) -> Result<bool, StoreError> {
        let history = json(&d.history)?;
        let d = d.clone();
        self.call("update_webhook", move |conn| {
            let n = conn.execute(
                "UPDATE webhook_deliveries SET state = ?2, attempts = ?3, next_at = ?4, \
                 history = ?5 WHERE id = ?1",
                params![
                    d.id.to_hex(),
                    d.state.as_str(),
                    d.attempts,
                    d.next_at.map(Timestamp::millis),
                    history
                ],
            )?;
            Ok(n == 1)
        })
        .await
    }

    async fn delivery(&self, id: DeliveryId) -> Result<Option<Delivery>, StoreError> {
        self.call("find_delivery", move |conn| {
            Ok(conn
                .query_row(
                    &format!("SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = ?1"),
                    [id.to_hex()],
                    delivery,
                )
                .optional()?)
        })
        .await
    }

    async fn deliveries(&self, target: &str, limit: u32) -> Result<Vec<Delivery>, StoreError> {
        let target = target.to_owned();
        self.call("list_deliveries", move |conn| {
            let mut statement = conn.prepare(&format!(
                "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE target = ?1 \
                 ORDER BY created_at DESC, id DESC LIMIT ?2"
            ))?;
            let rows = statement.query_map(params![target, limit], delivery)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }
}
