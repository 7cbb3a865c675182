//! The GStreamer pipeline: any container in, the chosen audio format out,
//! decoding only audio.
//!
//! ```text
//! filesrc ! parsebin ─┬─ audio (parsed) ─ decodebin ─ [tap] audioconvert ! audioresample
//!                     │                     ! capsfilter ! encoder [! muxer] ! filesink
//!                     │                  (MP3: ! capsfilter ! fakesink [LAME, our file])
//!                     └─ other ─ fakesink   (video is demuxed, never parsed or decoded)
//! ```
//!
//! One streaming thread carries everything from the file to the encoder:
//! parsebin demuxes and parses but, unlike decodebin, puts no multiqueue
//! (and so no thread hand-off per buffer) between the demuxer and the
//! streams, and the decodebin behind the audio stream holds only a decoder.
//! A decodebin pipeline spent ~15 % more CPU, mostly waking the multiqueue's
//! threads. For MP3, LAME is called from a probe on the last element
//! (`mp3/output.rs`) with the decoder's floats as they are: lamemp3enc
//! takes only S16, and the conversion to it and back cost 7-9 % against
//! ffmpeg (which hands LAME floats); see benches/vs-ffmpeg. parsebin
//! (1.22) does not say when a container has no audio, so the demuxer's own
//! `no-more-pads` is watched (counting its audio pads), and where there is
//! no demuxer, the end of the only stream with no audio linked says it.
//! `filesrc` gives the demuxers random access (an MP4 whose index is at the
//! end needs it); `filesink` gives the muxers theirs (flacenc and mp4mux go
//! back to write what they learn at the end), as our MP3 file gives LAME
//! its (the Xing/LAME header is written over LAME's placeholder frame).
//!
//! The tap, a pad probe where decoded audio enters, does three jobs: it
//! reports the position in the input (progress, stall detection), applies a
//! trim (drops and clips samples outside it, re-bases timestamps to zero, and
//! ends the audio branch at the trim's end), and fixes the output's
//! channels (and an MP3's rate) from the input's. The conversion is over when the
//! end-of-stream reaches the audio branch's sink: the other branches need not
//! finish.
//!
//! Beside the audio a conversion writes its waveform data (`waveform.rs`,
//! from the encoder's input), keeps the input's chapters (`chapters/`) and,
//! when asked, its loudness is normalised (`loudness/`, a measuring pass
//! first) or tagged as ReplayGain (`replaygain.rs`, in the same pass); what
//! the encoder's header could not know yet is filled in once it is done.
//!
//! Everything here is blocking and runs on GStreamer's threads plus the
//! caller's: call it from a blocking task.

mod aac_gapless;
mod bus;
mod chapters;
mod encoders;
mod error;
mod graph;
mod loudness;
pub(crate) mod mp3;
mod probe;
mod replaygain;
mod segment;
mod tap;
mod tracks;
mod waveform;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;

use crate::domain::{LoudnessReport, ReplayGainReport};
use crate::output::{Format, ResolvedOutput};

pub(crate) use chapters::{Chapter, ChapterMarks};
pub use error::TranscodeError;
use graph::{End, Graph};
use loudness::{Mode, Plan};
pub use probe::{AudioShape, probe};
pub use segment::Segment;
pub use waveform::SAMPLES_PER_PIXEL;
pub(crate) use waveform::Waveform;

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Progress {
    pub position: Duration,
    pub duration: Option<Duration>,
}

impl Progress {
    pub fn percent(&self) -> Option<f64> {
        let total = self.duration?.as_secs_f64();
        (total > 0.0).then(|| (self.position.as_secs_f64() / total * 100.0).clamp(0.0, 100.0))
    }
}

#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct Summary {
    /// Duration of the audio written.
    pub duration: Option<Duration>,
    /// Size of the output file.
    pub bytes: u64,
    /// Samples (per channel) the encoder was given, and their rate.
    pub samples: u64,
    pub sample_rate: u32,
    /// What normalising measured and did, when it was asked for.
    #[serde(default)]
    pub loudness: Option<LoudnessReport>,
    /// The ReplayGain tags written, when they were asked for.
    #[serde(default)]
    pub replaygain: Option<ReplayGainReport>,
}

