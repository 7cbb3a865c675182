//! Files on local disk behind [`BlobStore`]: `files/<bucket>/<xx>/<id>`
//! under the data directory, recorded in the `files` table.
//!
//! A write goes to `files/partial/<id>.<n>` and becomes visible only when
//! finished: the data is fsynced, renamed into place, the directory
//! fsynced, and then the row is written. So a reader never sees a file
//! half-written, and a crash at any point leaves at most a partial file or
//! an unrecorded one, both removed when the node starts (`sweep_orphans`).
//! Deleting removes the row first, then the file.
//!
//! A resumable write (an upload arriving over many requests) lives in
//! `files/resumable/<id>` instead, which start-up leaves alone: its length
//! after a checkpoint (flush + fsync) is what is stored for good, a resume
//! truncates it to the recorded offset, and finishing moves it into place
//! like any other write.

use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use futures::StreamExt;
use rusqlite::{OptionalExtension, params};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio_util::io::ReaderStream;
use tracing::info;

use super::db::Db;
use super::jobs::{owner_at, signed};
use crate::backends::{
    BlobStore, BlobWrite, Bucket, ByteStream, FileInfo, FileMeta, ResumableWrite, StoreError,
};
use crate::domain::{FileId, Id, Owner, Timestamp};

/// Bytes read from disk at a time when streaming a file out.
const READ_CHUNK: usize = 256 * 1024;

/// The data directory's files and their records.
#[derive(Clone)]
pub struct LocalFiles {
    root: PathBuf,
    db: Db,
}

/// An I/O error as a store error: a full disk is its own kind.
fn io(e: std::io::Error) -> StoreError {
    if e.kind() == std::io::ErrorKind::StorageFull {
        StoreError::Full(e)
    } else {
        StoreError::Io(e)
    }
}

impl LocalFiles {
    /// Makes the folders under `root` (the data directory's `files`).
    pub fn open(root: PathBuf, db: Db) -> std::io::Result<Self> {
        for bucket in Bucket::ALL {
            std::fs::create_dir_all(root.join(bucket.name()))?;
        }
        std::fs::create_dir_all(root.join("partial"))?;
        std::fs::create_dir_all(root.join("resumable"))?;
        Ok(Self { root, db })
    }

    /// Where a finished file lives; the fan-out takes the id's last byte
    /// (its counter), so folders fill evenly.
    fn path(&self, bucket: Bucket, id: FileId) -> PathBuf {
        let hex = id.to_hex();
        self.root.join(bucket.name()).join(&hex[22..]).join(hex)
    }

    fn partial(&self, id: FileId) -> PathBuf {
        static WRITES: AtomicU64 = AtomicU64::new(0);
        let n = WRITES.fetch_add(1, Ordering::Relaxed);
        self.root
            .join("partial")
            .join(format!("{id}.{}.{n}", std::process::id()))
    }

    fn resumable(&self, id: FileId) -> PathBuf {
        self.root.join("resumable").join(id.to_hex())
    }

    /// Removes what a crash can leave: partial writes, and finished files
    /// without a row (renamed, not yet recorded; or a delete cut short).
    /// Run at start-up, before anything writes. Returns how many.
    pub fn sweep_orphans(&self) -> Result<u64, StoreError> {
        let mut removed = 0;
        for entry in std::fs::read_dir(self.root.join("partial")).map_err(io)? {
            std::fs::remove_file(entry.map_err(io)?.path()).map_err(io)?;
            removed += 1;
        }
        for bucket in Bucket::ALL {
            for fan in std::fs::read_dir(self.root.join(bucket.name())).map_err(io)? {
                let fan = fan.map_err(io)?.path();
                if !fan.is_dir() {
                    continue;
                }
                for entry in std::fs::read_dir(&fan).map_err(io)? {
                    let path = entry.map_err(io)?.path();
                    let recorded = match path
                        .file_name()
                        .and_then(|n| n.to_str())
                        .and_then(|n| Id::parse(n).ok())
                    {
                        Some(id) => self.recorded(bucket, id)?,
                        None => false,
                    };
                    if !recorded {
                        std::fs::remove_file(&path).map_err(io)?;
                        removed += 1;
                    }
                }
            }
        }
        if removed > 0 {
            info!(
                removed,
                "removed files a crash left half-written or unrecorded"
            );
        }
        Ok(removed)
    }

    fn recorded(&self, bucket: Bucket, id: FileId) -> Result<bool, StoreError> {
        self.db.call_blocking(|conn| {
            Ok(conn
                .query_row(
                    "SELECT 1 FROM files WHERE bucket = ?1 AND id = ?2",
                    params![bucket.name(), id.to_hex()],
                    |_| Ok(()),
                )
                .optional()?
                .is_some())
        })
    }
}

