//! The GStreamer pipeline: any container in, MP3 out, decoding only audio.
//!
//! ```text
//! filesrc ! decodebin ─┬─ audio ─ audioconvert ! audioresample ! lamemp3enc ! id3v2mux ! appsink
//!                      └─ other ─ fakesink   (video is demuxed, never parsed or decoded)
//! ```
//!
//! decodebin asks `autoplug-select` before plugging each element; we answer
//! "expose" for every parser or decoder that is not an audio one, so video,
//! image and subtitle streams leave decodebin still encoded and are dropped.
//! `filesrc` gives the demuxers random access (an MP4 whose index is at the
//! end needs it). The encoded MP3 leaves through a callback, so the caller
//! decides where it goes (GridFS, a file) and how much may be in flight.
//!
//! Everything here is blocking and runs on GStreamer's threads plus the
//! caller's: call it from a blocking task.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

/// How the audio is encoded.
#[derive(Debug, Clone)]
pub struct EncodeOptions {
    /// MP3 bitrate, kb/s, constant.
    pub bitrate_kbps: u32,
    /// ID3v2 title; usually the original file name without extension.
    pub title: Option<String>,
}

impl EncodeOptions {
    pub const BITRATES_KBPS: [u32; 14] = [
        32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
    ];

    pub fn validate(&self) -> Result<(), String> {
        if Self::BITRATES_KBPS.contains(&self.bitrate_kbps) {
            Ok(())
        } else {
            Err(format!(
                "bitrate must be one of {:?} kb/s, got {}",
                Self::BITRATES_KBPS,
                self.bitrate_kbps
            ))
        }
    }
}

/// Why a conversion did not produce audio. `is_permanent` errors are facts
/// about the input: trying again gives the same answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranscodeError {
    #[error("the file is not a recognised audio or video format")]
    NotMedia,
    #[error("the file has no audio track")]
    NoAudio,
    #[error("no decoder for this file's audio: {0}")]
    Unsupported(String),
    #[error("the file could not be decoded: {0}")]
    Decode(String),
    #[error("the input file could not be read: {0}")]
    Input(String),
    #[error("the output was closed before the conversion finished")]
    OutputClosed,
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
    pub duration: Option<Duration>,
    pub bytes: u64,
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
    /// Fail as unplayable when the pipeline has not prerolled by then.
    pub preroll_within: Duration,
}

impl Default for Control {
    fn default() -> Self {
        Self {
            cancel: Arc::new(AtomicBool::new(false)),
            stall_after: Duration::from_secs(60),
            max_wall: Duration::from_secs(24 * 3600),
            preroll_within: PREROLL_WITHIN,
        }
    }
}

/// Receives the encoded bytes in order; returning `false` stops the
/// conversion with [`TranscodeError::OutputClosed`].
pub type Output = Box<dyn FnMut(&[u8]) -> bool + Send>;

const NO_AUDIO: &str = "vidaud-no-audio";

/// Reading the headers of a local file takes milliseconds. decodebin2 (1.22)
/// can swallow a demuxer's error posted while it is still activating it
/// (e.g. qtdemux's "no playable streams" on a truncated MP4); the pipeline
/// then never prerolls and nothing is said. Not prerolling in this time is
/// taken to mean exactly that.
const PREROLL_WITHIN: Duration = Duration::from_secs(15);
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// Converts `input` to MP3, pushing the bytes to `output` and calling
/// `progress` about twice a second.
pub fn transcode(
    input: &Path,
    options: &EncodeOptions,
    output: Output,
    control: &Control,
    progress: &mut dyn FnMut(Progress),
) -> Result<Summary, TranscodeError> {
    std::fs::File::open(input).map_err(|e| TranscodeError::Input(e.to_string()))?;
    gst::init()?;
    let graph = Graph::build(input, options, output)?;
    let result = graph.run(control, progress);
    let _ = graph.pipeline.set_state(gst::State::Null);
    result
}

