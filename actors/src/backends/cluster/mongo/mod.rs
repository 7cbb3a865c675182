//! The cluster's storage in MongoDB: the GridFS buckets (`videos`, `mp3s`,
//! default bucket `fs`, the reference's layout; and `waveforms`), the `jobs`
//! collection, the resumable uploads' records (`uploads`), the uploads'
//! reservations (`reservations`) and webhooks.
//!
//! Everything here is a single-document operation, so it is atomic on a
//! standalone mongod as well as on a replica set; job state changes are
//! compare-and-set on the record's current state, which is what makes a
//! redelivered message harmless.

mod carry_over;
mod files;
mod indexes;
mod info_cache;
mod job_doc;
mod jobs;
mod reservations;
mod resumable;
mod segments;
mod uploads;
mod webhooks;

use mongodb::bson::Document;
use mongodb::bson::oid::ObjectId;
use mongodb::gridfs::GridFsBucket;
use mongodb::{Client, Collection};

use crate::backends::{Bucket, StoreError};
use crate::domain::Id;
use crate::settings::StorageSettings;
use job_doc::JobDoc;

const BACKEND: &str = "MongoDB";

impl From<mongodb::error::Error> for StoreError {
    fn from(e: mongodb::error::Error) -> Self {
        // A server out of disk says so (code 14031, OutOfDiskSpace, or the
        // system's "No space left on device"): storage full, not away.
        let text = e.to_string();
        if text.contains("OutOfDiskSpace") || text.contains("No space left on device") {
            return StoreError::Full(std::io::Error::new(std::io::ErrorKind::StorageFull, e));
        }
        StoreError::backend(BACKEND, e)
    }
}

/// The driver's id for one of ours: the same 12 bytes.
fn oid<K>(id: Id<K>) -> ObjectId {
    ObjectId::from_bytes(id.bytes())
}

fn from_oid<K: crate::domain::IdKind>(id: ObjectId) -> Id<K> {
    Id::from_bytes(id.bytes())
}

/// One GridFS bucket and the two collections behind it, read directly for
/// bounded downloads and per-owner usage.
#[derive(Clone)]
struct GridFs {
    bucket: GridFsBucket,
    chunks: Collection<Document>,
    files: Collection<Document>,
}

impl GridFs {
    /// The database's default bucket (`fs`).
    fn new(db: &mongodb::Database) -> Self {
        Self::named(db, "fs")
    }

    fn named(db: &mongodb::Database, name: &str) -> Self {
        let options = mongodb::options::GridFsBucketOptions::builder()
            .bucket_name(name.to_owned())
            .build();
        Self {
            bucket: db.gridfs_bucket(options),
            chunks: db.collection(&format!("{name}.chunks")),
            files: db.collection(&format!("{name}.files")),
        }
    }
}

/// A handle to the cluster's MongoDB storage; cheap to clone.
#[derive(Clone)]
pub struct Mongo {
    client: Client,
    videos: GridFs,
    mp3s: GridFs,
    waveforms: GridFs,
    /// A split job's segments and their waveforms, as named buckets in
    /// the `mp3s` database.
    segments: GridFs,
    segment_waveforms: GridFs,
    jobs: Collection<JobDoc>,
    /// A split job's segments (see segments.rs).
    segment_records: Collection<segments::SegmentDoc>,
    /// Resumable uploads' records, beside `jobs` (raw documents: see uploads.rs).
    uploads: Collection<Document>,
    /// Webhooks, beside `jobs` (see webhooks.rs).
    webhook_endpoints: Collection<webhooks::EndpointDoc>,
    webhook_deliveries: Collection<webhooks::DeliveryDoc>,
    webhook_targets: Collection<Document>,
    /// Room held by uploads in progress, one document per owner.
    reservations: Collection<reservations::OwnerDoc>,
    mp3_infos: std::sync::Arc<info_cache::InfoCache>,
    /// This node's id: the holds it takes on resumable uploads name it, so
    /// that a restarted node can let go of its previous life's holds.
    node_id: String,
    /// Upload ids minted before this (ms) were looked at by an earlier
    /// sweep for abandoned uploads; 0 at start: the first sweep sees all.
    swept_uploads_until: std::sync::Arc<std::sync::atomic::AtomicI64>,
}

impl Mongo {
    pub async fn connect(settings: &StorageSettings, node_id: &str) -> Result<Self, StoreError> {
        let mut options = mongodb::options::ClientOptions::parse(&settings.mongodb_uri).await?;
        options.app_name.get_or_insert_with(|| "vidaud".to_owned());
        // Fail a request fast when the server is away (the default is 30 s),
        // so callers can answer 503 and reconnect loops report promptly.
        options
            .server_selection_timeout
            .get_or_insert(std::time::Duration::from_secs(5));
        let client = Client::with_options(options)?;
        // Jobs, uploads, reservations and webhooks live side by side.
        let jobs_db = client.database(&settings.jobs_db);
        let store = Self {
            videos: GridFs::new(&client.database(&settings.videos_db)),
            mp3s: GridFs::new(&client.database(&settings.mp3s_db)),
            waveforms: GridFs::new(&client.database(&settings.waveforms_db)),
            segments: GridFs::named(&client.database(&settings.mp3s_db), "segments"),
            segment_waveforms: GridFs::named(
                &client.database(&settings.mp3s_db),
                "segment_waveforms",
            ),
            jobs: jobs_db.collection("jobs"),
            segment_records: jobs_db.collection("segments"),
            uploads: jobs_db.collection("uploads"),
            webhook_endpoints: jobs_db.collection("webhook_endpoints"),
            webhook_deliveries: jobs_db.collection("webhook_deliveries"),
            webhook_targets: jobs_db.collection("webhook_targets"),
            reservations: jobs_db.collection("reservations"),
            mp3_infos: std::sync::Arc::new(info_cache::InfoCache::new()),
            swept_uploads_until: std::sync::Arc::default(),
            node_id: node_id.to_owned(),
            client,
        };
        store.ping().await?;
        store.release_upload_holds().await?;
        // A node without its indexes still works, slower: say so, go on.
        if let Err(e) = store.ensure_indexes().await {
            tracing::warn!(
                "could not create MongoDB indexes: {}",
                crate::backends::chain(&e)
            );
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

    fn gridfs(&self, bucket: Bucket) -> &GridFs {
        match bucket {
            Bucket::Videos => &self.videos,
            Bucket::Audio => &self.mp3s,
            Bucket::Waveforms => &self.waveforms,
            Bucket::Segments => &self.segments,
            Bucket::SegmentWaveforms => &self.segment_waveforms,
        }
    }
}