/// Fsyncs a directory, so a rename in it is durable.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// A write into `partial/` (or, resumable, `resumable/`).
struct LocalWrite {
    files: LocalFiles,
    bucket: Bucket,
    id: FileId,
    meta: FileMeta,
    partial: PathBuf,
    file: tokio::io::BufWriter<tokio::fs::File>,
    written: u64,
    /// A resumable write's data stays when finishing fails (a retry
    /// finishes it); a plain one's goes.
    resumable: bool,
}

#[async_trait]
impl BlobWrite for LocalWrite {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), StoreError> {
        self.file.write_all(chunk).await.map_err(io)?;
        self.written += chunk.len() as u64;
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<(), StoreError> {
        let place = Placement {
            bucket: self.bucket,
            id: self.id,
            meta: self.meta.clone(),
            length: self.written,
        };
        let finished = place.from(&self.files, &mut self.file, &self.partial).await;
        if finished.is_err() && !self.resumable {
            let _ = tokio::fs::remove_file(&self.partial).await;
        }
        finished
    }

    async fn abort(self: Box<Self>) -> Result<(), StoreError> {
        drop(self.file);
        match tokio::fs::remove_file(&self.partial).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(e)),
            _ => Ok(()),
        }
    }
}

/// A finished write being made visible: durable data, renamed into place,
/// the directory durable, then the row.
struct Placement {
    bucket: Bucket,
    id: FileId,
    meta: FileMeta,
    length: u64,
}

impl Placement {
    async fn from(
        self,
        files: &LocalFiles,
        file: &mut tokio::io::BufWriter<tokio::fs::File>,
        written: &Path,
    ) -> Result<(), StoreError> {
        file.flush().await.map_err(io)?;
        file.get_ref().sync_all().await.map_err(io)?;
        let target = files.path(self.bucket, self.id);
        let (from, dir) = (written.to_owned(), target.parent().map(Path::to_owned));
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            if let Some(dir) = &dir {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::rename(&from, &target)?;
            if let Some(dir) = &dir {
                sync_dir(dir)?;
            }
            Ok(())
        })
        .await
        .map_err(|e| StoreError::Io(std::io::Error::other(e)))?
        .map_err(io)?;
        let Placement {
            bucket,
            id,
            meta,
            length,
        } = self;
        files
            .db
            .call("finish_file", move |conn| {
                conn.execute(
                    "INSERT OR REPLACE INTO files \
                     (bucket, id, length, filename, owner, content_type, job_id, created_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![
                        bucket.name(),
                        id.to_hex(),
                        signed(length),
                        meta.filename,
                        meta.owner.stored(),
                        meta.content_type,
                        meta.job_id.map(|j| j.to_hex()),
                        Timestamp::now().millis(),
                    ],
                )?;
                Ok::<_, StoreError>(())
            })
            .await
    }
}

#[async_trait]
impl ResumableWrite for LocalWrite {
    async fn checkpoint(&mut self) -> Result<(), StoreError> {
        self.file.flush().await.map_err(io)?;
        self.file.get_ref().sync_data().await.map_err(io)
    }
}

#[async_trait]
impl BlobStore for LocalFiles {
    async fn info(&self, bucket: Bucket, id: FileId) -> Result<Option<FileInfo>, StoreError> {
        self.db
            .call("file_info", move |conn| {
                let row = conn
                    .query_row(
                        "SELECT length, filename, owner, content_type, job_id FROM files \
                         WHERE bucket = ?1 AND id = ?2",
                        params![bucket.name(), id.to_hex()],
                        |row| {
                            Ok((
                                row.get::<_, i64>(0)?,
                                row.get::<_, String>(1)?,
                                owner_at(row, 2, "owner")?,
                                row.get::<_, Option<String>>(3)?,
                                row.get::<_, Option<String>>(4)?,
                            ))
                        },
                    )
                    .optional()?;
                Ok(
                    row.map(|(length, filename, owner, content_type, job_id)| FileInfo {
                        id,
                        length: u64::try_from(length).unwrap_or(0),
                        filename,
                        owner: Some(owner),
                        content_type,
                        job_id: job_id.and_then(|j| Id::parse(&j).ok()),
                        block_size: 0,
                    }),
                )
            })
            .await
    }

