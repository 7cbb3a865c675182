//! The indexes vidaud's queries need, created when a node connects
//! (creating one that exists is a no-op). Without them every upload's usage
//! sum scans all files' documents, every listing and retention sweep all
//! jobs. The GridFS driver makes the two GridFS indexes itself, but only
//! once per bucket handle and only while a bucket is empty: storage that
//! was replaced under a running node, or restored without them, would
//! otherwise read every chunk a download or conversion asks for by scan.

use mongodb::bson::{Document, doc};
use mongodb::options::IndexOptions;
use mongodb::{Collection, IndexModel};

use super::job_doc::JobDoc;
use super::{GridFs, Mongo};
use crate::backends::{Bucket, StoreError};

impl Mongo {
    pub(super) async fn ensure_indexes(&self) -> Result<(), StoreError> {
        for GridFs { files, chunks, .. } in Bucket::ALL.map(|bucket| self.gridfs(bucket)) {
            create(files, doc! { "filename": 1, "uploadDate": 1 }, false).await?;
            create(files, doc! { "metadata.owner": 1 }, false).await?;
            create(chunks, doc! { "files_id": 1, "n": 1 }, true).await?;
        }
        let jobs: &Collection<JobDoc> = &self.jobs;
        create(jobs, doc! { "owner": 1, "_id": -1 }, false).await?;
        create(jobs, doc! { "state": 1, "updated_at": 1 }, false).await?;
        create(jobs, doc! { "created_at": 1 }, false).await?;
        create(&self.uploads, doc! { "expires_at": 1 }, false).await?;
        create(
            &self.segment_records,
            doc! { "job_id": 1, "index": 1 },
            true,
        )
        .await?;
        create(&self.uploads, doc! { "owner": 1, "queued": 1 }, false).await?;
        create(
            &self.webhook_endpoints,
            doc! { "owner": 1, "_id": 1 },
            false,
        )
        .await?;
        let deliveries = &self.webhook_deliveries;
        create(deliveries, doc! { "state": 1, "next_at": 1 }, false).await?;
        create(
            deliveries,
            doc! { "target": 1, "state": 1, "created_at": 1 },
            false,
        )
        .await?;
        create(deliveries, doc! { "endpoint": 1 }, false).await?;
        create(deliveries, doc! { "target": 1, "created_at": -1 }, false).await?;
        Ok(())
    }
}

async fn create<T: Send + Sync>(
    collection: &Collection<T>,
    keys: Document,
    unique: bool,
) -> Result<(), StoreError> {
    let options = IndexOptions::builder()
        .unique(unique.then_some(true))
        .build();
    let index = IndexModel::builder().keys(keys).options(options).build();
    collection.create_index(index).await?;
    Ok(())
}
