//! GridFS behind [`BlobStore`]: streaming reads and writes. Nothing here
//! holds a whole file: data moves in chunks between a byte stream and a
//! GridFS stream. A file's metadata keeps the fields the reference and our
//! tools read: `owner`, `content_type`, and `job_id` on audio.

use std::collections::HashSet;
use std::future::IntoFuture;
use std::sync::atomic::Ordering;

use async_trait::async_trait;
use bytes::Bytes;
use futures::TryStreamExt;
use futures::io::AsyncWriteExt;
use mongodb::Collection;
use mongodb::bson::oid::ObjectId;
use mongodb::bson::{Bson, Document, doc};
use mongodb::gridfs::{FilesCollectionDocument, GridFsBucket, GridFsUploadStream};

use super::resumable::GridFsResumable;
use super::{BACKEND, GridFs, Mongo, from_oid, oid};
use crate::backends::{
    BlobStore, BlobWrite, Bucket, ByteStream, FileInfo, FileMeta, ResumableWrite, StoreError,
};
use crate::domain::{FileId, Owner, Timestamp};
use crate::metrics::timed;

/// Unfinished uploads checked against `fs.files` per round trip.
const ABANDONED_BATCH: usize = 500;

/// Looks up a file's document; `None` when there is no such file.
async fn file_info(bucket: &GridFsBucket, id: FileId) -> Result<Option<FileInfo>, StoreError> {
    let doc = timed(
        "gridfs",
        "file_info",
        bucket.find_one(doc! { "_id": oid(id) }).into_future(),
    )
    .await?;
    let Some(d) = doc else {
        return Ok(None);
    };
    let owner = metadata_str(&d, "owner")
        .map(|text| Owner::parse(&text))
        .transpose()
        .map_err(|e| StoreError::backend(BACKEND, e))?;
    Ok(Some(FileInfo {
        id,
        length: d.length,
        owner,
        content_type: metadata_str(&d, "content_type"),
        job_id: d
            .metadata
            .as_ref()
            .and_then(|m| m.get_object_id("job_id").ok())
            .map(from_oid),
        block_size: d.chunk_size_bytes,
        filename: d.filename.unwrap_or_default(),
    }))
}

fn metadata_str(file: &FilesCollectionDocument, key: &str) -> Option<String> {
    file.metadata
        .as_ref()
        .and_then(|m| m.get_str(key).ok())
        .map(str::to_owned)
}

