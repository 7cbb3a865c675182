//! A resumable write into GridFS: an upload that arrives over many
//! requests, on any node. The chunks are the GridFS chunks the finished
//! file will have (`files_id`, `n`, 255 KiB each); only the files document,
//! written by `finish`, makes the file visible, as with the driver's own
//! upload stream. A checkpoint stores the last, partial chunk as it is, and
//! a resume reads it back and drops every chunk past the offset, so what a
//! cut-off or refused request wrote beyond the recorded offset never
//! becomes part of the file. Full chunks are inserted a few at a time
//! ([`BATCH`]); the one chunk a checkpoint stored partly is replaced when it
//! fills. At most `BATCH` + 1 chunks (about 2.3 MiB) are held per write.

use std::future::IntoFuture;

use async_trait::async_trait;
use mongodb::bson::spec::BinarySubtype;
use mongodb::bson::{Binary, Bson, DateTime, doc};

use super::{GridFs, oid};
use crate::backends::{BlobWrite, FileMeta, ResumableWrite, StoreError};
use crate::domain::FileId;
use crate::metrics::timed;

/// GridFS's default chunk size, which the driver's own uploads use too.
const CHUNK: usize = 255 * 1024;

/// Full chunks inserted per round trip.
const BATCH: usize = 8;

pub(super) struct GridFsResumable {
    gridfs: GridFs,
    id: FileId,
    meta: FileMeta,
    /// The chunk `buffer` becomes.
    n: i64,
    /// Bytes of chunk `n` so far (fewer than a chunk).
    buffer: Vec<u8>,
    /// Whether chunk `n` is stored already, partly (by a checkpoint).
    stored_partly: bool,
    /// Full chunks not yet inserted: `n - full.len() .. n`.
    full: Vec<Vec<u8>>,
    length: u64,
}

impl GridFsResumable {
    /// Continues file `id` from `offset` bytes (see `BlobStore::resume`).
    pub(super) async fn resume(
        gridfs: GridFs,
        id: FileId,
        meta: FileMeta,
        offset: u64,
    ) -> Result<Self, StoreError> {
        let n = i64::try_from(offset / CHUNK as u64).unwrap_or(i64::MAX);
        let kept = (offset % CHUNK as u64) as usize;
        // Chunk `n` is only kept (and read back) when the offset is inside it.
        let first_dropped = if kept == 0 { n } else { n + 1 };
        let drop = gridfs
            .chunks
            .delete_many(doc! { "files_id": oid(id), "n": { "$gte": first_dropped } });
        timed("gridfs", "resume_upload", drop.into_future()).await?;
        let mut buffer = Vec::with_capacity(CHUNK);
        let stored_partly = kept > 0;
        if kept > 0 {
            let find = gridfs.chunks.find_one(doc! { "files_id": oid(id), "n": n });
            let chunk = timed("gridfs", "read_chunk", find.into_future()).await?;
            let data = chunk
                .as_ref()
                .and_then(|c| c.get_binary_generic("data").ok())
                .map_or(&[][..], Vec::as_slice);
            if data.len() < kept {
                let stored = n as u64 * CHUNK as u64 + data.len() as u64;
                return Err(StoreError::Truncated { id, stored, offset });
            }
            buffer.extend_from_slice(&data[..kept]);
        }
        Ok(Self {
            gridfs,
            id,
            meta,
            n,
            buffer,
            stored_partly,
            full: Vec::new(),
            length: offset,
        })
    }

    fn chunk(&self, n: i64, bytes: Vec<u8>) -> mongodb::bson::Document {
        doc! {
            "files_id": oid(self.id),
            "n": n,
            "data": Binary { subtype: BinarySubtype::Generic, bytes },
        }
    }

    /// Stores `data` as chunk `n` over the part of it a checkpoint stored.
    async fn replace_chunk(&self, n: i64, data: &[u8]) -> Result<(), StoreError> {
        let chunk = self.chunk(n, data.to_vec());
        let put = self
            .gridfs
            .chunks
            .replace_one(doc! { "files_id": oid(self.id), "n": n }, chunk)
            .upsert(true);
        timed("gridfs", "write", put.into_future()).await?;
        Ok(())
    }

    /// Inserts the full chunks held.
    async fn insert_full(&mut self) -> Result<(), StoreError> {
        if self.full.is_empty() {
            return Ok(());
        }
        let first = self.n - self.full.len() as i64;
        let docs: Vec<_> = std::mem::take(&mut self.full)
            .into_iter()
            .zip(first..)
            .map(|(bytes, n)| self.chunk(n, bytes))
            .collect();
        let insert = self.gridfs.chunks.insert_many(docs);
        timed("gridfs", "write", insert.into_future()).await?;
        Ok(())
    }
}

#[async_trait]
impl BlobWrite for GridFsResumable {
    async fn write(&mut self, mut data: &[u8]) -> Result<(), StoreError> {
        self.length += data.len() as u64;
        while !data.is_empty() {
            let take = (CHUNK - self.buffer.len()).min(data.len());
            self.buffer.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buffer.len() == CHUNK {
                let chunk = std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK));
                if self.stored_partly {
                    self.replace_chunk(self.n, &chunk).await?;
                    self.stored_partly = false;
                } else {
                    self.full.push(chunk);
                }
                self.n += 1;
                if self.full.len() == BATCH {
                    self.insert_full().await?;
                }
            }
        }
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<(), StoreError> {
        self.checkpoint().await?;
        let mut metadata = doc! {
            "owner": self.meta.owner.stored(),
            "content_type": self.meta.content_type.clone(),
        };
        if let Some(job) = self.meta.job_id {
            metadata.insert("job_id", oid(job));
        }
        let file = doc! {
            "_id": oid(self.id),
            "length": i64::try_from(self.length).unwrap_or(i64::MAX),
            "chunkSize": CHUNK as i32,
            "uploadDate": DateTime::now(),
            "filename": &self.meta.filename,
            "metadata": metadata,
        };
        let insert = self
            .gridfs
            .files
            .replace_one(doc! { "_id": oid(self.id) }, file)
            .upsert(true);
        timed("gridfs", "finish_upload", insert.into_future()).await?;
        Ok(())
    }

    async fn abort(self: Box<Self>) -> Result<(), StoreError> {
        self.gridfs
            .chunks
            .delete_many(doc! { "files_id": Bson::ObjectId(oid(self.id)) })
            .await?;
        Ok(())
    }
}

#[async_trait]
impl ResumableWrite for GridFsResumable {
    async fn checkpoint(&mut self) -> Result<(), StoreError> {
        self.insert_full().await?;
        if self.buffer.is_empty() {
            return Ok(());
        }
        self.replace_chunk(self.n, &self.buffer).await?;
        self.stored_partly = true;
        Ok(())
    }
}
