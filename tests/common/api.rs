//! The HTTP API as a client sees it, whatever runs the node: a child
//! process of the test (`Node` derefs to its `Api`), a container or a pod
//! (tests/packaging.rs). Every request helper lives here once.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::unique;

/// What the node has logged lately: shown when a request helper fails.
pub type Diagnostics = Arc<dyn Fn() -> String + Send + Sync>;

pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
    diagnostics: Diagnostics,
}

impl Api {
    /// A client of the node at `base` (`http://127.0.0.1:PORT`).
    pub fn new(base: impl Into<String>, diagnostics: Diagnostics) -> Api {
        Api {
            base: base.into(),
            http: http_client(),
            diagnostics,
        }
    }

    /// The node's last log lines (for a failure's message).
    pub fn log_tail(&self) -> String {
        (self.diagnostics)()
    }

    /// Polls `GET /health` until it answers 200; `alive` says (else why)
    /// the node is still there to wait for.
    pub async fn wait_healthy(
        &self,
        limit: Duration,
        mut alive: impl FnMut() -> Result<(), String>,
    ) {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Err(why) = alive() {
                panic!("{why}:\n{}", self.log_tail());
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

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Registers a fresh user and logs in; returns (email, token).
    pub async fn new_user(&self) -> (String, String) {
        let email = format!("{}@example.com", unique("user"));
        self.register(&email, "correct horse").await;
        let token = self.login(&email, "correct horse").await.expect("login");
        (email, token)
    }

    /// Registers `email` (which must succeed).
    pub async fn register(&self, email: &str, password: &str) {
        let r = self
            .http
            .post(self.url("/register"))
            .json(&serde_json::json!({ "email": email, "password": password }))
            .send()
            .await
            .expect("register");
        assert_eq!(
            r.status(),
            201,
            "register: {}",
            r.text().await.unwrap_or_default()
        );
    }

    /// Logs in the web app's way (`POST /session`, which must succeed):
    /// the `Set-Cookie` it answers with, and its session view.
    pub async fn log_in_session(&self, email: &str, password: &str) -> (String, Value) {
        let r = self
            .http
            .post(self.url("/session"))
            .json(&serde_json::json!({ "email": email, "password": password }))
            .send()
            .await
            .expect("POST /session");
        assert_eq!(r.status(), 200, "POST /session");
        let set = r
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .expect("a session cookie")
            .to_owned();
        (set, r.json().await.expect("the session view"))
    }

    /// Polls `GET /me` with `token` until it is refused as revoked (failing
    /// after `limit`); how long that took.
    pub async fn until_refused(&self, token: &str, limit: Duration) -> Duration {
        let started = Instant::now();
        loop {
            let r = self
                .http
                .get(self.url("/me"))
                .bearer_auth(token)
                .send()
                .await
                .expect("GET /me");
            if r.status() == 401 {
                let body: Value = r.json().await.unwrap_or(Value::Null);
                assert_eq!(body["type"], "urn:vidaud:problem:token-revoked", "{body}");
                return started.elapsed();
            }
            assert!(started.elapsed() < limit, "never refused");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// What `GET /me` says to `token`.
    pub async fn me(&self, token: &str) -> Value {
        self.http
            .get(self.url("/me"))
            .bearer_auth(token)
            .send()
            .await
            .expect("GET /me")
            .json()
            .await
            .expect("GET /me JSON")
    }

    /// The id of the account `token` stands for.
    pub async fn user_id(&self, token: &str) -> String {
        let me = self.me(token).await;
        me["id"].as_str().expect("an id").to_owned()
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

    /// Downloads a done job's audio into `dir` (as `<job id>.audio`).
    pub async fn save_audio(&self, token: &str, job: &Value, dir: &Path) -> PathBuf {
        let fid = job["mp3_fid"].as_str().expect("a done job's audio id");
        let response = self.download(token, fid).await;
        assert_eq!(response.status(), 200, "{job}");
        let path = dir.join(format!("{}.audio", job["job_id"].as_str().unwrap_or("job")));
        std::fs::write(&path, response.bytes().await.expect("audio")).expect("write the audio");
        path
    }

    /// `DELETE /jobs/{id}`: its status.
    pub async fn delete_job(&self, token: &str, job_id: &str) -> u16 {
        self.http
            .delete(self.url(&format!("/jobs/{job_id}")))
            .bearer_auth(token)
            .send()
            .await
            .expect("delete request")
            .status()
            .as_u16()
    }

    /// `GET /jobs/{id}/waveform`.
    pub async fn waveform(&self, token: &str, job_id: &str) -> reqwest::Response {
        self.http
            .get(self.url(&format!("/jobs/{job_id}/waveform")))
            .bearer_auth(token)
            .send()
            .await
            .expect("waveform request")
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
