//! Untrusted media is decoded outside the node: each conversion runs in a
//! child process that holds nothing worth stealing and whose failure is
//! only that conversion's.
//!
//! The demuxers and decoders that parse an upload are C code. In the node
//! they would share an address space with the JWT secret, the backends'
//! credentials and every other job in hand, and a crash on one crafted
//! file would take all of that down. So the worker actor (the owner of the
//! attempt: lease, progress, cancellation, storage) hands the spooled input
//! and empty output spools (audio, waveform) to a child — vidaud's own binary in its hidden
//! `transcode-child` mode (child.rs) — and reads its reports (protocol.rs).
//! The child starts with a cleared environment, in its own process group,
//! with `no_new_privs`, the parent-death signal and rlimits (address
//! space, CPU time, open files, file size) set before exec (spawn.rs); once
//! it has its request it confines itself to its three files (landlock.rs)
//! and to the system calls conversions make (seccomp.rs).
//!
//! Start-up (exec, linking, loading GStreamer's registry) is kept off the
//! job's path: each idle worker holds a [`Standby`], a child started ahead
//! with the spools it will convert between, that has said it is ready.
//! One job per child: it is never reused.
//!
//! How it ended — an outcome, a signal, a limit, silence — is turned into a
//! [`TranscodeError`] that says which (outcome.rs).
//!
//! Cancelling (lease lost, shutdown) kills the child's process group and
//! reaps it; dropping a conversion does the same (`kill_on_drop`), and a
//! node that dies takes its children with it.

mod child;
pub mod kernel;
mod landlock;
mod outcome;
pub mod protocol;
mod seccomp;
mod spawn;

use std::path::PathBuf;
use std::time::Duration;

use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio_util::codec::{FramedRead, LinesCodec};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

pub use child::main as child_main;
pub(super) use child::{join_segments, long_enough};
use outcome::StderrTail;
use protocol::{Confine, JoinTask, MAX_LINE, Report, Request, Task};

use crate::settings::TranscoderSettings;
use crate::transcoder::pipeline::{AudioShape, Progress, Summary, TranscodeError};
use crate::transcoder::segments::Joined;
use crate::transcoder::spool::Spools;

/// How a node starts its conversion children.
#[derive(Debug, Clone)]
pub struct Sandbox {
    /// The binary to run: vidaud's own (`/proc/self/exe`).
    pub binary: PathBuf,
    /// Address space limit, MiB (0: none).
    pub memory_mib: u64,
    /// CPU time limit, seconds (0: none).
    pub cpu_secs: u64,
    /// Open file limit (0: none).
    pub open_files: u64,
    /// Largest file the child may write, MiB (0: none).
    pub output_mib: u64,
    /// Whether the child installs its system-call filter (`child_seccomp`,
    /// and a kernel that has seccomp filters).
    pub seccomp: bool,
    /// The Landlock ABI the child confines itself with (`child_landlock`,
    /// and a kernel that has it); 0: none.
    pub landlock_abi: u32,
}

impl Sandbox {
    /// From the settings: the limits given, else derived from the job
    /// limits (CPU: the longest job may use both cores it could get for
    /// its whole wall time, plus start-up; output: PCM at 192 kHz stereo in
    /// 32 bits for the longest input, more than any format we write needs).
    pub fn from_settings(settings: &TranscoderSettings, kernel: kernel::Support) -> Self {
        // The running binary's own inode, even if an upgrade has replaced
        // the file since: the child always speaks the node's protocol.
        let binary = if settings.child_binary.is_empty() {
            PathBuf::from("/proc/self/exe")
        } else {
            PathBuf::from(&settings.child_binary)
        };
        let derived_cpu = settings.max_job_secs.saturating_mul(2).saturating_add(60);
        let derived_output = settings.max_input_secs.saturating_mul(192_000 * 2 * 4) >> 20;
        Self {
            binary,
            memory_mib: settings.child_memory_mib,
            cpu_secs: or_derived(settings.child_cpu_secs, derived_cpu),
            open_files: settings.child_open_files,
            output_mib: or_derived(settings.child_output_mib, derived_output.max(64)),
            seccomp: settings.child_seccomp && kernel.seccomp_filter,
            landlock_abi: if settings.child_landlock {
                kernel.landlock_abi.unwrap_or(0)
            } else {
                0
            },
        }
    }

