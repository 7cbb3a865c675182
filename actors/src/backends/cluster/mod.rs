//! The cluster backend: many nodes sharing MongoDB (GridFS `videos` and
//! `mp3s`, the `jobs` collection), RabbitMQ (queues `video`, `mp3`,
//! `video.dead`, the `vidaud.events` exchange) and MySQL (the reference's
//! `users` table). Wire-compatible with the reference system.
//!
//! Architecture Invariant: this folder is the only place that names
//! MongoDB, RabbitMQ or MySQL types; what leaves it is the domain's.

mod mongo;
mod mysql;
mod rabbitmq;

use std::sync::Arc;

use async_trait::async_trait;

use super::{Backends, Check, Part, connect_with_backoff};
use crate::settings::Settings;
use mongo::Mongo;
use mysql::MysqlUsers;
use rabbitmq::{Broker, RabbitEvents};

/// Connects to MongoDB and RabbitMQ, retrying with capped backoff (a
/// dependency still starting delays the node, it does not kill it). MySQL
/// is not needed to start: the directory makes its schema on first use.
pub async fn connect(settings: &Settings, node_id: &str) -> Result<Backends, super::BuildError> {
    let mongo =
        connect_with_backoff("MongoDB", || Mongo::connect(&settings.storage, node_id)).await;
    let broker =
        connect_with_backoff("RabbitMQ", || Broker::connect(&settings.queue, node_id)).await;
    let users = Arc::new(MysqlUsers::new(&settings.auth.mysql_url)?);
    let mongo = Arc::new(mongo);
    tokio::spawn(prepare_users(users.clone(), mongo.clone()));
    let broker = Arc::new(broker);
    let space = Arc::new(super::Space::new(std::time::Duration::from_secs(
        settings.transcoder.room_wait_secs,
    )));
    let checks: Vec<Arc<dyn Check>> = vec![
        Arc::new(MongoCheck(mongo.clone())),
        Arc::new(RabbitCheck(broker.clone())),
        Arc::new(MysqlCheck(users.clone())),
        Arc::new(super::SpaceCheck(space.clone())),
    ];
    Ok(Backends {
        kind: "cluster",
        jobs: mongo.clone(),
        uploads: mongo.clone(),
        reservations: mongo.clone(),
        webhooks: mongo.clone(),
        segments: mongo.clone(),
        blobs: mongo,
        events: Arc::new(RabbitEvents::start(broker.as_ref().clone())),
        queue: broker,
        users,
        checks: checks.into(),
        space,
    })
}

/// Makes the users' schema (every user with its id), then carries data
/// owned by e-mail over to ids, retrying both until MySQL answers (login
/// and register answer 503 meanwhile).
async fn prepare_users(users: Arc<MysqlUsers>, mongo: Arc<Mongo>) {
    use super::UserDirectory;
    let moved = connect_with_backoff(
        "MySQL (login and register answer 503 until it is)",
        || async {
            users.prepare().await?;
            mongo.carry_over_owners(users.as_ref()).await
        },
    )
    .await;
    if moved > 0 {
        tracing::info!(moved, "data owned by e-mail now owned by user ids");
    }
}

/// Connects to MySQL only: what `vidaud user` needs.
pub fn user_directory(
    settings: &Settings,
) -> Result<Arc<dyn super::UserDirectory>, super::BuildError> {
    Ok(Arc::new(MysqlUsers::new(&settings.auth.mysql_url)?))
}

struct MongoCheck(Arc<Mongo>);

#[async_trait]
impl Check for MongoCheck {
    fn name(&self) -> &'static str {
        "mongodb"
    }
    fn serves(&self) -> &'static [Part] {
        &[Part::Jobs, Part::Files]
    }
    async fn up(&self) -> bool {
        self.0.ping().await.is_ok()
    }
}

struct RabbitCheck(Arc<Broker>);

#[async_trait]
impl Check for RabbitCheck {
    fn name(&self) -> &'static str {
        "rabbitmq"
    }
    fn serves(&self) -> &'static [Part] {
        &[Part::Queue]
    }
    async fn up(&self) -> bool {
        self.0.check().await
    }
}

struct MysqlCheck(Arc<MysqlUsers>);

#[async_trait]
impl Check for MysqlCheck {
    fn name(&self) -> &'static str {
        "mysql"
    }
    fn serves(&self) -> &'static [Part] {
        &[Part::Users]
    }
    async fn up(&self) -> bool {
        self.0.ping().await.is_ok()
    }
}
