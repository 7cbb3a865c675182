//! The integration-test harness: real vidaud daemons against the real
//! servers that `scripts/test` provides (RabbitMQ, MariaDB, SecantusDB, an
//! SMTP sink writing a Maildir). Every node group gets its own queues and
//! databases, so tests run side by side without seeing each other's jobs.
//!
//! A node runs on either backend ([`Backend`]): the cluster one on those
//! servers, or the embedded one on a data directory of its own. What a test
//! checks of storage (files kept, job records, queue depths) goes through
//! backend-neutral methods here, so one test body serves both; the
//! [`both_backends!`] macro runs it once on each.

#![allow(dead_code)]

pub mod api;
pub mod disk;
pub mod media;
pub mod proxy;

use std::collections::HashSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use mongodb::bson::{Bson, Document, doc};
use serde_json::Value;

pub use api::Api;

/// The secret every test node signs with, so tests can forge tokens.
pub const JWT_SECRET: &str = "integration-test-secret-0123456789abcdef";

/// A token signed with `secret` for `username`, expiring `exp_offset`
/// seconds from now, with the given `admin` claim.
pub fn forge_token(secret: &str, username: &str, exp_offset: i64, admin: bool) -> String {
    let now = jsonwebtoken::get_current_timestamp() as i64;
    let claims = serde_json::json!({
        "username": username, "iat": now, "exp": now + exp_offset, "admin": admin,
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("encode")
}
pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

pub fn mongo_port() -> u16 {
    env_or("VIDAUD_TEST_MONGO_PORT", 27117)
}

pub fn smtp_port() -> u16 {
    env_or("VIDAUD_TEST_SMTP_PORT", 2625)
}

pub fn maildir() -> PathBuf {
    std::env::var("VIDAUD_TEST_MAILDIR")
        .map(PathBuf::from)
        .expect("VIDAUD_TEST_MAILDIR is not set: run the suite with scripts/test")
}

fn env_or(name: &str, default: u16) -> u16 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A name no other test (or earlier run) uses.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}{}x{n}x{nanos:x}", std::process::id())
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

/// Which backend a test node runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Cluster,
    Embedded,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Cluster => "cluster",
            Backend::Embedded => "embedded",
        }
    }
}

/// Runs one async test body on both backends: `both_backends!(name, |backend| async move { .. })`
/// makes `name::cluster` and `name::embedded`.
#[macro_export]
macro_rules! both_backends {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread")]
            async fn cluster() {
                ($body)($crate::common::Backend::Cluster).await
            }
            #[tokio::test(flavor = "multi_thread")]
            async fn embedded() {
                ($body)($crate::common::Backend::Embedded).await
            }
        }
    };
}

/// The kinds of stored file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Files {
    Videos,
    Audio,
    Waveforms,
}

#[derive(Clone)]
pub struct NodeOptions {
    pub backend: Backend,
    pub workers: usize,
    pub max_upload_bytes: u64,
    /// MongoDB port; the suite's SecantusDB when `None`.
    pub mongo_port: Option<u16>,
    /// Further `VIDAUD_*` settings.
    pub env: Vec<(&'static str, String)>,
    /// A configuration file of the test's own; then `workers` comes from it.
    pub config: Option<PathBuf>,
}

impl Default for NodeOptions {
    fn default() -> Self {
        Self {
            backend: Backend::Cluster,
            workers: 2,
            max_upload_bytes: 512 * 1024 * 1024,
            mongo_port: None,
            env: Vec::new(),
            config: None,
        }
    }
}

impl NodeOptions {
    pub fn with(mut self, key: &'static str, value: impl ToString) -> Self {
        self.env.push((key, value.to_string()));
        self
    }

    pub fn on(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }
}

/// Names of a node group's queues and databases.
#[derive(Clone)]
pub struct Names {
    /// The embedded backend's data directory (nodes of a group share it
    /// only one after the other: one node per data directory).
    pub data_dir: PathBuf,
    pub video_queue: String,
    pub mp3_queue: String,
    pub dead_letter_queue: String,
    pub videos_db: String,
    pub mp3s_db: String,
    pub waveforms_db: String,
    pub jobs_db: String,
}

impl Names {
    pub fn fresh() -> Names {
        let id = unique("t");
        Names {
            data_dir: Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("data-{id}")),
            video_queue: format!("video-{id}"),
            mp3_queue: format!("mp3-{id}"),
            dead_letter_queue: format!("video.dead-{id}"),
            videos_db: format!("videos_{id}"),
            mp3s_db: format!("mp3s_{id}"),
            waveforms_db: format!("waveforms_{id}"),
            jobs_db: format!("vidaud_{id}"),
        }
    }
}

pub struct Node {
    child: Child,
    /// Its HTTP API (`Node` derefs to it: `node.login(..)`, `node.base`).
    api: Api,
    pub names: Names,
    pub log: PathBuf,
    pub options: NodeOptions,
    port: u16,
    /// Whether dropping the node deletes the group's queues (one node of a
    /// group does).
    owns_queues: bool,
    /// Ends the whole test binary, with what the node logged, when the
    /// node outlives any test's need: a hang fails here, not at CI's limit.
    watchdog: Watchdog,
}

