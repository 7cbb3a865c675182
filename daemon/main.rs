//! `vidaud`: the daemon and its one-shot commands.
//!
//! `serve` runs a node (the supervised actor tree); `convert` runs the same
//! transcoder on local files with no services at all; `ctl` talks to a
//! running node over its admin socket; `user` manages accounts; `health`
//! asks a node on this machine whether it is up.

mod admin;
mod cli;
mod config;
mod convert;
mod ctl;
mod health;
mod migrate;
mod reload;
mod serve;
mod systemd;
mod user;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    return_large_blocks_to_the_system();
    let cli = cli::Cli::parse();
    match cli.command {
        cli::Command::Serve(args) => serve::run(args),
        cli::Command::Convert(args) => convert::run(args),
        cli::Command::Ctl(args) => ctl::run(args),
        cli::Command::User(args) => user::run(args),
        cli::Command::Health(args) => health::run(args),
        cli::Command::Migrate(args) => migrate::run(args),
        cli::Command::TranscodeChild => vidaud_actors::transcoder::isolation::child_main(),
    }
}

/// glibc raises its mmap threshold to the size of each large block freed,
/// so after the first argon2 hash (19 MiB) every later one comes from a
/// thread's heap and stays there once freed: a burst of logins left the
/// daemon at 700 MiB. A fixed threshold keeps blocks of 16 MiB and more
/// mapped on their own and unmapped when freed; buffers of media and
/// GridFS chunks are far smaller and unaffected.
fn return_large_blocks_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; it is called
    // before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 16 << 20);
        // Fixing one threshold fixes the other too, at 128 KiB, which
        // trims (and later faults back in) the heap all the time while
        // media streams through: keep what glibc's own adjustment gave.
        libc::mallopt(libc::M_TRIM_THRESHOLD, 32 << 20);
    }
}
