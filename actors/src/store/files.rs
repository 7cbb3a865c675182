//! Streaming GridFS reads and writes. Nothing here holds a whole file: data
//! moves in chunks between a byte stream and a GridFS stream.

use bytes::Bytes;
use futures::io::AsyncWriteExt;
use futures::{Stream, TryStreamExt};
use mongodb::Collection;
use mongodb::bson::{Bson, Document, doc, oid::ObjectId};
use mongodb::gridfs::{GridFsBucket, GridFsUploadStream};

use std::future::IntoFuture;

use super::StoreError;
use crate::metrics::timed;

/// What the service keeps about a stored file.
#[derive(Debug, Clone)]
pub struct FileInfo {
    pub id: ObjectId,
    pub length: u64,
    pub filename: String,
    pub owner: Option<String>,
    /// The MIME type recorded with the file, if any.
    pub content_type: Option<String>,
    /// Bytes per GridFS chunk (the last chunk may be shorter).
    pub chunk_size: u32,
}

/// Looks up a file's document; `None` when there is no such file.
pub async fn file_info(
    bucket: &GridFsBucket,
    id: ObjectId,
) -> Result<Option<FileInfo>, StoreError> {
    let doc = timed(
        "gridfs",
        "file_info",
        bucket.find_one(doc! { "_id": id }).into_future(),
    )
    .await?;
    Ok(doc.map(|d| FileInfo {
        id,
        length: d.length,
        owner: metadata_str(&d, "owner"),
        content_type: metadata_str(&d, "content_type"),
        chunk_size: d.chunk_size_bytes,
        filename: d.filename.unwrap_or_default(),
    }))
}

fn metadata_str(file: &mongodb::gridfs::FilesCollectionDocument, key: &str) -> Option<String> {
    file.metadata
        .as_ref()
        .and_then(|m| m.get_str(key).ok())
        .map(str::to_owned)
}

