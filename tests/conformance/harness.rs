//! The stores under test: one [`Backends`] value on the backend asked for,
//! built the way a node builds it (`Backends::connect`) on databases and
//! queues of its own, and removed again when the test ends.

use std::path::Path;

use vidaud_actors::Settings;
use vidaud_actors::backends::Backends;
use vidaud_actors::domain::{Owner, UserId};
use vidaud_actors::settings::BackendKind;

use crate::common::{self, AMQP_URL, Backend};

/// One backend's stores, on names no other test uses.
pub struct Stores {
    pub backend: Backend,
    pub settings: Settings,
    /// The stores (`None` only between a "crash" and the reopening).
    backends: Option<Backends>,
}

impl std::ops::Deref for Stores {
    type Target = Backends;
    fn deref(&self) -> &Backends {
        self.backends.as_ref().expect("the stores are open")
    }
}

impl Stores {
    pub async fn open(backend: Backend) -> Stores {
        let settings = settings(backend);
        let backends = connect(&settings, "node-1").await;
        Stores {
            backend,
            settings,
            backends: Some(backends),
        }
    }

    /// The stores as a node that starts after this one died sees them: the
    /// same data, opened anew (the embedded backend's one process per data
    /// directory lets go first).
    pub async fn restart(&mut self) {
        drop(self.backends.take());
        self.backends = Some(connect(&self.settings, "node-1").await);
    }

    /// A second node on the same data, beside this one (cluster only: the
    /// embedded backend is one process per data directory).
    pub async fn second_node(&self) -> Option<Backends> {
        match self.backend {
            Backend::Cluster => Some(connect(&self.settings, "node-2").await),
            Backend::Embedded => None,
        }
    }

    /// The name the backend gives the jobs queue (its depth's key).
    pub fn jobs_queue(&self) -> &str {
        &self.settings.queue.video_queue
    }
}

async fn connect(settings: &Settings, node: &str) -> Backends {
    let backends = Backends::connect(settings, node)
        .await
        .expect("the backend opens");
    backends
        .users
        .prepare()
        .await
        .expect("the user directory's schema");
    backends
}

fn settings(backend: Backend) -> Settings {
    let id = common::unique("c");
    let mut settings = Settings::default();
    match backend {
        Backend::Embedded => {
            settings.backend.kind = BackendKind::Embedded;
            settings.backend.data_dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
                .join(format!("conformance-{id}"))
                .display()
                .to_string();
        }
        Backend::Cluster => {
            settings.backend.kind = BackendKind::Cluster;
            settings.auth.mysql_url = "mysql://root@127.0.0.1:3306/vidaud_test".into();
            settings.storage.mongodb_uri = format!("mongodb://127.0.0.1:{}", common::mongo_port());
            settings.queue.amqp_url = AMQP_URL.into();
        }
    }
    // Names of its own on either backend (the embedded one names its
    // queues too).
    settings.storage.videos_db = format!("videos_{id}");
    settings.storage.mp3s_db = format!("mp3s_{id}");
    settings.storage.waveforms_db = format!("waveforms_{id}");
    settings.storage.jobs_db = format!("vidaud_{id}");
    settings.queue.video_queue = format!("video-{id}");
    settings.queue.mp3_queue = format!("mp3-{id}");
    settings.queue.dead_letter_queue = format!("video.dead-{id}");
    settings
}

impl Drop for Stores {
    fn drop(&mut self) {
        drop(self.backends.take());
        let settings = &self.settings;
        match self.backend {
            Backend::Embedded => {
                let _ = std::fs::remove_dir_all(&settings.backend.data_dir);
            }
            Backend::Cluster => {
                let storage = settings.storage.clone();
                common::on_a_runtime_of_its_own(async move { drop_databases(&storage).await });
                let queue = &settings.queue;
                common::remove_queues(vec![
                    queue.video_queue.clone(),
                    queue.mp3_queue.clone(),
                    queue.dead_letter_queue.clone(),
                ]);
            }
        }
    }
}

/// Drops the test's MongoDB databases.
async fn drop_databases(storage: &vidaud_actors::settings::StorageSettings) {
    let Ok(client) = mongodb::Client::with_uri_str(&storage.mongodb_uri).await else {
        return;
    };
    for db in [
        &storage.videos_db,
        &storage.mp3s_db,
        &storage.waveforms_db,
        &storage.jobs_db,
    ] {
        let _ = client.database(db).drop().await;
    }
}

/// A new account's id as an owner: what owns nothing yet in either backend.
pub fn someone() -> Owner {
    UserId::new().into()
}
