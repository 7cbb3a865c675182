//! Where a long input is cut: the segments' bounds, in samples, chosen
//! so that each format's join is exact.
//!
//! A bound `B` is an output sample where one segment's kept audio ends and
//! the next one's begins. It is a multiple of the format's frame (a FLAC
//! block, a 20 ms Opus packet, an MP3 frame), so every segment's kept audio is whole
//! frames of the joined stream; it falls on an input sample as well
//! (`B · in / out` whole), so the input is cut where the output is, and a
//! resampler started there produces the very samples a single pass does;
//! and on a whole pixel of the waveform, so the segments' waveforms join
//! into a single pass's.
//! A lossy segment starts encoding `lead` samples before its bound (the
//! encoder's state settles on real audio; those packets are dropped) and
//! goes on for `tail` samples after the next bound (what the encoder looks
//! ahead at is the real audio, not its end).

use std::time::Duration;

use crate::output::{Format, ResolvedOutput};
use crate::transcoder::pipeline::{AudioShape, SAMPLES_PER_PIXEL, Segment};

/// The FLAC encoder's block (flacenc's default, which the pipeline
/// keeps); a join finding another refuses (`join::flac`).
pub const FLAC_BLOCK: u64 = 4608;

/// Opus packets are 20 ms (opusenc's default frame).
const OPUS_PACKETS_PER_SEC: u32 = 50;

/// What an Opus segment encodes before its bound and after the next one
/// (each rounded up to a whole step of bounds). RFC 7845 (§4.1) finds a
/// decoder converged after 80 ms; the encoder is given five times that.
const OPUS_LEAD: Duration = Duration::from_millis(400);
const OPUS_TAIL: Duration = Duration::from_millis(80);

/// What an MP3 segment encodes before its bound and after the next one.
/// The join is made at a frame within half of it either side of the
/// bound (`join::mp3`: where the two segments' bit reservoirs allow), so
/// both sides of a join are encoded from real audio: at least 200 ms
/// of it before, for LAME's psychoacoustic model and reservoir to settle.
const MP3_LEAD: Duration = Duration::from_millis(400);

/// Samples per MP3 frame: MPEG-1 Layer III at 32 kHz and above, MPEG-2
/// and 2.5 below (what LAME encodes at each rate).
pub fn mp3_frame_samples(rate: u32) -> u64 {
    if rate >= 32_000 { 1152 } else { 576 }
}

/// When and how finely to split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SplitSettings {
    /// Audio longer than this is split; zero never splits.
    pub above: Duration,
    /// About how long each segment is.
    pub segment: Duration,
    /// Rather this many segments of one length (at least 2): on one
    /// machine, one segment per process spends least (each segment costs
    /// a process's start and the input's index read again, ~0.3 s).
    pub count: Option<u32>,
}

impl Default for SplitSettings {
    fn default() -> Self {
        Self {
            above: Duration::from_secs(600),
            segment: Duration::from_secs(300),
            count: None,
        }
    }
}

/// Why a conversion is made in one pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Whole {
    #[error("splitting is off")]
    Off,
    #[error("the audio is not long enough to split")]
    Short,
    #[error("the input does not say how long it is")]
    UnknownLength,
    #[error("{} segments cannot be joined yet", .0.label())]
    Format(Format),
    #[error("loudness normalisation measures the whole input: not split yet")]
    Loudness,
    #[error("ReplayGain measures the whole output: not split yet")]
    ReplayGain,
    #[error("a resampled FLAC would not be lossless at the joins")]
    ResampledFlac,
}

/// One segment: the input samples its conversion is given, and which of
/// the output samples it makes the joined file keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Part {
    /// The input samples converted.
    pub segment: Segment,
    /// The output sample its first encoded sample is.
    pub encoded_from: u64,
    /// The output samples kept, `[keep_from, keep_to)`; `None`: to the end.
    pub keep_from: u64,
    pub keep_to: Option<u64>,
}

/// A split conversion: its format, rates and parts, in order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SplitPlan {
    pub format: Format,
    pub input_rate: u32,
    pub output_rate: u32,
    pub parts: Vec<Part>,
}

