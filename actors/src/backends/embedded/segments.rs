//! The `segments` table behind [`SegmentStore`]: one row per segment of a
//! split job, keyed by (job, index). Each transition is one UPDATE guarded
//! by the state (and attempt) it expects; a new plan replaces a job's rows
//! in one transaction.

use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Row, params};

use super::db::Db;
use super::jobs::{bad, id_at};
use crate::backends::{SegmentStore, StoreError};
use crate::domain::{JobId, SegmentRecord, SegmentState, Timestamp};

const COLUMNS: &str = "job_id, idx, work, state, attempts, node, lease_until, progress, error";

fn record(row: &Row<'_>) -> rusqlite::Result<SegmentRecord> {
    let state: String = row.get(3)?;
    Ok(SegmentRecord {
        job_id: id_at(row, 0, "job_id")?,
        index: row.get(1)?,
        work: row.get(2)?,
        state: SegmentState::from_stored(&state).ok_or_else(|| bad("state", state.clone(), 3))?,
        attempts: row.get(4)?,
        node: row.get(5)?,
        lease_until: row.get::<_, Option<i64>>(6)?.map(Timestamp::from_millis),
        progress: row.get(7)?,
        error: row.get(8)?,
    })
}

#[async_trait]
impl SegmentStore for Db {
    async fn replace(&self, job: JobId, segments: &[SegmentRecord]) -> Result<(), StoreError> {
        let segments = segments.to_vec();
        self.call("replace_segments", move |conn| {
            let tx = conn.transaction()?;
            tx.execute("DELETE FROM segments WHERE job_id = ?1", [job.to_hex()])?;
            for s in segments {
                tx.execute(
                    &format!("INSERT INTO segments ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"),
                    params![
                        s.job_id.to_hex(),
                        s.index,
                        s.work,
                        s.state.as_str(),
                        s.attempts,
                        s.node,
                        s.lease_until.map(Timestamp::millis),
                        s.progress,
                        s.error,
                    ],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn list(&self, job: JobId) -> Result<Vec<SegmentRecord>, StoreError> {
        self.call("list_segments", move |conn| {
            let mut statement = conn.prepare(&format!(
                "SELECT {COLUMNS} FROM segments WHERE job_id = ?1 ORDER BY idx"
            ))?;
            let rows = statement.query_map([job.to_hex()], record)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn get(&self, job: JobId, index: u32) -> Result<Option<SegmentRecord>, StoreError> {
        self.call("get_segment", move |conn| {
            Ok(conn
                .query_row(
                    &format!("SELECT {COLUMNS} FROM segments WHERE job_id = ?1 AND idx = ?2"),
                    params![job.to_hex(), index],
                    record,
                )
                .optional()?)
        })
        .await
    }

    async fn take(
        &self,
        job: JobId,
        index: u32,
        node: &str,
        now: Timestamp,
        lease: Duration,
    ) -> Result<Option<SegmentRecord>, StoreError> {
        let node = node.to_owned();
        self.call("take_segment", move |conn| {
            Ok(conn
                .query_row(
                    &format!(
                        "UPDATE segments SET state = 'converting', node = ?3, lease_until = ?5, \
                         attempts = attempts + 1, progress = NULL \
                         WHERE job_id = ?1 AND idx = ?2 AND (state = 'queued' OR \
                         (state = 'converting' AND (lease_until IS NULL OR lease_until <= ?4))) \
                         RETURNING {COLUMNS}"
                    ),
                    params![
                        job.to_hex(),
                        index,
                        node,
                        now.millis(),
                        now.plus(lease).millis()
                    ],
                    record,
                )
                .optional()?)
        })
        .await
    }

    async fn renew(
        &self,
        job: JobId,
        index: u32,
        attempt: u32,
        lease: Duration,
        progress: Option<f64>,
    ) -> Result<bool, StoreError> {
        self.call("renew_segment", move |conn| {
            let until = Timestamp::now().plus(lease).millis();
            let n = conn.execute(
                "UPDATE segments SET lease_until = ?4, progress = COALESCE(?5, progress) \
                 WHERE job_id = ?1 AND idx = ?2 AND state = 'converting' AND attempts = ?3",
                params![job.to_hex(), index, attempt, until, progress],
            )?;
            Ok(n == 1)
        })
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
        let error = error.map(str::to_owned);
        let progress = (state == SegmentState::Done).then_some(100.0);
        self.call("finish_segment", move |conn| {
            let n = conn.execute(
                "UPDATE segments SET state = ?4, error = ?5, progress = ?6, lease_until = NULL \
                 WHERE job_id = ?1 AND idx = ?2 AND state = 'converting' AND attempts = ?3",
                params![
                    job.to_hex(),
                    index,
                    attempt,
                    state.as_str(),
                    error,
                    progress
                ],
            )?;
            Ok(n == 1)
        })
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
        let (error, refund) = (error.to_owned(), u32::from(refund));
        self.call("requeue_segment", move |conn| {
            let n = conn.execute(
                "UPDATE segments SET state = 'queued', error = ?4, lease_until = NULL, \
                 attempts = attempts - ?5 \
                 WHERE job_id = ?1 AND idx = ?2 AND state = 'converting' AND attempts = ?3 \
                 AND attempts >= ?5",
                params![job.to_hex(), index, attempt, error, refund],
            )?;
            Ok(n == 1)
        })
        .await
    }

    async fn release_crashed(
        &self,
        job: JobId,
        index: u32,
        node: &str,
        error: &str,
    ) -> Result<(), StoreError> {
        let (node, error) = (node.to_owned(), error.to_owned());
        self.call("release_crashed_segment", move |conn| {
            conn.execute(
                "UPDATE segments SET state = 'queued', error = ?4, lease_until = NULL \
                 WHERE job_id = ?1 AND idx = ?2 AND state = 'converting' AND node = ?3",
                params![job.to_hex(), index, node, error],
            )?;
            Ok(())
        })
        .await
    }

    async fn remove(&self, job: JobId) -> Result<(), StoreError> {
        self.call("remove_segments", move |conn| {
            conn.execute("DELETE FROM segments WHERE job_id = ?1", [job.to_hex()])?;
            Ok(())
        })
        .await
    }
}
