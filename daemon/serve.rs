//! `vidaud serve`: logging, settings, the root supervisor, and the signals
//! that stop it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use ractor::Actor;
use tracing::{error, info};
use tracing_subscriber::EnvFilter;
use vidaud_actors::Settings;
use vidaud_actors::auth::{LinkKeys, TokenKeys};
use vidaud_actors::metrics::Metrics;
use vidaud_supervision::{RootArgs, RootSupervisor, Shutdown};

use crate::cli::ServeArgs;

/// Makes the node non-dumpable: its /proc entries (environ, mem, maps…)
/// then belong to root, so nothing else running as this user — a
/// conversion child taken over by a crafted upload, say — can read the
/// secrets from its environment or memory, or attach to it. (No core dump
/// either: one would hold the same secrets.)
fn not_dumpable() {
    // SAFETY: changes only this process's dumpable flag.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
        eprintln!(
            "vidaud: could not make the process non-dumpable: {}",
            std::io::Error::last_os_error()
        );
    }
}
use crate::{admin, config, reload, systemd};

pub fn run(args: ServeArgs) -> ExitCode {
    not_dumpable();
    let settings = match config::load(&args.config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("vidaud: {e:#}");
            return ExitCode::from(2);
        }
    };
    let log = init_logging(&settings);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("vidaud: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(settings, args.dev, &args.config, log)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e:#}");
            eprintln!("vidaud: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logging to stderr, human (coloured at a terminal) or JSON; the filter can
/// be swapped on SIGHUP.
fn init_logging(settings: &Settings) -> reload::LogHandle {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    // Colour only for a person at a terminal: journald and log files show
    // escape codes raw.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let format = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(colour);
    let format = if settings.log.format == "json" {
        format.json().boxed()
    } else {
        format.boxed()
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(format)
        .init();
    handle
}

fn node_id(settings: &Settings) -> String {
    if !settings.node.id.is_empty() {
        return settings.node.id.clone();
    }
    // /proc/sys is hidden under systemd's ProcSubset=pid; /etc/hostname is not.
    let host = ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".to_owned());
    format!("{host}-{}", std::process::id())
}

async fn serve(
    mut settings: Settings,
    dev: bool,
    path: &Path,
    log: reload::LogHandle,
) -> anyhow::Result<()> {
    config::check(&settings)?;
    config::ensure_jwt_secret(&mut settings)?;
    let secret = config::jwt_secret(&settings, dev)?;
    // Checked before anything starts: a planted path refuses the start.
    let admin_socket =
        (!settings.admin.socket.is_empty()).then(|| PathBuf::from(&settings.admin.socket));
    let admin_listener = admin_socket.as_deref().map(admin::bind).transpose()?;
    let keys = Arc::new(TokenKeys::new(&secret, config::token_rules(&settings))?);
    let links = Arc::new(LinkKeys::new(
        &settings.auth.link_keys,
        &secret,
        settings.auth.link_ttl_secs,
    )?);
    let node_id = node_id(&settings);
    let shutdown = Arc::new(Shutdown::default());
    let mut current = settings.clone();
    let args = RootArgs {
        settings,
        node_id: node_id.clone(),
        keys,
        links,
        metrics: Arc::new(Metrics::new()),
        shutdown: shutdown.clone(),
    };
    info!(node = %node_id, version = env!("CARGO_PKG_VERSION"), "starting");
    systemd::status("connecting the backends");
    let (root, mut handle) = tokio::select! {
        spawned = Actor::spawn(Some(format!("root-{node_id}")), RootSupervisor, args) => {
            spawned.context("starting the actor tree")?
        }
        _ = stop_signal() => {
            info!("stopped before start-up finished");
            return Ok(());
        }
    };
    let admin_task =
        admin_listener.map(|listener| tokio::spawn(admin::serve(listener, root.clone())));
    info!(node = %node_id, "ready");
    systemd::ready(&format!("serving as node {node_id}"));
    systemd::spawn_watchdog(root.get_cell());
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = stop_signal() => {
                info!("stopping: no new requests or deliveries; finishing what is in hand");
                systemd::stopping("stopping: finishing what is in hand");
                root.stop(None);
                let _ = (&mut handle).await;
                break;
            }
            _ = hangup.recv() => {
                systemd::send_reloading();
                match config::load(path) {
                    Ok(new) => reload::apply(&mut current, new, &root, &log).await,
                    Err(e) => tracing::warn!("SIGHUP: configuration not reloaded: {e:#}"),
                }
                systemd::ready(&format!("serving as node {node_id}"));
            }
            _ = &mut handle => break,
        }
    }
    if let Some(task) = admin_task {
        task.abort();
    }
    if let Some(path) = admin_socket {
        let _ = std::fs::remove_file(path);
    }
    match shutdown.escalated() {
        Some(reason) => anyhow::bail!("the actor tree gave up: {reason}"),
        None => {
            info!("stopped");
            Ok(())
        }
    }
}

async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
