//! The embedded backend: one node and nothing else. Under the data
//! directory: `vidaud.db` (SQLite: users, jobs, the durable queue, the
//! files' records), `files/` (the videos and audio), and a lock so that
//! two processes never share it. Events stay in the process.
//!
//! Architecture Invariant: this folder is the only place that names SQLite
//! (rusqlite) types; what leaves it is the domain's.

mod db;
mod files;
mod jobs;
mod queue;
mod reservations;
mod segments;
mod uploads;
mod users;
mod webhooks;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use tracing::info;

use super::{Backends, Check, EventBus, LocalFeed, Part, QueueError};
use crate::domain::JobEvent;
use crate::settings::Settings;
use db::Db;
use files::LocalFiles;
use queue::SqliteQueue;

/// A data directory that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error("cannot prepare the data directory {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the data directory {path} is in use by another vidaud process \
         (one node per data directory)"
    )]
    InUse { path: PathBuf },
    #[error("cannot open the database {path}")]
    Database {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("cannot clean up after a crash in {path}")]
    Sweep {
        path: PathBuf,
        #[source]
        source: super::StoreError,
    },
    #[error("cannot open the job queue")]
    Queue(#[source] QueueError),
}

/// Opens the data directory the settings name (creating it) and builds
/// the backends on it.
pub fn open(settings: &Settings, node_id: &str) -> Result<Backends, DataDirError> {
    let root = PathBuf::from(&settings.backend.data_dir);
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| DataDirError::Io { path, source }
    };
    std::fs::create_dir_all(&root).map_err(io(&root))?;
    let lock = lock(&root)?;
    let db_path = root.join("vidaud.db");
    let db = Db::open(&db_path).map_err(|source| DataDirError::Database {
        path: db_path.clone(),
        source,
    })?;
    let files_root = root.join("files");
    let files = LocalFiles::open(files_root.clone(), db.clone()).map_err(io(&files_root))?;
    files
        .sweep_orphans()
        .map_err(|source| DataDirError::Sweep {
            path: files_root,
            source,
        })?;
    // One process per data directory: a hold on an upload is a request of
    // a process that is gone.
    db.release_upload_holds()
        .map_err(|source| DataDirError::Database {
            path: db_path.clone(),
            source,
        })?;
    let queue =
        SqliteQueue::open(db.clone(), &settings.queue, node_id).map_err(DataDirError::Queue)?;
    info!(data_dir = %root.display(), "embedded backend: SQLite and local files");
    let lock = Arc::new(lock);
    let space = Arc::new(super::Space::new(std::time::Duration::from_secs(
        settings.transcoder.room_wait_secs,
    )));
    let checks: Vec<Arc<dyn Check>> = vec![
        Arc::new(SqliteCheck(db.clone())),
        Arc::new(DataDirCheck {
            root: root.clone(),
            _lock: lock,
        }),
        Arc::new(super::SpaceCheck(space.clone())),
    ];
    Ok(Backends {
        kind: "embedded",
        jobs: Arc::new(db.clone()),
        blobs: Arc::new(files),
        queue: Arc::new(queue),
        events: Arc::new(InProcessEvents::default()),
        users: Arc::new(db.clone()),
        reservations: Arc::new(db.clone()),
        webhooks: Arc::new(db.clone()),
        segments: Arc::new(db.clone()),
        uploads: Arc::new(db),
        checks: checks.into(),
        space,
    })
}

/// Only the user directory (`vidaud user`): opens the database, which
/// SQLite lets a running node share.
pub fn user_directory(settings: &Settings) -> Result<Arc<dyn super::UserDirectory>, DataDirError> {
    let root = PathBuf::from(&settings.backend.data_dir);
    std::fs::create_dir_all(&root).map_err(|source| DataDirError::Io {
        path: root.clone(),
        source,
    })?;
    let path = root.join("vidaud.db");
    let db = Db::open(&path).map_err(|source| DataDirError::Database { path, source })?;
    Ok(Arc::new(db))
}

/// Takes the data directory's lock (held while the process lives).
fn lock(root: &Path) -> Result<std::fs::File, DataDirError> {
    let path = root.join("lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| DataDirError::Io {
            path: path.clone(),
            source,
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(DataDirError::InUse {
            path: root.to_owned(),
        }),
        Err(std::fs::TryLockError::Error(source)) => Err(DataDirError::Io { path, source }),
    }
}

/// Events reach only this process's watchers: there is one node.
#[derive(Default)]
struct InProcessEvents {
    feed: LocalFeed,
}

#[async_trait]
impl EventBus for InProcessEvents {
    async fn publish(&self, event: &JobEvent) -> Result<(), QueueError> {
        self.feed.send(event.clone());
        Ok(())
    }

    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<super::Feed> {
        self.feed.subscribe()
    }
}

struct SqliteCheck(Db);

#[async_trait]
impl Check for SqliteCheck {
    fn name(&self) -> &'static str {
        "sqlite"
    }
    fn serves(&self) -> &'static [Part] {
        &[Part::Jobs, Part::Files, Part::Queue, Part::Users]
    }
    async fn up(&self) -> bool {
        self.0
            .call("ping", |conn| conn.query_row("SELECT 1", [], |_| Ok(())))
            .await
            .is_ok()
    }
}

struct DataDirCheck {
    root: PathBuf,
    /// The lock lives as long as the backends do.
    _lock: Arc<std::fs::File>,
}

#[async_trait]
impl Check for DataDirCheck {
    fn name(&self) -> &'static str {
        "data_dir"
    }
    fn serves(&self) -> &'static [Part] {
        &[Part::Files]
    }
    async fn up(&self) -> bool {
        tokio::fs::metadata(self.root.join("files"))
            .await
            .is_ok_and(|m| m.is_dir())
    }
}

#[cfg(test)]
mod tests;