/// Deletes a file and any chunks of it, complete or not. Deleting a file
/// that does not exist is not an error: callers use this to clean up.
pub async fn delete_file(bucket: &GridFsBucket, id: ObjectId) -> Result<(), StoreError> {
    match bucket.delete(Bson::ObjectId(id)).await {
        Ok(()) => Ok(()),
        Err(e) if matches!(*e.kind, mongodb::error::ErrorKind::GridFs(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// GridFS chunks fetched per round trip when reading a file: what one
/// download holds in memory (about 1 MiB), where the driver's own download
/// stream takes batches of up to 16 MiB.
const CHUNKS_PER_BATCH: u32 = 4;

/// Streams bytes `first..=last` of a stored file (all of it without a
/// range; a range must lie within the file), a few GridFS chunks at a time,
/// reading only the chunks that hold them and checking none is missing.
/// `file` is the caller's lookup of the file: it is not read again.
pub async fn download(
    chunks: &Collection<Document>,
    file: &FileInfo,
    range: Option<(u64, u64)>,
) -> Result<impl Stream<Item = std::io::Result<Bytes>> + Send + 'static, StoreError> {
    let id = file.id;
    let chunk_size = u64::from(file.chunk_size.max(1));
    let layout = Layout {
        id,
        chunk_size,
        length: file.length,
    };
    let (first, last) = range.unwrap_or((0, file.length.saturating_sub(1)));
    let first_chunk = (first / chunk_size) as i64;
    let open = chunks
        .find(doc! { "files_id": id, "n": { "$gte": first_chunk } })
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
    Ok(futures::stream::try_unfold(
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
    ))
}

/// How a file is cut into chunks.
#[derive(Clone, Copy)]
struct Layout {
    id: ObjectId,
    chunk_size: u64,
    length: u64,
}

/// The bytes of chunk `n` of a file, checked to be that chunk and as long
/// as the file's recorded length says it must be.
fn chunk_data(chunk: &Document, file: Layout, n: i64) -> Result<Bytes, String> {
    let id = file.id;
    let number = chunk
        .get_i32("n")
        .map(i64::from)
        .or_else(|_| chunk.get_i64("n"))
        .map_err(|e| e.to_string())?;
    if number != n {
        return Err(format!("file {id} is missing chunk {n}"));
    }
    let data = chunk
        .get_binary_generic("data")
        .map_err(|e| e.to_string())?;
    let size = file.chunk_size;
    let length = file.length.saturating_sub(n as u64 * size).min(size);
    if data.len() as u64 != length {
        return Err(format!(
            "chunk {n} of file {id} holds {} bytes where its length says {length}",
            data.len()
        ));
    }
    Ok(Bytes::copy_from_slice(data))
}

/// An upload in progress. Dropping it without `finish` leaves chunks that
/// `abort` (or a later `delete_file`) removes, so callers always end with
/// one of the two.
pub struct Upload {
    stream: GridFsUploadStream,
    id: ObjectId,
    written: u64,
    limit: u64,
}

impl Upload {
    /// Opens an upload to `id` (a fresh id when `None`), refusing to grow
    /// past `limit` bytes.
    pub async fn open(
        bucket: &GridFsBucket,
        id: Option<ObjectId>,
        filename: &str,
        metadata: Document,
        limit: u64,
    ) -> Result<Self, StoreError> {
        let id = id.unwrap_or_default();
        let stream = bucket
            .open_upload_stream(filename)
            .id(Bson::ObjectId(id))
            .metadata(metadata)
            .await?;
        Ok(Self {
            stream,
            id,
            written: 0,
            limit,
        })
    }

    pub fn id(&self) -> ObjectId {
        self.id
    }

    pub fn written(&self) -> u64 {
        self.written
    }

    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), StoreError> {
        self.written += chunk.len() as u64;
        if self.written > self.limit {
            return Err(StoreError::TooLarge { limit: self.limit });
        }
        timed("gridfs", "write", self.stream.write_all(chunk)).await?;
        Ok(())
    }

    /// Writes the files document: the file becomes visible.
    pub async fn finish(mut self) -> Result<ObjectId, StoreError> {
        timed("gridfs", "finish_upload", self.stream.close()).await?;
        Ok(self.id)
    }

    /// Removes every chunk written so far.
    pub async fn abort(mut self) -> Result<(), StoreError> {
        self.stream.abort().await?;
        Ok(())
    }
}

impl super::Store {
    pub async fn video_info(&self, id: ObjectId) -> Result<Option<FileInfo>, StoreError> {
        file_info(&self.videos, id).await
    }

    /// An audio file's document, from memory when it was read before (see
    /// `info_cache`).
    pub async fn mp3_info(&self, id: ObjectId) -> Result<Option<FileInfo>, StoreError> {
        if let Some(info) = self.mp3_infos.get(id) {
            return Ok(Some(info));
        }
        let info = file_info(&self.mp3s, id).await?;
        if let Some(info) = &info {
            self.mp3_infos.put(info);
        }
        Ok(info)
    }

    pub async fn delete_video(&self, id: ObjectId) -> Result<(), StoreError> {
        delete_file(&self.videos, id).await
    }

    pub async fn delete_mp3(&self, id: ObjectId) -> Result<(), StoreError> {
        self.mp3_infos.forget(id);
        delete_file(&self.mp3s, id).await
    }

    /// Bytes `owner` keeps: finished uploads plus converted audio.
    pub async fn usage(&self, owner: &str) -> Result<u64, StoreError> {
        let mut total = 0u64;
        for files in [&self.video_files, &self.mp3_files] {
            let mut cursor = files
                .find(doc! { "metadata.owner": owner })
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

    /// The video `file` (from [`Self::video_info`]), whole.
    pub async fn download_video(
        &self,
        file: &FileInfo,
    ) -> Result<impl Stream<Item = std::io::Result<Bytes>> + Send + 'static, StoreError> {
        download(&self.video_chunks, file, None).await
    }

    /// The audio `file` (from [`Self::mp3_info`]), or bytes `first..=last` of
    /// it. `Gone` when the file was deleted since (it is forgotten then).
    pub async fn download_mp3(
        &self,
        file: &FileInfo,
        range: Option<(u64, u64)>,
    ) -> Result<impl Stream<Item = std::io::Result<Bytes>> + Send + 'static, StoreError> {
        let stream = download(&self.mp3_chunks, file, range).await;
        if let Err(StoreError::Gone { id }) = &stream {
            self.mp3_infos.forget(*id);
        }
        stream
    }
}