impl Summary {
    /// How long the audio is: its samples at its rate (exact), else the
    /// duration the pipeline reported.
    pub fn length(&self) -> Duration {
        if self.sample_rate > 0 {
            let millis = u128::from(self.samples) * 1000 / u128::from(self.sample_rate);
            Duration::from_millis(u64::try_from(millis).unwrap_or(u64::MAX))
        } else {
            self.duration.unwrap_or_default()
        }
    }
}

/// Where a conversion writes.
#[derive(Debug, Clone, Copy)]
pub struct Output<'a> {
    /// The encoded audio (created or truncated).
    pub audio: &'a Path,
    /// Its waveform data, audiowaveform's JSON (see `waveform.rs`), when
    /// wanted (created or truncated).
    pub waveform: Option<&'a Path>,
}

impl<'a> Output<'a> {
    /// The audio alone.
    pub fn audio(audio: &'a Path) -> Self {
        Self {
            audio,
            waveform: None,
        }
    }
}

/// Limits and the stop switch of one conversion.
#[derive(Debug, Clone)]
pub struct Control {
    /// Set from outside to stop the conversion.
    pub cancel: Arc<AtomicBool>,
    /// Fail when the position does not move for this long.
    pub stall_after: Duration,
    /// Fail when the whole conversion takes longer than this.
    pub max_wall: Duration,
    /// Fail as unplayable when the pipeline has neither prerolled nor
    /// decoded any audio by then.
    pub preroll_within: Duration,
    /// Refuse inputs longer than this.
    pub max_input: Duration,
}

impl Default for Control {
    fn default() -> Self {
        Self {
            cancel: Arc::new(AtomicBool::new(false)),
            stall_after: Duration::from_secs(60),
            max_wall: Duration::from_secs(24 * 3600),
            preroll_within: PREROLL_WITHIN,
            max_input: Duration::from_secs(24 * 3600),
        }
    }
}

const NO_AUDIO: &str = "vidaud-no-audio";

/// Reading the headers of a local file takes milliseconds. The autoplugging
/// bins of GStreamer 1.22 can swallow a demuxer's error posted while it is
/// still activating it (e.g. qtdemux's "no playable streams" on a truncated
/// MP4); the pipeline
/// then never prerolls and nothing is said. Not prerolling in this time is
/// taken to mean exactly that.
const PREROLL_WITHIN: Duration = Duration::from_secs(15);
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// Converts `input` into `output` as `options` say, calling `progress`
/// about twice a second. `options` are validated and resolved: the
/// pipeline decides no default.
pub fn transcode(
    input: &Path,
    options: &ResolvedOutput,
    output: Output<'_>,
    control: &Control,
    progress: &mut dyn FnMut(Progress),
) -> Result<Summary, TranscodeError> {
    transcode_segment(input, options, None, output, control, progress)
}

