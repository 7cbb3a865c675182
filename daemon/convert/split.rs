//! `vidaud convert --jobs N`: a long input converted in segments by N
//! child processes at once (each `vidaud convert --segment FROM:TO`, the
//! same conversion on a part of the input), joined into the output by
//! `transcoder::segments`. The plan decides whether and where to split;
//! what it will not split is converted in one pass, and says why.

use std::collections::VecDeque;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use vidaud_actors::output::ResolvedOutput;
use vidaud_actors::transcoder::pipeline::probe;
use vidaud_actors::transcoder::segments::{self, Joined, Piece, SplitPlan, SplitSettings};

use crate::cli::{ConvertArgs, segment_arg};

/// How a split conversion ended.
pub(super) enum Split {
    /// Not split: convert in one pass.
    Whole,
    /// Joined into the output.
    Joined { joined: Joined, segments: usize },
    /// A segment or the join failed (said); exit with this code.
    Failed(u8),
}

/// Converts `args.input` into `output` (and its waveform into `waveform`)
/// in segments, if its plan splits it.
pub(super) fn convert(
    args: &ConvertArgs,
    options: &ResolvedOutput,
    output: &Path,
    waveform: Option<&Path>,
) -> Split {
    let settings = SplitSettings {
        above: Duration::from_secs(args.split_above),
        segment: args
            .segment_secs
            .map_or(SplitSettings::default().segment, Duration::from_secs),
        count: args.segment_secs.is_none().then_some(args.jobs),
    };
    let dir = output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    sweep_abandoned(dir);
    // An input the probe cannot read fails the one pass, which says why.
    let probing = Instant::now();
    let Ok(shape) = probe(&args.input, options) else {
        return Split::Whole;
    };
    let probed = probing.elapsed();
    let plan = match segments::plan(options, shape, settings) {
        Ok(plan) => plan,
        Err(why) => {
            eprintln!("vidaud convert: converting in one pass: {why}");
            return Split::Whole;
        }
    };
    let prefix = format!("{SCRATCH}{}-", std::process::id());
    let scratch = match tempfile::Builder::new().prefix(&prefix).tempdir_in(dir) {
        Ok(scratch) => scratch,
        Err(e) => {
            eprintln!("vidaud convert: cannot write in {}: {e}", dir.display());
            return Split::Failed(1);
        }
    };
    let files: Vec<SegmentFiles> = (0..plan.parts.len())
        .map(|k| SegmentFiles {
            audio: scratch
                .path()
                .join(format!("{k:04}.{}", plan.format.name())),
            waveform: waveform.map(|_| scratch.path().join(format!("{k:04}.json"))),
        })
        .collect();
    if let Err(code) = run_segments(args, &plan, &files) {
        return Split::Failed(code);
    }
    let segments: Vec<Piece> = files.iter().map(|f| Piece::whole(&f.audio)).collect();
    let joining = Instant::now();
    if let Some(waveform) = waveform {
        let parts: Vec<Piece> = files
            .iter()
            .filter_map(|f| f.waveform.as_deref().map(Piece::whole))
            .collect();
        if let Err(e) = segments::join_waveforms(&plan, &parts, waveform) {
            eprintln!("vidaud convert: joining the segments' waveforms: {e}");
            return Split::Failed(1);
        }
    }
    match segments::join(&plan, &segments, output) {
        Ok(joined) => {
            eprintln!(
                "split: probed in {:.3} s, joined in {:.3} s",
                probed.as_secs_f64(),
                joining.elapsed().as_secs_f64()
            );
            Split::Joined {
                joined,
                segments: plan.parts.len(),
            }
        }
        Err(e) => {
            eprintln!("vidaud convert: joining the segments: {e}");
            Split::Failed(1)
        }
    }
}

/// The segments' folder beside the output: this prefix, the pid of the
/// process that made it, a random part.
const SCRATCH: &str = ".vidaud-segments-";

