//! The `uploads` table behind [`UploadStore`]: one row per resumable
//! upload; the hold is two columns (`holder`, `held_until`) taken and moved
//! by guarded UPDATEs.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Row, params};

use super::db::Db;
use super::jobs::{bad, callback_at, count, id_at, owner_at, signed};
use crate::backends::{StoreError, UploadStore};
use crate::domain::{FileId, Owner, Timestamp, UploadRecord};
use crate::output::ResolvedOutput;

const COLUMNS: &str = "id, owner, length, stored, filename, content_type, output, job_id, \
                       mp3_fid, queued, created_at, expires_at, metadata, callback_url, \
                       callback_secret, username";

fn record(row: &Row<'_>) -> rusqlite::Result<UploadRecord> {
    let output: String = row.get(6)?;
    Ok(UploadRecord {
        id: id_at(row, 0, "id")?,
        owner: owner_at(row, 1, "owner")?,
        username: row.get(15)?,
        length: count(row.get(2)?),
        offset: count(row.get(3)?),
        filename: row.get(4)?,
        content_type: row.get(5)?,
        output: serde_json::from_str::<ResolvedOutput>(&output)
            .map_err(|_| bad("output", output.clone(), 6))?,
        job_id: id_at(row, 7, "job_id")?,
        mp3_fid: id_at(row, 8, "mp3_fid")?,
        queued: row.get(9)?,
        created_at: Timestamp::from_millis(row.get(10)?),
        expires_at: Timestamp::from_millis(row.get(11)?),
        metadata: row.get(12)?,
        callback: callback_at(row, 13)?,
    })
}

impl Db {
    /// Lets go of every hold on an upload (at start-up, under the lock).
    pub fn release_upload_holds(&self) -> rusqlite::Result<()> {
        self.call_blocking(|conn| {
            conn.execute(
                "UPDATE uploads SET holder = NULL, held_until = NULL WHERE holder IS NOT NULL",
                [],
            )?;
            Ok(())
        })
    }
}

#[async_trait]
impl UploadStore for Db {
    async fn create(&self, upload: &UploadRecord) -> Result<(), StoreError> {
        let output =
            serde_json::to_string(&upload.output).map_err(|e| StoreError::backend("SQLite", e))?;
        let u = upload.clone();
        self.call("create_upload", move |conn| {
            conn.execute(
                &format!(
                    "INSERT INTO uploads ({COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)"
                ),
                params![
                    u.id.to_hex(),
                    u.owner.stored(),
                    signed(u.length),
                    signed(u.offset),
                    u.filename,
                    u.content_type,
                    output,
                    u.job_id.to_hex(),
                    u.mp3_fid.to_hex(),
                    u.queued,
                    u.created_at.millis(),
                    u.expires_at.millis(),
                    u.metadata,
                    u.callback.as_ref().map(|c| c.url.clone()),
                    u.callback.as_ref().map(|c| c.secret.clone()),
                    u.username,
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn get(&self, id: FileId) -> Result<Option<UploadRecord>, StoreError> {
        self.call("find_upload", move |conn| {
            Ok(conn
                .query_row(
                    &format!("SELECT {COLUMNS} FROM uploads WHERE id = ?1"),
                    [id.to_hex()],
                    record,
                )
                .optional()?)
        })
        .await
    }

    async fn hold(
        &self,
        id: FileId,
        holder: u64,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<Option<UploadRecord>, StoreError> {
        self.call("hold_upload", move |conn| {
            Ok(conn
                .query_row(
                    &format!(
                        "UPDATE uploads SET holder = ?2, held_until = ?3 WHERE id = ?1 \
                         AND (held_until IS NULL OR held_until <= ?4) RETURNING {COLUMNS}"
                    ),
                    params![id.to_hex(), holder as i64, until.millis(), now.millis()],
                    record,
                )
                .optional()?)
        })
        .await
    }

    async fn advance(
        &self,
        id: FileId,
        holder: u64,
        offset: u64,
        until: Option<Timestamp>,
    ) -> Result<bool, StoreError> {
        self.call("advance_upload", move |conn| {
            let changed = conn.execute(
                "UPDATE uploads SET stored = ?3, held_until = ?4, \
                 holder = CASE WHEN ?4 IS NULL THEN NULL ELSE holder END \
                 WHERE id = ?1 AND holder = ?2",
                params![
                    id.to_hex(),
                    holder as i64,
                    signed(offset),
                    until.map(Timestamp::millis)
                ],
            )?;
            Ok(changed == 1)
        })
        .await
    }

    async fn mark_queued(&self, id: FileId) -> Result<(), StoreError> {
        self.call("upload_queued", move |conn| {
            conn.execute("UPDATE uploads SET queued = 1 WHERE id = ?1", [id.to_hex()])?;
            Ok(())
        })
        .await
    }

    async fn remove(&self, id: FileId) -> Result<(), StoreError> {
        self.call("remove_upload", move |conn| {
            conn.execute("DELETE FROM uploads WHERE id = ?1", [id.to_hex()])?;
            Ok(())
        })
        .await
    }

    async fn expired(&self, now: Timestamp, limit: u32) -> Result<Vec<UploadRecord>, StoreError> {
        self.call("expired_uploads", move |conn| {
            let mut statement = conn.prepare(&format!(
                "SELECT {COLUMNS} FROM uploads WHERE expires_at <= ?1 \
                 ORDER BY expires_at LIMIT ?2"
            ))?;
            let rows = statement.query_map(params![now.millis(), limit], record)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn owned(&self, owner: &Owner, limit: u32) -> Result<Vec<UploadRecord>, StoreError> {
        let owner = owner.stored();
        self.call("owned_uploads", move |conn| {
            let mut statement = conn.prepare(&format!(
                "SELECT {COLUMNS} FROM uploads WHERE owner = ?1 LIMIT ?2"
            ))?;
            let rows = statement.query_map(params![owner, limit], record)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn reserved(&self, owner: &Owner) -> Result<u64, StoreError> {
        let owner = owner.stored();
        self.call("reserved_by_uploads", move |conn| {
            let total: i64 = conn.query_row(
                "SELECT COALESCE(SUM(length), 0) FROM uploads WHERE owner = ?1 AND queued = 0",
                [owner],
                |row| row.get(0),
            )?;
            Ok(count(total))
        })
        .await
    }
}
