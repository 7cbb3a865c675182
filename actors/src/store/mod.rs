//! Storage in MongoDB: the two GridFS buckets (`videos`, `mp3s`) and the
//! `jobs` collection.
//!
//! Everything here is a single-document operation, so it is atomic on a
//! standalone mongod as well as on a replica set; job state changes are
//! compare-and-set on the record's current state, which is what makes a
//! redelivered message harmless.

mod files;
mod indexes;
mod info_cache;
mod jobs;
mod retention;

pub use files::{FileInfo, Upload};
pub use jobs::Claim;
pub use retention::spawn_sweeper;

use mongodb::bson::Document;
use mongodb::gridfs::GridFsBucket;
use mongodb::{Client, Collection};

use crate::job::JobRecord;
use crate::settings::StorageSettings;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("MongoDB: {0}")]
    Mongo(#[from] mongodb::error::Error),
    #[error("file I/O while streaming: {0}")]
    Io(#[from] std::io::Error),
    #[error("upload is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("the upload would exceed the owner's storage quota of {quota} bytes")]
    QuotaExceeded { quota: u64 },
    /// The file was deleted (or is not as its document says) since its
    /// document was read.
    #[error("file {id} is gone")]
    Gone { id: mongodb::bson::oid::ObjectId },
}

/// A handle to the node's MongoDB storage; cheap to clone.
#[derive(Clone)]
pub struct Store {
    client: Client,
    videos: GridFsBucket,
    mp3s: GridFsBucket,
    /// The buckets' chunk collections, read directly for bounded downloads.
    video_chunks: Collection<Document>,
    mp3_chunks: Collection<Document>,
    /// The buckets' file collections, read directly for per-owner usage.
    video_files: Collection<Document>,
    mp3_files: Collection<Document>,
    jobs: Collection<JobRecord>,
    mp3_infos: std::sync::Arc<info_cache::InfoCache>,
}

impl Store {
    pub async fn connect(settings: &StorageSettings) -> Result<Self, StoreError> {
        let mut options = mongodb::options::ClientOptions::parse(&settings.mongodb_uri).await?;
        options.app_name.get_or_insert_with(|| "vidaud".to_owned());
        // Fail a request fast when the server is away (the default is 30 s),
        // so callers can answer 503 and reconnect loops report promptly.
        options
            .server_selection_timeout
            .get_or_insert(std::time::Duration::from_secs(5));
        let client = Client::with_options(options)?;
        let (videos, mp3s) = (
            client.database(&settings.videos_db),
            client.database(&settings.mp3s_db),
        );
        let store = Self {
            videos: videos.gridfs_bucket(None),
            mp3s: mp3s.gridfs_bucket(None),
            video_chunks: videos.collection("fs.chunks"),
            mp3_chunks: mp3s.collection("fs.chunks"),
            video_files: videos.collection("fs.files"),
            mp3_files: mp3s.collection("fs.files"),
            jobs: client.database(&settings.jobs_db).collection("jobs"),
            mp3_infos: std::sync::Arc::new(info_cache::InfoCache::new()),
            client,
        };
        store.ping().await?;
        // A node without its indexes still works, slower: say so, go on.
        if let Err(e) = store.ensure_indexes().await {
            tracing::warn!("could not create MongoDB indexes: {e}");
        }
        Ok(store)
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        self.client
            .database("admin")
            .run_command(mongodb::bson::doc! { "ping": 1 })
            .await?;
        Ok(())
    }

    pub fn videos(&self) -> &GridFsBucket {
        &self.videos
    }

    pub fn mp3s(&self) -> &GridFsBucket {
        &self.mp3s
    }
}
