//! The integration-test harness: real vidaud daemons against the real
//! servers that `scripts/test` provides (RabbitMQ, MariaDB, SecantusDB, an
//! SMTP sink writing a Maildir). Every node group gets its own queues and
//! databases, so tests run side by side without seeing each other's jobs.

#![allow(dead_code)]

pub mod media;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use mongodb::bson::{Bson, Document, doc};
use serde_json::Value;

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

#[derive(Clone)]
pub struct NodeOptions {
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
}

/// Names of a node group's queues and databases.
#[derive(Clone)]
pub struct Names {
    pub video_queue: String,
    pub mp3_queue: String,
    pub dead_letter_queue: String,
    pub videos_db: String,
    pub mp3s_db: String,
    pub jobs_db: String,
}

impl Names {
    pub fn fresh() -> Names {
        let id = unique("t");
        Names {
            video_queue: format!("video-{id}"),
            mp3_queue: format!("mp3-{id}"),
            dead_letter_queue: format!("video.dead-{id}"),
            videos_db: format!("videos_{id}"),
            mp3s_db: format!("mp3s_{id}"),
            jobs_db: format!("vidaud_{id}"),
        }
    }
}

pub struct Node {
    child: Child,
    pub base: String,
    pub names: Names,
    pub log: PathBuf,
    pub http: reqwest::Client,
    pub options: NodeOptions,
    port: u16,
    /// Whether dropping the node deletes the group's queues (one node of a
    /// group does).
    owns_queues: bool,
}

impl Node {
    pub async fn start(options: NodeOptions) -> Node {
        Self::start_named(Names::fresh(), options, true).await
    }