struct Graph {
    pipeline: gst::Pipeline,
    bytes: Arc<Mutex<u64>>,
    output_closed: Arc<AtomicBool>,
}

impl Graph {
    fn build(
        input: &Path,
        options: &EncodeOptions,
        mut output: Output,
    ) -> Result<Self, TranscodeError> {
        let pipeline = gst::Pipeline::new();
        let make = |name: &str| gst::ElementFactory::make(name).build();
        let src = gst::ElementFactory::make("filesrc")
            .property("location", input.to_string_lossy().as_ref())
            .build()?;
        let decode = make("decodebin")?;
        let convert = make("audioconvert")?;
        let resample = make("audioresample")?;
        let encode = make("lamemp3enc")?;
        encode.set_property_from_str("target", "bitrate");
        encode.set_property("bitrate", options.bitrate_kbps as i32);
        encode.set_property("cbr", true);
        let mux = make("id3v2mux")?;
        if let Some(title) = options.title.as_deref().filter(|t| !t.is_empty()) {
            let setter = mux
                .dynamic_cast_ref::<gst::TagSetter>()
                .ok_or_else(|| TranscodeError::Internal("id3v2mux is not a tag setter".into()))?;
            // Our title wins over one the container may carry.
            setter.set_tag_merge_mode(gst::TagMergeMode::Keep);
            setter.add_tag::<gst::tags::Title>(&title, gst::TagMergeMode::Replace);
        }
        let sink = gst_app::AppSink::builder().sync(false).build();

        pipeline.add_many([
            &src,
            &decode,
            &convert,
            &resample,
            &encode,
            &mux,
            sink.upcast_ref(),
        ])?;
        src.link(&decode)?;
        gst::Element::link_many([&convert, &resample, &encode, &mux, sink.upcast_ref()])?;

        let bytes = Arc::new(Mutex::new(0u64));
        let output_closed = Arc::new(AtomicBool::new(false));
        {
            let bytes = bytes.clone();
            let closed = output_closed.clone();
            sink.set_callbacks(
                gst_app::AppSinkCallbacks::builder()
                    .new_sample(move |sink| {
                        let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                        let buffer = sample.buffer().ok_or(gst::FlowError::Error)?;
                        let map = buffer.map_readable().map_err(|_| gst::FlowError::Error)?;
                        if !output(map.as_slice()) {
                            closed.store(true, Ordering::SeqCst);
                            return Err(gst::FlowError::Error);
                        }
                        if let Ok(mut n) = bytes.lock() {
                            *n += map.len() as u64;
                        }
                        Ok(gst::FlowSuccess::Ok)
                    })
                    .build(),
            );
        }

        decode.connect("autoplug-select", false, expose_non_audio);
        let audio_in = convert
            .static_pad("sink")
            .ok_or_else(|| TranscodeError::Internal("audioconvert has no sink pad".into()))?;
        let weak_pipeline = pipeline.downgrade();
        decode.connect_pad_added(move |_, pad| {
            let Some(pipeline) = weak_pipeline.upgrade() else {
                return;
            };
            let is_audio = pad
                .current_caps()
                .or_else(|| Some(pad.query_caps(None)))
                .and_then(|caps| {
                    caps.structure(0)
                        .map(|s| s.name().starts_with("audio/x-raw"))
                })
                .unwrap_or(false);
            if is_audio && !audio_in.is_linked() && pad.link(&audio_in).is_ok() {
                return;
            }
            // Every other stream (video, a second audio track) is dropped.
            if let Ok(fakesink) = gst::ElementFactory::make("fakesink")
                .property("sync", false)
                .property("async", false)
                .build()
                && pipeline.add(&fakesink).is_ok()
            {
                let _ = fakesink.sync_state_with_parent();
                if let Some(sinkpad) = fakesink.static_pad("sink") {
                    let _ = pad.link(&sinkpad);
                }
            }
        });
        let audio_linked = convert.static_pad("sink");
        decode.connect_no_more_pads(move |decode| {
            if audio_linked.as_ref().is_some_and(|p| !p.is_linked()) {
                let message =
                    gst::message::Application::builder(gst::Structure::new_empty(NO_AUDIO))
                        .src(decode)
                        .build();
                let _ = decode.post_message(message);
            }
        });

        Ok(Self {
            pipeline,
            bytes,
            output_closed,
        })
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
        let mut duration = None;
        let started = Instant::now();
        let mut last_position = None;
        let mut last_moved = Instant::now();
        let mut prerolled = false;
        loop {
            if !prerolled && started.elapsed() > control.preroll_within {
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
                    gst::MessageView::Eos(_) => {
                        duration = duration.or_else(|| self.position());
                        break;
                    }
                    gst::MessageView::Error(err) => return Err(self.classify(err)),
                    gst::MessageView::StateChanged(change)
                        if change.src() == Some(self.pipeline.upcast_ref::<gst::Object>())
                            && change.current() >= gst::State::Paused =>
                    {
                        prerolled = true;
                        continue;
                    }
                    gst::MessageView::Application(app)
                        if app.structure().is_some_and(|s| s.name() == NO_AUDIO) =>
                    {
                        return Err(TranscodeError::NoAudio);
                    }
                    _ => continue,
                }
            }
            if duration.is_none() {
                duration = self
                    .pipeline
                    .query_duration::<gst::ClockTime>()
                    .map(|d| Duration::from_nanos(d.nseconds()));
            }
            if let Some(position) = self.position() {
                if last_position != Some(position) {
                    last_position = Some(position);
                    last_moved = Instant::now();
                }
                progress(Progress { position, duration });
            }
        }
        let bytes = self.bytes.lock().map(|n| *n).unwrap_or(0);
        if bytes == 0 {
            return Err(TranscodeError::NoAudio);
        }
        if let Some(d) = duration {
            progress(Progress {
                position: d,
                duration,
            });
        }
        Ok(Summary { duration, bytes })
    }

    fn position(&self) -> Option<Duration> {
        self.pipeline
            .query_position::<gst::ClockTime>()
            .map(|p| Duration::from_nanos(p.nseconds()))
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
        if self.output_closed.load(Ordering::SeqCst) {
            return TranscodeError::OutputClosed;
        }
        let error = err.error();
        let detail = error.message().to_owned();
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

/// decodebin's `autoplug-select(bin, pad, caps, factory)`: expose the pad
/// instead of plugging any parser or decoder that is not for audio.
fn expose_non_audio(args: &[glib::Value]) -> Option<glib::Value> {
    const TRY: i32 = 0;
    const EXPOSE: i32 = 1;
    let factory = args.get(3)?.get::<gst::ElementFactory>().ok()?;
    let klass = factory.metadata(gst::ELEMENT_METADATA_KLASS).unwrap_or("");
    let codec =
        klass.contains("Decoder") || klass.contains("Parser") || klass.contains("Depayloader");
    let choice = if codec && !klass.contains("Audio") {
        EXPOSE
    } else {
        TRY
    };
    let enum_type = glib::Type::from_name("GstAutoplugSelectResult")?;
    let class = glib::EnumClass::with_type(enum_type)?;
    class.to_value(choice)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitrate_validation_names_the_allowed_values() {
        let ok = EncodeOptions {
            bitrate_kbps: 192,
            title: None,
        };
        assert!(ok.validate().is_ok());
        let bad = EncodeOptions {
            bitrate_kbps: 100,
            title: None,
        };
        assert!(bad.validate().unwrap_err().contains("bitrate"));
    }

    #[test]
    fn permanence() {
        assert!(TranscodeError::NoAudio.is_permanent());
        assert!(TranscodeError::NotMedia.is_permanent());
        assert!(!TranscodeError::OutputClosed.is_permanent());
        assert!(!TranscodeError::Input("x".into()).is_permanent());
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
