//! Small authenticated requests under concurrency: a download of a short
//! MP3 (token check + GridFS), a job record (token check + MongoDB), a
//! token validation (no storage at all), and logins (password hashing).

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use reqwest::Method;

use crate::api::{Api, User};
use crate::hammer::{Summary, hammer};
use crate::probe::{CpuMeter, Watched};
use crate::report::Target;

/// How the small requests are made.
#[derive(Clone, Copy)]
pub struct Load {
    pub requests: usize,
    pub concurrency: usize,
}

pub struct Figures {
    pub audio_bytes: usize,
    pub download: Summary,
    pub job: Summary,
    pub validate: Summary,
}

/// Converts `clip`, then hammers its download, its job record and
/// `/validate`.
pub async fn run(
    api: &Api,
    user: &User,
    clip: &Path,
    load: Load,
    watched: &[Watched],
) -> Result<Figures> {
    let job = api
        .convert(&user.token, clip, Duration::from_secs(120))
        .await?;
    let id = job.job_id.clone();
    let fid = job
        .mp3_fid
        .with_context(|| format!("the small clip's job is {}: {:?}", job.state, job.error))?;
    let audio = api
        .fetch(&user.token, Method::GET, &format!("/download?fid={fid}"))
        .await?;

    let download = measure(
        api,
        user,
        load,
        Method::GET,
        format!("/download?fid={fid}"),
        audio.len(),
        watched,
    )
    .await;
    let job = measure(
        api,
        user,
        load,
        Method::GET,
        format!("/jobs/{id}"),
        0,
        watched,
    )
    .await;
    let validate = measure(
        api,
        user,
        Load {
            requests: load.requests * 5,
            ..load
        },
        Method::POST,
        "/validate".into(),
        0,
        watched,
    )
    .await;
    api.delete(&user.token, &id).await?;
    Ok(Figures {
        audio_bytes: audio.len(),
        download,
        job,
        validate,
    })
}

/// A warm-up of one request per connection, then the timed run; with
/// `length` > 0 every answer must be that long.
async fn measure(
    api: &Api,
    user: &User,
    load: Load,
    method: Method,
    path: String,
    length: usize,
    watched: &[Watched],
) -> Summary {
    let request = {
        let (api, token) = (api.clone(), user.token.clone());
        move |_| {
            let (api, token, method, path) =
                (api.clone(), token.clone(), method.clone(), path.clone());
            async move {
                let body = api.fetch(&token, method, &path).await?;
                if length > 0 && body.len() != length {
                    bail!("{path}: {} bytes, wanted {length}", body.len());
                }
                Ok(())
            }
        }
    };
    hammer(load.concurrency, load.concurrency, request.clone()).await;
    let meter = CpuMeter::start(watched);
    let mut summary = hammer(load.requests, load.concurrency, request).await;
    summary.cpu = Some(meter.describe());
    summary
}

/// Logins of one user, `concurrency` at a time.
pub async fn logins(api: &Api, user: &User, total: usize, concurrency: usize) -> Summary {
    let (api, email) = (api.clone(), user.email.clone());
    hammer(total, concurrency, move |_| {
        let (api, email) = (api.clone(), email.clone());
        async move { api.login(&email).await.map(drop) }
    })
    .await
}

impl Figures {
    pub fn report(&self, load: Load) {
        println!(
            "GET /download of a {} B MP3, concurrency {}: {}",
            self.audio_bytes,
            load.concurrency,
            self.download.describe()
        );
        Target::at_least("  download req/s", self.download.per_sec(), 3.0 * 395.0).print();
        Target::at_most(
            "  download p99, ms",
            self.download.percentile_ms(0.99),
            20.0,
        )
        .print();
        println!(
            "GET /jobs/{{id}}, concurrency {}: {}",
            load.concurrency,
            self.job.describe()
        );
        println!(
            "POST /validate, concurrency {}: {}",
            load.concurrency,
            self.validate.describe()
        );
        Target::at_least("  validate req/s", self.validate.per_sec(), 4000.0).print();
        Target::at_most("  validate p99, ms", self.validate.percentile_ms(0.99), 5.0).print();
    }
}