    /// A node on `names`' queues and databases, e.g. a second node of a group.
    pub async fn start_named(names: Names, options: NodeOptions, owns_queues: bool) -> Node {
        let port = free_port();
        let mut node = Node {
            child: Self::spawn(&names, &options, port),
            base: format!("http://127.0.0.1:{port}"),
            log: Self::log_path(port),
            names,
            http: reqwest::Client::new(),
            options,
            port,
            owns_queues,
        };
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
        let mongo = options.mongo_port.unwrap_or_else(mongo_port);
        let mut command = Command::new(env!("CARGO_BIN_EXE_vidaud"));
        command
            .args(["serve", "--config"])
            .arg(&config)
            .env("VIDAUD_NODE__ID", format!("n{port}"))
            .env("VIDAUD_HTTP__LISTEN", format!("127.0.0.1:{port}"))
            .env(
                "VIDAUD_HTTP__PUBLIC_URL",
                format!("http://127.0.0.1:{port}"),
            )
            .env(
                "VIDAUD_HTTP__MAX_UPLOAD_BYTES",
                options.max_upload_bytes.to_string(),
            )
            .env(
                "VIDAUD_AUTH__MYSQL_URL",
                "mysql://root@127.0.0.1:3306/vidaud_test",
            )
            .env("VIDAUD_AUTH__JWT_SECRET", JWT_SECRET)
            .env("VIDAUD_AUTH__ARGON2_MEMORY_KIB", "256")
            .env("VIDAUD_AUTH__ARGON2_ITERATIONS", "1")
            .env("VIDAUD_AUTH__ATTEMPTS_PER_IP_PER_MINUTE", "100000")
            .env("VIDAUD_AUTH__ATTEMPTS_PER_ACCOUNT_PER_MINUTE", "100000")
            .env(
                "VIDAUD_STORAGE__MONGODB_URI",
                format!("mongodb://127.0.0.1:{mongo}"),
            )
            .env("VIDAUD_STORAGE__VIDEOS_DB", &names.videos_db)
            .env("VIDAUD_STORAGE__MP3S_DB", &names.mp3s_db)
            .env("VIDAUD_STORAGE__JOBS_DB", &names.jobs_db)
            .env("VIDAUD_QUEUE__VIDEO_QUEUE", &names.video_queue)
            .env("VIDAUD_QUEUE__MP3_QUEUE", &names.mp3_queue)
            .env("VIDAUD_QUEUE__DEAD_LETTER_QUEUE", &names.dead_letter_queue)
            .env(
                if options.config.is_some() {
                    "VIDAUD_UNUSED"
                } else {
                    "VIDAUD_TRANSCODER__WORKERS"
                },
                options.workers.to_string(),
            )
            .env("VIDAUD_NOTIFIER__SMTP_PORT", smtp_port().to_string())
            .env("VIDAUD_ADMIN__SOCKET", Self::socket_path(port))
            .env("VIDAUD_LOG__LEVEL", "info,vidaud_actors=debug")
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
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "vidaud exited during start-up ({status}):\n{}",
                    self.log_tail()
                );
            }
            if let Ok(r) = self.http.get(self.url("/health")).send().await
                && r.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("vidaud did not become healthy:\n{}", self.log_tail());
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
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
            let jobs = self.documents(&self.names.jobs_db, "jobs").await;
            let busy = jobs.iter().find(|j| {
                j.get_str("state") == Ok("converting")
                    && node.is_none_or(|n| j.get_str("node") == Ok(n))
            });
            if let Some(job) = busy {
                return job.get_object_id("_id").map(|id| id.to_hex()).ok();
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The raw job records of the group.
    pub async fn job_records(&self) -> Vec<Document> {
        self.documents(&self.names.jobs_db, "jobs").await
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
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill9();
        None
    }

    /// Starts the process again with the same port, names and settings.
    pub async fn restart(&mut self) {
        if self.is_running() {
            self.kill9();
        }
        self.child = Self::spawn(&self.names, &self.options, self.port);
        self.wait_healthy().await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Registers a fresh user and logs in; returns (email, token).
    pub async fn new_user(&self) -> (String, String) {
        let email = format!("{}@example.com", unique("user"));
        let r = self
            .http
            .post(self.url("/register"))
            .json(&serde_json::json!({ "email": email, "password": "correct horse" }))
            .send()
            .await
            .expect("register");
        assert_eq!(
            r.status(),
            201,
            "register: {}",
            r.text().await.unwrap_or_default()
        );
        let token = self.login(&email, "correct horse").await.expect("login");
        (email, token)
    }

    pub async fn login(&self, email: &str, password: &str) -> Result<String, u16> {
        let r = self
            .http
            .post(self.url("/login"))
            .basic_auth(email, Some(password))
            .send()
            .await
            .expect("login request");
        let status = r.status().as_u16();
        if status == 200 {
            Ok(r.text().await.expect("token"))
        } else {
            Err(status)
        }
    }

    /// Uploads `path` as multipart field `file`; returns status and JSON body
    /// (status 0 when the request itself failed).
    pub async fn upload(&self, token: &str, path: &Path) -> (u16, Value) {
        self.upload_with(token, path, "", &[], &[]).await
    }

    /// Uploads `path` with output options: `query` (without `?`), and text
    /// fields sent before and after the file part.
    pub async fn upload_with(
        &self,
        token: &str,
        path: &Path,
        query: &str,
        before: &[(&str, &str)],
        after: &[(&str, &str)],
    ) -> (u16, Value) {
        let bytes = std::fs::read(path).expect("test media");
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut form = reqwest::multipart::Form::new();
        for (field, value) in before {
            form = form.text(field.to_string(), value.to_string());
        }
        form = form.part(
            "file",
            reqwest::multipart::Part::bytes(bytes).file_name(name),
        );
        for (field, value) in after {
            form = form.text(field.to_string(), value.to_string());
        }
        let url = if query.is_empty() {
            self.url("/upload")
        } else {
            self.url(&format!("/upload?{query}"))
        };
        let sent = self
            .http
            .post(url)
            .bearer_auth(token)
            .multipart(form)
            .send()
            .await;
        match sent {
            Ok(r) => {
                let status = r.status().as_u16();
                (status, r.json().await.unwrap_or(Value::Null))
            }
            Err(_) => (0, Value::Null),
        }
    }

    /// Posts a multipart form of the test's own making to `/upload`.
    pub async fn upload_form(
        &self,
        token: &str,
        form: reqwest::multipart::Form,
    ) -> reqwest::Response {
        self.http
            .post(self.url("/upload"))
            .bearer_auth(token)
            .multipart(form)
            .send()
            .await
            .expect("upload request")
    }

    /// Uploads each file; returns the job ids of the accepted ones.
    pub async fn upload_all(&self, token: &str, files: &[PathBuf]) -> Vec<String> {
        let mut ids = Vec::new();
        for file in files {
            let (status, body) = self.upload(token, file).await;
            assert_eq!(
                status,
                202,
                "{}: {body}\n{}",
                file.display(),
                self.log_tail()
            );
            ids.push(body["job_id"].as_str().expect("job_id").to_owned());
        }
        ids
    }

    pub async fn job(&self, token: &str, job_id: &str) -> (u16, Value) {
        let r = self
            .http
            .get(self.url(&format!("/jobs/{job_id}")))
            .bearer_auth(token)
            .send()
            .await;
        match r {
            Ok(r) => {
                let status = r.status().as_u16();
                (status, r.json().await.unwrap_or(Value::Null))
            }
            Err(_) => (0, Value::Null),
        }
    }

    /// Polls a job until it is done or failed.
    pub async fn wait_final(&self, token: &str, job_id: &str) -> Value {
        self.wait_final_within(token, job_id, Duration::from_secs(120))
            .await
    }

    pub async fn wait_final_within(&self, token: &str, job_id: &str, limit: Duration) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let (status, job) = self.job(token, job_id).await;
            if status == 200 && (job["state"] == "done" || job["state"] == "failed") {
                return job;
            }
            assert!(
                Instant::now() < deadline,
                "job {job_id} not final in time: {status} {job}\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn wait_all_final(&self, token: &str, ids: &[String]) -> Vec<Value> {
        let mut jobs = Vec::new();
        for id in ids {
            jobs.push(
                self.wait_final_within(token, id, Duration::from_secs(240))
                    .await,
            );
        }
        jobs
    }

    pub async fn download(&self, token: &str, fid: &str) -> reqwest::Response {
        self.http
            .get(self.url(&format!("/download?fid={fid}")))
            .bearer_auth(token)
            .send()
            .await
            .expect("download request")
    }

    /// The `/metrics` exposition text.
    pub async fn metrics_text(&self) -> String {
        let response = self
            .http
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("metrics");
        response.text().await.expect("metrics text")
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

    /// Asserts the GridFS bucket in `db` holds no file and no stray chunk.
    pub async fn assert_bucket_empty(&self, db: &str, why: &str) {
        assert_eq!(
            self.count(db, "fs.files").await,
            0,
            "{why}: files left in {db}"
        );
        assert_eq!(
            self.count(db, "fs.chunks").await,
            0,
            "{why}: chunks left in {db}"
        );
    }

    /// Ids of the files in a bucket, and the ids its chunks belong to.
    async fn bucket_ids(&self, db: &str) -> (Vec<Bson>, HashSet<String>) {
        let files = self.documents(db, "fs.files").await;
        let chunks = self
            .fields(db, "fs.chunks", Some(doc! { "files_id": 1 }))
            .await;
        let ids = files.iter().filter_map(|f| f.get("_id").cloned()).collect();
        let owners = chunks
            .iter()
            .filter_map(|c| c.get("files_id").map(|id| id.to_string()))
            .collect();
        (ids, owners)
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

        let (mp3s, mp3_chunk_owners) = self.bucket_ids(&self.names.mp3s_db).await;
        assert_eq!(
            mp3s.len(),
            done.len(),
            "one audio file per done job, none for failed ones"
        );
        for job in &done {
            let fid = job["mp3_fid"].as_str().expect("done job has mp3_fid");
            assert!(
                mp3s.iter().any(|id| id.to_string().contains(fid)),
                "missing audio {fid}"
            );
        }
        let mp3_ids: HashSet<String> = mp3s.iter().map(|id| id.to_string()).collect();
        assert!(
            mp3_chunk_owners.is_subset(&mp3_ids),
            "orphan audio chunks: {mp3_chunk_owners:?}"
        );

        let (videos, video_chunk_owners) = self.bucket_ids(&self.names.videos_db).await;
        assert_eq!(
            videos.len(),
            jobs.len(),
            "one stored video per job, no orphans"
        );
        let video_ids: HashSet<String> = videos.iter().map(|id| id.to_string()).collect();
        assert!(
            video_chunk_owners.is_subset(&video_ids),
            "orphan video chunks"
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
            queue_depth(&self.names.video_queue).await,
            0,
            "video queue drained"
        );
        assert_eq!(
            queue_depth(&self.names.mp3_queue).await,
            0,
            "mp3 queue drained"
        );
        assert_eq!(
            queue_depth(&self.names.dead_letter_queue).await,
            failed.len() as u32,
            "dead-letter queue holds exactly the failed jobs"
        );
        (done.len(), failed.len(), resent)
    }
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
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !self.owns_queues {
            return;
        }
        let names = self.names.clone();
        // Remove the group's queues so the broker does not collect them.
        std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                let Ok(conn) =
                    lapin::Connection::connect(AMQP_URL, lapin::ConnectionProperties::default())
                        .await
                else {
                    return;
                };
                if let Ok(channel) = conn.create_channel().await {
                    for queue in [
                        &names.video_queue,
                        &names.mp3_queue,
                        &names.dead_letter_queue,
                    ] {
                        let _ = channel
                            .queue_delete(queue.as_str().into(), Default::default())
                            .await;
                    }
                }
                let _ = conn.close(200, "test done".into()).await;
            });
        })
        .join()
        .ok();
    }
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
