//! `vidaud convert IN OUT`: the node's transcoder on local files, with the
//! same output options as an upload (and, with `--waveform FILE`, the
//! waveform data a node stores with each job). It converts in its own process (the
//! operator's command on their own file, with no secret loaded), or with
//! `--sandbox` in a confined child exactly as a node does.
//!
//! Exit codes: 0 done, 1 internal error, 2 bad usage (a refused option),
//! 3 input unreadable or not media, 4 no audio track, 5 audio present but
//! not decodable. Progress is a bar on a terminal, plain lines otherwise.

use std::fs::File;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use std::process::ExitCode;
use std::time::{Duration, Instant};
use tempfile::NamedTempFile;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use vidaud_actors::output::{Format, OutputDefaults, OutputOptions, ResolvedOutput};
use vidaud_actors::settings::TranscoderSettings;
use vidaud_actors::transcoder::isolation::kernel::Support;
use vidaud_actors::transcoder::isolation::protocol::{Limits, Request};
use vidaud_actors::transcoder::isolation::{self, ChildFiles, Converter};
use vidaud_actors::transcoder::{
    Control, Output, Progress, Sandbox, Segment, Summary, TranscodeError, transcode_segment,
};

use crate::cli::ConvertArgs;
use split::Split;

mod split;

pub fn run(args: ConvertArgs) -> ExitCode {
    let options = match options(&args) {
        Ok(options) => options,
        Err(e) => {
            eprintln!("vidaud convert: {e}");
            return ExitCode::from(2);
        }
    };
    let Some(partial) = partial_beside(&args.output) else {
        return ExitCode::from(1);
    };
    let waveform = match &args.waveform {
        Some(path) => match partial_beside(path) {
            Some(partial) => Some((partial, path)),
            None => return ExitCode::from(1),
        },
        None => None,
    };
    let started = Instant::now();
    if args.jobs > 1 && args.segment.is_none() {
        let waveform_partial = waveform.as_ref().map(|(partial, _)| partial.path());
        match split::convert(&args, &options, partial.path(), waveform_partial) {
            Split::Whole => {}
            Split::Failed(code) => return ExitCode::from(code),
            Split::Joined { joined, segments } => {
                if let Err(code) = persist(partial, &args.output, waveform) {
                    return code;
                }
                eprintln!(
                    "{}: {:.2} s of {} audio, {} bytes, in {:.2} s ({segments} segments, {} at once)",
                    args.output.display(),
                    joined.samples as f64 / f64::from(joined.rate.max(1)),
                    options.format.name(),
                    joined.bytes,
                    started.elapsed().as_secs_f64(),
                    args.jobs,
                );
                return ExitCode::SUCCESS;
            }
        }
    }
    let mut report = Reporter::new();
    let result = if args.sandbox {
        let waveform = waveform.as_ref().map(|(partial, _)| partial.as_file());
        sandboxed(
            &args.input,
            &options,
            args.segment,
            partial.as_file(),
            waveform,
            &mut report,
        )
    } else {
        let output = Output {
            audio: partial.path(),
            waveform: waveform.as_ref().map(|(partial, _)| partial.path()),
        };
        transcode_segment(
            &args.input,
            &options,
            args.segment,
            output,
            &Control::default(),
            &mut |p| report.update(p),
        )
    };
    report.finish();
    match result {
        Ok(summary) => {
            if let Err(code) = persist(partial, &args.output, waveform) {
                return code;
            }
            let secs = summary.duration.map(|d| d.as_secs_f64()).unwrap_or(0.0);
            eprintln!(
                "{}: {:.2} s of {} audio, {} bytes, in {:.2} s",
                args.output.display(),
                secs,
                options.format.name(),
                summary.bytes,
                started.elapsed().as_secs_f64()
            );
            if let Some(loudness) = summary.loudness {
                eprintln!("loudness: {loudness}");
            }
            if let Some(replaygain) = summary.replaygain {
                eprintln!("replaygain: {replaygain}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("vidaud convert: {}: {e}", args.input.display());
            ExitCode::from(exit_code(&e))
        }
    }
}

/// The complete output (and waveform) given their names; exit code 1,
/// said, if one cannot be.
fn persist(
    partial: NamedTempFile,
    output: &Path,
    waveform: Option<(NamedTempFile, &PathBuf)>,
) -> Result<(), ExitCode> {
    let waveform = waveform.map(|(partial, path)| partial.persist(path));
    for persisted in [Some(partial.persist(output)), waveform]
        .into_iter()
        .flatten()
    {
        if let Err(e) = persisted {
            eprintln!("vidaud convert: cannot create a file: {e}");
            return Err(ExitCode::from(1));
        }
    }
    Ok(())
}

/// A temporary file beside `path`, to be persisted as `path` once it is
/// complete; `None` (said) when the folder cannot be written. Created as any
/// new file is (0666 less the umask), not 0600: it becomes the user's file.
fn partial_beside(path: &Path) -> Option<NamedTempFile> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let partial = tempfile::Builder::new()
        .prefix(".vidaud-convert-")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
        .tempfile_in(dir);
    partial
        .inspect_err(|e| eprintln!("vidaud convert: cannot write in {}: {e}", dir.display()))
        .ok()
}

/// The conversion in a confined child (`--sandbox`), with the node's
/// default limits but for the job limits, which are the local ones. Without
/// a waveform file, the child writes it to an anonymous one, dropped.
fn sandboxed(
    input: &Path,
    options: &ResolvedOutput,
    segment: Option<Segment>,
    output: &File,
    waveform: Option<&File>,
    report: &mut Reporter,
) -> Result<Summary, TranscodeError> {
    let input = File::open(input).map_err(|e| TranscodeError::Input(e.to_string()))?;
    let anonymous;
    let waveform = match waveform {
        Some(file) => file,
        None => {
            anonymous = tempfile::tempfile()
                .map_err(|e| TranscodeError::Output(format!("a temporary file: {e}")))?;
            &anonymous
        }
    };
    let files = ChildFiles {
        input: &input,
        audio: output,
        waveform,
    };
    let control = Control::default();
    let settings = TranscoderSettings {
        max_job_secs: control.max_wall.as_secs(),
        max_input_secs: control.max_input.as_secs(),
        ..TranscoderSettings::default()
    };
    let sandbox = Sandbox::from_settings(&settings, Support::probe());
    let request = Request {
        task: Default::default(),
        split: None,
        options: options.clone(),
        segment,
        limits: Limits::from(&control),
        confine: Default::default(),
        fault: None,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| TranscodeError::Internal(format!("no runtime: {e}")))?;
    runtime.block_on(async {
        let converter = Converter::start(&sandbox, &files)
            .map_err(|e| TranscodeError::Internal(format!("starting the converter: {e}")))?;
        let cancel = tokio_util::sync::CancellationToken::new();
        let mut progress = |p| report.update(p);
        match isolation::convert(&sandbox, converter, &request, &cancel, &mut progress).await? {
            isolation::Converted::Audio { summary, .. } => Ok(*summary),
            // Not asked whether to split: a child saying so is broken.
            isolation::Converted::Long { .. } => Err(TranscodeError::Protocol(
                "the converter did not convert".into(),
            )),
        }
    })
}

fn exit_code(e: &TranscodeError) -> u8 {
    match e {
        TranscodeError::Input(_) | TranscodeError::NotMedia | TranscodeError::TooLong(..) => 3,
        TranscodeError::NoAudio | TranscodeError::NoSuchTrack { .. } => 4,
        TranscodeError::Unsupported(_) | TranscodeError::Decode(_) => 5,
        TranscodeError::EmptyTrim => 2,
        TranscodeError::Output(_)
        | TranscodeError::Internal(_)
        | TranscodeError::Join(_)
        | TranscodeError::Stalled(_)
        | TranscodeError::TimedOut(_)
        | TranscodeError::Cancelled => 1,
        // Only isolated conversions (a node's, `--sandbox`) end these ways.
        TranscodeError::Crashed(_)
        | TranscodeError::MemoryLimit(_)
        | TranscodeError::CpuLimit(_)
        | TranscodeError::OutputLimit(_)
        | TranscodeError::Protocol(_)
        | TranscodeError::Poison(_) => 1,
    }
}

/// The flags as output options; the format defaults from OUT's extension.
fn options(args: &ConvertArgs) -> Result<ResolvedOutput, String> {
    let mut pairs: Vec<(&str, &str)> = args
        .options
        .pairs
        .iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect();
    let extension = args
        .output
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    if args.options.get("format").is_none()
        && let Some(format) = extension.as_deref().and_then(|e| e.parse::<Format>().ok())
    {
        pairs.push(("format", format.name()));
    }
    let options = OutputOptions::from_pairs(pairs)
        .map_err(|e| format!("--{}: {}", e.field.replace('_', "-"), e.message))?
        .resolve(&OutputDefaults::default());
    let title = options.title_for(&args.input.to_string_lossy());
    Ok(options.titled(title))
}

/// A progress bar on a terminal; a line per 10 % otherwise.
struct Reporter {
    bar: Option<ProgressBar>,
    last_tenth: Option<u64>,
}

impl Reporter {
    fn new() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(Some(1000), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{bar:40} {percent:>3}% {msg} (eta {eta})")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Self {
            bar,
            last_tenth: None,
        }
    }

    fn update(&mut self, progress: Progress) {
        let Some(percent) = progress.percent() else {
            return;
        };
        let position = progress.position.as_secs_f64();
        match &self.bar {
            Some(bar) => {
                bar.set_position((percent * 10.0) as u64);
                bar.set_message(format!("{position:.0} s"));
            }
            None => {
                let tenth = (percent / 10.0) as u64;
                if self.last_tenth != Some(tenth) {
                    self.last_tenth = Some(tenth);
                    eprintln!("progress {:>3}% ({position:.0} s)", tenth * 10);
                }
            }
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
