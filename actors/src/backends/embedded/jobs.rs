//! The `jobs` table behind [`JobStore`]. Each transition is one UPDATE
//! guarded by the state (and attempt) it expects, `RETURNING` the new row;
//! the two that must answer with the row as it was before run in one
//! transaction.

use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::db::Db;
use crate::backends::{JobQuery, JobStore, StoreError};
use crate::domain::{
    AudioSummary, Callback, Id, IdKind, JobId, JobRecord, JobState, MailClaim, Owner, Segments,
    Timestamp,
};
use crate::output::ResolvedOutput;

const COLUMNS: &str = "id, owner, filename, video_fid, mp3_fid, state, error, attempts, retries, \
                       output, progress, node, notified, mailed, lease_until, created_at, updated_at, \
                       audio_bytes, audio_ms, mail_node, mail_until, callback_url, callback_secret, \
                       username, audio_loudness, audio_replaygain, segments_total, segments_done";

/// A stored value that is not what the schema promises (a hand-edited row).
#[derive(Debug, thiserror::Error)]
#[error("column {column} holds {value:?}")]
struct BadColumn {
    column: &'static str,
    value: String,
}

pub(super) fn bad(column: &'static str, value: String, index: usize) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        index,
        rusqlite::types::Type::Text,
        Box::new(BadColumn { column, value }),
    )
}

/// The owner in column `index` (see [`Owner::parse`]).
pub(super) fn owner_at(
    row: &Row<'_>,
    index: usize,
    column: &'static str,
) -> rusqlite::Result<Owner> {
    let text: String = row.get(index)?;
    Owner::parse(&text).map_err(|_| bad(column, text, index))
}

pub(super) fn id_at<K: IdKind>(
    row: &Row<'_>,
    index: usize,
    column: &'static str,
) -> rusqlite::Result<Id<K>> {
    let text: String = row.get(index)?;
    Id::parse(&text).map_err(|_| bad(column, text, index))
}

/// A row of `jobs` (selected as [`COLUMNS`]) as a record.
fn record(row: &Row<'_>) -> rusqlite::Result<JobRecord> {
    let state: String = row.get(5)?;
    let output: String = row.get(9)?;
    Ok(JobRecord {
        id: id_at(row, 0, "id")?,
        owner: owner_at(row, 1, "owner")?,
        username: row.get(23)?,
        filename: row.get(2)?,
        video_fid: id_at(row, 3, "video_fid")?,
        mp3_fid: id_at(row, 4, "mp3_fid")?,
        state: JobState::from_stored(&state).ok_or_else(|| bad("state", state.clone(), 5))?,
        error: row.get(6)?,
        attempts: row.get(7)?,
        retries: row.get(8)?,
        output: serde_json::from_str::<ResolvedOutput>(&output)
            .map_err(|_| bad("output", output.clone(), 9))?,
        progress: row.get(10)?,
        node: row.get(11)?,
        notified: row.get(12)?,
        mailed: row.get(13)?,
        lease_until: row.get::<_, Option<i64>>(14)?.map(Timestamp::from_millis),
        created_at: Timestamp::from_millis(row.get(15)?),
        updated_at: Timestamp::from_millis(row.get(16)?),
        audio: match (
            row.get::<_, Option<i64>>(17)?,
            row.get::<_, Option<i64>>(18)?,
        ) {
            (Some(bytes), Some(ms)) => Some(AudioSummary {
                bytes: count(bytes),
                duration_ms: count(ms),
                loudness: json_at(row, 24, "audio_loudness")?,
                replaygain: json_at(row, 25, "audio_replaygain")?,
            }),
            _ => None,
        },
        mail_claim: match (
            row.get::<_, Option<String>>(19)?,
            row.get::<_, Option<i64>>(20)?,
        ) {
            (Some(node), Some(until)) => Some(MailClaim {
                node,
                until: Timestamp::from_millis(until),
            }),
            _ => None,
        },
        callback: callback_at(row, 21)?,
        segments: match (
            row.get::<_, Option<u32>>(26)?,
            row.get::<_, Option<u32>>(27)?,
        ) {
            (Some(total), done) => Some(Segments {
                total,
                done: done.unwrap_or(0),
            }),
            _ => None,
        },
    })
}