/// The settings a test node of `names`' group runs with, as `VIDAUD_*`
/// variables, for a node that reaches the suite's servers at `host` (this
/// machine's loopback, or the address a container reaches it by). Its own
/// address, id and admin socket are the caller's.
pub fn node_env(names: &Names, options: &NodeOptions, host: &str) -> Vec<(String, String)> {
    let mongo = options.mongo_port.unwrap_or_else(mongo_port);
    let mut env: Vec<(&str, String)> = vec![
        ("VIDAUD_BACKEND__KIND", options.backend.name().into()),
        (
            "VIDAUD_BACKEND__DATA_DIR",
            names.data_dir.display().to_string(),
        ),
        (
            "VIDAUD_HTTP__MAX_UPLOAD_BYTES",
            options.max_upload_bytes.to_string(),
        ),
        (
            "VIDAUD_AUTH__MYSQL_URL",
            format!("mysql://root@{host}:3306/vidaud_test"),
        ),
        ("VIDAUD_AUTH__JWT_SECRET", JWT_SECRET.into()),
        ("VIDAUD_AUTH__ARGON2_MEMORY_KIB", "256".into()),
        ("VIDAUD_AUTH__ARGON2_ITERATIONS", "1".into()),
        ("VIDAUD_AUTH__ATTEMPTS_PER_IP_PER_MINUTE", "100000".into()),
        (
            "VIDAUD_AUTH__ATTEMPTS_PER_ACCOUNT_PER_MINUTE",
            "100000".into(),
        ),
        // SecantusDB names itself a one-member replica set at 127.0.0.1,
        // which is not where a container finds it: from elsewhere, connect
        // to it as addressed instead of to the member it names.
        (
            "VIDAUD_STORAGE__MONGODB_URI",
            if host == "127.0.0.1" {
                format!("mongodb://{host}:{mongo}")
            } else {
                format!("mongodb://{host}:{mongo}/?directConnection=true")
            },
        ),
        ("VIDAUD_STORAGE__VIDEOS_DB", names.videos_db.clone()),
        ("VIDAUD_STORAGE__MP3S_DB", names.mp3s_db.clone()),
        ("VIDAUD_STORAGE__WAVEFORMS_DB", names.waveforms_db.clone()),
        ("VIDAUD_STORAGE__JOBS_DB", names.jobs_db.clone()),
        (
            "VIDAUD_QUEUE__AMQP_URL",
            AMQP_URL.replace("127.0.0.1", host),
        ),
        ("VIDAUD_QUEUE__VIDEO_QUEUE", names.video_queue.clone()),
        ("VIDAUD_QUEUE__MP3_QUEUE", names.mp3_queue.clone()),
        (
            "VIDAUD_QUEUE__DEAD_LETTER_QUEUE",
            names.dead_letter_queue.clone(),
        ),
        ("VIDAUD_NOTIFIER__SMTP_HOST", host.into()),
        ("VIDAUD_NOTIFIER__SMTP_PORT", smtp_port().to_string()),
        // The suite's sink speaks plain SMTP (tests/mail.rs has TLS).
        ("VIDAUD_NOTIFIER__SMTP_TLS", "none".into()),
        ("VIDAUD_LOG__LEVEL", "info,vidaud_actors=debug".into()),
    ];
    if options.config.is_none() {
        env.push(("VIDAUD_TRANSCODER__WORKERS", options.workers.to_string()));
    }
    env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

impl std::ops::Deref for Node {
    type Target = Api;
    fn deref(&self) -> &Api {
        &self.api
    }
}

/// The last 40 lines of a log file.
pub fn tail_of(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

impl Node {
    pub async fn start(options: NodeOptions) -> Node {
        Self::start_named(Names::fresh(), options, true).await
    }

    /// A node on `names`' queues and databases, e.g. a second node of a group.
    pub async fn start_named(names: Names, options: NodeOptions, owns_queues: bool) -> Node {
        let port = free_port();
        let log = Self::log_path(port);
        let mut node = Node {
            watchdog: Watchdog::start(log.clone(), node_lifetime_limit()),
            child: Self::spawn(&names, &options, port),
            api: Api::new(format!("http://127.0.0.1:{port}"), {
                let log = log.clone();
                Arc::new(move || tail_of(&log))
            }),
            log,
            names,
            options,
            port,
            owns_queues,
        };
        node.watchdog.watch(&node.child);
        node.wait_healthy().await;
        node
    }

    fn socket_path(port: u16) -> PathBuf {
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("admin-{port}.sock"))
    }

    /// This node's admin socket.
    pub fn admin_socket(&self) -> PathBuf {
        Self::socket_path(self.port)
    }

    /// Runs `vidaud ctl --json --socket <ours> ARGS`: exit code and answer.
    pub fn ctl(&self, args: &[&str]) -> (i32, Value) {
        let out = Command::new(env!("CARGO_BIN_EXE_vidaud"))
            .args(["ctl", "--json", "--socket"])
            .arg(self.admin_socket())
            .args(args)
            .output()
            .expect("vidaud ctl");
        let answer = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        (out.status.code().unwrap_or(-1), answer)
    }

    fn log_path(port: u16) -> PathBuf {
        let logs = Path::new(env!("CARGO_TARGET_TMPDIR")).join("node-logs");
        std::fs::create_dir_all(&logs).expect("log dir");
        logs.join(format!("{}-{port}.log", std::process::id()))
    }

    fn spawn(names: &Names, options: &NodeOptions, port: u16) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(Self::log_path(port))
            .expect("log file");
        let config = options
            .config
            .clone()
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml"));
        let mut command = Command::new(env!("CARGO_BIN_EXE_vidaud"));
        command
            .args(["serve", "--config"])
            .arg(&config)
            .envs(node_env(names, options, "127.0.0.1"))
            .env("VIDAUD_NODE__ID", format!("n{port}"))
            .env("VIDAUD_HTTP__LISTEN", format!("127.0.0.1:{port}"))
            .env(
                "VIDAUD_HTTP__PUBLIC_URL",
                format!("http://127.0.0.1:{port}"),
            )
            .env("VIDAUD_ADMIN__SOCKET", Self::socket_path(port))
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log);
        for (key, value) in &options.env {
            command.env(key, value);
        }
        command.spawn().expect("spawning vidaud")
    }

    async fn wait_healthy(&mut self) {
        let child = &mut self.child;
        self.api
            .wait_healthy(Duration::from_secs(60), || match child.try_wait() {
                Ok(Some(status)) => Err(format!("vidaud exited during start-up ({status})")),
                _ => Ok(()),
            })
            .await;
    }

    /// Everything the node has logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The node id it runs with (`node` on the job records it converts).
    pub fn node_id(&self) -> String {
        format!("n{}", self.port)
    }

    /// Waits until some job of this group is converting (on `node`, when
    /// given) and returns its id.
    pub async fn wait_converting(&self, node: Option<&str>) -> String {
        match self.converting_within(node, Duration::from_secs(60)).await {
            Some(id) => id,
            None => panic!("no job started converting\n{}", self.log_tail()),
        }
    }

    /// A job converting now (on `node`, when given), waiting up to `limit`;
    /// `None` when none did (e.g. all are finished).
    pub async fn converting_within(&self, node: Option<&str>, limit: Duration) -> Option<String> {
        let deadline = Instant::now() + limit;
        loop {
            let jobs = self.job_records().await;
            let busy = jobs
                .iter()
                .find(|j| j["state"] == "converting" && node.is_none_or(|n| j["node"] == n));
            if let Some(job) = busy {
                return job["_id"].as_str().map(str::to_owned);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The raw job records of the group, as JSON with the stored field
    /// names (`_id`, `state`, `node`, `attempts`, ...; ids as hex).
    pub async fn job_records(&self) -> Vec<Value> {
        match self.options.backend {
            Backend::Cluster => self
                .documents(&self.names.jobs_db, "jobs")
                .await
                .into_iter()
                .map(|d| {
                    let mut json = Bson::Document(d).into_relaxed_extjson();
                    // ObjectIds as their hex, as the embedded rows hold them.
                    if let Some(fields) = json.as_object_mut() {
                        for value in fields.values_mut() {
                            if let Some(oid) = value["$oid"].as_str().map(str::to_owned) {
                                *value = oid.into();
                            }
                        }
                    }
                    json
                })
                .collect(),
            Backend::Embedded => self.sql_rows(
                "SELECT json_object('_id', id, 'state', state, 'node', node, \
                 'attempts', attempts, 'owner', owner, 'mailed', mailed, \
                 'notified', notified) FROM jobs",
            ),
        }
    }

    /// Rows of one JSON column from the embedded node's database.
    fn sql_rows(&self, sql: &str) -> Vec<Value> {
        let db = self.sqlite();
        let mut statement = db.prepare(sql).expect("prepare");
        let rows = statement
            .query_map([], |row| row.get::<_, String>(0))
            .expect("query");
        rows.map(|r| serde_json::from_str(&r.expect("row")).expect("json"))
            .collect()
    }

    /// A connection to the embedded node's database (beside the node).
    pub fn sqlite(&self) -> rusqlite::Connection {
        let db = rusqlite::Connection::open(self.names.data_dir.join("vidaud.db"))
            .expect("open vidaud.db");
        db.busy_timeout(Duration::from_secs(10))
            .expect("busy timeout");
        db
    }

    /// Runs `sql` on the user directory by hand, as an operator would:
    /// the embedded node's SQLite, or the cluster's MySQL (the `mysql`
    /// client, as root over loopback).
    pub fn users_sql(&self, sql: &str) {
        match self.options.backend {
            Backend::Embedded => {
                self.sqlite().execute_batch(sql).expect("users sql");
            }
            Backend::Cluster => {
                let status = Command::new("mysql")
                    .args(["-uroot", "-h127.0.0.1", "-P3306", "vidaud_test", "-e", sql])
                    .status()
                    .expect("run the mysql client");
                assert!(status.success(), "mysql: {sql}");
            }
        }
    }

    /// Runs one statement on the embedded node's database.
    pub fn sql_scalar(&self, sql: &str) -> i64 {
        self.sqlite()
            .query_row(sql, [], |row| row.get(0))
            .expect("sql")
    }

    /// Files of a kind stored (finished), whichever backend.
    pub async fn count_files(&self, files: Files) -> u64 {
        match self.options.backend {
            Backend::Cluster => self.count(self.files_db(files), "fs.files").await,
            Backend::Embedded => self.sql_scalar(&format!(
                "SELECT COUNT(*) FROM files WHERE bucket = '{}'",
                embedded_bucket(files)
            )) as u64,
        }
    }

    /// Job records of the group (deleted ones included), whichever backend.
    pub async fn count_jobs(&self) -> u64 {
        match self.options.backend {
            Backend::Cluster => self.count(&self.names.jobs_db, "jobs").await,
            Backend::Embedded => self.sql_scalar("SELECT COUNT(*) FROM jobs") as u64,
        }
    }

    /// Makes a job look `days` older (for the retention sweep).
    pub async fn age_job(&self, job_id: &str, days: i64) {
        let shift = days * 86_400_000;
        match self.options.backend {
            Backend::Cluster => {
                let oid = mongodb::bson::oid::ObjectId::parse_str(job_id).expect("oid");
                let old = mongodb::bson::DateTime::from_millis(
                    mongodb::bson::DateTime::now().timestamp_millis() - shift,
                );
                self.mongo()
                    .await
                    .database(&self.names.jobs_db)
                    .collection::<Document>("jobs")
                    .update_one(doc! { "_id": oid }, doc! { "$set": { "created_at": old } })
                    .await
                    .expect("age the job");
            }
            Backend::Embedded => {
                self.sqlite()
                    .execute(
                        "UPDATE jobs SET created_at = created_at - ?2 WHERE id = ?1",
                        rusqlite::params![job_id, shift],
                    )
                    .expect("age the job");
            }
        }
    }

    fn files_db(&self, files: Files) -> &str {
        match files {
            Files::Videos => &self.names.videos_db,
            Files::Audio => &self.names.mp3s_db,
            Files::Waveforms => &self.names.waveforms_db,
        }
    }

    /// Messages ready in one of the group's queues, whichever backend.
    pub async fn queue_depth(&self, queue: &str) -> u32 {
        match self.options.backend {
            Backend::Cluster => queue_depth(queue).await,
            // The embedded queue keeps the settings' names too.
            Backend::Embedded => self.sql_scalar(&format!(
                "SELECT COUNT(*) FROM messages WHERE queue = '{queue}' AND held_by IS NULL"
            )) as u32,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// kill -9: no shutdown at all.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits up to `limit` for the exit: the exit code, or
    /// `None` when it did not exit in time (it is then killed).
    pub fn terminate(&mut self, limit: Duration) -> Option<i32> {
        terminate_child(&mut self.child, limit)
    }

    /// Starts the process again with the same port, names and settings.
    pub async fn restart(&mut self) {
        if self.is_running() {
            self.kill9();
        }
        self.child = Self::spawn(&self.names, &self.options, self.port);
        self.watchdog.watch(&self.child);
        self.wait_healthy().await;
    }

    /// `vidaud user add` against this node's user store: its exit code and
    /// stderr.
    pub fn add_user(&self, email: &str, password: &str, admin: bool) -> (i32, String) {
        let mut args = vec!["add", email];
        if admin {
            args.push("--admin");
        }
        let (code, _, stderr) = self.user_cli(&args, Some(password));
        (code, stderr)
    }

    /// `vidaud user ARGS` against this node's user store, `stdin` (a
    /// password) on its first line: exit code, stdout, stderr.
    pub fn user_cli(&self, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
        let mut command = Command::new(env!("CARGO_BIN_EXE_vidaud"));
        command
            .arg("user")
            .args(args)
            .env("VIDAUD_BACKEND__KIND", self.options.backend.name())
            .env("VIDAUD_BACKEND__DATA_DIR", &self.names.data_dir)
            .env(
                "VIDAUD_AUTH__MYSQL_URL",
                "mysql://root@127.0.0.1:3306/vidaud_test",
            )
            .env("VIDAUD_AUTH__ARGON2_MEMORY_KIB", "256")
            .env("VIDAUD_AUTH__ARGON2_ITERATIONS", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("vidaud user");
        use std::io::Write;
        let mut input = child.stdin.take().expect("stdin");
        if let Some(line) = stdin {
            input
                .write_all(format!("{line}\n").as_bytes())
                .expect("stdin");
        }
        drop(input);
        let out = child.wait_with_output().expect("wait");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// The node's HTTP port (kept across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    pub async fn mongo(&self) -> mongodb::Client {
        let port = self.options.mongo_port.unwrap_or_else(mongo_port);
        mongodb::Client::with_uri_str(format!("mongodb://127.0.0.1:{port}"))
            .await
            .expect("mongodb client")
    }

    async fn documents(&self, db: &str, collection: &str) -> Vec<Document> {
        self.fields(db, collection, None).await
    }

    /// The documents of `db.collection`, reduced to `projection` when given
    /// (chunks are 255 KiB each: fetch only what is looked at).
    async fn fields(
        &self,
        db: &str,
        collection: &str,
        projection: Option<Document>,
    ) -> Vec<Document> {
        use futures::TryStreamExt;
        let collection = self
            .mongo()
            .await
            .database(db)
            .collection::<Document>(collection);
        let mut find = collection.find(doc! {});
        if let Some(projection) = projection {
            find = find.projection(projection);
        }
        find.await
            .expect("find")
            .try_collect()
            .await
            .expect("cursor")
    }

    /// Documents in `db.collection` (e.g. `fs.files`, `fs.chunks`).
    pub async fn count(&self, db: &str, collection: &str) -> u64 {
        self.mongo()
            .await
            .database(db)
            .collection::<Document>(collection)
            .count_documents(doc! {})
            .await
            .expect("count")
    }

    /// The SHA-256 (hex) of stored file `id` (hex), read from the storage
    /// itself, whichever backend.
    pub async fn stored_sha256(&self, files: Files, id: &str) -> String {
        use sha2::Digest;
        let mut hash = sha2::Sha256::new();
        match self.options.backend {
            Backend::Cluster => {
                use futures::AsyncReadExt;
                let oid = mongodb::bson::oid::ObjectId::parse_str(id).expect("oid");
                let bucket = self
                    .mongo()
                    .await
                    .database(self.files_db(files))
                    .gridfs_bucket(None);
                let mut stream = bucket
                    .open_download_stream(Bson::ObjectId(oid))
                    .await
                    .expect("open the stored file");
                let mut buffer = vec![0u8; 1 << 20];
                loop {
                    let n = stream
                        .read(&mut buffer)
                        .await
                        .expect("read the stored file");
                    if n == 0 {
                        break;
                    }
                    hash.update(&buffer[..n]);
                }
            }
            Backend::Embedded => {
                let path = self
                    .names
                    .data_dir
                    .join("files")
                    .join(embedded_bucket(files))
                    .join(&id[22..])
                    .join(id);
                let mut file = std::fs::File::open(path).expect("open the stored file");
                std::io::copy(&mut file, &mut hash).expect("read the stored file");
            }
        }
        hex(&hash.finalize())
    }

    /// Drops the group's MongoDB databases (cluster): a test that stored
    /// hundreds of MB gives the suite's in-memory SecantusDB its room back.
    pub async fn drop_databases(&self) {
        if self.options.backend != Backend::Cluster {
            return;
        }
        let client = self.mongo().await;
        for db in [
            &self.names.videos_db,
            &self.names.mp3s_db,
            &self.names.waveforms_db,
            &self.names.jobs_db,
        ] {
            let _ = client.database(db).drop().await;
        }
    }

    /// Resumable uploads the node keeps a record of, whichever backend.
    pub async fn upload_records(&self) -> u64 {
        match self.options.backend {
            Backend::Cluster => self.count(&self.names.jobs_db, "uploads").await,
            Backend::Embedded => self.sql_scalar("SELECT COUNT(*) FROM uploads") as u64,
        }
    }

    /// Asserts no file of a kind is kept: no GridFS file and no stray
    /// chunk (cluster); no file record, no file on disk and no partial
    /// write (embedded).
    pub async fn assert_no_files(&self, files: Files, why: &str) {
        let (ids, pieces) = self.file_ids(files).await;
        assert!(ids.is_empty(), "{why}: {files:?} files left: {ids:?}");
        assert!(
            pieces.is_empty(),
            "{why}: {files:?} pieces left: {pieces:?}"
        );
    }

    /// Whether file `id` (hex) of a kind is stored, whichever backend.
    pub async fn has_file(&self, files: Files, id: &str) -> bool {
        self.file_ids(files).await.0.contains(id)
    }

    /// Removes a stored file the way another node (cluster: its GridFS
    /// delete) or a failing disk (embedded: the file vanishes) would,
    /// without this node knowing.
    pub async fn remove_file_behind_its_back(&self, files: Files, id: &str) {
        match self.options.backend {
            Backend::Cluster => {
                let oid = mongodb::bson::oid::ObjectId::parse_str(id).expect("oid");
                self.mongo()
                    .await
                    .database(self.files_db(files))
                    .gridfs_bucket(None)
                    .delete(Bson::ObjectId(oid))
                    .await
                    .expect("delete behind the node's back");
            }
            Backend::Embedded => {
                let dir = self
                    .names
                    .data_dir
                    .join("files")
                    .join(embedded_bucket(files))
                    .join(&id[22..]);
                std::fs::remove_file(dir.join(id)).expect("remove the file");
            }
        }
    }

    /// Starts an upload over a raw connection that announces a body of
    /// `content_length` bytes and sends the part's head and the first
    /// `send` bytes of the file; the caller holds it, cuts it off, or the
    /// node dies.
    pub fn start_raw_upload(
        &self,
        token: &str,
        content_length: u64,
        send: usize,
    ) -> std::net::TcpStream {
        use std::io::Write;
        let address = self.base.trim_start_matches("http://").to_owned();
        let head = format!(
            "POST /upload HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: multipart/form-data; boundary=B\r\nContent-Length: {content_length}\r\n\r\n\
             --B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"cut.mp4\"\r\n\r\n"
        );
        let mut stream = std::net::TcpStream::connect(&address).expect("connect");
        stream.write_all(head.as_bytes()).expect("head");
        let chunk = vec![7u8; 1 << 20];
        let mut left = send;
        while left > 0 {
            let n = left.min(chunk.len());
            stream.write_all(&chunk[..n]).expect("body");
            left -= n;
        }
        stream
    }

    /// Files of a kind (hex ids, finished) and the ids their stored pieces
    /// belong to (GridFS chunks; embedded: files on disk and `partial:`
    /// writes), whichever backend.
    pub async fn file_ids(&self, files: Files) -> (HashSet<String>, HashSet<String>) {
        match self.options.backend {
            Backend::Cluster => {
                let db = self.files_db(files);
                let docs = self.documents(db, "fs.files").await;
                let chunks = self
                    .fields(db, "fs.chunks", Some(doc! { "files_id": 1 }))
                    .await;
                let ids = docs
                    .iter()
                    .filter_map(|f| f.get_object_id("_id").ok().map(|id| id.to_hex()))
                    .collect();
                let owners = chunks
                    .iter()
                    .filter_map(|c| c.get_object_id("files_id").ok().map(|id| id.to_hex()))
                    .collect();
                (ids, owners)
            }
            Backend::Embedded => {
                let bucket = embedded_bucket(files);
                let ids = self
                    .sql_rows(&format!(
                        "SELECT json_quote(id) FROM files WHERE bucket = '{bucket}'"
                    ))
                    .into_iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect();
                let root = self.names.data_dir.join("files");
                let mut pieces = HashSet::new();
                for dir in walk(&root.join(bucket)) {
                    pieces.insert(dir);
                }
                for partial in walk(&root.join("partial")) {
                    pieces.insert(format!("partial:{partial}"));
                }
                if files == Files::Videos {
                    for resumable in walk(&root.join("resumable")) {
                        pieces.insert(format!("resumable:{resumable}"));
                    }
                }
                (ids, pieces)
            }
        }
    }

    /// The state after a batch has settled, checked against what the issue
    /// asks: every job final as expected, one audio file per done job and
    /// none for failed ones, no orphan files or chunks, one mail per job,
    /// the work queues empty and the dead-letter queue holding exactly the
    /// failed jobs. Returns (done, failed).
    pub async fn assert_settled(
        &self,
        email: &str,
        jobs: &[Value],
        expect_failed: &[&str],
    ) -> (usize, usize) {
        let (done, failed, resent) = self.check_settled(email, jobs, expect_failed, 0).await;
        assert_eq!(resent, 0);
        (done, failed)
    }

    /// As `assert_settled`, after `kills` kill -9s. A node killed between
    /// the SMTP server's accept and the `mailed` mark sends that mail again,
    /// with the same Message-ID: still one message per job, but up to one
    /// raw re-send per kill. Returns (done, failed, re-sent mails).
    pub async fn assert_settled_despite_kills(
        &self,
        email: &str,
        jobs: &[Value],
        expect_failed: &[&str],
        kills: usize,
    ) -> (usize, usize, usize) {
        self.check_settled(email, jobs, expect_failed, kills).await
    }

    async fn check_settled(
        &self,
        email: &str,
        jobs: &[Value],
        expect_failed: &[&str],
        max_resent: usize,
    ) -> (usize, usize, usize) {
        let failed: Vec<&Value> = jobs.iter().filter(|j| j["state"] == "failed").collect();
        let done: Vec<&Value> = jobs.iter().filter(|j| j["state"] == "done").collect();
        for job in &failed {
            assert!(
                expect_failed
                    .iter()
                    .any(|f| job["filename"].as_str().is_some_and(|n| n.starts_with(f))),
                "job failed unexpectedly: {job}\n{}",
                self.log_tail()
            );
        }
        assert_eq!(done.len() + failed.len(), jobs.len());

        // The audio and its waveform, each under the job's audio id.
        for files in [Files::Audio, Files::Waveforms] {
            let (ids, pieces) = self.file_ids(files).await;
            assert_eq!(
                ids.len(),
                done.len(),
                "one {files:?} file per done job, none for failed ones"
            );
            for job in &done {
                let fid = job["mp3_fid"].as_str().expect("done job has mp3_fid");
                assert!(ids.contains(fid), "missing {files:?} {fid}");
            }
            assert!(
                pieces.is_subset(&ids),
                "orphan {files:?} pieces: {pieces:?}"
            );
        }

        let (video_ids, video_pieces) = self.file_ids(Files::Videos).await;
        assert_eq!(
            video_ids.len(),
            jobs.len(),
            "one stored video per job, no orphans"
        );
        assert!(
            video_pieces.is_subset(&video_ids),
            "orphan video pieces: {video_pieces:?}"
        );

        mails_to(email, jobs.len()).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let mails = read_mails_to(email);
        let ids: HashSet<String> = mails.iter().filter_map(|m| message_id(m)).collect();
        assert_eq!(ids.len(), jobs.len(), "one mail (Message-ID) per job");
        for job in jobs {
            let id = job["job_id"].as_str().unwrap_or_default();
            assert!(ids.iter().any(|m| m.contains(id)), "no mail for job {id}");
        }
        let resent = mails.len() - ids.len();
        assert!(resent <= max_resent, "{resent} mails sent twice");

        assert_eq!(
            self.queue_depth(&self.names.video_queue).await,
            0,
            "video queue drained"
        );
        assert_eq!(
            self.queue_depth(&self.names.mp3_queue).await,
            0,
            "mp3 queue drained"
        );
        assert_eq!(
            self.queue_depth(&self.names.dead_letter_queue).await,
            failed.len() as u32,
            "dead-letter queue holds exactly the failed jobs"
        );
        (done.len(), failed.len(), resent)
    }
}

/// The embedded backend's name of a bucket (its folder and `files.bucket`).
fn embedded_bucket(files: Files) -> &'static str {
    match files {
        Files::Videos => "videos",
        Files::Audio => "audio",
        Files::Waveforms => "waveforms",
    }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The SHA-256 (hex) of a local file.
pub fn file_sha256(path: &Path) -> String {
    use sha2::Digest;
    let mut hash = sha2::Sha256::new();
    let mut file = std::fs::File::open(path).expect("open");
    std::io::copy(&mut file, &mut hash).expect("read");
    hex(&hash.finalize())
}

/// Names of the files anywhere below `dir` (none if it does not exist).
fn walk(dir: &Path) -> Vec<String> {
    let mut names = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return names;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            names.extend(walk(&path));
        } else if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
            names.push(name.to_owned());
        }
    }
    names
}

/// The Message-ID header of a raw mail.
pub fn message_id(mail: &str) -> Option<String> {
    mail.lines()
        .find_map(|l| {
            l.strip_prefix("Message-ID:")
                .or_else(|| l.strip_prefix("Message-Id:"))
        })
        .map(|v| v.trim().to_owned())
}

impl Drop for Node {
    fn drop(&mut self) {
        terminate_child(&mut self.child, Duration::from_secs(20));
        if !self.owns_queues {
            return;
        }
        if self.options.backend == Backend::Embedded {
            let _ = std::fs::remove_dir_all(&self.names.data_dir);
            return;
        }
        // Remove the group's queues so the broker does not collect them.
        remove_queues(vec![
            self.names.video_queue.clone(),
            self.names.mp3_queue.clone(),
            self.names.dead_letter_queue.clone(),
        ]);
    }
}

/// Runs `work` to its end on a thread and runtime of its own: from any
/// context, a `Drop` on an ending runtime too.
pub fn on_a_runtime_of_its_own<F>(work: F)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    std::thread::spawn(move || {
        if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            rt.block_on(work);
        }
    })
    .join()
    .ok();
}

