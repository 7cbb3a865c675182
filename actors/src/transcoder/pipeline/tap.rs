//! The tap: the pad probe where decoded audio enters. It reports the
//! input position, applies a trim sample-accurately and fixes the output's
//! channels from the input's; and the probe that counts what the encoder gets.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_audio as gst_audio;

use super::encoders::output_caps;
use super::mp3::InputGapless;
use super::nanos;
use super::segment::{self as seek, Segment};
use crate::output::OutputOptions;

/// The trim, in nanoseconds of input position, and the segment of it
/// this conversion makes (a split job's part, `segment.rs`).
#[derive(Debug, Clone, Copy)]
pub(super) struct Trim {
    pub(super) start: u64,
    pub(super) stop: Option<u64>,
    pub(super) segment: Option<Segment>,
}

impl Trim {
    /// The user's trim, shifted past the delay an MP3 input's decoder leaves
    /// in (and stopping before its padding), so the output holds exactly
    /// the audio the input's encoder was given.
    pub(super) fn new(
        options: &OutputOptions,
        gapless: Option<InputGapless>,
        segment: Option<Segment>,
    ) -> Option<Self> {
        let user = options.start_secs.is_some() || options.duration_secs.is_some();
        if !user && gapless.is_none() && segment.is_none() {
            return None;
        }
        let at = |samples: u64, rate: u32| samples * 1_000_000_000 / u64::from(rate.max(1));
        let (skip, end) = gapless.map_or((0, None), |g| {
            (at(g.skip, g.rate), Some(at(g.skip + g.keep, g.rate)))
        });
        // Untrimmed, a segment counts from the input's first audio, where
        // a single pass starts.
        let origin = segment
            .filter(|_| !user && gapless.is_none())
            .map_or(0, |s| s.origin);
        let start = origin + skip + nanos(options.start_secs.unwrap_or(0.0));
        let stop = options.duration_secs.map(|d| start + nanos(d));
        let stop = match (stop, end) {
            (Some(stop), Some(end)) => Some(stop.min(end)),
            (stop, end) => stop.or(end),
        };
        Some(Self {
            start,
            stop,
            segment,
        })
    }

    /// The input samples kept, `[from, to)`, at `rate`, counted from the
    /// trim's start: the segment's within the trim's. Counted in samples,
    /// not nanoseconds, so that segments cut at the same sample meet with
    /// neither a gap nor an overlap.
    fn samples(&self, rate: u64) -> (i64, i64) {
        let stop = self.stop.map_or(i64::MAX, |stop| self.offset(stop, rate));
        match self.segment {
            Some(segment) => (
                count(segment.from).min(stop),
                segment.to.map_or(stop, |to| count(to).min(stop)),
            ),
            None => (0, stop),
        }
    }

    /// Which sample (from the trim's start, negative before it) is at
    /// input position `ns`. Counted from the start, not from zero: the
    /// decoder times its samples from its first, which need not fall on
    /// a whole sample's time.
    fn offset(&self, ns: u64, rate: u64) -> i64 {
        if ns >= self.start {
            count(sample_at(ns - self.start, rate))
        } else {
            -count(sample_at(self.start - ns, rate))
        }
    }
}

fn count(samples: u64) -> i64 {
    i64::try_from(samples).unwrap_or(i64::MAX)
}

/// The sample at `ns` at `rate`, rounded: timestamps are a sample's time
/// rounded to the nanosecond, so this is the sample's index exactly.
fn sample_at(ns: u64, rate: u64) -> u64 {
    let scaled = (u128::from(ns) * u128::from(rate) + 500_000_000) / 1_000_000_000;
    u64::try_from(scaled).unwrap_or(u64::MAX)
}

/// The time of sample `sample` at `rate`, in nanoseconds.
fn time_of(sample: u64, rate: u64) -> u64 {
    let ns = u128::from(sample) * 1_000_000_000 / u128::from(rate.max(1));
    u64::try_from(ns).unwrap_or(u64::MAX)
}

/// How far parsebin has got exposing its streams.
#[derive(Debug, Default)]
pub(super) struct Exposure {
    pub(super) complete: bool,
    pub(super) dropped_ended: bool,
    /// An audio stream was chosen and handed to its decoder. Not whether
    /// decoded audio has reached the tap yet: the decoder exposes its
    /// output only once it has decoded some, which a dropped stream's end
    /// can precede.
    pub(super) decoding: bool,
}

/// State shared between the pad probes (streaming threads) and `run`.
#[derive(Default)]
pub(super) struct Tap {
    /// Input position of the latest decoded audio, ns (before trimming).
    pub(super) position: AtomicU64,
    /// Whether any audio was decoded yet, and the input position of the
    /// first.
    pub(super) started: AtomicBool,
    pub(super) first_position: AtomicU64,
    /// Samples handed to the encoder, their rate and bytes per frame.
    pub(super) samples: AtomicU64,
    pub(super) sample_rate: AtomicU32,
    pub(super) encoder_bpf: AtomicU32,
    /// Audio tracks seen so far (parsed streams), and as the demuxer
    /// counted them.
    pub(super) audio_tracks: AtomicU32,
    pub(super) demuxed_audio: AtomicU32,
    /// The stream id of the audio track the container marks as the
    /// default (Matroska's FlagDefault), when it marks one.
    pub(super) default_audio: Mutex<Option<String>>,
    /// Whether parsebin has exposed all its streams, and whether a dropped
    /// stream ended before that (see `Graph::build`: only then may "no
    /// audio" be concluded from a dropped stream's end).
    pub(super) exposure: Mutex<Exposure>,
    /// The upstream segment and caps of the decoded audio.
    pub(super) segment: Mutex<Option<gst::FormattedSegment<gst::ClockTime>>>,
    pub(super) info: Mutex<Option<gst_audio::AudioInfo>>,
    /// Silence of ours is going to the encoder (`aac_gapless.rs`): the
    /// probes that count audio let it pass.
    pub(super) padding: AtomicBool,
    /// The trim's end was reached and the audio branch ended.
    pub(super) trim_ended: AtomicBool,
    /// A seek to near the segment's start was asked for, and where the
    /// streaming thread waits for it (`segment.rs`).
    pub(super) seek_asked: AtomicBool,
    pub(super) seek_gate: seek::SeekGate,
    /// A segment's first samples were kept.
    pub(super) segment_began: AtomicBool,
    /// The capsfilter and the options it follows: its channels are fixed
    /// from the input's once they are known (encoder caps list mono first,
    /// so a range would turn 5.1 into mono).
    pub(super) caps_filter: OnceLock<(gst::glib::WeakRef<gst::Element>, OutputOptions)>,
}

