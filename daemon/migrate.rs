//! `vidaud migrate --to CLUSTER-CONFIG`: copies this node's embedded data
//! directory (users, jobs, files; ids kept) into the cluster that the other
//! configuration names. Run it with the node stopped (the data directory's
//! lock refuses otherwise); rerun it after an interruption: it finishes the
//! copy and adds nothing twice. It ends by verifying counts and sizes.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use vidaud_actors::backends::migrate::{Moved, migrate, verify};
use vidaud_actors::backends::{Backends, chain};
use vidaud_actors::settings::BackendKind;

use crate::config;

#[derive(clap::Args)]
pub struct MigrateArgs {
    /// This node's configuration (its embedded `[backend] data_dir`).
    #[arg(long, short, env = "VIDAUD_CONFIG", default_value = "config.toml")]
    pub config: PathBuf,
    /// The cluster's configuration (`[storage]`, `[queue]`, `[auth]` URLs;
    /// its `[backend] kind` is taken to be `cluster`).
    #[arg(long)]
    pub to: PathBuf,
    /// Copy at most this many jobs in this run (a move in stages; the next
    /// run goes on where this one stopped). Verification waits for a run
    /// that copies everything.
    #[arg(long)]
    pub max_jobs: Option<u64>,
}

pub fn run(args: MigrateArgs) -> ExitCode {
    let load = |path: &PathBuf, kind| match config::load(path) {
        Ok(mut settings) => {
            settings.backend.kind = kind;
            Ok(settings)
        }
        Err(e) => Err(format!("{}: {e:#}", path.display())),
    };
    let (from, to) = match (
        load(&args.config, BackendKind::Embedded),
        load(&args.to, BackendKind::Cluster),
    ) {
        (Ok(from), Ok(to)) => (from, to),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("vidaud migrate: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("vidaud migrate: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let source = match Backends::connect(&from, "migrate").await {
            Ok(source) => source,
            Err(e) => {
                eprintln!("vidaud migrate: {}", chain(&e));
                return ExitCode::from(2);
            }
        };
        eprintln!("connecting to the cluster ...");
        let target = match Backends::connect(&to, "migrate").await {
            Ok(target) => target,
            Err(e) => {
                eprintln!("vidaud migrate: {}", chain(&e));
                return ExitCode::from(2);
            }
        };
        let started = Instant::now();
        let mut last = Instant::now();
        let mut show = |moved: &Moved| {
            if last.elapsed().as_millis() >= 500 {
                last = Instant::now();
                eprintln!("{}", describe(moved, started));
            }
        };
        let moved = match migrate(&source, &target, args.max_jobs, &mut show).await {
            Ok(moved) => moved,
            Err(e) => {
                eprintln!(
                    "vidaud migrate: stopped: {} (run it again to finish)",
                    chain(&e)
                );
                return ExitCode::FAILURE;
            }
        };
        println!("{}", describe(&moved, started));
        if args
            .max_jobs
            .is_some_and(|max| moved.jobs_copied + moved.jobs_present >= max)
        {
            println!("stopped at --max-jobs; run again to go on");
            return ExitCode::SUCCESS;
        }
        match verify(&source, &target).await {
            Ok((here, there)) if here == there => {
                println!(
                    "verified: the cluster holds all {} users, {} jobs and {} files ({} bytes)",
                    here.users, here.jobs, here.files, here.bytes
                );
                ExitCode::SUCCESS
            }
            Ok((here, there)) => {
                eprintln!(
                    "vidaud migrate: verification failed: source {here:?}, cluster {there:?}"
                );
                ExitCode::FAILURE
            }
            Err(e) => {
                eprintln!("vidaud migrate: verification failed: {}", chain(&e));
                ExitCode::FAILURE
            }
        }
    })
}

fn describe(moved: &Moved, started: Instant) -> String {
    let secs = started.elapsed().as_secs_f64().max(0.001);
    format!(
        "users {} copied, {} there already; jobs {} copied, {} there already; \
         files {} copied ({:.1} MB, {:.1} MB/s), {} there already; {} queued; {:.1} s",
        moved.users_copied,
        moved.users_present,
        moved.jobs_copied,
        moved.jobs_present,
        moved.files_copied,
        moved.bytes_copied as f64 / 1e6,
        moved.bytes_copied as f64 / 1e6 / secs,
        moved.files_present,
        moved.messages_queued,
        secs
    )
}
