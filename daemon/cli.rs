//! Command-line interface.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "vidaud",
    version,
    about = "Self-hosted video-to-audio conversion service"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run a node: HTTP API, transcoder pool, queue bridge, notifier.
    Serve(ServeArgs),
    /// Convert one local file to MP3, no services needed.
    Convert(ConvertArgs),
    /// Talk to a running node over its admin socket.
    Ctl(CtlArgs),
}

#[derive(Args)]
pub struct CtlArgs {
    /// The admin socket; by default `admin.socket` from the configuration.
    #[arg(long)]
    pub socket: Option<PathBuf>,
    /// Configuration file to read the socket path from.
    #[arg(long, short, default_value = "config.toml")]
    pub config: PathBuf,
    /// Print the node's JSON answer instead of the human-readable form.
    #[arg(long)]
    pub json: bool,
    #[command(subcommand)]
    pub action: CtlAction,
}

#[derive(Subcommand)]
pub enum CtlAction {
    /// Version, uptime, pool, queue, restarts, dependency health.
    Status,
    /// Set the transcoder pool size, live (in-flight jobs finish).
    Resize { workers: usize },
    /// Stop taking new jobs; jobs in hand finish.
    Drain,
    /// Take new jobs again.
    Resume,
}

#[derive(Args)]
pub struct ServeArgs {
    /// Configuration file (TOML). Settings can also be overridden by
    /// environment variables `VIDAUD_<SECTION>__<KEY>`.
    #[arg(long, short, default_value = "config.toml")]
    pub config: PathBuf,
    /// Development mode: allow a missing JWT secret (a random one is made
    /// for this run, so tokens do not survive a restart).
    #[arg(long)]
    pub dev: bool,
}

#[derive(Args)]
pub struct ConvertArgs {
    /// Input video or audio file.
    pub input: PathBuf,
    /// Output MP3 file (written atomically: it appears only when complete).
    pub output: PathBuf,
    /// MP3 bitrate in kb/s (constant bitrate).
    #[arg(long, default_value_t = 192)]
    pub bitrate: u32,
    /// ID3 title; defaults to the input's file name without extension.
    #[arg(long)]
    pub title: Option<String>,
}