    /// The confinement each child is asked to apply to itself.
    fn confine(&self) -> Confine {
        Confine {
            seccomp: self.seccomp,
            landlock_abi: self.landlock_abi,
        }
    }

    /// The rlimits set in the child, (resource, soft, hard); unlimited
    /// ones are left out. A core dump is never written: it would hold user
    /// data. The CPU limit's soft value sends SIGXCPU (reported as such);
    /// its hard one, a little later, SIGKILL.
    fn rlimits(&self) -> Vec<(libc::__rlimit_resource_t, libc::rlim_t, libc::rlim_t)> {
        let mut limits = vec![(libc::RLIMIT_CORE, 0, 0)];
        let mib = |n: u64| n.saturating_mul(1 << 20);
        for (resource, soft, grace) in [
            (libc::RLIMIT_AS, mib(self.memory_mib), 0),
            (libc::RLIMIT_CPU, self.cpu_secs, 5),
            (libc::RLIMIT_NOFILE, self.open_files, 0),
            (libc::RLIMIT_FSIZE, mib(self.output_mib), 0),
        ] {
            if soft > 0 {
                limits.push((resource, soft, soft.saturating_add(grace)));
            }
        }
        limits
    }
}

fn or_derived(given: u64, derived: u64) -> u64 {
    if given > 0 { given } else { derived }
}

/// A child started ahead, with the (empty) spools it will convert between:
/// the worker fills the input when its job comes, and reads the audio and
/// waveform after.
pub struct Standby {
    pub converter: Converter,
    pub spools: Spools,
}

impl Standby {
    /// Makes the spools in `spool_dir` and starts a child on them.
    pub fn start(sandbox: &Sandbox, spool_dir: &str) -> std::io::Result<Self> {
        let spools = Spools::new(spool_dir)?;
        let converter = Converter::start(sandbox, &ChildFiles::of(&spools))?;
        Ok(Self { converter, spools })
    }
}

/// The files a child is handed: the one it reads, the two it writes.
pub struct ChildFiles<'a> {
    pub input: &'a dyn std::os::fd::AsRawFd,
    pub audio: &'a dyn std::os::fd::AsRawFd,
    pub waveform: &'a dyn std::os::fd::AsRawFd,
}

impl<'a> ChildFiles<'a> {
    pub fn of(spools: &'a Spools) -> Self {
        Self {
            input: &spools.input,
            audio: &spools.audio,
            waveform: &spools.waveform,
        }
    }
}

/// What a child asked to convert came to.
#[derive(Debug)]
pub enum Converted {
    /// The audio and its waveform are in the output spools.
    Audio {
        summary: Box<Summary>,
        /// Its peak resident memory, KiB.
        peak_rss_kib: u64,
    },
    /// Asked with `split`: the audio is long enough to be split, and
    /// nothing was converted; its shape, for the node's plan.
    Long { shape: AudioShape },
}

/// A started child that has not had its request yet. Dropped unused, it is
/// killed (and reaped by the runtime).
pub struct Converter {
    child: tokio::process::Child,
}

impl Converter {
    /// Starts a child on `files` (spools, or for `vidaud convert
    /// --sandbox` the user's own files).
    pub fn start(sandbox: &Sandbox, files: &ChildFiles<'_>) -> std::io::Result<Self> {
        spawn::start(sandbox, files).map(|child| Self { child })
    }

