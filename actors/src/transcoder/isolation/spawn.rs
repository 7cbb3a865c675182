//! Starting a conversion child: vidaud's own binary in its hidden
//! `transcode-child` mode, with a cleared environment, the two spools as
//! its file descriptors 3 and 4, its own process group, and — set between
//! fork and exec, so that no instruction of the child runs without them —
//! the parent-death signal, `no_new_privs` and the resource limits.

use std::os::fd::{AsRawFd, RawFd};
use std::process::Stdio;

use tokio::process::{Child, Command};

use super::Sandbox;
use super::protocol::{INPUT_FD, OUTPUT_FD};

/// Environment variables passed through: GStreamer's own, which select
/// plugins and debug output and carry no secret. Everything else is cleared.
const PASSED_THROUGH: [&str; 4] = [
    "GST_DEBUG",
    "GST_PLUGIN_PATH",
    "GST_PLUGIN_SYSTEM_PATH",
    "GST_REGISTRY",
];

/// Starts a child converting `input` into `output` (files it reads and
/// writes through its descriptors 3 and 4).
pub fn start(
    sandbox: &Sandbox,
    input: &impl AsRawFd,
    output: &impl AsRawFd,
) -> std::io::Result<Child> {
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
    let (input, output) = (input.as_raw_fd(), output.as_raw_fd());
    let limits = sandbox.rlimits();
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs in the forked child before exec and calls
    // only async-signal-safe functions (fcntl, dup2, prctl, getppid,
    // setrlimit); it allocates nothing (`limits` was built before).
    unsafe {
        command.pre_exec(move || {
            place(input, INPUT_FD, output, OUTPUT_FD)?;
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

/// Makes `a` the child's `a_at` and `b` its `b_at`, both inherited across
/// exec. Both are first copied above the targets, so neither placement can
/// close the other's source; the copies are close-on-exec.
fn place(a: RawFd, a_at: RawFd, b: RawFd, b_at: RawFd) -> std::io::Result<()> {
    // SAFETY: plain descriptor calls on descriptors this process owns.
    unsafe {
        let high_a = check(libc::fcntl(a, libc::F_DUPFD_CLOEXEC, 10))?;
        let high_b = check(libc::fcntl(b, libc::F_DUPFD_CLOEXEC, 10))?;
        check(libc::dup2(high_a, a_at))?;
        check(libc::dup2(high_b, b_at))?;
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
