//! A batch of clips uploaded by several clients at once, timed from the
//! first upload until the last job is done: the service's throughput as
//! users see it, and the daemon's CPU time for the whole batch.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::api::{Api, User};
use crate::probe::Process;
use crate::report::Target;

/// How long a batch may take before its unfinished jobs count as failed.
const PATIENCE: Duration = Duration::from_secs(300);

pub struct BatchRun {
    pub jobs: usize,
    pub elapsed: Duration,
    pub cpu_secs: Option<f64>,
    pub failures: Vec<String>,
}

/// Each user uploads `per_client` copies of `clip` one after the other,
/// all users at once, then follows their jobs until each is final.
pub async fn run(
    api: &Api,
    users: &[User],
    clip: &Path,
    per_client: usize,
    daemon: Option<Process>,
) -> Result<BatchRun> {
    let cpu_before = daemon.map(|p| p.cpu_secs()).transpose()?;
    let began = Instant::now();
    let clients: Vec<_> = users
        .iter()
        .cloned()
        .map(|user| {
            let (api, clip) = (api.clone(), clip.to_owned());
            tokio::spawn(async move { client(&api, &user, &clip, per_client).await })
        })
        .collect();
    let mut ids = Vec::new();
    let mut failures = Vec::new();
    let mut last = began;
    for client in clients {
        let outcome = client.await?;
        last = last.max(outcome.finished);
        ids.extend(outcome.ids);
        failures.extend(outcome.failures);
    }
    let elapsed = last - began;
    let cpu_secs = match (daemon, cpu_before) {
        (Some(p), Some(before)) => Some(p.cpu_secs()? - before),
        _ => None,
    };
    for (user, id) in &ids {
        api.delete(&user.token, id).await?;
    }
    Ok(BatchRun {
        jobs: users.len() * per_client,
        elapsed,
        cpu_secs,
        failures,
    })
}

struct ClientOutcome {
    ids: Vec<(User, String)>,
    failures: Vec<String>,
    finished: Instant,
}

async fn client(api: &Api, user: &User, clip: &Path, uploads: usize) -> ClientOutcome {
    let mut ids = Vec::new();
    let mut failures = Vec::new();
    for _ in 0..uploads {
        match api.upload(&user.token, clip).await {
            Ok(id) => ids.push(id),
            Err(e) => failures.push(format!("{e:#}")),
        }
    }
    let give_up = Instant::now() + PATIENCE;
    let mut pending = ids.clone();
    while !pending.is_empty() {
        match api.jobs(&user.token).await {
            Ok(jobs) => {
                for job in jobs.iter().filter(|j| j.is_final()) {
                    if !pending.contains(&job.job_id) {
                        continue;
                    }
                    pending.retain(|id| *id != job.job_id);
                    if job.state != "done" {
                        failures.push(format!(
                            "job {} {}: {}",
                            job.job_id,
                            job.state,
                            job.error.as_deref().unwrap_or("")
                        ));
                    }
                }
            }
            Err(e) => failures.push(format!("{e:#}")),
        }
        if pending.is_empty() {
            break;
        }
        if Instant::now() > give_up {
            failures.push(format!(
                "{} jobs unfinished after {PATIENCE:?}",
                pending.len()
            ));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ClientOutcome {
        ids: ids.into_iter().map(|id| (user.clone(), id)).collect(),
        failures,
        finished: Instant::now(),
    }
}

/// Prints each run and the figures over all runs.
pub fn report(runs: &[BatchRun], clients: usize, clip: &Path) {
    let Some(first) = runs.first() else { return };
    println!(
        "batch: {} uploads of {} by {clients} concurrent clients, until the last job is done:",
        first.jobs,
        clip.display()
    );
    for (n, run) in runs.iter().enumerate() {
        println!(
            "  run {:>2}: {:.2} s, {:.0} jobs/min{}, {} failed{}",
            n + 1,
            run.elapsed.as_secs_f64(),
            run.jobs as f64 / run.elapsed.as_secs_f64() * 60.0,
            run.cpu_secs
                .map(|c| format!(", daemon {c:.2} CPU-s"))
                .unwrap_or_default(),
            run.failures.len(),
            run.failures
                .first()
                .map(|f| format!(" (first: {f})"))
                .unwrap_or_default()
        );
    }
    let mut times: Vec<f64> = runs.iter().map(|r| r.elapsed.as_secs_f64()).collect();
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let worst = times[times.len() - 1];
    println!(
        "  {} runs: median {median:.2} s ({:.0} jobs/min), best {:.2} s, worst {worst:.2} s",
        runs.len(),
        first.jobs as f64 / median * 60.0,
        times[0]
    );
    Target::at_most("  batch time, median of runs, s", median, 11.0).print();
    Target::at_most("  batch time, worst run, s", worst, 11.0).print();
    let mut cpu: Vec<f64> = runs.iter().filter_map(|r| r.cpu_secs).collect();
    if !cpu.is_empty() {
        cpu.sort_by(f64::total_cmp);
        Target::at_most("  daemon CPU-s per batch, median", cpu[cpu.len() / 2], 5.0).print();
    }
    let failed_runs = runs.iter().filter(|r| !r.failures.is_empty()).count();
    Target::at_most("  runs with a failure", failed_runs as f64, 0.0).print();
}
