//! The durable job queue in SQLite (`messages` table), with the semantics
//! the cluster gets from RabbitMQ: a publish returns once committed; a
//! consumer holds at most its prefetch of unsettled deliveries (rows it
//! marked `held_by` itself); ack deletes the row, requeue clears the mark
//! so any consumer takes it next, in order. When a consumer and every
//! delivery it handed out are gone, what it still held is released, as a
//! closed channel's unacked messages are; at start-up every mark a dead
//! process left is cleared, marked redelivered by its delivery count.
//!
//! In-process consumers are woken by a notification on publish and
//! requeue, so nothing polls in a tight loop; a periodic re-check (every
//! second) covers what a notification might miss.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};
use tokio::sync::Notify;
use tracing::warn;

use super::db::Db;
use crate::backends::{Consumer, Delivery, JobQueue, Queue, QueueError, Settle, chain};
use crate::domain::Timestamp;
use crate::settings::QueueSettings;

/// How often an idle consumer looks again without being woken.
const RECHECK: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct SqliteQueue {
    db: Db,
    /// Queue names, the cluster's (so metrics read the same).
    names: Arc<HashMap<Queue, String>>,
    wake: Arc<HashMap<Queue, Notify>>,
    node_id: String,
}

impl SqliteQueue {
    /// The queue of this data directory; releases what a previous process
    /// held (there is one node per data directory, so none is alive).
    pub fn open(db: Db, settings: &QueueSettings, node_id: &str) -> Result<Self, QueueError> {
        db.call_blocking(|conn| {
            conn.execute(
                "UPDATE messages SET held_by = NULL WHERE held_by IS NOT NULL",
                [],
            )
        })?;
        let names = HashMap::from([
            (Queue::Jobs, settings.video_queue.clone()),
            (Queue::Finished, settings.mp3_queue.clone()),
            (Queue::DeadLetters, settings.dead_letter_queue.clone()),
        ]);
        let wake = Queue::ALL.map(|q| (q, Notify::new())).into_iter().collect();
        Ok(Self {
            db,
            names: Arc::new(names),
            wake: Arc::new(wake),
            node_id: node_id.to_owned(),
        })
    }

    fn name(&self, queue: Queue) -> String {
        self.names.get(&queue).cloned().unwrap_or_default()
    }

    fn wake(&self, queue: Queue) {
        if let Some(notify) = self.wake.get(&queue) {
            notify.notify_waiters();
        }
    }

    async fn insert(
        &self,
        queue: Queue,
        payload: &[u8],
        reason: Option<&str>,
    ) -> Result<(), QueueError> {
        let (name, payload) = (self.name(queue), payload.to_vec());
        let (reason, node) = (reason.map(str::to_owned), self.node_id.clone());
        self.db
            .call("publish", move |conn| {
                conn.execute(
                    "INSERT INTO messages (queue, payload, reason, node, created_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![name, payload, reason, node, Timestamp::now().millis()],
                )?;
                Ok::<_, QueueError>(())
            })
            .await?;
        self.wake(queue);
        Ok(())
    }
}

#[async_trait]
impl JobQueue for SqliteQueue {
    async fn publish(&self, queue: Queue, payload: &[u8]) -> Result<(), QueueError> {
        self.insert(queue, payload, None).await
    }

    async fn dead_letter(&self, payload: &[u8], reason: &str) -> Result<(), QueueError> {
        self.insert(Queue::DeadLetters, payload, Some(reason)).await
    }

    async fn consume(
        &self,
        queue: Queue,
        prefetch: u16,
        tag: &str,
    ) -> Result<Box<dyn Consumer>, QueueError> {
        let holder = Arc::new(Holder {
            token: format!("{}:{tag}:{}", self.node_id, rand::random::<u64>()),
            db: self.db.clone(),
            held: AtomicUsize::new(0),
        });
        Ok(Box::new(SqliteConsumer {
            queue: self.clone(),
            which: queue,
            prefetch: usize::from(prefetch.max(1)),
            holder,
            cancelled: false,
        }))
    }

    async fn depths(&self) -> Result<Vec<(String, u64)>, QueueError> {
        let names: Vec<String> = Queue::ALL.iter().map(|q| self.name(*q)).collect();
        self.db
            .call("depths", move |conn| {
                let mut depths = Vec::new();
                for name in names {
                    let n: i64 = conn.query_row(
                        "SELECT COUNT(*) FROM messages WHERE queue = ?1 AND held_by IS NULL",
                        [&name],
                        |row| row.get(0),
                    )?;
                    depths.push((name, u64::try_from(n).unwrap_or(0)));
                }
                Ok(depths)
            })
            .await
    }
}

