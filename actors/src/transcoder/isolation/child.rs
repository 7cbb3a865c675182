//! The child's side: `vidaud transcode-child`, started by the node for one
//! conversion. It reads one [`Request`], converts its file descriptor 3
//! into its file descriptor 4 with the pipeline, and reports on stdout.
//!
//! It holds no secret and no configuration (its environment is cleared,
//! its request names only output options and limits) and cannot outlive
//! the node: the kernel kills it when the node dies (`PR_SET_PDEATHSIG`,
//! set before exec), and it exits when its stdin, the node's end, closes.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use super::protocol::{Fault, INPUT_FD, OUTPUT_FD, Report, Request};
use crate::transcoder::pipeline::{TranscodeError, transcode};

/// Exit code when the node went away (stdin closed) mid-conversion.
const ORPHANED: i32 = 70;

/// Set once the outcome is reported: the node may close stdin then.
static REPORTED: AtomicBool = AtomicBool::new(false);

/// Runs one conversion as the node asked; the exit code is 0 whenever an
/// outcome was reported (the outcome says how it went), 2 for a request
/// that could not be read.
pub fn main() -> ExitCode {
    // A few malloc arenas keep the address space (the memory limit counts
    // it) close to what is really used: glibc reserves 64 MiB per arena.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: only changes allocator parameters, before other threads exist.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
    let stdin = std::io::stdin();
    let mut line = String::new();
    let request: Request = match stdin.lock().read_line(&mut line) {
        Ok(n) if n > 0 => match serde_json::from_str(&line) {
            Ok(request) => request,
            Err(e) => {
                eprintln!("vidaud transcode-child: unreadable request: {e}");
                return ExitCode::from(2);
            }
        },
        _ => {
            eprintln!("vidaud transcode-child: no request (run by the node only)");
            return ExitCode::from(2);
        }
    };
    if request.seccomp
        && let Err(e) = super::seccomp::install()
    {
        let cause = std::error::Error::source(&e)
            .map(|c| format!(": {c}"))
            .unwrap_or_default();
        eprintln!("vidaud transcode-child: {e}{cause}");
        let error = TranscodeError::Internal(format!("no system-call filter: {e}{cause}"));
        REPORTED.store(true, Ordering::SeqCst);
        say(&Report::Failed { error });
        return ExitCode::SUCCESS;
    }
    std::thread::spawn(move || {
        // The node keeps its end open while it wants the result.
        let mut rest = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stdin.lock(), &mut rest);
        if !REPORTED.load(Ordering::SeqCst) {
            // SAFETY: _exit ends the process at once; nothing needs unwinding.
            unsafe { libc::_exit(ORPHANED) }
        }
    });
    if let Some(fault) = request.fault {
        bring_about(fault);
    }

    let control = request.limits.control();
    let input = PathBuf::from(format!("/proc/self/fd/{INPUT_FD}"));
    let output = PathBuf::from(format!("/proc/self/fd/{OUTPUT_FD}"));
    let mut report = |p| say(&Report::Progress { progress: p });
    let outcome = match transcode(&input, &request.options, &output, &control, &mut report) {
        Ok(summary) => Report::Done { summary },
        Err(error) => Report::Failed { error },
    };
    REPORTED.store(true, Ordering::SeqCst);
    say(&outcome);
    ExitCode::SUCCESS
}

/// Writes one report line; a node that stopped reading is gone.
fn say(report: &Report) {
    let line = serde_json::to_string(report).unwrap_or_else(|e| {
        let error = TranscodeError::Internal(format!("unencodable report: {e}"));
        serde_json::to_string(&Report::Failed { error }).unwrap_or_default()
    });
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
        // SAFETY: as above; the node cannot hear us any more.
        unsafe { libc::_exit(ORPHANED) }
    }
}

fn bring_about(fault: Fault) {
    match fault {
        Fault::Segfault => {
            // SAFETY: dying by a signal is what this test hook is for. The
            // default action first: Rust's own handler (stack overflow
            // detection) would ignore a raised, not faulting, SIGSEGV.
            unsafe {
                libc::signal(libc::SIGSEGV, libc::SIG_DFL);
                libc::raise(libc::SIGSEGV);
            }
        }
        Fault::Escape => {
            // SAFETY: plain system calls whose results are only checked;
            // a fork that worked ends its copy at once.
            unsafe {
                let socket = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
                let forked = libc::fork();
                if forked == 0 {
                    libc::_exit(0);
                }
                let signalled = libc::kill(libc::getppid(), 0);
                if socket >= 0 || forked > 0 || signalled == 0 {
                    eprintln!("escaped: socket {socket}, fork {forked}, kill {signalled}");
                    libc::abort();
                }
            }
        }
        Fault::Runaway => {
            let mut held: Vec<Vec<u8>> = Vec::new();
            loop {
                // Touched, so that it is really used, until the address
                // space limit makes an allocation fail (and abort).
                held.push(vec![1u8; 16 << 20]);
            }
        }
    }
}
