//! Command-line interface.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use vidaud_actors::output::OPTIONS;
use vidaud_actors::transcoder::Segment;
use vidaud_actors::transcoder::segments::SplitSettings;

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
    /// Convert one local file to audio (the options of an upload), no services needed.
    Convert(ConvertArgs),
    /// Talk to a running node over its admin socket.
    Ctl(CtlArgs),
    /// Manage user accounts in the backend's user directory.
    User(UserArgs),
    /// Ask the node on this machine whether it is alive (`GET /health`) or
    /// ready (`--ready`: `GET /ready`); exit 0 if so. A container's health check.
    Health(HealthArgs),
    /// Copy this node's embedded data (users, jobs, files; ids kept) into a
    /// cluster: the way to grow. Restartable; verifies at the end.
    Migrate(crate::migrate::MigrateArgs),
    /// Run by the node itself: one sandboxed conversion (see
    /// actors/src/transcoder/isolation).
    #[command(hide = true)]
    TranscodeChild,
}

#[derive(Args)]
pub struct UserArgs {
    /// Configuration file to read `[auth]` from.
    #[arg(long, short, env = "VIDAUD_CONFIG", default_value = "config.toml")]
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
    /// Set a user's password (first line of stdin); every token issued
    /// before is revoked.
    Passwd { email: String },
    /// Disable an account: it cannot log in, and its tokens are revoked.
    Disable { email: String },
    /// Enable a disabled account again (its old tokens stay revoked).
    Enable { email: String },
    /// Set an account's storage quota and active-job limit (each a number,
    /// 0 for none, or `default` for the node's; one not given is kept).
    Limits {
        email: String,
        #[arg(long, value_name = "BYTES|default")]
        quota_bytes: Option<String>,
        #[arg(long, value_name = "JOBS|default")]
        max_active_jobs: Option<String>,
    },
    /// Delete an account: its tokens are revoked, and the running nodes
    /// erase its jobs, files, uploads and webhooks within seconds.
    Delete { email: String },
    /// List the accounts: e-mail, role, state.
    List,
}

#[derive(Args)]
pub struct CtlArgs {
    /// The admin socket; by default `admin.socket` from the configuration.
    #[arg(long)]
    pub socket: Option<PathBuf>,
    /// Configuration file to read the socket path from.
    #[arg(long, short, env = "VIDAUD_CONFIG", default_value = "config.toml")]
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
pub struct HealthArgs {
    /// Configuration file to read `http.listen` from.
    #[arg(long, short, env = "VIDAUD_CONFIG", default_value = "config.toml")]
    pub config: PathBuf,
    /// The node's base URL; by default the address `http.listen` names (a
    /// wildcard address asked on loopback).
    #[arg(long)]
    pub url: Option<String>,
    /// Ask `/ready` (every dependency reachable) instead of `/health`.
    #[arg(long)]
    pub ready: bool,
    /// Longest wait for the answer, seconds.
    #[arg(long, default_value_t = 5)]
    pub timeout: u64,
}

#[derive(Args)]
pub struct ServeArgs {
    /// Configuration file (TOML). Settings can also be overridden by
    /// environment variables `VIDAUD_<SECTION>__<KEY>`.
    #[arg(long, short, env = "VIDAUD_CONFIG", default_value = "config.toml")]
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
    /// Output file (written atomically: it appears only when complete); its
    /// extension gives the format when --format is not given, else mp3.
    pub output: PathBuf,
    /// Convert in a confined child process, as a node does (seccomp,
    /// Landlock, the default memory and CPU limits): for files you do not
    /// trust.
    #[arg(long)]
    pub sandbox: bool,
    /// Also write the audio's waveform data to this file (BBC
    /// audiowaveform's JSON, as `GET /jobs/{id}/waveform` serves it).
    #[arg(long, value_name = "FILE")]
    pub waveform: Option<PathBuf>,
    /// Convert audio longer than --split-above in segments, this many at
    /// once (each in a process of its own), joined into one file that a
    /// single pass cannot be told from. 1: one pass.
    #[arg(long, short = 'j', default_value_t = 1, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=256))]
    pub jobs: u32,
    /// With --jobs: split audio longer than this many seconds (0: never).
    #[arg(long, value_name = "SECS", default_value_t = SplitSettings::default().above.as_secs())]
    pub split_above: u64,
    /// With --jobs: about how long each segment is, in seconds; without
    /// it, N segments of one length (one per process: each segment costs a
    /// process's start).
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub segment_secs: Option<u64>,
    /// Run by `--jobs` itself: convert only these input samples, `FROM:TO`
    /// or `FROM:`, counted from the trim's start or else from the first
    /// audio, at ORIGIN ns (`FROM:TO@ORIGIN`); `+seek`: jump to near FROM.
    #[arg(long, hide = true, value_name = "FROM:TO[@ORIGIN][+seek]", value_parser = parse_segment)]
    pub segment: Option<Segment>,
    #[command(flatten)]
    pub options: OptionFlags,
}

/// `FROM:TO[@ORIGIN][+seek]` or `FROM:[@ORIGIN][+seek]` as a segment of
/// input samples.
pub fn parse_segment(text: &str) -> Result<Segment, String> {
    let (text, seek) = match text.strip_suffix("+seek") {
        Some(rest) => (rest, true),
        None => (text, false),
    };
    let (range, origin) = text.split_once('@').unwrap_or((text, "0"));
    let (from, to) = range.split_once(':').ok_or("FROM:TO or FROM:")?;
    let number = |n: &str| n.parse::<u64>().map_err(|e| format!("{n}: {e}"));
    Ok(Segment {
        from: number(from)?,
        to: (!to.is_empty()).then(|| number(to)).transpose()?,
        origin: number(origin)?,
        seek,
    })
}

/// A segment as `parse_segment` reads it.
pub fn segment_arg(segment: &Segment) -> String {
    let to = segment.to.map(|t| t.to_string()).unwrap_or_default();
    let seek = if segment.seek { "+seek" } else { "" };
    format!("{}:{to}@{}{seek}", segment.from, segment.origin)
}

/// The output options as `--name value` flags: one per row of the options
/// table (`vidaud_actors::output::OPTIONS`), `_` written `-`.
pub struct OptionFlags {
    /// `(option name, value)` for each flag given.
    pub pairs: Vec<(&'static str, String)>,
}

impl OptionFlags {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

impl clap::FromArgMatches for OptionFlags {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let pairs = OPTIONS
            .iter()
            .filter_map(|o| {
                matches
                    .get_one::<String>(o.name)
                    .map(|value| (o.name, value.clone()))
            })
            .collect();
        Ok(Self { pairs })
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl Args for OptionFlags {
    fn augment_args(command: clap::Command) -> clap::Command {
        OPTIONS.iter().fold(command, |command, option| {
            command.arg(
                clap::Arg::new(option.name)
                    .long(option.name.replace('_', "-"))
                    .value_name("VALUE")
                    .help(option.description())
                    // `--start -1` reaches the validator, which says why not.
                    .allow_hyphen_values(true),
            )
        })
    }

    fn augment_args_for_update(command: clap::Command) -> clap::Command {
        Self::augment_args(command)
    }
}