/// What one consumer holds: shared by it and every delivery it handed out.
/// When the last of them goes, what is still held is released.
struct Holder {
    token: String,
    db: Db,
    /// Deliveries handed out and not settled.
    held: AtomicUsize,
}

impl Drop for Holder {
    fn drop(&mut self) {
        if self.held.load(Ordering::SeqCst) == 0 {
            return;
        }
        let token = self.token.clone();
        let released = self.db.call_blocking(|conn| {
            conn.execute(
                "UPDATE messages SET held_by = NULL WHERE held_by = ?1",
                [token],
            )
        });
        if let Err(e) = released {
            warn!(
                "could not release a consumer's deliveries (they return at restart): {}",
                chain(&e)
            );
        }
    }
}

struct SqliteConsumer {
    queue: SqliteQueue,
    which: Queue,
    prefetch: usize,
    holder: Arc<Holder>,
    cancelled: bool,
}

impl SqliteConsumer {
    /// Marks the oldest free message as ours; `None` when there is none.
    async fn take(&self) -> Result<Option<Delivery>, QueueError> {
        let (name, token) = (self.queue.name(self.which), self.holder.token.clone());
        let taken = self
            .queue
            .db
            .call("deliver", move |conn| {
                Ok::<_, QueueError>(
                    conn.query_row(
                        "UPDATE messages SET held_by = ?2, deliveries = deliveries + 1 \
                         WHERE seq = (SELECT seq FROM messages \
                                      WHERE queue = ?1 AND held_by IS NULL ORDER BY seq LIMIT 1) \
                         RETURNING seq, payload, deliveries",
                        params![name, token],
                        |row| {
                            Ok((
                                row.get::<_, i64>(0)?,
                                row.get::<_, Vec<u8>>(1)?,
                                row.get::<_, i64>(2)?,
                            ))
                        },
                    )
                    .optional()?,
                )
            })
            .await?;
        Ok(taken.map(|(seq, payload, deliveries)| {
            self.holder.held.fetch_add(1, Ordering::SeqCst);
            Delivery {
                payload,
                redelivered: deliveries > 1,
                settle: Arc::new(SqliteSettle {
                    seq,
                    queue: self.queue.clone(),
                    which: self.which,
                    holder: self.holder.clone(),
                    settled: AtomicBool::new(false),
                }),
            }
        }))
    }
}

#[async_trait]
impl Consumer for SqliteConsumer {
    async fn next(&mut self) -> Option<Result<Delivery, QueueError>> {
        let wake = self.queue.wake.clone();
        loop {
            if self.cancelled {
                return None;
            }
            // Register for a wake-up before looking, so none falls between.
            let notified = wake.get(&self.which).map(|n| n.notified());
            if self.holder.held.load(Ordering::SeqCst) < self.prefetch {
                match self.take().await {
                    Ok(Some(delivery)) => return Some(Ok(delivery)),
                    Ok(None) => {}
                    Err(e) => return Some(Err(e)),
                }
            }
            match notified {
                Some(notified) => {
                    let _ = tokio::time::timeout(RECHECK, notified).await;
                }
                None => tokio::time::sleep(RECHECK).await,
            }
        }
    }

    async fn cancel(&mut self) {
        self.cancelled = true;
    }
}

struct SqliteSettle {
    seq: i64,
    queue: SqliteQueue,
    which: Queue,
    holder: Arc<Holder>,
    settled: AtomicBool,
}

impl SqliteSettle {
    async fn settle(&self, sql: &'static str) -> Result<(), QueueError> {
        if self.settled.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let (seq, token) = (self.seq, self.holder.token.clone());
        let done = self
            .queue
            .db
            .call("settle", move |conn| {
                conn.execute(sql, params![seq, token])?;
                Ok::<_, QueueError>(())
            })
            .await;
        self.holder.held.fetch_sub(1, Ordering::SeqCst);
        // A freed place (or a message back in the queue) may let a
        // consumer take the next one.
        self.queue.wake(self.which);
        done
    }
}

#[async_trait]
impl Settle for SqliteSettle {
    async fn ack(&self) -> Result<(), QueueError> {
        self.settle("DELETE FROM messages WHERE seq = ?1 AND held_by = ?2")
            .await
    }

    async fn requeue(&self) -> Result<(), QueueError> {
        self.settle("UPDATE messages SET held_by = NULL WHERE seq = ?1 AND held_by = ?2")
            .await
    }

    async fn reject(&self) -> Result<(), QueueError> {
        self.ack().await
    }
}
