//! The integration-test harness: real vidaud daemons against the real
//! servers that `scripts/test` provides (RabbitMQ, MariaDB, SecantusDB, an
//! SMTP sink writing a Maildir). Every node gets its own queues and
//! databases, so tests run side by side without seeing each other's jobs.

#![allow(dead_code)]

pub mod media;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use mongodb::bson::{Document, doc};
use serde_json::Value;

/// The secret every test node signs with, so tests can forge tokens.
pub const JWT_SECRET: &str = "integration-test-secret-0123456789abcdef";

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

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

#[derive(Clone)]
pub struct NodeOptions {
    pub workers: usize,
    pub max_upload_bytes: u64,
}

impl Default for NodeOptions {
    fn default() -> Self {
        Self {
            workers: 2,
            max_upload_bytes: 512 * 1024 * 1024,
        }
    }
}

/// Names of the per-node queues and databases.
#[derive(Clone)]
pub struct Names {
    pub video_queue: String,
    pub mp3_queue: String,
    pub dead_letter_queue: String,
    pub videos_db: String,
    pub mp3s_db: String,
    pub jobs_db: String,
}

pub struct Node {
    child: Child,
    pub base: String,
    pub names: Names,
    pub log: PathBuf,
    pub http: reqwest::Client,
}

impl Node {
    pub async fn start(options: NodeOptions) -> Node {
        let id = unique("t");
        let names = Names {
            video_queue: format!("video-{id}"),
            mp3_queue: format!("mp3-{id}"),
            dead_letter_queue: format!("video.dead-{id}"),
            videos_db: format!("videos_{id}"),
            mp3s_db: format!("mp3s_{id}"),
            jobs_db: format!("vidaud_{id}"),
        };
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let logs = Path::new(env!("CARGO_TARGET_TMPDIR")).join("node-logs");
        std::fs::create_dir_all(&logs).expect("log dir");
        let log = logs.join(format!("{id}.log"));
        let log_file = std::fs::File::create(&log).expect("log file");
        let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml");
        let child = Command::new(env!("CARGO_BIN_EXE_vidaud"))
            .args(["serve", "--config"])
            .arg(&config)
            .env("VIDAUD_NODE__ID", &id)
            .env("VIDAUD_HTTP__LISTEN", format!("127.0.0.1:{port}"))
            .env("VIDAUD_HTTP__PUBLIC_URL", &base)
            .env(
                "VIDAUD_HTTP__MAX_UPLOAD_BYTES",
                options.max_upload_bytes.to_string(),
            )
            .env(
                "VIDAUD_AUTH__MYSQL_URL",
                "mysql://root@127.0.0.1:3306/vidaud_test",
            )
            .env("VIDAUD_AUTH__JWT_SECRET", JWT_SECRET)
            .env("VIDAUD_AUTH__BCRYPT_COST", "4")
            .env(
                "VIDAUD_STORAGE__MONGODB_URI",
                format!("mongodb://127.0.0.1:{}", mongo_port()),
            )
            .env("VIDAUD_STORAGE__VIDEOS_DB", &names.videos_db)
            .env("VIDAUD_STORAGE__MP3S_DB", &names.mp3s_db)
            .env("VIDAUD_STORAGE__JOBS_DB", &names.jobs_db)
            .env("VIDAUD_QUEUE__VIDEO_QUEUE", &names.video_queue)
            .env("VIDAUD_QUEUE__MP3_QUEUE", &names.mp3_queue)
            .env("VIDAUD_QUEUE__DEAD_LETTER_QUEUE", &names.dead_letter_queue)
            .env("VIDAUD_TRANSCODER__WORKERS", options.workers.to_string())
            .env("VIDAUD_NOTIFIER__SMTP_PORT", smtp_port().to_string())
            .env("VIDAUD_LOG__LEVEL", "info,vidaud_actors=debug")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("log file"))
            .stderr(log_file)
            .spawn()
            .expect("spawning vidaud");
        let mut node = Node {
            child,
            base,
            names,
            log,
            http: reqwest::Client::new(),
        };
        node.wait_healthy().await;
        node
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

    /// Uploads `path` as multipart field `file`; returns status and JSON body.
    pub async fn upload(&self, token: &str, path: &Path) -> (u16, Value) {
        let bytes = std::fs::read(path).expect("test media");
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(bytes).file_name(name),
        );
        let r = self
            .http
            .post(self.url("/upload"))
            .bearer_auth(token)
            .multipart(form)
            .send()
            .await
            .expect("upload request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn job(&self, token: &str, job_id: &str) -> (u16, Value) {
        let r = self
            .http
            .get(self.url(&format!("/jobs/{job_id}")))
            .bearer_auth(token)
            .send()
            .await
            .expect("job request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Polls a job until it is done or failed.
    pub async fn wait_final(&self, token: &str, job_id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let (status, job) = self.job(token, job_id).await;
            assert_eq!(status, 200, "job {job_id}: {job}");
            if job["state"] == "done" || job["state"] == "failed" {
                return job;
            }
            assert!(
                Instant::now() < deadline,
                "job {job_id} not final in time: {job}\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn download(&self, token: &str, fid: &str) -> reqwest::Response {
        self.http
            .get(self.url(&format!("/download?fid={fid}")))
            .bearer_auth(token)
            .send()
            .await
            .expect("download request")
    }

    pub async fn mongo(&self) -> mongodb::Client {
        mongodb::Client::with_uri_str(format!("mongodb://127.0.0.1:{}", mongo_port()))
            .await
            .expect("mongodb client")
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
}

impl Node {
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
        let names = self.names.clone();
        // Remove this node's queues so the broker does not collect them.
        std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                let Ok(conn) = lapin::Connection::connect(
                    "amqp://guest:guest@127.0.0.1:5672/%2f",
                    lapin::ConnectionProperties::default(),
                )
                .await
                else {
                    return;
                };
                if let Ok(channel) = conn.create_channel().await {
                    for queue in [&names.video_queue, &names.mp3_queue, &names.dead_letter_queue] {
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

/// Mails in the sink's Maildir addressed to `to`, waiting up to 30 s for
/// at least `at_least` of them.
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

fn read_mails_to(to: &str) -> Vec<String> {
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