/// A job's callback, from its `callback_url` column at `index` and
/// `callback_secret` after it.
pub(super) fn callback_at(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<Callback>> {
    Ok(
        match (row.get::<_, Option<String>>(index)?, row.get(index + 1)?) {
            (Some(url), Some(secret)) => Some(Callback { url, secret }),
            _ => None,
        },
    )
}

/// A figure kept as JSON text (`audio_loudness`, `audio_replaygain`).
fn json<T: serde::Serialize>(value: Option<&T>) -> rusqlite::Result<Option<String>> {
    value
        .map(|value| {
            serde_json::to_string(value)
                .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
        })
        .transpose()
}

/// The JSON text in column `index` (`name`), read back.
fn json_at<T: serde::de::DeserializeOwned>(
    row: &Row<'_>,
    index: usize,
    name: &'static str,
) -> rusqlite::Result<Option<T>> {
    match row.get::<_, Option<String>>(index)? {
        Some(text) => Ok(Some(
            serde_json::from_str(&text).map_err(|_| bad(name, text, index))?,
        )),
        None => Ok(None),
    }
}

fn now() -> i64 {
    Timestamp::now().millis()
}

/// One row by id.
fn get(conn: &Connection, id: &str) -> rusqlite::Result<Option<JobRecord>> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM jobs WHERE id = ?1"),
        [id],
        record,
    )
    .optional()
}

