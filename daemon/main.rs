//! `vidaud`: the daemon and its one-shot commands.
//!
//! `serve` runs a node (the supervised actor tree); `convert` runs the same
//! transcoder on local files with no services at all; `ctl` talks to a
//! running node over its admin socket; `user` manages accounts.

mod admin;
mod cli;
mod config;
mod convert;
mod ctl;
mod reload;
mod serve;
mod systemd;
mod user;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cli.command {
        cli::Command::Serve(args) => serve::run(args),
        cli::Command::Convert(args) => convert::run(args),
        cli::Command::Ctl(args) => ctl::run(args),
        cli::Command::User(args) => user::run(args),
    }
}