/// Whether segments of an output with `options` can be joined: its
/// format has a join, and nothing measures the whole (the input's rate,
/// which only decoding tells, is for [`plan`] to check).
pub fn joinable(options: &ResolvedOutput) -> Result<(), Whole> {
    let options = options.options();
    if !matches!(options.format, Format::Flac | Format::Opus | Format::Mp3) {
        return Err(Whole::Format(options.format));
    }
    if options.loudness_lufs.is_some() {
        return Err(Whole::Loudness);
    }
    if options.replaygain {
        return Err(Whole::ReplayGain);
    }
    Ok(())
}

/// Whether and where to split a conversion of audio shaped `shape` with
/// `options`.
pub fn plan(
    options: &ResolvedOutput,
    shape: AudioShape,
    settings: SplitSettings,
) -> Result<SplitPlan, Whole> {
    if settings.above.is_zero() || settings.segment.is_zero() {
        return Err(Whole::Off);
    }
    joinable(options)?;
    let options = options.options();
    let format = options.format;
    let input_rate = shape.rate;
    let output_rate = options
        .sample_rate
        .unwrap_or_else(|| format.nearest_sample_rate(input_rate));
    if format == Format::Flac && output_rate != input_rate {
        return Err(Whole::ResampledFlac);
    }
    let duration = shape.duration.ok_or(Whole::UnknownLength)?;
    let start = options.start_secs.unwrap_or(0.0).max(0.0);
    let mut length = (duration.as_secs_f64() - start).max(0.0);
    if let Some(asked) = options.duration_secs {
        length = length.min(asked);
    }
    if length <= settings.above.as_secs_f64() {
        return Err(Whole::Short);
    }
    let count = match settings.count {
        Some(count) => u64::from(count.max(2)),
        None => (length / settings.segment.as_secs_f64()).round().max(2.0) as u64,
    };
    let (frame, lead, tail) = match format {
        Format::Opus => {
            let packet = u64::from(output_rate / OPUS_PACKETS_PER_SEC);
            (
                packet,
                samples(OPUS_LEAD, output_rate),
                samples(OPUS_TAIL, output_rate),
            )
        }
        Format::Mp3 => {
            let lead = samples(MP3_LEAD, output_rate);
            (mp3_frame_samples(output_rate), lead, lead)
        }
        _ => (FLAC_BLOCK, 0, 0),
    };
    // A bound is a whole frame, a whole input sample and a whole pixel of
    // the waveform.
    let whole_input = u64::from(output_rate) / gcd(input_rate.into(), output_rate.into());
    let step = lcm(lcm(frame, whole_input), u64::from(SAMPLES_PER_PIXEL));
    let round_up = |n: u64| n.div_ceil(step) * step;
    let (lead, tail) = (round_up(lead), round_up(tail));
    let total = length * f64::from(output_rate);
    let mut bounds: Vec<u64> = (1..count)
        .map(|k| ((total * k as f64 / count as f64) as u64 / step) * step)
        .collect();
    bounds.dedup();
    bounds.retain(|&b| b > lead);
    let to_input = |output: u64| output * u64::from(input_rate) / u64::from(output_rate);
    let mut parts = Vec::with_capacity(bounds.len() + 1);
    let mut keep_from = 0;
    for next in bounds.iter().copied().map(Some).chain([None]) {
        let encoded_from = keep_from - if keep_from == 0 { 0 } else { lead };
        parts.push(Part {
            segment: Segment {
                from: to_input(encoded_from),
                to: next.map(|b| to_input(b + tail)),
                origin: u64::try_from(shape.start.as_nanos()).unwrap_or(0),
                // Lossless output, exact input: decoded from the start.
                seek: format != Format::Flac,
            },
            encoded_from,
            keep_from,
            keep_to: next,
        });
        keep_from = next.unwrap_or_default();
    }
    Ok(SplitPlan {
        format,
        input_rate,
        output_rate,
        parts,
    })
}

fn samples(duration: Duration, rate: u32) -> u64 {
    (duration.as_secs_f64() * f64::from(rate)).round() as u64
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a.max(1) } else { gcd(b, a % b) }
}