/// An UPDATE … RETURNING of one job: the new row, if one matched.
fn update_returning(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> rusqlite::Result<Option<JobRecord>> {
    conn.query_row(&format!("{sql} RETURNING {COLUMNS}"), params, record)
        .optional()
}

/// SQLite stores unsigned counters as signed 64-bit integers.
pub(super) fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

pub(super) fn signed(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Db {
    /// `converting → queued` for attempt `attempt`, keeping `error`;
    /// `refund` gives the attempt back too (`attempts - 1`).
    async fn back_to_queued(
        &self,
        id: JobId,
        attempt: u32,
        error: &str,
        refund: bool,
    ) -> Result<bool, StoreError> {
        let (error, refund) = (error.to_owned(), u32::from(refund));
        self.call("requeue_job", move |conn| {
            let n = conn.execute(
                "UPDATE jobs SET state = 'queued', error = ?3, lease_until = NULL, updated_at = ?4, \
                 attempts = attempts - ?5 \
                 WHERE id = ?1 AND state = 'converting' AND attempts = ?2 AND attempts >= ?5",
                params![id.to_hex(), attempt, error, now(), refund],
            )?;
            Ok(n == 1)
        })
        .await
    }
}

#[async_trait]
impl JobStore for Db {
    async fn insert(&self, job: &JobRecord) -> Result<(), StoreError> {
        let output =
            serde_json::to_string(&job.output).map_err(|e| StoreError::backend("SQLite", e))?;
        let job = job.clone();
        self.call("insert_job", move |conn| {
            conn.execute(
                &format!("INSERT INTO jobs ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28)"),
                params![
                    job.id.to_hex(),
                    job.owner.stored(),
                    job.filename,
                    job.video_fid.to_hex(),
                    job.mp3_fid.to_hex(),
                    job.state.as_str(),
                    job.error,
                    job.attempts,
                    job.retries,
                    output,
                    job.progress,
                    job.node,
                    job.notified,
                    job.mailed,
                    job.lease_until.map(Timestamp::millis),
                    job.created_at.millis(),
                    job.updated_at.millis(),
                    job.audio.map(|a| signed(a.bytes)),
                    job.audio.map(|a| signed(a.duration_ms)),
                    job.mail_claim.as_ref().map(|c| c.node.clone()),
                    job.mail_claim.as_ref().map(|c| c.until.millis()),
                    job.callback.as_ref().map(|c| c.url.clone()),
                    job.callback.as_ref().map(|c| c.secret.clone()),
                    job.username,
                    json(job.audio.as_ref().and_then(|a| a.loudness.as_ref()))?,
                    json(job.audio.as_ref().and_then(|a| a.replaygain.as_ref()))?,
                    job.segments.map(|s| s.total),
                    job.segments.map(|s| s.done),
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn get(&self, id: JobId) -> Result<Option<JobRecord>, StoreError> {
        self.call("find_job", move |conn| Ok(get(conn, &id.to_hex())?))
            .await
    }

    async fn remove(&self, id: JobId) -> Result<(), StoreError> {
        self.call("remove_job", move |conn| {
            conn.execute("DELETE FROM jobs WHERE id = ?1", [id.to_hex()])?;
            Ok(())
        })
        .await
    }

    async fn list(&self, query: &JobQuery) -> Result<Vec<JobRecord>, StoreError> {
        let query = query.clone();
        self.call("list_jobs", move |conn| {
            let mut sql = format!("SELECT {COLUMNS} FROM jobs WHERE 1");
            let mut values: Vec<String> = Vec::new();
            if let Some(owner) = query.owner {
                values.push(owner.stored());
                sql.push_str(&format!(" AND owner = ?{}", values.len()));
            }
            match query.state {
                Some(state) => {
                    values.push(state.as_str().to_owned());
                    sql.push_str(&format!(" AND state = ?{}", values.len()));
                }
                None => sql.push_str(" AND state <> 'deleted'"),
            }
            if let Some(before) = query.before {
                values.push(before.to_hex());
                sql.push_str(&format!(" AND id < ?{}", values.len()));
            }
            sql.push_str(&format!(" ORDER BY id DESC LIMIT {}", query.limit));
            let mut statement = conn.prepare(&sql)?;
            let rows = statement.query_map(rusqlite::params_from_iter(values), record)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn count_by_state(&self) -> Result<Vec<(JobState, u64)>, StoreError> {
        self.call("count_jobs", |conn| {
            let mut counts = Vec::new();
            for state in JobState::LIVE {
                let n: i64 = conn.query_row(
                    "SELECT COUNT(*) FROM jobs WHERE state = ?1",
                    [state.as_str()],
                    |row| row.get(0),
                )?;
                counts.push((state, count(n)));
            }
            Ok(counts)
        })
        .await
    }

    async fn active_jobs(&self, owner: &Owner) -> Result<u64, StoreError> {
        let owner = owner.stored();
        self.call("active_jobs", move |conn| {
            let n: i64 = conn.query_row(
                "SELECT COUNT(*) FROM jobs WHERE owner = ?1 AND state IN ('queued', 'converting')",
                [owner],
                |row| row.get(0),
            )?;
            Ok(count(n))
        })
        .await
    }

    async fn forget_owner(&self, owner: &Owner) -> Result<u64, StoreError> {
        let owner = owner.stored();
        self.call("forget_owner", move |conn| {
            let n = conn.execute(
                "UPDATE jobs SET owner = ?2, filename = '', callback_url = NULL, \
                 callback_secret = NULL WHERE owner = ?1 AND state = 'deleted'",
                [owner, Owner::Forgotten.stored()],
            )?;
            Ok(n as u64)
        })
        .await
    }

    async fn mark_deleted(&self, id: JobId) -> Result<Option<JobRecord>, StoreError> {
        self.call("mark_deleted", move |conn| {
            let tx = conn.transaction()?;
            let before = get(&tx, &id.to_hex())?;
            if before.is_some() {
                tx.execute(
                    "UPDATE jobs SET state = 'deleted', lease_until = NULL, progress = NULL, \
                     updated_at = ?2 WHERE id = ?1",
                    params![id.to_hex(), now()],
                )?;
            }
            tx.commit()?;
            Ok(before)
        })
        .await
    }

    async fn retry(&self, id: JobId) -> Result<Option<JobRecord>, StoreError> {
        self.call("retry_job", move |conn| {
            Ok(update_returning(
                conn,
                "UPDATE jobs SET state = 'queued', attempts = 0, error = NULL, progress = NULL, \
                 node = NULL, notified = 0, mailed = 0, mail_node = NULL, mail_until = NULL, \
                 audio_bytes = NULL, audio_ms = NULL, lease_until = NULL, updated_at = ?2, \
                 segments_total = NULL, segments_done = NULL, \
                 retries = retries + 1 WHERE id = ?1 AND state = 'failed'",
                params![id.to_hex(), now()],
            )?)
        })
        .await
    }

    async fn undo_retry(&self, id: JobId, retries: u32, error: &str) -> Result<(), StoreError> {
        let error = error.to_owned();
        self.call("undo_retry", move |conn| {
            conn.execute(
                "UPDATE jobs SET state = 'failed', error = ?3, notified = 1, mailed = 1, \
                 updated_at = ?4 \
                 WHERE id = ?1 AND state = 'queued' AND retries = ?2 AND attempts = 0",
                params![id.to_hex(), retries, error, now()],
            )?;
            Ok(())
        })
        .await
    }

    async fn created_before(
        &self,
        cutoff: Timestamp,
        limit: u32,
    ) -> Result<Vec<JobRecord>, StoreError> {
        self.call("created_before", move |conn| {
            let mut statement = conn.prepare(&format!(
                "SELECT {COLUMNS} FROM jobs WHERE created_at < ?1 AND state <> 'deleted' \
                 ORDER BY created_at LIMIT ?2"
            ))?;
            let rows = statement.query_map(params![cutoff.millis(), limit], record)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn purge_deleted(&self, cutoff: Timestamp) -> Result<u64, StoreError> {
        self.call("purge_deleted", move |conn| {
            let n = conn.execute(
                "DELETE FROM jobs WHERE state = 'deleted' AND updated_at < ?1",
                [cutoff.millis()],
            )?;
            Ok(n as u64)
        })
        .await
    }

    async fn take(
        &self,
        id: JobId,
        node: &str,
        now: Timestamp,
        lease: Duration,
    ) -> Result<Option<JobRecord>, StoreError> {
        let node = node.to_owned();
        self.call("claim_job", move |conn| {
            Ok(update_returning(
                conn,
                "UPDATE jobs SET state = 'converting', node = ?2, updated_at = ?3, \
                 lease_until = ?4, attempts = attempts + 1 \
                 WHERE id = ?1 AND (state = 'queued' OR (state = 'converting' \
                 AND (lease_until IS NULL OR lease_until <= ?3)))",
                params![id.to_hex(), node, now.millis(), now.plus(lease).millis()],
            )?)
        })
        .await
    }

    async fn renew_lease(
        &self,
        id: JobId,
        attempt: u32,
        lease: Duration,
        progress: Option<f64>,
    ) -> Result<bool, StoreError> {
        self.call("renew_lease", move |conn| {
            let until = Timestamp::now().plus(lease).millis();
            let n = conn.execute(
                "UPDATE jobs SET lease_until = ?3, progress = COALESCE(?4, progress) \
                 WHERE id = ?1 AND state = 'converting' AND attempts = ?2",
                params![id.to_hex(), attempt, until, progress],
            )?;
            Ok(n == 1)
        })
        .await
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
        let error = error.map(str::to_owned);
        let progress = (state == JobState::Done).then_some(100.0);
        self.call("finish_job", move |conn| {
            Ok(update_returning(
                conn,
                "UPDATE jobs SET state = ?3, error = ?4, progress = ?5, notified = 0, \
                 lease_until = NULL, updated_at = ?6, audio_bytes = ?7, audio_ms = ?8, \
                 audio_loudness = ?9, audio_replaygain = ?10 \
                 WHERE id = ?1 AND state = 'converting' AND attempts = ?2",
                params![
                    id.to_hex(),
                    attempt,
                    state.as_str(),
                    error,
                    progress,
                    now(),
                    audio.map(|a| signed(a.bytes)),
                    audio.map(|a| signed(a.duration_ms)),
                    json(audio.as_ref().and_then(|a| a.loudness.as_ref()))?,
                    json(audio.as_ref().and_then(|a| a.replaygain.as_ref()))?,
                ],
            )?)
        })
        .await
    }

    async fn requeue(&self, id: JobId, attempt: u32, error: &str) -> Result<bool, StoreError> {
        self.back_to_queued(id, attempt, error, false).await
    }

    async fn requeue_refunded(
        &self,
        id: JobId,
        attempt: u32,
        error: &str,
    ) -> Result<bool, StoreError> {
        self.back_to_queued(id, attempt, error, true).await
    }

    async fn release_crashed(&self, id: JobId, node: &str, error: &str) -> Result<(), StoreError> {
        let (node, error) = (node.to_owned(), error.to_owned());
        self.call("release_crashed", move |conn| {
            conn.execute(
                "UPDATE jobs SET state = 'queued', error = ?3, lease_until = NULL, updated_at = ?4 \
                 WHERE id = ?1 AND state = 'converting' AND node = ?2",
                params![id.to_hex(), node, error, now()],
            )?;
            Ok(())
        })
        .await
    }

    async fn split(
        &self,
        id: JobId,
        attempt: u32,
        total: u32,
    ) -> Result<Option<JobRecord>, StoreError> {
        self.call("split_job", move |conn| {
            Ok(update_returning(
                conn,
                "UPDATE jobs SET segments_total = ?3, lease_until = NULL, node = NULL, \
                 segments_done = CASE WHEN segments_total IS NULL THEN 0 ELSE segments_done END, \
                 progress = CASE WHEN segments_total IS NULL THEN 0 ELSE progress END, \
                 updated_at = ?4 \
                 WHERE id = ?1 AND state = 'converting' AND attempts = ?2",
                params![id.to_hex(), attempt, total, now()],
            )?)
        })
        .await
    }

    async fn note_segments(&self, id: JobId, done: u32, progress: f64) -> Result<bool, StoreError> {
        self.call("note_segments", move |conn| {
            let n = conn.execute(
                "UPDATE jobs SET segments_done = ?2, progress = ?3 \
                 WHERE id = ?1 AND state = 'converting' AND segments_total IS NOT NULL",
                params![id.to_hex(), done, progress],
            )?;
            Ok(n == 1)
        })
        .await
    }

    async fn claim_mail(
        &self,
        id: JobId,
        node: &str,
        now: Timestamp,
        lease: Duration,
    ) -> Result<Option<JobRecord>, StoreError> {
        let node = node.to_owned();
        self.call("claim_mail", move |conn| {
            Ok(update_returning(
                conn,
                "UPDATE jobs SET mail_node = ?2, mail_until = ?4 \
                 WHERE id = ?1 AND mailed = 0 AND state <> 'deleted' \
                 AND (mail_until IS NULL OR mail_until <= ?3 OR mail_node = ?2)",
                params![id.to_hex(), node, now.millis(), now.plus(lease).millis()],
            )?)
        })
        .await
    }

    async fn mark_mailed(&self, id: JobId) -> Result<(), StoreError> {
        self.call("mark_mailed", move |conn| {
            conn.execute(
                "UPDATE jobs SET mailed = 1, mail_node = NULL, mail_until = NULL WHERE id = ?1",
                [id.to_hex()],
            )?;
            Ok(())
        })
        .await
    }

    async fn mark_notified(&self, id: JobId) -> Result<(), StoreError> {
        self.call("mark_notified", move |conn| {
            conn.execute("UPDATE jobs SET notified = 1 WHERE id = ?1", [id.to_hex()])?;
            Ok(())
        })
        .await
    }
}