/// Converts one segment of `input` (all of it with `None`): a split
/// conversion's part, joined with the others by `transcoder::segments`.
pub fn transcode_segment(
    input: &Path,
    options: &ResolvedOutput,
    segment: Option<Segment>,
    output: Output<'_>,
    control: &Control,
    progress: &mut dyn FnMut(Progress),
) -> Result<Summary, TranscodeError> {
    std::fs::File::open(input).map_err(|e| TranscodeError::Input(e.to_string()))?;
    gst::init()?;
    let gapless = mp3::read_input_gapless(input);
    let mut passes = Passes::new(
        progress,
        if options.loudness_lufs.is_some() {
            2
        } else {
            1
        },
    );
    let plan = match options.loudness_lufs {
        Some(target) => Some(plan_loudness(
            input,
            options,
            target,
            gapless,
            control,
            &mut passes,
        )?),
        None => None,
    };
    // ReplayGain meters the audio as it goes to the encoder.
    let stage = plan
        .map(|p| p.mode)
        .or(options.replaygain.then_some(Mode::Measure));
    let graph = Graph::build(input, options, End::File(output), gapless, stage, segment)?;
    let result = graph.run(control, &mut |p| passes.report(p));
    // Null closes a filesink's file and stops the streaming threads, so
    // nothing writes to the output once this returns.
    let _ = graph.pipeline.set_state(gst::State::Null);
    let mp3 = graph.mp3.lock().ok().and_then(|mut slot| slot.take());
    let waveform = graph.waveform.lock().ok().and_then(|mut slot| slot.take());
    let mut summary = result?;
    if summary.samples == 0 {
        return Err(TranscodeError::NoAudio);
    }
    if let Some(plan) = plan {
        summary.loudness = Some(plan.report(graph.measured()?));
    }
    if options.replaygain {
        summary.replaygain = Some(ReplayGainReport::from_measured(graph.measured()?.loudness));
    }
    if let Some(mp3) = mp3 {
        mp3.finish(summary.replaygain.as_ref())
            .map_err(|e| TranscodeError::Output(format!("completing the MP3: {e}")))?;
    }
    if let Some(waveform) = waveform {
        waveform.finish()?;
    }
    let tags_failed =
        |e: std::io::Error| TranscodeError::Output(format!("completing the tags: {e}"));
    match (options.format, &summary.replaygain) {
        (Format::Aac, replaygain) => {
            aac_gapless::present_exactly(output.audio, summary.samples, summary.sample_rate)
                .map_err(tags_failed)?;
            let freeform = replaygain
                .as_ref()
                .map(replaygain::freeform)
                .unwrap_or_default();
            // Written last, so held to the audio's real length (a file's
            // own duration, which settled them, can claim more).
            let length = u64::try_from(summary.length().as_nanos()).unwrap_or(u64::MAX);
            let chapters = chapters::within(graph.chapters.settled().to_vec(), 0, Some(length));
            vidaud_mp4::append_chapters(output.audio, &chapters, &freeform).map_err(tags_failed)?;
        }
        (Format::Flac | Format::Opus, Some(report)) => {
            replaygain::fill_in(output.audio, options.format, report).map_err(tags_failed)?;
        }
        _ => {}
    }
    summary.bytes = std::fs::metadata(output.audio)
        .map_err(|e| TranscodeError::Output(e.to_string()))?
        .len();
    if summary.samples == 0 || summary.bytes == 0 {
        return Err(TranscodeError::NoAudio);
    }
    Ok(summary)
}

/// The normalisation's plan: a measuring pass, then, where the limiter
/// must act (it takes some loudness with the peaks), trial passes that
/// measure the limited result and correct the gain by what it lacks.
fn plan_loudness(
    input: &Path,
    options: &ResolvedOutput,
    target: f64,
    gapless: Option<mp3::InputGapless>,
    control: &Control,
    passes: &mut Passes<'_>,
) -> Result<Plan, TranscodeError> {
    let measure = |mode: Mode, passes: &mut Passes<'_>| {
        let graph = Graph::build(input, options, End::Measure, gapless, Some(mode), None)?;
        let result = graph.run(control, &mut |p| passes.report(p));
        let _ = graph.pipeline.set_state(gst::State::Null);
        result?;
        passes.next();
        Ok::<_, TranscodeError>(graph)
    };
    let graph = measure(Mode::Measure, passes)?;
    let mut plan = Plan::new(
        options,
        target,
        graph.measured_input()?.loudness,
        graph.measured()?.loudness,
    );
    if plan.limits() {
        passes.planned += MAX_TRIALS;
    }
    for _ in 0..MAX_TRIALS {
        if !plan.limits() {
            break;
        }
        let trial = measure(plan.mode, passes)?.measured()?;
        match plan.corrected(trial.loudness) {
            Some(better) => plan = better,
            None => break,
        }
    }
    passes.skip_to_last();
    Ok(plan)
}

/// Trial passes at most: a light limiting lands within a tenth of a LU
/// after one correction; a heavy one (the gain bought back at half rate
/// or less) after two or three.
const MAX_TRIALS: u32 = 3;

/// Progress over several passes, as progress through all of them: each
/// planned pass is an equal share, and it never goes back.
struct Passes<'a> {
    progress: &'a mut dyn FnMut(Progress),
    done: u32,
    planned: u32,
    reached: Duration,
}

impl<'a> Passes<'a> {
    fn new(progress: &'a mut dyn FnMut(Progress), planned: u32) -> Self {
        Self {
            progress,
            done: 0,
            planned,
            reached: Duration::ZERO,
        }
    }

