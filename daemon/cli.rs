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
    /// Manage user accounts in the backend's user directory.
    User(UserArgs),
    /// Copy this node's embedded data (users, jobs, files; ids kept) into a
    /// cluster: the way to grow. Restartable; verifies at the end.
    Migrate(crate::migrate::MigrateArgs),
}

#[derive(Args)]
pub struct UserArgs {
    /// Configuration file to read `[auth]` from.
    #[arg(long, short, default_value = "config.toml")]
    pub config: PathBuf,
    #[command(subcommand)]
    pub action: UserAction,
}

#[derive(Subcommand)]
pub enum UserAction {
    /// Create a user; the password is read from the first line of stdin
    /// (e.g. `printf '%s\n' "$PASSWORD" | vidaud user add a@example.com`).
    Add {
        email: String,
        /// Give the user the `admin` claim (sees and acts on all jobs).
        #[arg(long)]
        admin: bool,
    },
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
    /// Output file (written atomically: it appears only when complete).
    pub output: PathBuf,
    /// mp3, opus, aac (M4A) or flac; by default from OUTPUT's extension, else mp3.
    #[arg(long)]
    pub format: Option<String>,
    /// Bitrate in kb/s: constant for MP3 (default 192), target for Opus/AAC.
    #[arg(long)]
    pub bitrate: Option<String>,
    /// MP3 variable bitrate quality, 0 (best) to 9, instead of a bitrate.
    #[arg(long)]
    pub quality: Option<String>,
    /// Output sample rate in Hz (default: the input's, as the format allows).
    #[arg(long)]
    pub sample_rate: Option<String>,
    /// 1/mono or 2/stereo (default: the input's, at most stereo for MP3/AAC/Opus).
    #[arg(long)]
    pub channels: Option<String>,
    /// Trim: start at this position (seconds or [hh:]mm:ss[.fff]).
    #[arg(long, allow_hyphen_values = true)]
    pub start: Option<String>,
    /// Trim: keep this much (seconds or [hh:]mm:ss[.fff]).
    #[arg(long, allow_hyphen_values = true)]
    pub duration: Option<String>,
    /// Title tag; defaults to the input's file name without extension.
    #[arg(long)]
    pub title: Option<String>,
    /// Which audio track to convert, 0 = the first [default: the track the
    /// file marks as default, else the first].
    #[arg(long)]
    pub audio_track: Option<String>,
}

impl ConvertArgs {
    /// The options as `name = value` pairs, for the shared parser.
    pub fn option_pairs(&self) -> Vec<(&'static str, &str)> {
        [
            ("format", &self.format),
            ("bitrate", &self.bitrate),
            ("quality", &self.quality),
            ("sample_rate", &self.sample_rate),
            ("channels", &self.channels),
            ("start", &self.start),
            ("duration", &self.duration),
            ("title", &self.title),
            ("audio_track", &self.audio_track),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.as_deref().map(|v| (name, v)))
        .collect()
    }
}
