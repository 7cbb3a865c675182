//! The loudness stage as a GStreamer element (interleaved F32 in and out):
//! in the measuring pass it meters what passes; in the normalising pass it
//! applies the gain (and the limiter, if one is needed) and meters what it
//! hands on. It is our own element, made by the graph, never by a factory.
//!
//! The limiter plays each frame [`Limiter::latency`] frames late, so the
//! stage drops that many frames of silence at the start and, at the end of
//! the stream, plays out the frames it still holds before passing the end
//! on: the output has exactly the input's frames, with the input's times.

use std::sync::{Mutex, MutexGuard};

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;
use gstreamer::subclass::prelude::*;
use gstreamer_audio as gst_audio;

use super::limiter::Limiter;
use super::meter::Meter;
use crate::domain::Loudness;

/// What the stage does.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(in crate::transcoder::pipeline) enum Mode {
    /// Meters the stream as it is.
    #[default]
    Measure,
    /// Multiplies by `gain` (linear); with a `ceiling` (linear), limits
    /// the true peak to it.
    Normalise { gain: f32, ceiling: Option<f32> },
}

/// What a pass measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(in crate::transcoder::pipeline) struct Measured {
    pub loudness: Loudness,
    pub limited: bool,
}

glib::wrapper! {
    pub struct LoudnessStage(ObjectSubclass<imp::LoudnessStage>)
        @extends gst::Element, gst::Object;
}

impl LoudnessStage {
    pub(in crate::transcoder::pipeline) fn new(mode: Mode) -> Self {
        let stage: Self = glib::Object::new();
        stage.imp().state().mode = mode;
        stage
    }

    /// What passed through, once the stream has ended.
    pub(in crate::transcoder::pipeline) fn measured(&self) -> Option<Measured> {
        let state = self.imp().state();
        Some(Measured {
            loudness: state.meter.as_ref()?.loudness(),
            limited: state.limiter.as_ref().is_some_and(|l| l.engaged),
        })
    }
}

mod imp {
    use super::*;

    #[derive(Default)]
    pub(super) struct State {
        pub(super) mode: Mode,
        pub(super) meter: Option<Meter>,
        pub(super) limiter: Option<Limiter>,
        channels: usize,
        rate: u32,
        /// Frames of the limiter's initial silence still to drop.
        skip: usize,
        /// Where the output started, and frames handed on since.
        start: Option<gst::ClockTime>,
        played: u64,
    }

    impl State {
        fn configure(&mut self, info: &gst_audio::AudioInfo) -> Result<(), ebur128::Error> {
            self.channels = info.channels() as usize;
            self.rate = info.rate();
            self.meter = Some(Meter::new(info.channels(), info.rate())?);
            self.limiter = match self.mode {
                Mode::Normalise {
                    gain,
                    ceiling: Some(ceiling),
                } => Some(Limiter::new(self.channels, self.rate, gain, ceiling)),
                _ => None,
            };
            self.skip = self.limiter.as_ref().map_or(0, Limiter::latency);
            Ok(())
        }

        /// Gain, limiter and meter over whole frames, in place; returns how
        /// many frames at the front are the limiter's start-up silence.
        fn process(&mut self, samples: &mut [f32]) -> Result<usize, gst::FlowError> {
            match (&mut self.limiter, self.mode) {
                (Some(limiter), _) => limiter.process(samples),
                (None, Mode::Normalise { gain, .. }) => {
                    samples.iter_mut().for_each(|s| *s *= gain);
                }
                (None, Mode::Measure) => {}
            }
            let frames = samples.len() / self.channels.max(1);
            let skipped = self.skip.min(frames);
            self.skip -= skipped;
            let meter = self.meter.as_mut().ok_or(gst::FlowError::NotNegotiated)?;
            meter
                .add(&samples[skipped * self.channels..])
                .map_err(|_| gst::FlowError::Error)?;
            Ok(skipped)
        }

        /// Stamps a buffer of `frames` frames with the time it plays at.
        fn stamp(&mut self, buffer: &mut gst::BufferRef, frames: u64) {
            let rate = u64::from(self.rate.max(1));
            let start = self.start.unwrap_or(gst::ClockTime::ZERO);
            let at = |played: u64| gst::ClockTime::from_nseconds(played * 1_000_000_000 / rate);
            buffer.set_pts(start + at(self.played));
            buffer.set_duration(at(self.played + frames) - at(self.played));
            self.played += frames;
        }
    }

    pub struct LoudnessStage {
        sinkpad: gst::Pad,
        srcpad: gst::Pad,
        state: Mutex<State>,
    }

    impl LoudnessStage {
        pub(super) fn state(&self) -> MutexGuard<'_, State> {
            self.state
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
        }

        fn chain(&self, mut buffer: gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
            let mut state = self.state();
            if state.start.is_none() {
                state.start = Some(buffer.pts().unwrap_or(gst::ClockTime::ZERO));
            }
            let channels = state.channels.max(1);
            let skipped = {
                let buffer = buffer.make_mut();
                let mut map = buffer.map_writable().map_err(|_| gst::FlowError::Error)?;
                let samples = floats(map.as_mut_slice())?;
                let whole = samples.len() / channels * channels;
                state.process(&mut samples[..whole])?
            };
            let frames = (buffer.size() / (4 * channels)) as u64 - skipped as u64;
            if frames == 0 {
                return Ok(gst::FlowSuccess::Ok);
            }
            let buffer_ref = buffer.make_mut();
            if skipped > 0 {
                let bytes = skipped * 4 * channels;
                buffer_ref
                    .resize(bytes..)
                    .map_err(|_| gst::FlowError::Error)?;
            }
            state.stamp(buffer_ref, frames);
            drop(state);
            self.srcpad.push(buffer)
        }