fn lcm(a: u64, b: u64) -> u64 {
    a / gcd(a, b) * b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::{OutputDefaults, OutputOptions};

    fn options(format: Format) -> ResolvedOutput {
        OutputOptions {
            format,
            ..OutputOptions::default()
        }
        .resolve(&OutputDefaults::default())
    }

    fn shape(rate: u32, secs: u64) -> AudioShape {
        AudioShape {
            rate,
            duration: Some(Duration::from_secs(secs)),
            start: Duration::ZERO,
        }
    }

    #[test]
    fn opus_bounds_are_whole_packets_pixels_and_input_samples() {
        let plan = plan(
            &options(Format::Opus),
            shape(44100, 3600),
            SplitSettings::default(),
        )
        .expect("split");
        assert_eq!(plan.output_rate, 48000);
        assert_eq!(plan.parts.len(), 12);
        let mut kept_to = 0;
        for (i, part) in plan.parts.iter().enumerate() {
            assert_eq!(
                part.keep_from, kept_to,
                "part {i} starts where the last ended"
            );
            assert_eq!(part.keep_from % 960, 0);
            assert_eq!(part.keep_from % 256, 0, "a whole waveform pixel");
            assert_eq!(part.keep_from * 44100 % 48000, 0, "a whole input sample");
            if i > 0 {
                // 400 ms: a whole 80 ms (Opus packets and waveform pixels).
                assert_eq!(part.keep_from - part.encoded_from, 19200, "400 ms of lead");
            }
            assert_eq!(part.segment.from, part.encoded_from * 44100 / 48000);
            kept_to = part.keep_to.unwrap_or(u64::MAX);
        }
        assert_eq!(plan.parts.last().and_then(|p| p.keep_to), None);
    }

    #[test]
    fn flac_bounds_are_whole_blocks_and_leads_nothing() {
        let plan = plan(
            &options(Format::Flac),
            shape(48000, 1800),
            SplitSettings::default(),
        )
        .expect("split");
        assert_eq!(plan.parts.len(), 6);
        for part in &plan.parts {
            assert_eq!(part.encoded_from, part.keep_from);
            assert_eq!(part.keep_from % FLAC_BLOCK, 0);
            assert_eq!(part.segment.to, part.keep_to);
        }
    }

    #[test]
    fn mp3_bounds_are_whole_frames_with_a_lead_and_a_tail() {
        for (rate, frame) in [(44100, 1152), (22050, 576)] {
            let options = OutputOptions {
                format: Format::Mp3,
                sample_rate: Some(rate),
                ..OutputOptions::default()
            }
            .resolve(&OutputDefaults::default());
            let plan = plan(&options, shape(44100, 1800), SplitSettings::default()).expect("split");
            assert_eq!(plan.parts.len(), 6);
            for part in plan.parts.iter().skip(1) {
                assert_eq!(part.keep_from % frame, 0, "a whole frame at {rate} Hz");
                assert_eq!(
                    part.encoded_from % frame,
                    0,
                    "frames on a single pass's grid"
                );
                let lead = part.keep_from - part.encoded_from;
                assert!(lead >= u64::from(rate) * 2 / 5, "400 ms of lead at least");
                assert_eq!(lead % (2 * frame), 0, "the join's window is whole frames");
            }
        }
    }

    #[test]
    fn what_is_not_split_says_why() {
        let settings = SplitSettings::default();
        let plan = |format, shape| plan(&options(format), shape, settings).err();
        assert_eq!(plan(Format::Opus, shape(48000, 600)), Some(Whole::Short));
        assert_eq!(
            plan(Format::Aac, shape(48000, 3600)),
            Some(Whole::Format(Format::Aac))
        );
        assert_eq!(
            plan(
                Format::Opus,
                AudioShape {
                    duration: None,
                    ..shape(48000, 1)
                }
            ),
            Some(Whole::UnknownLength)
        );
        let off = SplitSettings {
            above: Duration::ZERO,
            ..settings
        };
        assert_eq!(
            super::plan(&options(Format::Opus), shape(48000, 3600), off).err(),
            Some(Whole::Off)
        );
    }
}