/// Deletes `queues` from the suite's broker, from any context.
pub fn remove_queues(queues: Vec<String>) {
    on_a_runtime_of_its_own(async move {
        let Ok(conn) =
            lapin::Connection::connect(AMQP_URL, lapin::ConnectionProperties::default()).await
        else {
            return;
        };
        if let Ok(channel) = conn.create_channel().await {
            for queue in &queues {
                let _ = channel
                    .queue_delete(queue.as_str().into(), Default::default())
                    .await;
            }
        }
        let _ = conn.close(200, "test done".into()).await;
    });
}

/// Ready messages in a queue (0 when it does not exist).
pub async fn queue_depth(queue: &str) -> u32 {
    let Ok(conn) =
        lapin::Connection::connect(AMQP_URL, lapin::ConnectionProperties::default()).await
    else {
        panic!("RabbitMQ is not reachable");
    };
    let channel = conn.create_channel().await.expect("channel");
    let options = lapin::options::QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let depth = channel
        .queue_declare(queue.into(), options, Default::default())
        .await
        .map(|q| q.message_count())
        .unwrap_or(0);
    let _ = conn.close(200, "done".into()).await;
    depth
}

/// Publishes a raw message to a queue, as another producer would.
pub async fn publish_raw(queue: &str, payload: &[u8]) {
    let conn = lapin::Connection::connect(AMQP_URL, lapin::ConnectionProperties::default())
        .await
        .expect("RabbitMQ");
    let channel = conn.create_channel().await.expect("channel");
    channel
        .confirm_select(Default::default())
        .await
        .expect("confirms");
    channel
        .basic_publish(
            "".into(),
            queue.into(),
            Default::default(),
            payload,
            lapin::BasicProperties::default().with_delivery_mode(2),
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
    let _ = conn.close(200, "done".into()).await;
}

/// The download link in a mail (its quoted-printable encoding undone).
pub fn download_link_in(mail: &str) -> Option<String> {
    let text = mail
        .replace("=\r\n", "")
        .replace("=\n", "")
        .replace("=3D", "=");
    text.split_whitespace()
        .find(|word| word.starts_with("http") && word.contains("/download?"))
        .map(str::to_owned)
}

pub async fn mails_to(to: &str, at_least: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found = read_mails_to(to);
        if found.len() >= at_least || Instant::now() > deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub fn read_mails_to(to: &str) -> Vec<String> {
    let header = format!("To: {to}");
    let Ok(entries) = std::fs::read_dir(maildir().join("new")) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .filter(|text| text.lines().any(|l| l.trim_end() == header))
        .collect()
}

/// The prefetch RabbitMQ holds for the consumers of `queue`.
pub fn broker_prefetch(queue: &str) -> Vec<u32> {
    let out = std::process::Command::new("rabbitmqctl")
        .args([
            "list_consumers",
            "-q",
            "--no-table-headers",
            "queue_name",
            "prefetch_count",
        ])
        .output()
        .expect("rabbitmqctl");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut fields = l.split_whitespace();
            (fields.next() == Some(queue)).then(|| fields.next().and_then(|n| n.parse().ok()))?
        })
        .collect()
}