    async fn create(
        &self,
        bucket: Bucket,
        id: FileId,
        meta: FileMeta,
    ) -> Result<Box<dyn BlobWrite>, StoreError> {
        let partial = self.partial(id);
        let file = tokio::fs::File::create(&partial).await.map_err(io)?;
        Ok(Box::new(LocalWrite {
            files: self.clone(),
            bucket,
            id,
            meta,
            partial,
            file: tokio::io::BufWriter::with_capacity(READ_CHUNK, file),
            written: 0,
            resumable: false,
        }))
    }

    async fn resume(
        &self,
        bucket: Bucket,
        id: FileId,
        meta: FileMeta,
        offset: u64,
    ) -> Result<Box<dyn ResumableWrite>, StoreError> {
        let path = self.resumable(id);
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create(offset == 0)
            .truncate(offset == 0)
            .open(&path)
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => StoreError::Truncated {
                    id,
                    stored: 0,
                    offset,
                },
                _ => io(e),
            })?;
        let stored = file.metadata().await.map_err(io)?.len();
        if stored < offset {
            return Err(StoreError::Truncated { id, stored, offset });
        }
        if stored > offset {
            // What a request cut short (or refused) wrote past the offset.
            file.set_len(offset).await.map_err(io)?;
        }
        file.seek(SeekFrom::Start(offset)).await.map_err(io)?;
        Ok(Box::new(LocalWrite {
            files: self.clone(),
            bucket,
            id,
            meta,
            partial: path,
            file: tokio::io::BufWriter::with_capacity(READ_CHUNK, file),
            written: offset,
            resumable: true,
        }))
    }

    async fn read(
        &self,
        bucket: Bucket,
        file: &FileInfo,
        range: Option<(u64, u64)>,
    ) -> Result<ByteStream, StoreError> {
        let id = file.id;
        let mut handle = match tokio::fs::File::open(self.path(bucket, id)).await {
            Ok(handle) => handle,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::Gone { id });
            }
            Err(e) => return Err(io(e)),
        };
        if handle.metadata().await.map_err(io)?.len() != file.length {
            return Err(StoreError::Gone { id });
        }
        let (first, last) = range.unwrap_or((0, file.length.saturating_sub(1)));
        let wanted = if file.length == 0 {
            0
        } else {
            last + 1 - first
        };
        handle.seek(SeekFrom::Start(first)).await.map_err(io)?;
        let mut stream = ReaderStream::with_capacity(handle.take(wanted), READ_CHUNK);
        // The first piece is read before the caller answers, so headers and
        // the start of the body leave together (and a read error is still
        // a clean error answer, not a cut-off body).
        let head = match stream.next().await {
            Some(chunk) => Some(chunk.map_err(io)?),
            None => None,
        };
        Ok(futures::stream::iter(head.map(Ok)).chain(stream).boxed())
    }

    async fn delete(&self, bucket: Bucket, id: FileId) -> Result<(), StoreError> {
        self.db
            .call("delete_file", move |conn| {
                conn.execute(
                    "DELETE FROM files WHERE bucket = ?1 AND id = ?2",
                    params![bucket.name(), id.to_hex()],
                )?;
                Ok::<_, StoreError>(())
            })
            .await?;
        for path in [self.path(bucket, id), self.resumable(id)] {
            match tokio::fs::remove_file(path).await {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
                _ => {}
            }
        }
        Ok(())
    }

    /// One process writes to a data directory (its lock), so a partial
    /// write named for another process id was abandoned, whatever its age;
    /// this process's own are in progress. (Start-up removes them all.)
    async fn remove_abandoned_uploads(&self, _begun_before: Timestamp) -> Result<u64, StoreError> {
        let dir = self.root.join("partial");
        let me = std::process::id().to_string();
        let removed = tokio::task::spawn_blocking(move || -> std::io::Result<u64> {
            let mut removed = 0;
            for entry in std::fs::read_dir(&dir)? {
                let path = entry?.path();
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
                if name.split('.').nth(1) != Some(me.as_str()) {
                    std::fs::remove_file(&path)?;
                    removed += 1;
                }
            }
            Ok(removed)
        })
        .await
        .map_err(|e| io(std::io::Error::other(e)))?;
        removed.map_err(io)
    }

    async fn usage(&self, owner: &Owner) -> Result<u64, StoreError> {
        let owner = owner.stored();
        self.db
            .call("usage", move |conn| {
                let total: i64 = conn.query_row(
                    "SELECT COALESCE(SUM(length), 0) FROM files WHERE owner = ?1 \
                     AND bucket IN ('videos', 'audio', 'waveforms')",
                    [owner],
                    |row| row.get(0),
                )?;
                Ok(u64::try_from(total).unwrap_or(0))
            })
            .await
    }
}