    fn report(&mut self, progress: Progress) {
        let Some(total) = progress.duration.filter(|_| self.planned > 1) else {
            return (self.progress)(progress);
        };
        let through =
            total * self.done / self.planned + progress.position.min(total) / self.planned;
        self.reached = self.reached.max(through);
        (self.progress)(Progress {
            position: self.reached,
            duration: Some(total),
        });
    }

    fn next(&mut self) {
        self.done += 1;
        self.planned = self.planned.max(self.done + 1);
    }

    fn skip_to_last(&mut self) {
        self.done = self.planned - 1;
    }
}

fn nanos(secs: f64) -> u64 {
    (secs * 1e9).round() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permanence() {
        assert!(TranscodeError::NoAudio.is_permanent());
        assert!(TranscodeError::NotMedia.is_permanent());
        assert!(!TranscodeError::Output("disk full".into()).is_permanent());
        assert!(!TranscodeError::Input("x".into()).is_permanent());
    }

    /// A WAV file of a 440 Hz tone: 16-bit stereo at 44.1 kHz.
    fn wav(seconds: u32) -> tempfile::NamedTempFile {
        let frames = 44100 * seconds;
        let mut bytes = Vec::with_capacity(44 + frames as usize * 4);
        let data = frames * 4;
        bytes.extend_from_slice(b"RIFF");
        bytes.extend_from_slice(&(36 + data).to_le_bytes());
        bytes.extend_from_slice(b"WAVEfmt ");
        bytes.extend_from_slice(&16u32.to_le_bytes());
        bytes.extend_from_slice(&1u16.to_le_bytes()); // PCM
        bytes.extend_from_slice(&2u16.to_le_bytes());
        bytes.extend_from_slice(&44100u32.to_le_bytes());
        bytes.extend_from_slice(&(44100u32 * 4).to_le_bytes());
        bytes.extend_from_slice(&4u16.to_le_bytes());
        bytes.extend_from_slice(&16u16.to_le_bytes());
        bytes.extend_from_slice(b"data");
        bytes.extend_from_slice(&data.to_le_bytes());
        for i in 0..frames {
            let v = ((i as f32 * 440.0 * std::f32::consts::TAU / 44100.0).sin() * 8000.0) as i16;
            bytes.extend_from_slice(&v.to_le_bytes());
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        let file = tempfile::NamedTempFile::new().expect("temp");
        std::fs::write(file.path(), bytes).expect("wav");
        file
    }

    fn mp3(title: &str) -> ResolvedOutput {
        use crate::output::{OutputDefaults, OutputOptions};
        OutputOptions {
            bitrate_kbps: Some(128),
            title: Some(title.to_owned()),
            ..OutputOptions::default()
        }
        .resolve(&OutputDefaults::default())
    }

    #[test]
    fn an_mp3_counts_its_samples_and_carries_its_header() {
        let input = wav(2);
        let output = tempfile::NamedTempFile::new().expect("temp");
        let summary = transcode(
            input.path(),
            &mp3("tone"),
            Output::audio(output.path()),
            &Control::default(),
            &mut |_| {},
        )
        .expect("converts");
        assert_eq!((summary.samples, summary.sample_rate), (88200, 44100));
        let bytes = std::fs::read(output.path()).expect("mp3");
        assert_eq!(summary.bytes, bytes.len() as u64);
        assert_eq!(&bytes[..3], b"ID3");
        assert!(bytes.windows(4).any(|w| w == b"tone"), "the title");
        assert!(bytes[..2048].windows(4).any(|w| w == b"Info"), "the header");
    }

    #[test]
    fn a_full_disk_is_an_output_failure() {
        let input = wav(2);
        let failed = transcode(
            input.path(),
            &mp3("full"),
            Output::audio(Path::new("/dev/full")),
            &Control::default(),
            &mut |_| {},
        );
        assert!(
            matches!(&failed, Err(TranscodeError::Output(_))),
            "{failed:?}"
        );
        assert!(!failed.is_err_and(|e| e.is_permanent()), "worth retrying");
    }

    #[test]
    fn percent() {
        let p = Progress {
            position: Duration::from_secs(5),
            duration: Some(Duration::from_secs(20)),
        };
        assert_eq!(p.percent(), Some(25.0));
        assert_eq!(
            Progress {
                duration: None,
                ..p
            }
            .percent(),
            None
        );
    }
}