/// `VmRSS`/`VmHWM` (current and peak resident set) of a process, in KiB.
pub fn memory_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Listens to the job events exchange: a private queue bound to it, and the
/// events read from it until `until` says stop or `limit` passes.
pub struct EventTap {
    _connection: lapin::Connection,
    consumer: lapin::Consumer,
}

impl EventTap {
    pub async fn bind(exchange: &str) -> Self {
        let connection =
            lapin::Connection::connect(AMQP_URL, lapin::ConnectionProperties::default())
                .await
                .expect("RabbitMQ");
        let channel = connection.create_channel().await.expect("channel");
        let queue = channel
            .queue_declare(
                "".into(),
                lapin::options::QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..Default::default()
                },
                Default::default(),
            )
            .await
            .expect("queue");
        channel
            .queue_bind(
                queue.name().as_str().into(),
                exchange.into(),
                "".into(),
                Default::default(),
                Default::default(),
            )
            .await
            .expect("bind");
        let consumer = channel
            .basic_consume(
                queue.name().as_str().into(),
                "".into(),
                lapin::options::BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                Default::default(),
            )
            .await
            .expect("consume");
        Self {
            _connection: connection,
            consumer,
        }
    }

    /// The events of `job_id` until one in a final state (or `limit`).
    pub async fn job_events(&mut self, job_id: &str, limit: Duration) -> Vec<Value> {
        use futures::StreamExt;
        let mut events = Vec::new();
        let deadline = tokio::time::Instant::now() + limit;
        while let Ok(Some(Ok(delivery))) =
            tokio::time::timeout_at(deadline, self.consumer.next()).await
        {
            let event: Value = serde_json::from_slice(&delivery.data).unwrap_or(Value::Null);
            if event["job_id"] != job_id {
                continue;
            }
            let last = event["state"] == "done" || event["state"] == "failed";
            events.push(event);
            if last {
                break;
            }
        }
        events
    }
}

