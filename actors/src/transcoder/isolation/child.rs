//! The child's side: `vidaud transcode-child`, started by the node for one
//! conversion, often ahead of it. It loads GStreamer and says it is ready,
//! reads one [`Request`], confines itself (Landlock, then the system-call
//! filter), converts its file descriptor 3 into its file descriptor 4 (and
//! the waveform into its 5) with the pipeline, and reports on stdout.
//!
//! It holds no secret and no configuration (its environment is cleared,
//! its request names only output options and limits) and cannot outlive
//! the node: the kernel kills it when the node dies (`PR_SET_PDEATHSIG`,
//! set before exec), and it exits when its stdin, the node's end, closes.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use super::protocol::{
    Confine, Fault, INPUT_FD, JoinTask, OUTPUT_FD, Report, Request, Task, WAVEFORM_FD,
};
use crate::transcoder::pipeline::{AudioShape, Output, TranscodeError, probe, transcode_segment};
use crate::transcoder::segments::{self, Joined, Piece};

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
    // The registry is read (and plugins listed) now, while the child waits
    // for its job, and before the confinement, which leaves no path to it.
    if let Err(e) = gstreamer::init() {
        return fail(TranscodeError::Internal(format!("loading GStreamer: {e}")));
    }
    preload();
    say(&Report::Ready);
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
    if let Err(error) = confine(request.confine) {
        return fail(error);
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
    let audio = PathBuf::from(format!("/proc/self/fd/{OUTPUT_FD}"));
    let waveform = PathBuf::from(format!("/proc/self/fd/{WAVEFORM_FD}"));
    let output = Output {
        audio: &audio,
        waveform: Some(&waveform),
    };
    let mut report = |p| say(&Report::Progress { progress: p });
    let outcome = match request.task {
        Task::Convert => match long_enough(&input, &request) {
            Some(shape) => Ok(Report::Long {
                shape,
                peak_rss_kib: peak_rss_kib(),
            }),
            None => transcode_segment(
                &input,
                &request.options,
                request.segment,
                output,
                &control,
                &mut report,
            )
            .map(|summary| Report::Done {
                summary: Box::new(summary),
                peak_rss_kib: peak_rss_kib(),
            }),
        },
        Task::Join(task) => join_segments(&task, &input, output).map(|joined| Report::Joined {
            joined,
            peak_rss_kib: peak_rss_kib(),
        }),
    };
    let outcome = outcome.unwrap_or_else(|error| Report::Failed { error });
    REPORTED.store(true, Ordering::SeqCst);
    say(&outcome);
    ExitCode::SUCCESS
}

/// The audio's shape when the request asks whether to split and the plan
/// would: the job is then split by the node, not converted here. An input
/// the probe cannot read is converted, which says why.
pub(in crate::transcoder) fn long_enough(input: &Path, request: &Request) -> Option<AudioShape> {
    let settings = request.split?;
    segments::joinable(&request.options).ok()?;
    let shape = probe(input, &request.options).ok()?;
    segments::plan(&request.options, shape, settings)
        .is_ok()
        .then_some(shape)
}

/// Joins the segments `input` holds (`task` says where) into `output`:
/// what a child given `Task::Join` does (and the node, with isolation off).
pub(in crate::transcoder) fn join_segments(
    task: &JoinTask,
    input: &Path,
    output: Output,
) -> Result<Joined, TranscodeError> {
    let pieces = |stretches: &[(u64, u64)]| -> Vec<Piece> {
        stretches
            .iter()
            .map(|&(at, len)| Piece {
                path: input,
                at,
                len: Some(len),
            })
            .collect()
    };
    let failed = |e: segments::JoinError| TranscodeError::Join(e.to_string());
    if let Some(waveform) = output.waveform {
        segments::join_waveforms(&task.plan, &pieces(&task.waveforms), waveform).map_err(failed)?;
    }
    segments::join(&task.plan, &pieces(&task.audio), output.audio).map_err(failed)
}

/// The plugins every conversion loads (the pipeline's own elements) and
/// those most inputs need (the common containers, libav's decoders),
/// loaded while the child waits for its job rather than on its path.
const PRELOADED: &[&str] = &[
    "coreelements",
    "typefindfunctions",
    "playback",
    "audioconvert",
    "audioresample",
    "audioparsers",
    "isomp4",
    "matroska",
    "libav",
    "ogg",
    "opus",
    "flac",
    "voaacenc",
    "id3demux",
];

/// Loads [`PRELOADED`]; one that is missing or fails is loaded (or
/// reported) by the pipeline when it needs it.
fn preload() {
    let registry = gstreamer::Registry::get();
    for name in PRELOADED {
        if let Some(plugin) = registry.find_plugin(name) {
            let _ = plugin.load();
        }
    }
}

/// Reports a failure before any conversion, and ends.
fn fail(error: TranscodeError) -> ExitCode {
    eprintln!("vidaud transcode-child: {error}");
    REPORTED.store(true, Ordering::SeqCst);
    say(&Report::Failed { error });
    ExitCode::SUCCESS
}

/// Landlock first (its system calls are not in the filter), then the
/// system-call filter; either failing fails the conversion (a node asks for
/// each only where the kernel has it).
fn confine(confine: Confine) -> Result<(), TranscodeError> {
    let words = |what: &str, e: &dyn std::error::Error| {
        let cause = e.source().map(|c| format!(": {c}")).unwrap_or_default();
        TranscodeError::Internal(format!("{what}: {e}{cause}"))
    };
    if confine.landlock_abi > 0 {
        super::landlock::confine(confine.landlock_abi, INPUT_FD, &[OUTPUT_FD, WAVEFORM_FD])
            .map_err(|e| words("no file-system confinement", &e))?;
    }
    if confine.seccomp {
        super::seccomp::install(confine.landlock_abi > 0)
            .map_err(|e| words("no system-call filter", &e))?;
    }
    Ok(())
}

/// This process's peak resident memory so far, KiB.
fn peak_rss_kib() -> u64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } == 0 {
        u64::try_from(usage.ru_maxrss).unwrap_or(0)
    } else {
        0
    }
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
            // A path outside its files: readable by this user, and by the
            // child unless Landlock stops it.
            let outside = std::fs::File::open("/etc/passwd").is_ok();
            // SAFETY: plain system calls whose results are only checked;
            // a fork that worked ends its copy at once.
            unsafe {
                let socket = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
                let forked = libc::fork();
                if forked == 0 {
                    libc::_exit(0);
                }
                let signalled = libc::kill(libc::getppid(), 0);
                if socket >= 0 || forked > 0 || signalled == 0 || outside {
                    eprintln!(
                        "escaped: socket {socket}, fork {forked}, kill {signalled}, \
                         /etc/passwd opened: {outside}"
                    );
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
