//! One segment of a split conversion (`transcoder::segments` plans them
//! and joins what they make): the input samples this conversion encodes,
//! and the jump to near its start.
//!
//! A segment is cut by the tap in input samples, so two segments cut at
//! the same sample meet with neither a gap nor an overlap, whatever the
//! rates. Decoding from the input's start to reach a segment late in a long
//! input would cost every segment the decoding of all before it, so the
//! first decoded audio asks for a seek to a little before the segment
//! (`DECODE_LEAD`, for the decoder to settle: a decoder after a seek starts
//! without its overlap and history). Only where the container gives every
//! audio packet an exact time (MP4 and QuickTime, Ogg, WAV, bare FLAC) is
//! the seek made: after a seek in Matroska (millisecond times), AVI, MPEG-TS
//! or FLV the decoder's times would be off by a fraction of a millisecond,
//! and the segments would not meet at the same sample. There the segment
//! decodes from the start, slower and exact.

use std::sync::atomic::Ordering;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;

use super::tap::Tap;
use super::tracks::is_demuxer;

/// The input samples a segment encodes, `[from, to)`, counted from where
/// a single pass starts: the user's trim (an MP3 input's encoder delay
/// left out), or else the input's first audio, at `origin` (ns; the
/// resampler of a single pass counts its samples from there, and a
/// segment's must count from the same sample to make the same ones);
/// `to: None` runs to the end. `seek`: whether to jump to near `from`
/// (where the container allows it, see the module's doc) rather than
/// decode from the start: a lossy decoder's hidden state (the random
/// noise an AAC decoder substitutes for some bands, for one) makes the
/// samples after a seek differ from a single pass's, inaudibly but not
/// exactly; a lossless output wants the exact ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Segment {
    pub from: u64,
    pub to: Option<u64>,
    #[serde(default)]
    pub origin: u64,
    #[serde(default)]
    pub seek: bool,
}

/// How far before a segment decoding starts after a seek.
const DECODE_LEAD: Duration = Duration::from_millis(500);

/// A segment this far or less into the input is reached by decoding.
const SEEK_BEYOND: Duration = Duration::from_secs(2);

/// The application message asking the bus loop for the seek.
pub(super) const SEEK: &str = "vidaud-seek";

/// How long the streaming thread waits for the seek it asked for.
const SEEK_WAIT: Duration = Duration::from_secs(10);

/// From the tap, on audio before the segment's start (`from_ns`): asks
/// the bus loop, once, to seek close to it when it is far. A flushing seek
/// from the streaming thread could deadlock on that thread's own lock, so
/// the bus loop's thread makes it; this thread waits until the seek's
/// flush reaches the tap (or the bus loop says it will not seek), so that
/// nothing more is decoded before the seek than this one buffer. A lossy
/// decoder keeps state across a flush (the AAC decoder's noise generator):
/// had it decoded as much as the threads' timing allowed, a segment would
/// come out different from one run to the next.
pub(super) fn wanted(pad: &gst::Pad, tap: &Tap, from_ns: u64, position: u64) {
    let far = from_ns.saturating_sub(position) > SEEK_BEYOND.as_nanos() as u64;
    if !far || tap.seek_asked.swap(true, Ordering::SeqCst) {
        return;
    }
    let to = from_ns.saturating_sub(DECODE_LEAD.as_nanos() as u64);
    let Some(element) = pad.parent_element() else {
        return;
    };
    tap.seek_gate.close();
    let structure = gst::Structure::builder(SEEK).field("to", to).build();
    let message = gst::message::Application::builder(structure)
        .src(&element)
        .build();
    if element.post_message(message).is_ok() {
        tap.seek_gate.wait();
    }
}

/// Where the streaming thread waits for the seek it asked for.
#[derive(Debug, Default)]
pub(super) struct SeekGate {
    waiting: Mutex<bool>,
    opened: Condvar,
}

impl SeekGate {
    fn close(&self) {
        if let Ok(mut waiting) = self.waiting.lock() {
            *waiting = true;
        }
    }

    fn wait(&self) {
        let Ok(mut waiting) = self.waiting.lock() else {
            return;
        };
        while *waiting {
            match self.opened.wait_timeout(waiting, SEEK_WAIT) {
                Ok((guard, timeout)) if !timeout.timed_out() => waiting = guard,
                _ => return,
            }
        }
    }

    /// Lets the streaming thread go on: the seek's flush has reached the
    /// tap, or there will be no seek.
    pub(super) fn open(&self) {
        if let Ok(mut waiting) = self.waiting.lock() {
            *waiting = false;
        }
        self.opened.notify_all();
    }
}

/// From the bus loop: seeks `pipeline` to the time the message names,
/// where the container's times are exact (see the module's doc); returns
/// whether it did. Without the seek the tap goes on dropping up to the
/// segment, which is as exact. Either way the streaming thread goes on.
pub(super) fn seek(pipeline: &gst::Pipeline, tap: &Tap, message: &gst::StructureRef) -> bool {
    let to = message.get::<u64>("to").ok();
    let sought = to.filter(|_| exact_times(pipeline)).is_some_and(|to| {
        pipeline
            .seek_simple(
                gst::SeekFlags::FLUSH | gst::SeekFlags::ACCURATE,
                gst::ClockTime::from_nseconds(to),
            )
            .is_ok()
    });
    tap.seek_gate.open();
    sought
}

/// Whether every audio packet the input's container gives has an exact
/// time: its demuxers are all ones that time packets in samples, or it has
/// none and is a bare FLAC or WAV.
fn exact_times(pipeline: &gst::Pipeline) -> bool {
    const EXACT_DEMUXERS: [&str; 3] = ["qtdemux", "oggdemux", "wavparse"];
    const EXACT_BARE: [&str; 2] = ["flacparse", "wavparse"];
    let mut demuxers = Vec::new();
    let mut bare = false;
    let mut elements = pipeline.iterate_recurse();
    while let Ok(Some(element)) = elements.next() {
        let name = element.factory().map(|f| f.name().to_string());
        let Some(name) = name else { continue };
        if is_demuxer(&element) {
            demuxers.push(name);
        } else if EXACT_BARE.contains(&name.as_str()) {
            bare = true;
        }
    }
    if demuxers.is_empty() {
        return bare;
    }
    demuxers
        .iter()
        .all(|name| EXACT_DEMUXERS.contains(&name.as_str()))
}