/// The probe where decoded audio enters: notes the input position and, with
/// a trim, keeps only the samples inside it, re-based to start at zero.
pub(super) fn tap_audio(
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
                gst::EventView::FlushStart(_) => tap.seek_gate.open(),
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
            let info = tap.info.lock().ok().and_then(|i| i.clone());
            if let Some(info) = &info
                && holds_no_sample(buffer, info.rate())
            {
                return gst::PadProbeReturn::Drop;
            }
            tap.position.store(position, Ordering::SeqCst);
            if !tap.started.swap(true, Ordering::SeqCst) {
                tap.first_position.store(position, Ordering::SeqCst);
            }
            let Some(trim) = trim else {
                return gst::PadProbeReturn::Ok;
            };
            if tap.trim_ended.load(Ordering::SeqCst) {
                return gst::PadProbeReturn::Drop;
            }
            let Some(info) = info else {
                return gst::PadProbeReturn::Drop;
            };
            let rate = u64::from(info.rate().max(1));
            let bpf = info.bpf().max(1) as usize;
            let frames = frames_in(buffer, bpf as u64);
            let (from, to) = trim.samples(rate);
            let first = trim.offset(position, rate);
            let frames = count(frames);
            if first >= to {
                end_trim(pad, tap);
                return gst::PadProbeReturn::Drop;
            }
            if first + frames <= from {
                if trim.segment.is_some_and(|s| s.seek) {
                    let from = trim.start + time_of(from.unsigned_abs(), rate);
                    seek::wanted(pad, tap, from, position);
                }
                return gst::PadProbeReturn::Drop;
            }
            // Samples to cut at the front and at the back of this buffer.
            let front = (from - first).clamp(0, frames);
            let back = (first + frames - to).clamp(0, frames - front);
            let kept = (frames - front - back) as usize;
            if kept == 0 {
                return gst::PadProbeReturn::Drop;
            }
            if trim.segment.is_some()
                && !tap.segment_began.swap(true, Ordering::SeqCst)
                && first > from
            {
                // A seek that landed past the segment's start: its first
                // samples are missing, and the join would be off by them.
                if let Some(element) = pad.parent_element() {
                    gst::element_error!(
                        element,
                        gst::StreamError::Failed,
                        ["the segment's audio starts {} samples late", first - from]
                    );
                }
                return gst::PadProbeReturn::Drop;
            }
            let out_pts = time_of((first + front - from).unsigned_abs(), rate);
            let out_pts = gst::ClockTime::from_nseconds(out_pts);
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

/// Whether `buffer` is a decoder's leftover that holds no sample: a
/// priming frame clipped to the segment's start by a rounding of
/// nanoseconds keeps one sample of its memory and a duration shorter than
/// half a sample (libav's AAC decoder after an MP4 edit list, GStreamer
/// 1.22). Kept, that sample would shift all that follows by one.
fn holds_no_sample(buffer: &gst::BufferRef, rate: u32) -> bool {
    buffer
        .duration()
        .is_some_and(|d| d.nseconds() * u64::from(rate) * 2 < 1_000_000_000)
}

/// The samples `buffer` holds: its audio meta's count (a planar buffer
/// that was trimmed keeps its memory and says how many it holds there),
/// else its size in frames of `bpf` bytes.
pub(super) fn frames_in(buffer: &gst::BufferRef, bpf: u64) -> u64 {
    match buffer.meta::<gst_audio::AudioMeta>() {
        Some(meta) => meta.samples() as u64,
        None => buffer.size() as u64 / bpf.max(1),
    }
}

/// `Drop` as gstreamer-rs 0.24 can do it safely: on `Drop` it frees the
/// buffer and GStreamer then unrefs a null pointer; taking the buffer and
/// answering `Handled` drops it once.
pub(super) fn dropped_as_handled(
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
pub(super) fn follow_input(tap: &Tap, input: &gst_audio::AudioInfo) {
    if let Some((filter, options)) = tap.caps_filter.get()
        && let Some(filter) = filter.upgrade()
    {
        filter.set_property("caps", output_caps(options, Some(input)));
    }
}

/// Ends the audio branch once the trim's end has passed.
pub(super) fn end_trim(pad: &gst::Pad, tap: &Tap) {
    if !tap.trim_ended.swap(true, Ordering::SeqCst) {
        let _ = pad.send_event(gst::event::Eos::new());
    }
}

/// Counts the samples going into the encoder (the output's length); the
/// frame size and rate are taken from the caps event, not per buffer.
pub(super) fn count_samples(info: &gst::PadProbeInfo, tap: &Tap) {
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
            let bpf = u64::from(tap.encoder_bpf.load(Ordering::SeqCst));
            tap.samples
                .fetch_add(frames_in(buffer, bpf), Ordering::SeqCst);
        }
        _ => {}
    }
}