    /// Whether it still runs (a child started ahead may have been killed
    /// while it waited).
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

/// A child's outcome, for the task it was given.
#[derive(Debug)]
enum Outcome {
    Converted(Converted),
    Joined(Joined),
}

/// Converts with `converter` (its input spool filled by now), reporting
/// progress as it comes; `cancel` kills it. Errors say what happened to the
/// child.
pub async fn convert(
    sandbox: &Sandbox,
    converter: Converter,
    request: &Request,
    cancel: &CancellationToken,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<Converted, TranscodeError> {
    let request = Request {
        task: Task::Convert,
        ..request.clone()
    };
    match run(sandbox, converter, &request, cancel, progress).await? {
        Outcome::Converted(converted) => Ok(converted),
        other => Err(unasked(other)),
    }
}

/// Joins the segments in `converter`'s input spool (as `task` says) into
/// its output spools, in the child, confined.
pub async fn join(
    sandbox: &Sandbox,
    converter: Converter,
    request: &Request,
    task: JoinTask,
    cancel: &CancellationToken,
) -> Result<Joined, TranscodeError> {
    let request = Request {
        task: Task::Join(task),
        ..request.clone()
    };
    match run(sandbox, converter, &request, cancel, &mut |_| {}).await? {
        Outcome::Joined(joined) => Ok(joined),
        other => Err(unasked(other)),
    }
}

/// A child that did another task than the one it was given.
fn unasked(outcome: Outcome) -> TranscodeError {
    let did = match outcome {
        Outcome::Converted(_) => "converted",
        Outcome::Joined(_) => "joined",
    };
    TranscodeError::Protocol(format!("the converter {did} unasked"))
}

/// Gives `converter` its request and sees it to its end.
async fn run(
    sandbox: &Sandbox,
    converter: Converter,
    request: &Request,
    cancel: &CancellationToken,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<Outcome, TranscodeError> {
    let mut child = converter.child;
    let request = Request {
        confine: sandbox.confine(),
        ..request.clone()
    };
    let deadline = hard_deadline(&request.limits);
    let talked = talk(&mut child, &request, cancel, deadline, progress).await;
    let status = match talked.outcome {
        // It said how it went, and now exits by itself.
        Talk::Outcome(_) => match tokio::time::timeout(EXIT_GRACE, child.wait()).await {
            Ok(status) => status,
            Err(_) => end(&mut child).await,
        },
        // Stopped talking, cancelled or broken: nothing of it survives.
        _ => end(&mut child).await,
    };
    let tail = talked.stderr.finish().await;
    if !matches!(talked.outcome, Talk::Outcome(_) | Talk::Cancelled) && !tail.is_empty() {
        warn!("the converter's last words: {}", tail.trim_end());
    }
    match (talked.outcome, status) {
        (Talk::Outcome(outcome), Ok(status)) if status.success() => outcome,
        (Talk::Cancelled, _) => Err(TranscodeError::Cancelled),
        (Talk::Broken(why), _) => Err(TranscodeError::Protocol(why)),
        // Not this input's doing: it never got as far as reading it.
        (_, Ok(status)) if !talked.ready => Err(TranscodeError::Internal(format!(
            "the converter did not start: {}",
            outcome::classify(status, &tail, sandbox)
        ))),
        (_, Ok(status)) => Err(outcome::classify(status, &tail, sandbox)),
        (_, Err(e)) => Err(TranscodeError::Internal(format!(
            "waiting for the converter: {e}"
        ))),
    }
}

/// How long a child that reported its outcome has to exit.
const EXIT_GRACE: Duration = Duration::from_secs(5);

/// Kills the child's whole process group, then reaps the child. The group
/// is signalled before the reaping, while its id cannot have been reused.
async fn end(child: &mut tokio::process::Child) -> std::io::Result<std::process::ExitStatus> {
    if let Some(pid) = child.id() {
        // SAFETY: a signal to the process group our own child leads.
        unsafe {
            libc::kill(-(pid as libc::pid_t), libc::SIGKILL);
        }
    }
    child.wait().await
}

enum Talk {
    /// The child reported its outcome.
    Outcome(Result<Outcome, TranscodeError>),
    /// The child's stdout ended without an outcome: its exit says why.
    Ended,
    /// It said something that is not a report.
    Broken(String),
    Cancelled,
}

/// What the conversation with a child came to, and its stderr.
struct Talked {
    outcome: Talk,
    /// It said it was ready (so it got as far as its request).
    ready: bool,
    stderr: StderrTail,
}

async fn talk(
    child: &mut tokio::process::Child,
    request: &Request,
    cancel: &CancellationToken,
    deadline: Duration,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Talked {
    let stderr = StderrTail::collect(child.stderr.take());
    let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return Talked {
            outcome: Talk::Broken("no pipes to the converter".into()),
            ready: false,
            stderr,
        };
    };
    let mut line = match serde_json::to_string(request) {
        Ok(line) => line,
        Err(e) => {
            return Talked {
                outcome: Talk::Broken(format!("unencodable request: {e}")),
                ready: false,
                stderr,
            };
        }
    };
    line.push('\n');
    if let Err(e) = stdin.write_all(line.as_bytes()).await {
        // It died before reading: its exit status says how.
        debug!("writing the request to the converter: {e}");
    }
    // `stdin` stays open until this returns: its end tells the child to stop.
    let mut reports = FramedRead::new(stdout, LinesCodec::new_with_max_length(MAX_LINE));
    let backstop = tokio::time::sleep(deadline);
    tokio::pin!(backstop);
    let mut ready = false;
    let outcome = loop {
        let next = tokio::select! {
            next = reports.next() => next,
            () = cancel.cancelled() => break Talk::Cancelled,
            () = &mut backstop => {
                break Talk::Broken(format!("no outcome within {} s", deadline.as_secs()));
            }
        };
        let line = match next {
            None => break Talk::Ended,
            Some(Ok(line)) => line,
            Some(Err(e)) => break Talk::Broken(format!("unreadable report: {e}")),
        };
        match serde_json::from_str::<Report>(&line) {
            Ok(Report::Ready) => ready = true,
            Ok(Report::Progress { progress: p }) => progress(p),
            Ok(Report::Done {
                summary,
                peak_rss_kib,
            }) => {
                debug!(peak_rss_kib, "the converter is done");
                break Talk::Outcome(Ok(Outcome::Converted(Converted::Audio {
                    summary,
                    peak_rss_kib,
                })));
            }
            Ok(Report::Long {
                shape,
                peak_rss_kib,
            }) => {
                debug!(
                    peak_rss_kib,
                    "the converter found the audio long enough to split"
                );
                let long = Converted::Long { shape };
                break Talk::Outcome(Ok(Outcome::Converted(long)));
            }
            Ok(Report::Joined {
                joined,
                peak_rss_kib,
            }) => {
                debug!(peak_rss_kib, "the converter has joined");
                break Talk::Outcome(Ok(Outcome::Joined(joined)));
            }
            Ok(Report::Failed { error }) => break Talk::Outcome(Err(error)),
            Err(e) => {
                warn!("the converter said something that is not a report: {e}");
                break Talk::Broken(format!("not a report: {e}"));
            }
        }
    };
    drop(stdin);
    Talked {
        outcome,
        ready,
        stderr,
    }
}

/// The wall-clock backstop for a child that stops reporting but lives on
/// (the pipeline's own wall and stall limits run inside it).
fn hard_deadline(limits: &protocol::Limits) -> Duration {
    limits.max_wall + limits.stall_after + Duration::from_secs(30)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_come_from_the_settings_or_the_job_limits() {
        let settings = TranscoderSettings::default();
        let kernel = kernel::Support {
            seccomp_filter: true,
            landlock_abi: None,
        };
        let sandbox = Sandbox::from_settings(&settings, kernel);
        assert!(sandbox.seccomp);
        assert_eq!(sandbox.binary, PathBuf::from("/proc/self/exe"));
        assert_eq!(sandbox.cpu_secs, 2 * settings.max_job_secs + 60);
        // 6 h of 192 kHz stereo 32-bit PCM.
        assert_eq!(sandbox.output_mib, (21_600 * 192_000 * 8) >> 20);
        let limits = sandbox.rlimits();
        assert!(limits.contains(&(libc::RLIMIT_CORE, 0, 0)));
        assert!(limits.contains(&(libc::RLIMIT_AS, 1024 << 20, 1024 << 20)));
        assert!(limits.contains(&(libc::RLIMIT_CPU, 2 * 1500 + 60, 2 * 1500 + 65)));
        let unlimited = Sandbox {
            memory_mib: 0,
            ..sandbox
        };
        assert!(!unlimited.rlimits().iter().any(|l| l.0 == libc::RLIMIT_AS));
    }
}