/// Removes the segments' folders that a `vidaud convert` killed before it
/// could (kill -9: its children die with it, see `run_child`) left in
/// `dir`: those whose process is gone.
fn sweep_abandoned(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let pid = name
            .to_str()
            .and_then(|n| n.strip_prefix(SCRATCH))
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(pid, _)| pid.parse::<libc::pid_t>().ok());
        let Some(pid) = pid.filter(|&p| p > 0) else {
            continue;
        };
        // SAFETY: signal 0 sends nothing; it asks whether `pid` exists.
        let gone = unsafe { libc::kill(pid, 0) } != 0
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        if gone && std::fs::remove_dir_all(entry.path()).is_ok() {
            eprintln!(
                "vidaud convert: removed {}, left by a conversion that was killed",
                entry.path().display()
            );
        }
    }
}

/// Runs a child per segment, `args.jobs` at once; the first failure's
/// exit code (and its words, on stderr) once all have stopped. After a
/// failure no new segment is started.
fn run_segments(args: &ConvertArgs, plan: &SplitPlan, files: &[SegmentFiles]) -> Result<(), u8> {
    let queue = Mutex::new(
        plan.parts
            .iter()
            .zip(files)
            .enumerate()
            .collect::<VecDeque<_>>(),
    );
    let failed = Mutex::new(None::<u8>);
    let total = plan.parts.len();
    let workers = (args.jobs as usize).min(total);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    if failed.lock().map(|f| f.is_some()).unwrap_or(true) {
                        return;
                    }
                    let next = queue.lock().ok().and_then(|mut q| q.pop_front());
                    let Some((index, (part, files))) = next else {
                        return;
                    };
                    let segment = segment_arg(&part.segment);
                    let started = Instant::now();
                    match run_child(args, plan, &segment, files) {
                        Ok(()) => eprintln!(
                            "segment {}/{total} done in {:.3} s",
                            index + 1,
                            started.elapsed().as_secs_f64()
                        ),
                        Err(code) => {
                            if let Ok(mut first) = failed.lock() {
                                first.get_or_insert(code);
                            }
                            return;
                        }
                    }
                }
            });
        }
    });
    match failed.into_inner() {
        Ok(None) => Ok(()),
        Ok(Some(code)) => Err(code),
        Err(_) => Err(1),
    }
}

/// Where one segment's conversion writes.
struct SegmentFiles {
    audio: PathBuf,
    waveform: Option<PathBuf>,
}

/// One child: this binary converting `segment` of the input into `files`,
/// with the options given (the format made explicit).
fn run_child(
    args: &ConvertArgs,
    plan: &SplitPlan,
    segment: &str,
    files: &SegmentFiles,
) -> Result<(), u8> {
    let binary = std::env::current_exe().map_err(|e| {
        eprintln!("vidaud convert: cannot find this program to run it again: {e}");
        1u8
    })?;
    let mut command = Command::new(binary);
    command
        .arg("convert")
        .arg(&args.input)
        .arg(&files.audio)
        .args(["--segment", segment, "--format", plan.format.name()]);
    if let Some(waveform) = &files.waveform {
        command.arg("--waveform").arg(waveform);
    }
    for (name, value) in args.options.pairs.iter().filter(|(n, _)| *n != "format") {
        command
            .arg(format!("--{}", name.replace('_', "-")))
            .arg(value);
    }
    if args.sandbox {
        command.arg("--sandbox");
    }
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: runs in the forked child before exec and calls only
    // async-signal-safe functions (prctl, getppid, _exit). The child dies
    // with this process (whose thread that started it waits for it to
    // end), so a killed conversion leaves no segment converting.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                libc::_exit(70);
            }
            Ok(())
        });
    }
    let output = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| {
            eprintln!("vidaud convert: cannot start a segment's conversion: {e}");
            1u8
        })?;
    if output.status.success() {
        return Ok(());
    }
    let said = String::from_utf8_lossy(&output.stderr);
    for line in said.lines().filter(|l| !l.starts_with("progress")) {
        eprintln!("{line}");
    }
    Err(output
        .status
        .code()
        .and_then(|c| u8::try_from(c).ok())
        .unwrap_or(1))
}