        /// The frames the limiter still holds, played out with silence.
        fn drain(&self) -> Option<gst::Buffer> {
            let mut state = self.state();
            let latency = state.limiter.as_ref()?.latency();
            let held = latency - state.skip;
            if held == 0 {
                return None;
            }
            let mut samples = vec![0f32; latency * state.channels];
            let skipped = state.process(&mut samples).ok()?;
            let kept = &samples[skipped * state.channels..][..held * state.channels];
            let mut buffer = gst::Buffer::from_mut_slice(
                kept.iter()
                    .flat_map(|s| s.to_ne_bytes())
                    .collect::<Vec<u8>>(),
            );
            state.stamp(buffer.make_mut(), held as u64);
            Some(buffer)
        }

        fn sink_event(&self, pad: &gst::Pad, event: gst::Event) -> bool {
            match event.view() {
                gst::EventView::Caps(caps) => {
                    let configured = gst_audio::AudioInfo::from_caps(caps.caps())
                        .ok()
                        .filter(|info| {
                            info.format() == gst_audio::AUDIO_FORMAT_F32
                                && info.layout() == gst_audio::AudioLayout::Interleaved
                        })
                        .is_some_and(|info| self.state().configure(&info).is_ok());
                    if !configured {
                        gst::element_imp_error!(
                            self,
                            gst::CoreError::Negotiation,
                            ["the loudness stage takes interleaved F32 audio"]
                        );
                        return false;
                    }
                }
                gst::EventView::Eos(_) => {
                    if let Some(tail) = self.drain() {
                        let _ = self.srcpad.push(tail);
                    }
                }
                _ => {}
            }
            gst::Pad::event_default(pad, Some(&*self.obj()), event)
        }
    }

    /// The bytes of a mapped F32 buffer as floats (GStreamer's memory is
    /// aligned for them; anything else is refused, not copied).
    fn floats(bytes: &mut [u8]) -> Result<&mut [f32], gst::FlowError> {
        // SAFETY: every bit pattern is a valid f32; align_to_mut only
        // reinterprets the aligned middle, and a prefix or suffix is refused.
        match unsafe { bytes.align_to_mut::<f32>() } {
            ([], floats, []) => Ok(floats),
            _ => Err(gst::FlowError::NotSupported),
        }
    }

    #[glib::object_subclass]
    impl ObjectSubclass for LoudnessStage {
        const NAME: &'static str = "VidaudLoudnessStage";
        type Type = super::LoudnessStage;
        type ParentType = gst::Element;

        fn with_class(klass: &Self::Class) -> Self {
            let template = |name| {
                klass
                    .pad_template(name)
                    .unwrap_or_else(|| unreachable!("the class has both templates"))
            };
            let sinkpad = gst::Pad::builder_from_template(&template("sink"))
                .chain_function(|_, parent, buffer| {
                    LoudnessStage::catch_panic_pad_function(
                        parent,
                        || Err(gst::FlowError::Error),
                        |stage| stage.chain(buffer),
                    )
                })
                .event_function(|pad, parent, event| {
                    LoudnessStage::catch_panic_pad_function(
                        parent,
                        || false,
                        |stage| stage.sink_event(pad, event),
                    )
                })
                .flags(gst::PadFlags::PROXY_CAPS | gst::PadFlags::PROXY_ALLOCATION)
                .build();
            let srcpad = gst::Pad::builder_from_template(&template("src"))
                .flags(gst::PadFlags::PROXY_CAPS | gst::PadFlags::PROXY_ALLOCATION)
                .build();
            Self {
                sinkpad,
                srcpad,
                state: Mutex::new(State::default()),
            }
        }
    }

    impl ObjectImpl for LoudnessStage {
        fn constructed(&self) {
            self.parent_constructed();
            let obj = self.obj();
            let _ = obj.add_pad(&self.sinkpad);
            let _ = obj.add_pad(&self.srcpad);
        }
    }

    impl GstObjectImpl for LoudnessStage {}

    impl ElementImpl for LoudnessStage {
        fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
            static METADATA: std::sync::LazyLock<gst::subclass::ElementMetadata> =
                std::sync::LazyLock::new(|| {
                    gst::subclass::ElementMetadata::new(
                        "vidaud loudness stage",
                        "Filter/Effect/Audio",
                        "EBU R128 metering, gain and true-peak limiting",
                        "vidaud",
                    )
                });
            Some(&METADATA)
        }

        fn pad_templates() -> &'static [gst::PadTemplate] {
            static TEMPLATES: std::sync::LazyLock<Vec<gst::PadTemplate>> =
                std::sync::LazyLock::new(|| {
                    let caps = gst_audio::AudioCapsBuilder::new_interleaved()
                        .format(gst_audio::AUDIO_FORMAT_F32)
                        .build();
                    [
                        ("sink", gst::PadDirection::Sink),
                        ("src", gst::PadDirection::Src),
                    ]
                    .into_iter()
                    .filter_map(|(name, direction)| {
                        gst::PadTemplate::new(name, direction, gst::PadPresence::Always, &caps).ok()
                    })
                    .collect()
                });
            TEMPLATES.as_ref()
        }
    }
}
