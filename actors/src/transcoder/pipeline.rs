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
//! (`mp3_output.rs`) with the decoder's floats as they are: lamemp3enc
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
//! Everything here is blocking and runs on GStreamer's threads plus the
//! caller's: call it from a blocking task.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;
use gstreamer_audio as gst_audio;

use super::gapless::InputGapless;
use super::lame::nearest_rate;
use super::mp3_output::{Mp3Error, Mp3Output};
use crate::output::{Format, OutputOptions};

/// Why a conversion did not produce audio. `is_permanent` errors are facts
/// about the input: trying again gives the same answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranscodeError {
    #[error("the file is not a recognised audio or video format")]
    NotMedia,
    #[error("the file has no audio track")]
    NoAudio,
    #[error("the file has {found} audio track(s); audio_track {asked} does not exist")]
    NoSuchTrack { asked: u32, found: u32 },
    #[error("the input is {0:?} long; the limit is {1:?}")]
    TooLong(Duration, Duration),
    #[error("nothing to convert: the trim starts at or after the end of the audio")]
    EmptyTrim,
    #[error("no decoder for this file's audio: {0}")]
    Unsupported(String),
    #[error("the file could not be decoded: {0}")]
    Decode(String),
    #[error("the input file could not be read: {0}")]
    Input(String),
    #[error("the output could not be written: {0}")]
    Output(String),
    #[error("no progress for {0:?}: the conversion stalled")]
    Stalled(Duration),
    #[error("the conversion took longer than the limit of {0:?}")]
    TimedOut(Duration),
    #[error("the conversion was cancelled")]
    Cancelled,
    #[error("internal transcoder error: {0}")]
    Internal(String),
}

impl TranscodeError {
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            TranscodeError::NotMedia
                | TranscodeError::NoAudio
                | TranscodeError::NoSuchTrack { .. }
                | TranscodeError::TooLong(..)
                | TranscodeError::EmptyTrim
                | TranscodeError::Unsupported(_)
                | TranscodeError::Decode(_)
                | TranscodeError::TimedOut(_)
        )
    }
}

impl From<glib::Error> for TranscodeError {
    fn from(e: glib::Error) -> Self {
        TranscodeError::Internal(e.to_string())
    }
}

