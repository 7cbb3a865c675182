//! The service's HTTP API as the bench uses it: accounts, streamed uploads
//! from disk, job records, deletes. Everything answers `anyhow` errors that
//! name the request, since the bench reports them rather than handles them.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use base64::Engine;
use bytes::Bytes;
use reqwest::{Client, Method, RequestBuilder, Response, StatusCode, multipart};
use serde::Deserialize;
use tokio_util::io::ReaderStream;

/// The password of every user the bench registers.
const PASSWORD: &str = "load bench password";

/// One node's API.
#[derive(Clone)]
pub struct Api {
    http: Client,
    base: String,
}

/// A registered user and a token of theirs.
#[derive(Clone)]
pub struct User {
    pub email: String,
    pub token: String,
}

/// The fields of a job record the bench reads.
#[derive(Debug, Clone, Deserialize)]
pub struct Job {
    pub job_id: String,
    pub state: String,
    pub mp3_fid: Option<String>,
    pub error: Option<String>,
    pub node: Option<String>,
}

impl Job {
    pub fn is_final(&self) -> bool {
        matches!(self.state.as_str(), "done" | "failed" | "deleted")
    }
}

#[derive(Deserialize)]
struct JobPage {
    jobs: Vec<Job>,
}

impl Api {
    pub fn new(base: &str) -> Result<Self> {
        let http = Client::builder()
            .pool_max_idle_per_host(256)
            .tcp_nodelay(true)
            // Long enough for the largest upload and conversion waits.
            .timeout(Duration::from_secs(1800))
            .build()
            .context("HTTP client")?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Registers a fresh user and logs them in.
    pub async fn new_user(&self, label: String) -> Result<User> {
        let email = format!(
            "load-{label}-{}-{}@example.com",
            std::process::id(),
            unique()
        );
        let register = self
            .http
            .post(self.url("/register"))
            .json(&serde_json::json!({ "email": email, "password": PASSWORD }));
        call(register, StatusCode::CREATED, "POST /register").await?;
        let token = self.login(&email).await?;
        Ok(User { email, token })
    }

    /// Logs a bench user in; answers the token.
    pub async fn login(&self, email: &str) -> Result<String> {
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{email}:{PASSWORD}"));
        let login = self
            .http
            .post(self.url("/login"))
            .header("Authorization", format!("Basic {basic}"));
        let answer = call(login, StatusCode::OK, "POST /login").await?;
        answer.text().await.context("POST /login body")
    }

    /// Uploads a file, streamed from disk; answers the job id.
    pub async fn upload(&self, token: &str, path: &Path) -> Result<String> {
        let file = tokio::fs::File::open(path)
            .await
            .with_context(|| format!("open {}", path.display()))?;
        let length = file.metadata().await?.len();
        let body = reqwest::Body::wrap_stream(ReaderStream::with_capacity(file, 256 * 1024));
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "clip.mp4".into());
        let part = multipart::Part::stream_with_length(body, length)
            .file_name(name)
            .mime_str("video/mp4")?;
        let upload = self
            .http
            .post(self.url("/upload"))
            .bearer_auth(token)
            .multipart(multipart::Form::new().part("file", part));
        let answer = call(upload, StatusCode::ACCEPTED, "POST /upload").await?;
        let accepted: serde_json::Value = answer.json().await.context("POST /upload body")?;
        accepted["job_id"]
            .as_str()
            .map(str::to_owned)
            .context("POST /upload answered no job_id")
    }

    /// `method path` as the user, expecting 200; answers the body.
    pub async fn fetch(&self, token: &str, method: Method, path: &str) -> Result<Bytes> {
        let request = self.http.request(method, self.url(path)).bearer_auth(token);
        let answer = call(request, StatusCode::OK, path).await?;
        answer.bytes().await.with_context(|| format!("{path} body"))
    }

    pub async fn job(&self, token: &str, id: &str) -> Result<Job> {
        let path = format!("/jobs/{id}");
        let body = self.fetch(token, Method::GET, &path).await?;
        serde_json::from_slice(&body).with_context(|| format!("GET {path}"))
    }

    /// The user's newest 100 jobs: one request to follow a whole batch.
    pub async fn jobs(&self, token: &str) -> Result<Vec<Job>> {
        let body = self.fetch(token, Method::GET, "/jobs?limit=100").await?;
        let page: JobPage = serde_json::from_slice(&body).context("GET /jobs body")?;
        Ok(page.jobs)
    }

    /// Waits until the job is done, failed or deleted; answers it.
    pub async fn wait_final(&self, token: &str, id: &str, limit: Duration) -> Result<Job> {
        let give_up = tokio::time::Instant::now() + limit;
        loop {
            let job = self.job(token, id).await?;
            if job.is_final() {
                return Ok(job);
            }
            if tokio::time::Instant::now() > give_up {
                bail!("job {id} still {} after {limit:?}", job.state);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Uploads `path` and waits until its job is final; answers the job.
    pub async fn convert(&self, token: &str, path: &Path, limit: Duration) -> Result<Job> {
        let id = self.upload(token, path).await?;
        self.wait_final(token, &id, limit).await
    }

    /// Deletes a job with its files.
    pub async fn delete(&self, token: &str, id: &str) -> Result<()> {
        let request = self
            .http
            .delete(self.url(&format!("/jobs/{id}")))
            .bearer_auth(token);
        call(
            request,
            StatusCode::NO_CONTENT,
            &format!("DELETE /jobs/{id}"),
        )
        .await?;
        Ok(())
    }

    /// Waits until `/ready` answers 200 (every dependency up).
    pub async fn wait_ready(&self, limit: Duration) -> Result<()> {
        let give_up = tokio::time::Instant::now() + limit;
        loop {
            let ready = self.http.get(self.url("/ready")).send().await;
            if ready.is_ok_and(|r| r.status() == StatusCode::OK) {
                return Ok(());
            }
            if tokio::time::Instant::now() > give_up {
                bail!("the node is not ready after {limit:?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The `build_info` sample of the node's metrics, if it has one.
    pub async fn build_info(&self) -> Option<String> {
        let text = self
            .http
            .get(self.url("/metrics"))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines()
            .find(|l| l.starts_with("build_info"))
            .map(str::to_owned)
    }
}

/// Sends `request`; an unexpected status is an error carrying the body.
async fn call(request: RequestBuilder, status: StatusCode, what: &str) -> Result<Response> {
    let answer = request.send().await.with_context(|| what.to_owned())?;
    if answer.status() == status {
        return Ok(answer);
    }
    let got = answer.status();
    let body = answer.text().await.unwrap_or_default();
    bail!("{what}: {got} (wanted {status}): {body}")
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
