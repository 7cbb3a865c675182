//! Starting a conversion child: vidaud's own binary in its hidden
//! `transcode-child` mode, with a cleared environment, its three files as
//! its file descriptors 3, 4 and 5, its own process group, and — set between
//! fork and exec, so that no instruction of the child runs without them —
//! the parent-death signal, `no_new_privs` and the resource limits.

use std::os::fd::RawFd;
use std::process::Stdio;

use tokio::process::{Child, Command};

use super::protocol::{INPUT_FD, OUTPUT_FD, WAVEFORM_FD};
use super::{ChildFiles, Sandbox};

/// Environment variables passed through: GStreamer's own, which select
/// plugins and debug output and carry no secret. Everything else is cleared.
const PASSED_THROUGH: [&str; 4] = [
    "GST_DEBUG",
    "GST_PLUGIN_PATH",
    "GST_PLUGIN_SYSTEM_PATH",
    "GST_REGISTRY",
];

/// Starts a child converting `files.input` into `files.audio` and
/// `files.waveform` (its descriptors 3, 4 and 5).
pub fn start(sandbox: &Sandbox, files: &ChildFiles<'_>) -> std::io::Result<Child> {
    let mut command = Command::new(&sandbox.binary);
    command
        .arg("transcode-child")
        .env_clear()
        .envs(
            PASSED_THROUGH
                .iter()
                .filter_map(|name| std::env::var_os(name).map(|value| (name, value))),
        )
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let placed = [
        (files.input.as_raw_fd(), INPUT_FD),
        (files.audio.as_raw_fd(), OUTPUT_FD),
        (files.waveform.as_raw_fd(), WAVEFORM_FD),
    ];
    let limits = sandbox.rlimits();
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs in the forked child before exec and calls
    // only async-signal-safe functions (fcntl, dup2, prctl, getppid,
    // setrlimit); it allocates nothing (`limits` and `placed` were built
    // before).
    unsafe {
        command.pre_exec(move || {
            place(&placed)?;
            check(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0))?;
            if libc::getppid() != parent {
                // The node died between fork and prctl.
                libc::_exit(70);
            }
            check(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))?;
            for &(resource, soft, hard) in &limits {
                let rlimit = libc::rlimit {
                    rlim_cur: soft,
                    rlim_max: hard,
                };
                check(libc::setrlimit(resource, &rlimit))?;
            }
            Ok(())
        });
    }
    command.spawn()
}

/// Makes each `(fd, at)`'s `fd` the child's `at`, inherited across exec.
/// All are first copied above the targets, so no placement can close
/// another's source; the copies are close-on-exec.
fn place<const N: usize>(placed: &[(RawFd, RawFd); N]) -> std::io::Result<()> {
    let mut high = [0; N];
    // SAFETY: plain descriptor calls on descriptors this process owns.
    unsafe {
        for (copy, &(fd, _)) in high.iter_mut().zip(placed) {
            *copy = check(libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 10))?;
        }
        for (&copy, &(_, at)) in high.iter().zip(placed) {
            check(libc::dup2(copy, at))?;
        }
    }
    Ok(())
}

fn check(result: libc::c_int) -> std::io::Result<libc::c_int> {
    if result < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(result)
    }
}
