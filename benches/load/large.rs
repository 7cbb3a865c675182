//! One large upload and its conversion: the upload's rate and the daemon's
//! resident memory while it streams the file into GridFS, then while it
//! converts it. Neither may grow with the file's size.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::api::{Api, User};
use crate::probe::{Process, RssSpan};
use crate::report::{Target, mib};

pub struct LargeRun {
    pub bytes: u64,
    pub upload: Duration,
    pub upload_rss: Option<RssSpan>,
    pub conversion: Duration,
    pub conversion_rss: Option<RssSpan>,
    pub state: String,
    pub error: Option<String>,
}

pub async fn run(api: &Api, user: &User, file: &Path, daemon: Option<Process>) -> Result<LargeRun> {
    let bytes = std::fs::metadata(file)?.len();
    let watch = daemon.map(|p| p.watch()).transpose()?;
    let began = Instant::now();
    let id = api.upload(&user.token, file).await?;
    let upload = began.elapsed();
    let upload_rss = watch.map(|w| w.finish());

    let watch = daemon.map(|p| p.watch()).transpose()?;
    let began = Instant::now();
    let job = api
        .wait_final(&user.token, &id, Duration::from_secs(1800))
        .await?;
    let conversion = began.elapsed();
    // Growth counts from before the upload: what the whole job added.
    let conversion_rss = watch.map(|w| w.finish()).map(|span| RssSpan {
        baseline: upload_rss.map_or(span.baseline, |u| u.baseline),
        peak: span.peak,
    });
    api.delete(&user.token, &id).await?;
    Ok(LargeRun {
        bytes,
        upload,
        upload_rss,
        conversion,
        conversion_rss,
        state: job.state,
        error: job.error,
    })
}

impl LargeRun {
    pub fn report(&self) {
        let rate = self.bytes as f64 / 1e6 / self.upload.as_secs_f64();
        println!(
            "large upload: {:.1} MiB ({:.1} MB) in {:.2} s = {rate:.1} MB/s",
            mib(self.bytes),
            self.bytes as f64 / 1e6,
            self.upload.as_secs_f64()
        );
        Target::at_least("  upload rate, MB/s", rate, 90.0).print();
        report_growth(
            self.upload_rss,
            "during the upload",
            "during the upload",
            16.0,
        );
        println!(
            "large conversion: {} in {:.2} s after the upload{}",
            self.state,
            self.conversion.as_secs_f64(),
            self.error
                .as_deref()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default()
        );
        report_growth(
            self.conversion_rss,
            "from upload to done",
            "upload + conversion",
            64.0,
        );
    }
}

/// The daemon's memory over a span, and its growth against `limit_mib`.
fn report_growth(rss: Option<RssSpan>, span: &str, target: &str, limit_mib: f64) {
    if let Some(rss) = rss {
        println!("  daemon {span}: {}", rss.describe());
        Target::at_most(
            &format!("  RSS growth {target}, MiB"),
            rss.growth_mib(),
            limit_mib,
        )
        .print();
    }
}
