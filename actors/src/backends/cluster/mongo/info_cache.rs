//! What a download needs to know of a stored audio file (owner, length,
//! name, chunk size), kept in memory so that serving a file costs MongoDB
//! one query (its chunks) instead of two. Under load the database is the
//! bottleneck of a download (measured: two thirds of its cost was the
//! file-document lookup and the chunk read together).
//!
//! Safe because a file id names one stored file for good: GridFS files are
//! written once, and nothing in vidaud renames them or changes their owner.
//! A file deleted since it was cached (on this node or another) is noticed
//! by its download: its chunks are gone, the download answers 404 and the
//! entry is forgotten. Deletes on this node forget it at once.

use std::num::NonZeroUsize;
use std::sync::Mutex;

use crate::backends::FileInfo;
use crate::domain::FileId;
use lru::LruCache;

/// Entries kept: a few hundred bytes each, so about a megabyte at most.
const CAPACITY: NonZeroUsize = NonZeroUsize::new(4096).unwrap();

pub struct InfoCache {
    entries: Mutex<LruCache<FileId, FileInfo>>,
}

impl InfoCache {
    pub fn new() -> Self {
        Self {
            entries: Mutex::new(LruCache::new(CAPACITY)),
        }
    }

    pub fn get(&self, id: FileId) -> Option<FileInfo> {
        self.lock().get(&id).cloned()
    }

    pub fn put(&self, info: &FileInfo) {
        self.lock().put(info.id, info.clone());
    }

    pub fn forget(&self, id: FileId) {
        self.lock().pop(&id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<FileId, FileInfo>> {
        // A panic while holding the lock cannot leave the map half-changed
        // in a way that matters (entries are whole values): keep using it.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