/// Deletes a file and any chunks of it, complete or not.
async fn delete_file(bucket: &GridFsBucket, id: FileId) -> Result<(), StoreError> {
    match bucket.delete(Bson::ObjectId(oid(id))).await {
        Ok(()) => Ok(()),
        // GridFS says "file not found": deleting what is not there is fine.
        Err(e) if matches!(*e.kind, mongodb::error::ErrorKind::GridFs(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// GridFS chunks fetched per round trip when reading a file: what one
/// download holds in memory (about 1 MiB), where the driver's own download
/// stream takes batches of up to 16 MiB.
const CHUNKS_PER_BATCH: u32 = 4;

/// Streams bytes `first..=last` of a stored file (all of it without a
/// range), a few GridFS chunks at a time, reading only the chunks that hold
/// them and checking none is missing.
async fn download(
    chunks: &Collection<Document>,
    file: &FileInfo,
    range: Option<(u64, u64)>,
) -> Result<ByteStream, StoreError> {
    let id = file.id;
    let chunk_size = u64::from(file.block_size.max(1));
    let layout = Layout {
        id,
        chunk_size,
        length: file.length,
    };
    let (first, last) = range.unwrap_or((0, file.length.saturating_sub(1)));
    let first_chunk = (first / chunk_size) as i64;
    let open = chunks
        .find(doc! { "files_id": oid(id), "n": { "$gte": first_chunk } })
        .sort(doc! { "n": 1 })
        .batch_size(CHUNKS_PER_BATCH)
        .into_future();
    let mut cursor = timed("gridfs", "open_download", open).await?;
    // Bytes of the file to send, and where the first chunk starts in it.
    let wanted = if file.length == 0 {
        0
    } else {
        last + 1 - first
    };
    let skip = first - first_chunk as u64 * chunk_size;
    // The first chunk is read before anything is answered, so a file
    // deleted since its document was read is a clean `Gone`, not a cut-off
    // body.
    let first = if wanted == 0 {
        None
    } else {
        let chunk = timed("gridfs", "read_chunk", cursor.try_next()).await?;
        match chunk.map(|c| chunk_data(&c, layout, first_chunk)) {
            Some(Ok(data)) => Some(data),
            _ => return Err(StoreError::Gone { id }),
        }
    };
    Ok(Box::pin(futures::stream::try_unfold(
        (cursor, first, first_chunk, 0u64, skip),
        move |(mut cursor, pending, n, sent, skip)| async move {
            if sent == wanted {
                return Ok(None);
            }
            let data = match pending {
                Some(data) => data,
                None => {
                    let next = timed("gridfs", "read_chunk", cursor.try_next()).await;
                    let Some(chunk) = next.map_err(std::io::Error::other)? else {
                        return Err(std::io::Error::other(format!(
                            "file {id} is incomplete: {sent} of {wanted} bytes"
                        )));
                    };
                    chunk_data(&chunk, layout, n).map_err(std::io::Error::other)?
                }
            };
            let from = (skip as usize).min(data.len());
            let take = (data.len() - from).min((wanted - sent) as usize);
            let bytes = data.slice(from..from + take);
            let sent = sent + bytes.len() as u64;
            Ok(Some((bytes, (cursor, None, n + 1, sent, 0))))
        },
    )))
}

/// How a file is cut into chunks.
#[derive(Clone, Copy)]
struct Layout {
    id: FileId,
    chunk_size: u64,
    length: u64,
}

/// A chunk that is not what the file's document says it must be.
#[derive(Debug, thiserror::Error)]
enum ChunkError {
    #[error("file {id} is missing chunk {n}")]
    Missing { id: FileId, n: i64 },
    #[error("chunk {n} of file {id} holds {held} bytes where its length says {length}")]
    WrongLength {
        id: FileId,
        n: i64,
        held: usize,
        length: u64,
    },
    #[error("a chunk of file {id} is malformed")]
    Malformed {
        id: FileId,
        #[source]
        source: mongodb::bson::document::ValueAccessError,
    },
}

/// The bytes of chunk `n` of a file, checked to be that chunk and as long
/// as the file's recorded length says it must be.
fn chunk_data(chunk: &Document, file: Layout, n: i64) -> Result<Bytes, ChunkError> {
    let id = file.id;
    let malformed = |source| ChunkError::Malformed { id, source };
    let number = chunk
        .get_i32("n")
        .map(i64::from)
        .or_else(|_| chunk.get_i64("n"))
        .map_err(malformed)?;
    if number != n {
        return Err(ChunkError::Missing { id, n });
    }
    let data = chunk.get_binary_generic("data").map_err(malformed)?;
    let size = file.chunk_size;
    let length = file.length.saturating_sub(n as u64 * size).min(size);
    if data.len() as u64 != length {
        return Err(ChunkError::WrongLength {
            id,
            n,
            held: data.len(),
            length,
        });
    }
    Ok(Bytes::copy_from_slice(data))
}

/// A GridFS upload stream: the files document is written by `finish`.
struct GridFsWrite {
    stream: GridFsUploadStream,
}

#[async_trait]
impl BlobWrite for GridFsWrite {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), StoreError> {
        timed("gridfs", "write", self.stream.write_all(chunk))
            .await
            .map_err(|e| StoreError::backend(BACKEND, e))
    }

    async fn finish(mut self: Box<Self>) -> Result<(), StoreError> {
        timed("gridfs", "finish_upload", self.stream.close())
            .await
            .map_err(|e| StoreError::backend(BACKEND, e))
    }

    async fn abort(mut self: Box<Self>) -> Result<(), StoreError> {
        self.stream.abort().await?;
        Ok(())
    }
}

#[async_trait]
impl BlobStore for Mongo {
    async fn info(&self, bucket: Bucket, id: FileId) -> Result<Option<FileInfo>, StoreError> {
        // Audio files' documents are remembered (see `info_cache`).
        if bucket == Bucket::Audio
            && let Some(info) = self.mp3_infos.get(id)
        {
            return Ok(Some(info));
        }
        let info = file_info(&self.gridfs(bucket).bucket, id).await?;
        if bucket == Bucket::Audio
            && let Some(info) = &info
        {
            self.mp3_infos.put(info);
        }
        Ok(info)
    }

    async fn create(
        &self,
        bucket: Bucket,
        id: FileId,
        meta: FileMeta,
    ) -> Result<Box<dyn BlobWrite>, StoreError> {
        let mut metadata = doc! { "owner": meta.owner.stored(), "content_type": meta.content_type };
        if let Some(job) = meta.job_id {
            metadata.insert("job_id", oid(job));
        }
        let stream = self
            .gridfs(bucket)
            .bucket
            .open_upload_stream(&meta.filename)
            .id(Bson::ObjectId(oid(id)))
            .metadata(metadata)
            .await?;
        Ok(Box::new(GridFsWrite { stream }))
    }

    async fn resume(
        &self,
        bucket: Bucket,
        id: FileId,
        meta: FileMeta,
        offset: u64,
    ) -> Result<Box<dyn ResumableWrite>, StoreError> {
        let gridfs = self.gridfs(bucket).clone();
        Ok(Box::new(
            GridFsResumable::resume(gridfs, id, meta, offset).await?,
        ))
    }

    async fn read(
        &self,
        bucket: Bucket,
        file: &FileInfo,
        range: Option<(u64, u64)>,
    ) -> Result<ByteStream, StoreError> {
        let stream = download(&self.gridfs(bucket).chunks, file, range).await;
        if let Err(StoreError::Gone { id }) = &stream {
            self.mp3_infos.forget(*id);
        }
        stream
    }

    async fn delete(&self, bucket: Bucket, id: FileId) -> Result<(), StoreError> {
        if bucket == Bucket::Audio {
            self.mp3_infos.forget(id);
        }
        delete_file(&self.gridfs(bucket).bucket, id).await
    }

    async fn remove_abandoned_uploads(&self, begun_before: Timestamp) -> Result<u64, StoreError> {
        let GridFs { chunks, files, .. } = &self.videos;
        // Ids below the last sweep's cutoff were looked at by it already.
        let from = FileId::first_minted_at(Timestamp::from_millis(
            self.swept_uploads_until.load(Ordering::SeqCst),
        ));
        let until = FileId::first_minted_at(begun_before);
        let mut first_chunks = chunks
            .find(doc! { "n": 0, "files_id": { "$gte": oid(from), "$lt": oid(until) } })
            .projection(doc! { "files_id": 1, "_id": 0 })
            .await?;
        let mut removed = 0;
        let mut batch = Vec::new();
        loop {
            let next = first_chunks.try_next().await?;
            if let Some(id) = next.as_ref().and_then(|c| c.get_object_id("files_id").ok()) {
                batch.push(id);
            }
            if batch.len() >= ABANDONED_BATCH || (next.is_none() && !batch.is_empty()) {
                // Finished files, and resumable uploads still under way
                // (their record is kept until they finish or expire).
                let mut kept = HashSet::new();
                for collection in [files, &self.uploads] {
                    let ids: HashSet<ObjectId> = collection
                        .find(doc! { "_id": { "$in": &batch } })
                        .projection(doc! { "_id": 1 })
                        .await?
                        .try_filter_map(|f| async move { Ok(f.get_object_id("_id").ok()) })
                        .try_collect()
                        .await?;
                    kept.extend(ids);
                }
                let abandoned: Vec<ObjectId> =
                    batch.drain(..).filter(|id| !kept.contains(id)).collect();
                if !abandoned.is_empty() {
                    chunks
                        .delete_many(doc! { "files_id": { "$in": &abandoned } })
                        .await?;
                    removed += abandoned.len() as u64;
                }
            }
            if next.is_none() {
                break;
            }
        }
        self.swept_uploads_until
            .store(begun_before.millis(), Ordering::SeqCst);
        Ok(removed)
    }

    async fn usage(&self, owner: &Owner) -> Result<u64, StoreError> {
        let mut total = 0u64;
        for GridFs { files, .. } in Bucket::KEPT.map(|bucket| self.gridfs(bucket)) {
            let mut cursor = files
                .find(doc! { "metadata.owner": owner.stored() })
                .projection(doc! { "length": 1 })
                .await?;
            while let Some(file) = cursor.try_next().await? {
                let length = match file.get("length") {
                    Some(Bson::Int64(n)) => *n as u64,
                    Some(Bson::Int32(n)) => *n as u64,
                    Some(Bson::Double(n)) => *n as u64,
                    _ => 0,
                };
                total = total.saturating_add(length);
            }
        }
        Ok(total)
    }
}