impl From<glib::BoolError> for TranscodeError {
    fn from(e: glib::BoolError) -> Self {
        TranscodeError::Internal(e.to_string())
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
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

#[derive(Debug, Clone, Copy)]
pub struct Summary {
    /// Duration of the audio written.
    pub duration: Option<Duration>,
    /// Size of the output file.
    pub bytes: u64,
    /// Samples (per channel) the encoder was given, and their rate.
    pub samples: u64,
    pub sample_rate: u32,
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
const AUDIO_DONE: &str = "vidaud-audio-done";

/// Reading the headers of a local file takes milliseconds. The autoplugging
/// bins of GStreamer 1.22 can swallow a demuxer's error posted while it is
/// still activating it (e.g. qtdemux's "no playable streams" on a truncated
/// MP4); the pipeline
/// then never prerolls and nothing is said. Not prerolling in this time is
/// taken to mean exactly that.
const PREROLL_WITHIN: Duration = Duration::from_secs(15);
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// Converts `input` into the file at `output` (created or truncated) as
/// `options` say, calling `progress` about twice a second. `options` must be
/// validated and resolved (a lossy format has its bitrate or quality).
pub fn transcode(
    input: &Path,
    options: &OutputOptions,
    output: &Path,
    control: &Control,
    progress: &mut dyn FnMut(Progress),
) -> Result<Summary, TranscodeError> {
    std::fs::File::open(input).map_err(|e| TranscodeError::Input(e.to_string()))?;
    gst::init()?;
    let gapless = super::gapless::read_input_gapless(input);
    let graph = Graph::build(input, options, output, gapless)?;
    let result = graph.run(control, progress);
    // Null closes a filesink's file and stops the streaming threads, so
    // nothing writes to the output once this returns.
    let _ = graph.pipeline.set_state(gst::State::Null);
    let mp3 = graph.mp3.lock().ok().and_then(|mut slot| slot.take());
    let mut summary = result?;
    if let Some(mp3) = mp3 {
        mp3.finish()
            .map_err(|e| TranscodeError::Output(format!("completing the MP3: {e}")))?;
    }
    summary.bytes = std::fs::metadata(output)
        .map_err(|e| TranscodeError::Output(e.to_string()))?
        .len();
    if summary.samples == 0 || summary.bytes == 0 {
        return Err(TranscodeError::NoAudio);
    }
    Ok(summary)
}

/// The trim, in nanoseconds of input position.
#[derive(Debug, Clone, Copy)]
struct Trim {
    start: u64,
    stop: Option<u64>,
}

impl Trim {
    /// The user's trim, shifted past the delay an MP3 input's decoder leaves
    /// in (and stopping before its padding), so the output holds exactly
    /// the audio the input's encoder was given.
    fn new(options: &OutputOptions, gapless: Option<InputGapless>) -> Option<Self> {
        let user = options.start_secs.is_some() || options.duration_secs.is_some();
        if !user && gapless.is_none() {
            return None;
        }
        let at = |samples: u64, rate: u32| samples * 1_000_000_000 / u64::from(rate.max(1));
        let (skip, end) = gapless.map_or((0, None), |g| {
            (at(g.skip, g.rate), Some(at(g.skip + g.keep, g.rate)))
        });
        let start = skip + nanos(options.start_secs.unwrap_or(0.0));
        let stop = options.duration_secs.map(|d| start + nanos(d));
        let stop = match (stop, end) {
            (Some(stop), Some(end)) => Some(stop.min(end)),
            (stop, end) => stop.or(end),
        };
        Some(Self { start, stop })
    }
}

/// State shared between the pad probes (streaming threads) and `run`.
#[derive(Default)]
struct Tap {
    /// Input position of the latest decoded audio, ns (before trimming).
    position: AtomicU64,
    /// Whether any audio was decoded yet.
    started: AtomicBool,
    /// Samples handed to the encoder, their rate and bytes per frame.
    samples: AtomicU64,
    sample_rate: AtomicU32,
    encoder_bpf: AtomicU32,
    /// Audio tracks seen so far (parsed streams), and as the demuxer
    /// counted them.
    audio_tracks: AtomicU32,
    demuxed_audio: AtomicU32,
    /// The stream id of the audio track the container marks as the
    /// default (Matroska's FlagDefault), when it marks one.
    default_audio: Mutex<Option<String>>,
    /// The upstream segment and caps of the decoded audio.
    segment: Mutex<Option<gst::FormattedSegment<gst::ClockTime>>>,
    info: Mutex<Option<gst_audio::AudioInfo>>,
    /// The trim's end was reached and the audio branch ended.
    trim_ended: AtomicBool,
    /// The capsfilter and the options it follows: its channels are fixed
    /// from the input's once they are known (encoder caps list mono first,
    /// so a range would turn 5.1 into mono).
    caps_filter: OnceLock<(gst::glib::WeakRef<gst::Element>, OutputOptions)>,
}

struct Graph {
    pipeline: gst::Pipeline,
    tap: Arc<Tap>,
    trim: Option<Trim>,
    sink: gst::Element,
    /// The MP3 encoder and file, fed by a probe on `sink` (MP3 only).
    mp3: Arc<Mutex<Option<Mp3Output>>>,
}

/// The encoder (and muxer) elements for a format, in order; none for MP3,
/// whose encoder is called from a probe on the sink (`mp3_output.rs`).
fn encoder_chain(options: &OutputOptions) -> Result<Vec<gst::Element>, TranscodeError> {
    let make = |name: &str| {
        gst::ElementFactory::make(name).build().map_err(|_| {
            TranscodeError::Internal(format!("the GStreamer element {name} is missing"))
        })
    };
    let bitrate = options.bitrate_kbps.unwrap_or(192);
    Ok(match options.format {
        Format::Mp3 => Vec::new(),
        Format::Opus => {
            let encode = make("opusenc")?;
            encode.set_property("bitrate", (bitrate * 1000) as i32);
            vec![encode, make("oggmux")?]
        }
        Format::Aac => {
            let encode = make("voaacenc")?;
            encode.set_property("bitrate", (bitrate * 1000) as i32);
            vec![encode, make("mp4mux")?]
        }
        Format::Flac => vec![make("flacenc")?],
    })
}

/// Raw audio caps the encoder gets: the rate and channels asked for, else
/// the input's channels, downmixed to stereo for the lossy formats (FLAC
/// keeps them all). The input is known once the audio is decoded. LAME gets
/// floats in either layout, as the decoder made them, at the MP3 rate
/// nearest the input's.
fn output_caps(options: &OutputOptions, input: Option<&gst_audio::AudioInfo>) -> gst::Caps {
    let mut caps = gst::Caps::builder("audio/x-raw");
    let input_channels = input.map(|i| i.channels());
    if options.format == Format::Mp3 {
        caps = caps
            .field("format", gst_audio::AUDIO_FORMAT_F32.to_str())
            .field("layout", gst::List::new(["interleaved", "non-interleaved"]));
        let rate = options
            .sample_rate
            .or_else(|| input.map(|i| nearest_rate(i.rate())));
        caps = match rate {
            Some(rate) => caps.field("rate", rate as i32),
            None => caps.field(
                "rate",
                gst::List::new(crate::output::MP3_SAMPLE_RATES.map(|r| r as i32)),
            ),
        };
    } else if let Some(rate) = options.sample_rate {
        caps = caps.field("rate", rate as i32);
    }
    let lossy = options.format != Format::Flac;
    match (options.channels, input_channels) {
        (Some(channels), _) => caps = caps.field("channels", channels as i32),
        (None, Some(input)) if lossy => caps = caps.field("channels", input.min(2) as i32),
        (None, None) if lossy => caps = caps.field("channels", gst::IntRange::new(1, 2)),
        (None, _) => {}
    }
    caps.build()
}

fn nanos(secs: f64) -> u64 {
    (secs * 1e9).round() as u64
}

impl Graph {
    fn build(
        input: &Path,
        options: &OutputOptions,
        output: &Path,
        gapless: Option<InputGapless>,
    ) -> Result<Self, TranscodeError> {
        let pipeline = gst::Pipeline::new();
        let make = |name: &str| gst::ElementFactory::make(name).build();
        let src = gst::ElementFactory::make("filesrc")
            .property("location", input.to_string_lossy().as_ref())
            .build()?;
        let parse = make("parsebin")?;
        // A demuxed stream that is not audio goes to a fakesink as it is:
        // parsing it (h264parse copies every video frame) is wasted work.
        // Whatever typefind finds (the container itself) is plugged.
        parse.connect("autoplug-continue", false, |values| {
            // The pad is parsebin's ghost of the element's own.
            let from_demuxer = values
                .get(1)
                .and_then(|v| v.get::<gst::Pad>().ok())
                .map(|pad| match pad.downcast_ref::<gst::GhostPad>() {
                    Some(ghost) => ghost.target().unwrap_or(pad),
                    None => pad,
                })
                .and_then(|pad| pad.parent_element())
                .is_some_and(|element| is_demuxer(&element));
            let audio = values
                .get(2)
                .and_then(|v| v.get::<gst::Caps>().ok())
                .and_then(|caps| caps.structure(0).map(|s| s.name().starts_with("audio/")))
                .unwrap_or(true);
            Some((audio || !from_demuxer).to_value())
        });
        // No dither when an encoder wants integers (voaacenc, flacenc): it
        // costs CPU (random numbers per sample), an AAC encoder cannot keep
        // noise at -96 dB anyway, and FLAC of a 16-bit source stays exact.
        let convert = gst::ElementFactory::make("audioconvert")
            .property_from_str("dithering", "none")
            .property_from_str("noise-shaping", "none")
            .build()?;
        let resample = make("audioresample")?;
        let caps = gst::ElementFactory::make("capsfilter")
            .property("caps", output_caps(options, None))
            .build()?;
        let chain = encoder_chain(options)?;
        if let Some(title) = options.title.as_deref().filter(|t| !t.is_empty())
            && !chain.is_empty()
        {
            // The muxer (last) writes the tags where it has one.
            let setter = chain
                .iter()
                .rev()
                .find_map(|e| e.dynamic_cast_ref::<gst::TagSetter>())
                .ok_or_else(|| TranscodeError::Internal("no element takes tags".into()))?;
            // Our title wins over one the container may carry.
            setter.set_tag_merge_mode(gst::TagMergeMode::Keep);
            setter.add_tag::<gst::tags::Title>(&title, gst::TagMergeMode::Replace);
        }
        let mp3 = match options.format {
            Format::Mp3 => Some(
                Mp3Output::create(output, options)
                    .map_err(|e| TranscodeError::Output(format!("{}: {e}", output.display())))?,
            ),
            _ => None,
        };
        let is_mp3 = mp3.is_some();
        let mp3 = Arc::new(Mutex::new(mp3));
        let sink = if is_mp3 {
            gst::ElementFactory::make("fakesink")
                .property("sync", false)
                .property("enable-last-sample", false)
                .build()?
        } else {
            gst::ElementFactory::make("filesink")
                .property("location", output.to_string_lossy().as_ref())
                .property("sync", false)
                .build()?
        };

        pipeline.add_many([&src, &parse, &convert, &resample, &caps])?;
        pipeline.add_many(&chain)?;
        pipeline.add(&sink)?;
        src.link(&parse)?;
        let mut branch = vec![&convert, &resample, &caps];
        branch.extend(chain.iter());
        branch.push(&sink);
        gst::Element::link_many(branch)?;

        let trim = Trim::new(options, gapless);
        let tap = Arc::new(Tap::default());
        let _ = tap.caps_filter.set((caps.downgrade(), options.clone()));
        let audio_in = convert
            .static_pad("sink")
            .ok_or_else(|| TranscodeError::Internal("audioconvert has no sink pad".into()))?;
        {
            let tap = tap.clone();
            audio_in.add_probe(
                gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
                move |pad, info| {
                    let ret = tap_audio(pad, info, &tap, trim);
                    dropped_as_handled(info, ret)
                },
            );
        }
        let encoder_in = chain
            .first()
            .unwrap_or(&sink)
            .static_pad("sink")
            .ok_or_else(|| TranscodeError::Internal("the encoder has no sink pad".into()))?;
        {
            let tap = tap.clone();
            encoder_in.add_probe(
                gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
                move |_, info| {
                    count_samples(info, &tap);
                    gst::PadProbeReturn::Ok
                },
            );
        }
        let sink_in = sink
            .static_pad("sink")
            .ok_or_else(|| TranscodeError::Internal("the sink has no sink pad".into()))?;
        if is_mp3 {
            let mp3 = mp3.clone();
            sink_in.add_probe(
                gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
                move |pad, info| {
                    let ret = encode_mp3(pad, info, &mp3);
                    dropped_as_handled(info, ret)
                },
            );
        }
        sink_in.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, |pad, info| {
            if let Some(gst::PadProbeData::Event(event)) = &info.data
                && event.type_() == gst::EventType::Eos
                && let Some(parent) = pad.parent_element()
            {
                post(&parent, AUDIO_DONE);
            }
            gst::PadProbeReturn::Ok
        });

        let asked = options.audio_track;
        let wanted = asked.unwrap_or(0);
        let weak_pipeline = pipeline.downgrade();
        let tracks = tap.clone();
        parse.connect_pad_added(move |_, pad| {
            let Some(pipeline) = weak_pipeline.upgrade() else {
                return;
            };
            if is_audio(pad) {
                let index = tracks.audio_tracks.fetch_add(1, Ordering::SeqCst);
                let default = tracks.default_audio.lock().ok().and_then(|d| d.clone());
                let chosen = match (asked, default) {
                    (Some(asked), _) => index == asked,
                    (None, Some(default)) => stream_start(pad).is_some_and(|(id, _)| id == default),
                    (None, None) => index == 0,
                };
                if chosen && link_decoder(&pipeline, pad, &audio_in).is_ok() {
                    return;
                }
            }
            // Every other stream (video, the other audio tracks) is dropped
            // still encoded, on this same thread.
            if let Ok(fakesink) = gst::ElementFactory::make("fakesink")
                .property("sync", false)
                .property("async", false)
                .build()
                && pipeline.add(&fakesink).is_ok()
            {
                let _ = fakesink.sync_state_with_parent();
                if let Some(sinkpad) = fakesink.static_pad("sink") {
                    // The last word on "no audio" where no demuxer speaks
                    // (one stream, not the track asked for): its end came
                    // and no audio was ever linked.
                    let audio_in = audio_in.clone();
                    sinkpad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |pad, info| {
                        if let Some(gst::PadProbeData::Event(event)) = &info.data
                            && event.type_() == gst::EventType::Eos
                            && !audio_in.is_linked()
                            && let Some(parent) = pad.parent_element()
                        {
                            post(&parent, NO_AUDIO);
                        }
                        gst::PadProbeReturn::Ok
                    });
                    let _ = pad.link(&sinkpad);
                }
            }
        });
        // parsebin (1.22) says nothing when a container has no audio, but
        // its demuxer does: once it has made all its pads, count the audio ones.
        let demuxed = tap.clone();
        pipeline.connect_deep_element_added(move |_, _, element| {
            if !is_demuxer(element) {
                return;
            }
            let demuxed = demuxed.clone();
            element.connect_no_more_pads(move |demuxer| {
                let pads = demuxer.src_pads();
                let audio: Vec<_> = pads.iter().filter(|p| is_audio(p)).collect();
                // parsebin exposes its pads after this (once the group is
                // complete), so the choice is made before any is linked.
                let default = audio.iter().find_map(|pad| {
                    let (id, flags) = stream_start(pad)?;
                    flags.contains(gst::StreamFlags::SELECT).then_some(id)
                });
                if let Ok(mut slot) = demuxed.default_audio.lock() {
                    *slot = default;
                }
                let audio = audio.len() as u32;
                demuxed.demuxed_audio.store(audio, Ordering::SeqCst);
                if audio <= wanted {
                    post(demuxer, NO_AUDIO);
                }
            });
        });

        Ok(Self {
            pipeline,
            tap,
            trim,
            sink,
            mp3,
        })
    }

    /// Refuses an input longer than the limit: by its duration once known,
    /// and by the position reached when no duration is known.
    fn check_length(
        &self,
        control: &Control,
        input_duration: &mut Option<Duration>,
    ) -> Result<(), TranscodeError> {
        if input_duration.is_none() {
            *input_duration = self
                .pipeline
                .query_duration::<gst::ClockTime>()
                .map(|d| Duration::from_nanos(d.nseconds()));
        }
        let reached = Duration::from_nanos(self.tap.position.load(Ordering::SeqCst));
        let length = input_duration.unwrap_or(reached).max(reached);
        if length > control.max_input {
            return Err(TranscodeError::TooLong(length, control.max_input));
        }
        Ok(())
    }

    /// Output position and total, from the tap and the trim.
    fn progress(&self, input_duration: Option<Duration>) -> (Duration, Option<Duration>) {
        let (start, stop) = self.trim.map(|t| (t.start, t.stop)).unwrap_or((0, None));
        let input = self.tap.position.load(Ordering::SeqCst);
        let total = match (input_duration, stop) {
            (Some(d), Some(stop)) => Some((d.as_nanos() as u64).min(stop)),
            (None, Some(stop)) => Some(stop),
            (Some(d), None) => Some(d.as_nanos() as u64),
            (None, None) => None,
        }
        .map(|end| Duration::from_nanos(end.saturating_sub(start)));
        let position = Duration::from_nanos(input.saturating_sub(start));
        let position = total.map_or(position, |t| position.min(t));
        (position, total)
    }

    fn run(
        &self,
        control: &Control,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Summary, TranscodeError> {
        let bus = self
            .pipeline
            .bus()
            .ok_or_else(|| TranscodeError::Internal("pipeline without a bus".into()))?;
        self.pipeline
            .set_state(gst::State::Playing)
            .map_err(|_| self.first_error(&bus).unwrap_or(TranscodeError::NotMedia))?;
        let mut input_duration = None;
        let started = Instant::now();
        let mut last_position = None;
        let mut last_moved = Instant::now();
        let mut prerolled = false;
        loop {
            // Decoded audio counts as proof of a playable stream: with a
            // trim starting late in a long input, everything before it is
            // decoded and dropped, and the sink prerolls only at the trim.
            if !prerolled
                && !self.tap.started.load(Ordering::SeqCst)
                && started.elapsed() > control.preroll_within
            {
                return Err(TranscodeError::Decode(format!(
                    "no playable stream found (nothing decodable within {:?})",
                    control.preroll_within
                )));
            }
            if control.cancel.load(Ordering::SeqCst) {
                return Err(TranscodeError::Cancelled);
            }
            if started.elapsed() > control.max_wall {
                return Err(TranscodeError::TimedOut(control.max_wall));
            }
            if last_moved.elapsed() > control.stall_after {
                return Err(TranscodeError::Stalled(control.stall_after));
            }
            let message = bus.timed_pop(gst::ClockTime::from_mseconds(
                PROGRESS_EVERY.as_millis() as u64
            ));
            if let Some(message) = message {
                match message.view() {
                    gst::MessageView::Eos(_) => break,
                    gst::MessageView::Error(err) => return Err(self.classify(err)),
                    gst::MessageView::StateChanged(change)
                        if change.src() == Some(self.pipeline.upcast_ref::<gst::Object>())
                            && change.current() >= gst::State::Paused =>
                    {
                        prerolled = true;
                        self.check_length(control, &mut input_duration)?;
                        continue;
                    }
                    gst::MessageView::Application(app) => match app.structure().map(|s| s.name()) {
                        Some(name) if name == AUDIO_DONE => break,
                        Some(name) if name == NO_AUDIO => {
                            let found = self
                                .tap
                                .audio_tracks
                                .load(Ordering::SeqCst)
                                .max(self.tap.demuxed_audio.load(Ordering::SeqCst));
                            return Err(match found {
                                0 => TranscodeError::NoAudio,
                                found => TranscodeError::NoSuchTrack {
                                    asked: found.max(1),
                                    found,
                                },
                            });
                        }
                        _ => continue,
                    },
                    _ => continue,
                }
            }
            self.check_length(control, &mut input_duration)?;
            if self.tap.started.load(Ordering::SeqCst) {
                let input = self.tap.position.load(Ordering::SeqCst);
                if last_position != Some(input) {
                    last_position = Some(input);
                    last_moved = Instant::now();
                }
                let (position, duration) = self.progress(input_duration);
                progress(Progress { position, duration });
            }
        }
        self.check_length(control, &mut input_duration)?;
        let samples = self.tap.samples.load(Ordering::SeqCst);
        let sample_rate = self.tap.sample_rate.load(Ordering::SeqCst);
        if samples == 0 && self.trim.is_some() && self.tap.started.load(Ordering::SeqCst) {
            return Err(TranscodeError::EmptyTrim);
        }
        let duration =
            (sample_rate > 0).then(|| Duration::from_secs_f64(samples as f64 / sample_rate as f64));
        if let Some(d) = duration {
            progress(Progress {
                position: d,
                duration: Some(d),
            });
        }
        Ok(Summary {
            duration,
            bytes: 0,
            samples,
            sample_rate,
        })
    }

    fn first_error(&self, bus: &gst::Bus) -> Option<TranscodeError> {
        let message = bus.timed_pop_filtered(
            gst::ClockTime::from_mseconds(100),
            &[gst::MessageType::Error],
        )?;
        match message.view() {
            gst::MessageView::Error(err) => Some(self.classify(err)),
            _ => None,
        }
    }

    fn classify(&self, err: &gst::message::Error) -> TranscodeError {
        let error = err.error();
        let detail = error.message().to_owned();
        if err.src() == Some(self.sink.upcast_ref::<gst::Object>())
            && error.kind::<gst::StreamError>().is_none()
        {
            return TranscodeError::Output(detail);
        }
        if let Some(stream) = error.kind::<gst::StreamError>() {
            return match stream {
                gst::StreamError::TypeNotFound | gst::StreamError::WrongType => {
                    TranscodeError::NotMedia
                }
                gst::StreamError::CodecNotFound => TranscodeError::Unsupported(detail),
                _ => TranscodeError::Decode(detail),
            };
        }
        if let Some(gst::CoreError::MissingPlugin) = error.kind::<gst::CoreError>() {
            return TranscodeError::Unsupported(detail);
        }
        if let Some(resource) = error.kind::<gst::ResourceError>() {
            return match resource {
                gst::ResourceError::NotFound
                | gst::ResourceError::OpenRead
                | gst::ResourceError::Read => TranscodeError::Input(detail),
                _ => TranscodeError::Internal(detail),
            };
        }
        TranscodeError::Internal(format!("{detail} ({:?})", err.debug()))
    }
}

/// Posts an application message named `name` from `element`.
fn post(element: &gst::Element, name: &str) {
    let message = gst::message::Application::builder(gst::Structure::new_empty(name))
        .src(element)
        .build();
    let _ = element.post_message(message);
}

/// The probe where decoded audio enters: notes the input position and, with
/// a trim, keeps only the samples inside it, re-based to start at zero.
fn tap_audio(
    pad: &gst::Pad,
    info: &mut gst::PadProbeInfo,
    tap: &Tap,
    trim: Option<Trim>,
) -> gst::PadProbeReturn {
    match &mut info.data {
        Some(gst::PadProbeData::Event(event)) => {
            match event.view() {
                gst::EventView::Caps(caps) => {
                    if let Ok(audio) = gst_audio::AudioInfo::from_caps(caps.caps()) {
                        follow_input(tap, &audio);
                        if let Ok(mut slot) = tap.info.lock() {
                            *slot = Some(audio);
                        }
                    }
                }
                gst::EventView::Segment(segment) => {
                    if let Ok(time) = segment.segment().clone().downcast::<gst::ClockTime>()
                        && let Ok(mut slot) = tap.segment.lock()
                    {
                        *slot = Some(time);
                    }
                    if trim.is_some() {
                        // Downstream sees a stream that starts at zero.
                        *event = gst::event::Segment::new(
                            &gst::FormattedSegment::<gst::ClockTime>::new(),
                        );
                    }
                }
                _ => {}
            }
            gst::PadProbeReturn::Ok
        }
        Some(gst::PadProbeData::Buffer(buffer)) => {
            let segment = tap.segment.lock().ok().and_then(|s| s.clone());
            let Some(segment) = segment else {
                return gst::PadProbeReturn::Ok;
            };
            let Some(pts) = buffer.pts() else {
                return gst::PadProbeReturn::Ok;
            };
            let position = segment
                .to_stream_time(pts)
                .map(|t| t.nseconds())
                .unwrap_or(0);
            tap.position.store(position, Ordering::SeqCst);
            tap.started.store(true, Ordering::SeqCst);
            let Some(trim) = trim else {
                return gst::PadProbeReturn::Ok;
            };
            if tap.trim_ended.load(Ordering::SeqCst) {
                return gst::PadProbeReturn::Drop;
            }
            let info = tap.info.lock().ok().and_then(|i| i.clone());
            let Some(info) = info else {
                return gst::PadProbeReturn::Drop;
            };
            if trim.stop.is_some_and(|stop| position >= stop) {
                end_trim(pad, tap);
                return gst::PadProbeReturn::Drop;
            }
            let rate = u64::from(info.rate().max(1));
            let bpf = info.bpf().max(1) as usize;
            let frames = (buffer.size() / bpf) as u64;
            let end = position + frames * 1_000_000_000 / rate;
            let stop = trim.stop.unwrap_or(u64::MAX);
            if end <= trim.start {
                return gst::PadProbeReturn::Drop;
            }
            // Samples to cut at the front and at the back of this buffer.
            let samples = |ns: u64| ns * rate / 1_000_000_000;
            let front = samples(trim.start.saturating_sub(position)).min(frames);
            let back = samples(end.saturating_sub(stop)).min(frames - front);
            let kept = (frames - front - back) as usize;
            if kept == 0 {
                return gst::PadProbeReturn::Drop;
            }
            let out_pts = gst::ClockTime::from_nseconds(
                (position + front * 1_000_000_000 / rate).saturating_sub(trim.start),
            );
            if front > 0 || back > 0 {
                // Truncating knows planar layouts (audio meta), bytes do not.
                let whole = std::mem::replace(buffer, gst::Buffer::new());
                *buffer =
                    gst_audio::audio_buffer_truncate(whole, bpf as u32, front as usize, Some(kept));
            }
            let buffer = buffer.make_mut();
            buffer.set_pts(out_pts);
            buffer.set_duration(gst::ClockTime::from_nseconds(
                kept as u64 * 1_000_000_000 / rate,
            ));
            gst::PadProbeReturn::Ok
        }
        _ => gst::PadProbeReturn::Ok,
    }
}

/// `Drop` as gstreamer-rs 0.24 can do it safely: on `Drop` it frees the
/// buffer and GStreamer then unrefs a null pointer; taking the buffer and
/// answering `Handled` drops it once.
fn dropped_as_handled(
    info: &mut gst::PadProbeInfo,
    ret: gst::PadProbeReturn,
) -> gst::PadProbeReturn {
    if ret == gst::PadProbeReturn::Drop {
        info.data = None;
        return gst::PadProbeReturn::Handled;
    }
    ret
}

/// Fixes the output channels (and an MP3's rate) from the input's before
/// audioconvert negotiates (this runs on the caps event, ahead of it).
fn follow_input(tap: &Tap, input: &gst_audio::AudioInfo) {
    if let Some((filter, options)) = tap.caps_filter.get()
        && let Some(filter) = filter.upgrade()
    {
        filter.set_property("caps", output_caps(options, Some(input)));
    }
}

/// Hands the MP3 branch's audio to the encoder. A failure (the disk is
/// full, say) is posted as the sink's error, which fails the conversion.
fn encode_mp3(
    pad: &gst::Pad,
    info: &mut gst::PadProbeInfo,
    mp3: &Mutex<Option<Mp3Output>>,
) -> gst::PadProbeReturn {
    let Ok(mut slot) = mp3.lock() else {
        return gst::PadProbeReturn::Drop;
    };
    let Some(output) = slot.as_mut() else {
        return gst::PadProbeReturn::Drop; // failed before
    };
    let result = match &info.data {
        Some(gst::PadProbeData::Buffer(buffer)) => output.on_buffer(buffer),
        Some(gst::PadProbeData::Event(event)) => output.on_event(event),
        _ => Ok(()),
    };
    match result {
        Ok(()) => gst::PadProbeReturn::Ok,
        Err(error) => {
            *slot = None;
            if let Some(sink) = pad.parent_element() {
                // Posted as the sink's: `classify` tells the output's
                // failures (resource) from the audio's (stream).
                match error {
                    Mp3Error::Write(_) => {
                        gst::element_error!(sink, gst::ResourceError::Write, ["{error}"])
                    }
                    _ => gst::element_error!(sink, gst::StreamError::Encode, ["{error}"]),
                }
            }
            gst::PadProbeReturn::Drop
        }
    }
}

/// Ends the audio branch once the trim's end has passed.
fn end_trim(pad: &gst::Pad, tap: &Tap) {
    if !tap.trim_ended.swap(true, Ordering::SeqCst) {
        let _ = pad.send_event(gst::event::Eos::new());
    }
}

/// Counts the samples going into the encoder (the output's length); the
/// frame size and rate are taken from the caps event, not per buffer.
fn count_samples(info: &gst::PadProbeInfo, tap: &Tap) {
    match &info.data {
        Some(gst::PadProbeData::Event(event)) => {
            if let gst::EventView::Caps(caps) = event.view()
                && let Ok(audio) = gst_audio::AudioInfo::from_caps(caps.caps())
            {
                tap.encoder_bpf.store(audio.bpf().max(1), Ordering::SeqCst);
                tap.sample_rate.store(audio.rate(), Ordering::SeqCst);
            }
        }
        Some(gst::PadProbeData::Buffer(buffer)) => {
            // A planar buffer that was trimmed keeps its memory and says
            // how many samples it holds in its audio meta.
            let frames = match buffer.meta::<gst_audio::AudioMeta>() {
                Some(meta) => meta.samples() as u64,
                None => {
                    let bpf = u64::from(tap.encoder_bpf.load(Ordering::SeqCst).max(1));
                    buffer.size() as u64 / bpf
                }
            };
            tap.samples.fetch_add(frames, Ordering::SeqCst);
        }
        _ => {}
    }
}

/// Whether a demuxer or parsebin pad carries audio: by its caps, else by
/// its name (demuxers name them `audio_0`, `audio_00`, `audio_0_0041`...).
fn is_audio(pad: &gst::Pad) -> bool {
    let caps = pad.current_caps().or_else(|| {
        let any = pad.query_caps(None);
        (!any.is_any()).then_some(any)
    });
    match caps.as_ref().and_then(|c| c.structure(0)) {
        Some(s) => s.name().starts_with("audio/"),
        None => pad.name().starts_with("audio"),
    }
}

fn is_demuxer(element: &gst::Element) -> bool {
    element.factory().is_some_and(|f| {
        f.metadata(gst::ELEMENT_METADATA_KLASS)
            .is_some_and(|k| k.contains("Demux"))
    })
}

/// The id and flags a stream's stream-start event gives it.
fn stream_start(pad: &gst::Pad) -> Option<(String, gst::StreamFlags)> {
    let start = pad.sticky_event::<gst::event::StreamStart>(0)?;
    Some((start.stream_id().to_owned(), start.stream_flags()))
}

/// Decodes a parsed audio stream: a decodebin (a decoder, no demuxer and so
/// no queue or thread of its own) whose raw audio goes to `audio_in`.
fn link_decoder(
    pipeline: &gst::Pipeline,
    pad: &gst::Pad,
    audio_in: &gst::Pad,
) -> Result<(), TranscodeError> {
    let decode = gst::ElementFactory::make("decodebin").build()?;
    pipeline.add(&decode)?;
    let target = audio_in.clone();
    decode.connect_pad_added(move |_, raw| {
        if !target.is_linked() {
            let _ = raw.link(&target);
        }
    });
    decode.sync_state_with_parent()?;
    let sink = decode
        .static_pad("sink")
        .ok_or_else(|| TranscodeError::Internal("decodebin has no sink pad".into()))?;
    pad.link(&sink)
        .map_err(|e| TranscodeError::Internal(format!("linking the audio decoder: {e:?}")))?;
    Ok(())
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

    fn mp3(title: &str) -> OutputOptions {
        OutputOptions {
            bitrate_kbps: Some(128),
            title: Some(title.to_owned()),
            ..OutputOptions::default()
        }
    }

    #[test]
    fn an_mp3_counts_its_samples_and_carries_its_header() {
        let input = wav(2);
        let output = tempfile::NamedTempFile::new().expect("temp");
        let summary = transcode(
            input.path(),
            &mp3("tone"),
            output.path(),
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
            Path::new("/dev/full"),
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
