//! What a split conversion must know before it plans its segments: the
//! audio's rate and how long the input is, read by prerolling the graph
//! (the first decoded audio) without converting anything.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;

use super::error::TranscodeError;
use super::graph::{End, Graph};
use super::{NO_AUDIO, PREROLL_WITHIN, mp3};
use crate::output::ResolvedOutput;

/// The input's audio, as the track `options` choose decodes.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AudioShape {
    /// Its sample rate.
    pub rate: u32,
    /// How long the input is, when its container says.
    pub duration: Option<Duration>,
    /// When its first audio sample is (a single pass starts there).
    pub start: Duration,
}

/// The shape of `input`'s audio: the graph prerolled (the first decoded
/// audio reaches the tap), its caps and duration read, then stopped.
pub fn probe(
    input: &std::path::Path,
    options: &ResolvedOutput,
) -> Result<AudioShape, TranscodeError> {
    std::fs::File::open(input).map_err(|e| TranscodeError::Input(e.to_string()))?;
    gst::init()?;
    let gapless = mp3::read_input_gapless(input);
    let graph = Graph::build(input, options, End::Measure, gapless, None, None)?;
    let result = prerolled(&graph);
    let _ = graph.pipeline.set_state(gst::State::Null);
    result
}

/// Plays the graph until the first decoded audio has set the tap's caps
/// (in PAUSED, the sink of another stream could hold the demuxer's one
/// thread before any audio flows), and reads what it needs.
fn prerolled(graph: &Graph) -> Result<AudioShape, TranscodeError> {
    let bus = graph
        .pipeline
        .bus()
        .ok_or_else(|| TranscodeError::Internal("pipeline without a bus".into()))?;
    graph
        .pipeline
        .set_state(gst::State::Playing)
        .map_err(|_| graph.first_error(&bus).unwrap_or(TranscodeError::NotMedia))?;
    let started = Instant::now();
    while started.elapsed() < PREROLL_WITHIN {
        let rate = graph
            .tap
            .info
            .lock()
            .ok()
            .and_then(|i| i.as_ref().map(|i| i.rate()))
            .filter(|r| *r > 0);
        if let Some(rate) = rate {
            let duration = graph
                .pipeline
                .query_duration::<gst::ClockTime>()
                .map(|d| Duration::from_nanos(d.nseconds()));
            let start = graph.tap.first_position.load(Ordering::SeqCst);
            return Ok(AudioShape {
                rate,
                duration,
                start: Duration::from_nanos(start),
            });
        }
        let Some(message) = bus.timed_pop(gst::ClockTime::from_mseconds(10)) else {
            continue;
        };
        match message.view() {
            gst::MessageView::Error(err) => return Err(graph.classify(err)),
            gst::MessageView::Eos(_) => return Err(TranscodeError::NoAudio),
            gst::MessageView::Application(app)
                if app.structure().is_some_and(|s| s.name() == NO_AUDIO) =>
            {
                return Err(TranscodeError::NoAudio);
            }
            _ => {}
        }
    }
    Err(TranscodeError::Decode(format!(
        "no playable stream found (nothing decodable within {PREROLL_WITHIN:?})"
    )))
}
