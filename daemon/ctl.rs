//! `vidaud ctl`: the admin socket's client, for operators.
//!
//! Exit codes: 0 done, 1 the node refused the command, 2 bad usage,
//! 3 no node answering on the socket.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::{Value, json};

use crate::cli::{CtlAction, CtlArgs};
use crate::config;

pub fn run(args: CtlArgs) -> ExitCode {
    let socket = match &args.socket {
        Some(path) => path.clone(),
        None => match config::load(&args.config) {
            Ok(settings) => settings.admin.socket.into(),
            Err(e) => {
                eprintln!("vidaud ctl: {e:#}");
                return ExitCode::from(2);
            }
        },
    };
    let command = match args.action {
        CtlAction::Status => json!({ "command": "status" }),
        CtlAction::Resize { workers } => json!({ "command": "resize", "workers": workers }),
        CtlAction::Drain => json!({ "command": "drain" }),
        CtlAction::Resume => json!({ "command": "resume" }),
    };
    let answer = match exchange(&socket, &command) {
        Ok(answer) => answer,
        Err(e) => {
            eprintln!("vidaud ctl: no node answering on {}: {e}", socket.display());
            return ExitCode::from(3);
        }
    };
    if args.json {
        println!("{answer}");
    } else if answer["ok"] == true {
        print!("{}", human(&answer));
    }
    if answer["ok"] == true {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "vidaud ctl: {}",
            answer["error"].as_str().unwrap_or("refused")
        );
        ExitCode::FAILURE
    }
}

fn exchange(socket: &std::path::Path, command: &Value) -> std::io::Result<Value> {
    let mut stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    writeln!(stream, "{command}")?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line)?;
    serde_json::from_str(&line).map_err(std::io::Error::other)
}

/// `name value, name value, ...` for a JSON object's entries.
fn entries(object: &Value, value: impl Fn(&Value) -> String) -> String {
    object
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k} {}", value(v)))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

/// The status as an operator reads it.
fn human(s: &Value) -> String {
    let pool = &s["pool"];
    let queue = if s["draining"] == true {
        "draining (taking no new jobs)".to_owned()
    } else {
        format!("consuming, prefetch {}", s["queue"]["prefetch"])
    };
    let restarts = entries(&s["restarts"], |v| v.to_string());
    let mailboxes = entries(&s["mailboxes"], |v| {
        format!("{}/{}", v["depth"], v["capacity"])
    });
    let deps = entries(&s["dependencies"], |v| v.as_str().unwrap_or("?").to_owned());
    format!(
        "node {} (vidaud {}), up {} s\n\
         pool: {} workers, {} busy, {} waiting; worker restarts {}\n\
         queue: {queue}; unacked deliveries {}\n\
         mailboxes (depth/capacity): {mailboxes}\n\
         restarts: {restarts}\n\
         dependencies: {deps}\n",
        s["node"].as_str().unwrap_or("?"),
        s["version"].as_str().unwrap_or("?"),
        s["uptime_secs"],
        pool["size"],
        pool["busy"],
        pool["waiting"],
        pool["worker_restarts"],
        s["unacked"],
    )
}
