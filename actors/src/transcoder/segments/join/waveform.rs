//! The segments' waveforms into one: each segment's waveform covers what
//! its conversion encoded, a pixel per `SAMPLES_PER_PIXEL` samples from
//! its first; the plan puts every bound and lead-in on a whole pixel, so
//! the pixels a segment keeps are the very pixels of a single pass's
//! waveform there (its last, shorter one included), and they are written
//! in order through the pipeline's own writer.

use std::io::Read;
use std::path::Path;

use super::{JoinError, Piece, read_error};
use crate::transcoder::pipeline::{SAMPLES_PER_PIXEL, Waveform};
use crate::transcoder::segments::plan::SplitPlan;

/// Joins the waveforms `segments` (one per part of `plan`, in order) into
/// `output`; returns its pixels.
pub fn join_waveforms(
    plan: &SplitPlan,
    segments: &[Piece],
    output: &Path,
) -> Result<u64, JoinError> {
    let pixel = u64::from(SAMPLES_PER_PIXEL);
    let mut joined: Option<Waveform> = None;
    for (index, (part, path)) in plan.parts.iter().zip(segments).enumerate() {
        let mismatch = |what: String| JoinError::Mismatch { index, what };
        // One segment's waveform: a few hundred kB for five minutes.
        let mut text = String::new();
        path.open()
            .and_then(|mut piece| piece.read_to_string(&mut text))
            .map_err(read_error(index, path))?;
        let json: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| mismatch(format!("its waveform is not JSON: {e}")))?;
        let rate = json["sample_rate"].as_u64().unwrap_or_default();
        let data = json["data"]
            .as_array()
            .ok_or_else(|| mismatch("its waveform has no data".into()))?;
        let skip = part.keep_from - part.encoded_from;
        if skip % pixel != 0 || json["samples_per_pixel"].as_u64() != Some(pixel) {
            return Err(mismatch(
                "its waveform's pixels are not the joined one's".into(),
            ));
        }
        let from = (skip / pixel) as usize;
        let to = match part.keep_to {
            Some(to) => ((to - part.encoded_from) / pixel) as usize,
            None => data.len() / 2,
        };
        if to > data.len() / 2 || from > to {
            return Err(mismatch(format!(
                "its waveform holds {} pixels, not the {to} planned",
                data.len() / 2
            )));
        }
        if joined.is_none() {
            let rate = u32::try_from(rate).unwrap_or_default();
            joined = Some(Waveform::of_pixels(output, rate).map_err(JoinError::Write)?);
        }
        let Some(waveform) = joined.as_mut() else {
            continue;
        };
        for pair in data[from * 2..to * 2].chunks_exact(2) {
            let (min, max) = (pair[0].as_i64(), pair[1].as_i64());
            let (Some(min), Some(max)) = (min, max) else {
                return Err(mismatch(
                    "its waveform holds a value that is no number".into(),
                ));
            };
            waveform.push(min, max).map_err(JoinError::Write)?;
        }
    }
    let waveform = joined.ok_or(JoinError::Mismatch {
        index: 0,
        what: "no segments".into(),
    })?;
    waveform
        .finish()
        .map_err(|e| JoinError::Check(e.to_string()))
}