/// Longer than any test keeps a node (the longest take a few minutes on
/// a loaded 2-core machine): a node still running after this is a hang.
/// `VIDAUD_TEST_NODE_LIMIT_SECS` sets another (to see the watchdog act).
fn node_lifetime_limit() -> Duration {
    let seconds = std::env::var("VIDAUD_TEST_NODE_LIMIT_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20 * 60);
    Duration::from_secs(seconds)
}

/// The tests' HTTP client: no request waits forever (a stuck node fails
/// the test that asked, with what it logged, instead of hanging the suite).
pub fn http_client() -> reqwest::Client {
    bounded_client().build().expect("client")
}

/// A client builder whose requests all have a bound: 10 s to connect,
/// 300 s in all.
fn bounded_client() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(300))
}

/// A thread that, unless dropped within `limit`, prints which test hung
/// and the tail of `log`, kills the node it watches and exits the test
/// binary.
struct Watchdog {
    _cancel: std::sync::mpsc::Sender<()>,
    node_pid: std::sync::Arc<AtomicU32>,
}

impl Watchdog {
    fn start(log: PathBuf, limit: Duration) -> Watchdog {
        let (cancel, cancelled) = std::sync::mpsc::channel::<()>();
        let node_pid = std::sync::Arc::new(AtomicU32::new(0));
        let pid = node_pid.clone();
        let test = std::thread::current().name().unwrap_or("a test").to_owned();
        std::thread::spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = cancelled.recv_timeout(limit) {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                // Straight to the process's stderr: the harness captures
                // what eprintln! writes and would drop it with the exit.
                let _ = writeln!(
                    std::io::stderr(),
                    "{test}: its node ({}) still runs after {limit:?}; the test hangs. \
                     The node's last lines:\n{}",
                    log.display(),
                    lines[lines.len().saturating_sub(60)..].join("\n")
                );
                let pid = pid.load(Ordering::SeqCst);
                if pid != 0 {
                    let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
                }
                std::process::exit(124);
            }
        });
        Watchdog {
            _cancel: cancel,
            node_pid,
        }
    }

    /// The node process to kill when the watchdog acts.
    fn watch(&self, child: &Child) {
        self.node_pid.store(child.id(), Ordering::SeqCst);
    }
}

/// SIGTERM, then up to `limit` for the exit: the exit code, or `None`
/// when it did not exit in time (it is then killed with SIGKILL). Never
/// waits without a bound: a child stuck in its shutdown must fail its test,
/// not hang the suite.
pub fn terminate_child(child: &mut Child, limit: Duration) -> Option<i32> {
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!(
        "process {} did not exit within {limit:?} of SIGTERM: killed",
        child.id()
    );
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// An HTTP client whose connections come from `address` (any of
/// 127.0.0.0/8 on loopback), so a test can be several clients at once.
pub fn client_from(address: &str) -> reqwest::Client {
    bounded_client()
        .local_address(address.parse::<std::net::IpAddr>().expect("address"))
        .build()
        .expect("client")
}

/// `path` as the body of a `POST /upload` form (field `file`): its
/// Content-Type and bytes.
pub fn multipart_file(path: &Path) -> (String, Vec<u8>) {
    let boundary = "vidaud-test-boundary";
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut body = format!(
        "--{boundary}\r\ncontent-disposition: form-data; name=\"file\"; \
         filename=\"{name}\"\r\ncontent-type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(&std::fs::read(path).expect("test media"));
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}
