//! End-to-end load bench: real HTTP against a running vidaud, loopback or
//! any deployment. It registers users, uploads generated clips, waits for
//! their jobs, downloads, and prints each figure next to its target:
//!
//! - one large upload (540 s, 489 MiB): MB/s and the daemon's RSS growth
//!   during the upload and through its conversion;
//! - a batch of clips by concurrent clients until the last job is done,
//!   several runs: time, jobs/minute, daemon CPU-s, failures;
//! - small authenticated requests at a fixed concurrency: a download, a job
//!   record, a token validation (req/s, p50, p99); login throughput;
//! - with a second node: how two nodes share one backlog.
//!
//! `benches/end-to-end` starts fresh services and two nodes on this machine
//! and runs this; by hand:
//!
//!     cargo bench --bench load -- --url http://127.0.0.1:8080 [--pid PID]
//!
//! Leave the node's auth rate limits high enough for the logins (each user
//! registers and logs in; the login figure makes `--logins` more).

mod admin;
mod api;
mod batch;
mod hammer;
mod large;
mod media;
mod probe;
mod report;
mod requests;
mod share;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;

use admin::Admin;
use api::Api;
use probe::{CpuMeter, CpuUse, Watched};

#[derive(Parser)]
#[command(about = "End-to-end load bench of a running vidaud")]
struct Args {
    /// Base URL of the node under test.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The node's pid (or @PIDFILE, read anew after each fresh start),
    /// when it runs on this machine: RSS and CPU figures.
    #[arg(long, value_parser = |s: &str| Watched::parse(&format!("vidaud={s}")))]
    pid: Option<Watched>,
    /// The node's admin socket (drained and resumed for the share figure).
    #[arg(long)]
    admin_socket: Option<PathBuf>,
    /// The admin socket of a second node on the same queue: kept drained
    /// so the other figures are of one node, resumed for the share figure.
    #[arg(long)]
    second_admin_socket: Option<PathBuf>,
    /// Scenarios to run, of: requests, large, batch, login, share.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "requests,large,batch,login,share"
    )]
    only: Vec<String>,
    /// Clips in a batch.
    #[arg(long, default_value_t = 20)]
    clips: usize,
    /// Clients uploading a batch at once (a user each).
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Batches, one after the other.
    #[arg(long, default_value_t = 10)]
    batch_runs: usize,
    /// Requests per small-request figure (validate makes five times as many).
    #[arg(long, default_value_t = 2000)]
    requests: usize,
    /// Small requests in flight at once.
    #[arg(long, default_value_t = 20)]
    concurrency: usize,
    /// Logins for the login figure, 4 at a time.
    #[arg(long, default_value_t = 64)]
    logins: usize,
    /// Jobs in the backlog two nodes share.
    #[arg(long, default_value_t = 20)]
    share_jobs: usize,
    /// Processes of this machine whose CPU time each scenario reports, as
    /// NAME=PID or NAME=@PIDFILE (the node's own is `vidaud` with --pid; the
    /// bench's own is `bench`).
    #[arg(long, value_parser = Watched::parse)]
    watch: Vec<Watched>,
    /// A shell command that gives the service fresh, empty storage (e.g.
    /// restarts a test database), run before the large upload, each batch
    /// and the share; the bench then waits until the node is ready.
    #[arg(long)]
    fresh_storage: Option<String>,
    /// `cargo bench` passes this; without it (`cargo test`) nothing runs.
    #[arg(long, hide = true)]
    bench: bool,
    /// Test-name filters `cargo test` passes on; ignored.
    #[arg(hide = true)]
    filters: Vec<String>,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    if !args.bench {
        // `cargo test --all-targets` runs bench targets without `--bench`:
        // this one needs a running service, so it only runs under `cargo bench`.
        println!("the load bench runs under `cargo bench --bench load`; nothing to test");
        return Ok(());
    }
    let wants = |name: &str| args.only.iter().any(|o| o == name);
    let api = Api::new(&args.url)?;
    // The node's process now (it changes when a fresh start restarts it).
    let daemon = || args.pid.as_ref().and_then(Watched::process);
    let mut watched = vec![Watched::pid("bench", std::process::id())];
    if let Some(pid) = &args.pid {
        watched.insert(0, pid.clone());
    }
    watched.extend(args.watch.iter().cloned());
    let node = args.admin_socket.as_deref().map(Admin::new);
    let second = args.second_admin_socket.as_deref().map(Admin::new);

    println!("vidaud end-to-end load bench");
    println!("client machine: {}", report::machine());
    println!(
        "node: {} {}",
        args.url,
        api.build_info()
            .await
            .unwrap_or_else(|| "(no build_info in /metrics)".into())
    );
    for (label, admin) in [("node", &node), ("second node", &second)] {
        if let Some(admin) = admin {
            let (name, workers) = admin.describe().await?;
            println!("{label} {name}: pool of {workers} workers");
        }
    }
    if let Some(second) = &second {
        second.drain().await?;
    }

    let users = futures::future::try_join_all(
        (0..args.clients.max(1)).map(|n| api.new_user(format!("client{n}"))),
    )
    .await
    .context("registering the bench's users")?;
    if let Some(daemon) = daemon() {
        println!(
            "daemon RSS with the users registered: {:.1} MiB",
            report::mib(daemon.rss_bytes()?)
        );
    }
    let load = requests::Load {
        requests: args.requests,
        concurrency: args.concurrency,
    };

    let small = media::SMALL.path()?;
    let fresh = || async {
        let Some(command) = args.fresh_storage.as_deref() else {
            return Ok(());
        };
        fresh_start(&api, command, second.as_ref(), &users[0], &small).await
    };

    if wants("requests") {
        let figures = requests::run(&api, &users[0], &small, load, &watched).await?;
        figures.report(load);
    }
    if wants("large") {
        // Right after the small requests: the node has converted once (its
        // plugins are loaded), the storage holds next to nothing.
        let meter = CpuMeter::start(&watched);
        let run = large::run(&api, &users[0], &media::LARGE.path()?, daemon()).await?;
        run.report();
        println!("  {}", meter.describe());
    }
    if wants("batch") {
        let clip = media::BATCH.path()?;
        let per_client = args.clips.div_ceil(users.len());
        let mut runs = Vec::new();
        let mut cpu = CpuUse::default();
        for n in 0..args.batch_runs {
            eprintln!("batch run {} of {}", n + 1, args.batch_runs);
            fresh().await?;
            let meter = CpuMeter::start(&watched);
            runs.push(batch::run(&api, &users, &clip, per_client, daemon()).await?);
            cpu.add(meter.finish());
        }
        batch::report(&runs, users.len(), &clip);
        println!("  all runs, {}", cpu.describe());
    }
    if wants("login") {
        let meter = CpuMeter::start(&watched);
        let summary = requests::logins(&api, &users[0], args.logins, 4).await;
        println!("POST /login, concurrency 4: {}", summary.describe());
        println!("  {}", meter.describe());
    }
    if wants("share") {
        fresh().await?;
        let meter = CpuMeter::start(&watched);
        match (&node, &second) {
            (Some(node), Some(second)) => {
                let nodes = [node.clone(), second.clone()];
                let shared =
                    share::run(&api, &users, &media::BATCH.path()?, args.share_jobs, &nodes)
                        .await?;
                shared.report();
                println!("  {}", meter.describe());
            }
            _ => println!("share: skipped (needs --admin-socket and --second-admin-socket)"),
        }
    }
    if let Some(second) = &second {
        second.resume().await?;
    }
    if let Some(daemon) = daemon() {
        println!(
            "daemon RSS at the end: {:.1} MiB",
            report::mib(daemon.rss_bytes()?)
        );
    }
    let (met, missed) = report::tally();
    println!("targets: {met} met, {missed} missed");
    Ok(())
}

/// Runs the fresh-storage command (new storage and nodes), waits until the
/// node is ready, drains the second node again and has the node convert a
/// small clip (its plugins loaded, as on a node that has been running).
async fn fresh_start(
    api: &Api,
    command: &str,
    second: Option<&Admin>,
    user: &api::User,
    small: &std::path::Path,
) -> Result<()> {
    let status = std::process::Command::new("sh")
        .args(["-c", command])
        .status()
        .context("running the fresh-storage command")?;
    anyhow::ensure!(
        status.success(),
        "the fresh-storage command failed: {status}"
    );
    api.wait_ready(std::time::Duration::from_secs(60)).await?;
    if let Some(second) = second {
        second.drain().await?;
    }
    let job = api
        .convert(&user.token, small, std::time::Duration::from_secs(60))
        .await?;
    api.delete(&user.token, &job.job_id).await
}
