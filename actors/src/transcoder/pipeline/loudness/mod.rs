//! Loudness normalisation, two passes as EBU R128 intends: the first
//! decodes the input (trimmed) and measures its integrated loudness, range
//! and true peak, as it is (what is reported) and in the output's channels
//! and rate (what the gain is worked out from: a downmix changes loudness);
//! the last converts it with the one gain that brings it to the target,
//! and a true-peak limiter only where that gain would take a peak over the
//! ceiling. The limiter takes some loudness with the peaks it holds down,
//! so where it acts, trial passes (decoding and limiting, no encoding)
//! measure what it left and raise the gain by what is missing. Every pass
//! goes through the same stage ([`LoudnessStage`]), which also meters what
//! the last hands to the encoder.
//!
//! A lossy encoder puts back some peak its filter removed, so for lossy
//! formats the limiter aims [`LOSSY_HEADROOM_DB`] under the ceiling.

mod element;
mod limiter;
mod meter;
mod true_peak;

pub(super) use element::{LoudnessStage, Measured, Mode};

use crate::domain::{Loudness, LoudnessReport};
use crate::output::{Format, OutputOptions};

/// How far under the ceiling the limiter aims for a lossy format, dB.
pub(super) const LOSSY_HEADROOM_DB: f64 = 1.0;

/// What the second pass does, decided from the first pass's measurement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Plan {
    pub(super) target_lufs: f64,
    pub(super) ceiling_dbtp: f64,
    pub(super) input: Loudness,
    /// The input in the output's channels and rate.
    pub(super) as_output: Loudness,
    pub(super) gain_db: f64,
    /// The true peak the limiter aims at (under the ceiling for lossy
    /// formats), dBTP.
    aim_dbtp: f64,
    /// The previous trial: its gain and the loudness it reached.
    tried: Option<(f64, f64)>,
    pub(super) mode: Mode,
}

/// How near the target a trial must land to need no correction, LU.
const CLOSE_ENOUGH_LU: f64 = 0.1;

impl Plan {
    /// The gain to the target and whether it needs the limiter. An input
    /// too quiet to measure keeps its level.
    pub(super) fn new(
        options: &OutputOptions,
        target_lufs: f64,
        input: Loudness,
        as_output: Loudness,
    ) -> Self {
        let ceiling_dbtp = options.true_peak_ceiling();
        let gain_db = as_output
            .integrated_lufs
            .map_or(0.0, |lufs| target_lufs - lufs);
        let aim_dbtp = match options.format {
            Format::Flac => ceiling_dbtp,
            Format::Mp3 | Format::Opus | Format::Aac => ceiling_dbtp - LOSSY_HEADROOM_DB,
        };
        Self {
            target_lufs,
            ceiling_dbtp,
            input,
            as_output,
            gain_db: 0.0,
            aim_dbtp,
            tried: None,
            mode: Mode::Measure,
        }
        .with_gain(gain_db)
    }

    fn with_gain(mut self, gain_db: f64) -> Self {
        let over = self
            .as_output
            .true_peak_dbtp
            .is_some_and(|peak| peak + gain_db > self.aim_dbtp);
        let linear = |db: f64| 10f64.powf(db / 20.0) as f32;
        self.gain_db = (gain_db * 100.0).round() / 100.0;
        self.mode = Mode::Normalise {
            gain: linear(gain_db),
            ceiling: over.then(|| linear(self.aim_dbtp)),
        };
        self
    }

    /// Whether the limiter is planned.
    pub(super) fn limits(&self) -> bool {
        matches!(
            self.mode,
            Mode::Normalise {
                ceiling: Some(_),
                ..
            }
        )
    }

    /// The plan with the gain raised by what a trial pass lacked, or
    /// `None` when the trial landed close enough. Past the first trial,
    /// the step follows how much loudness the last one bought per dB (the
    /// harder the limiter works, the less), by the secant through the two.
    pub(super) fn corrected(&self, trial: Loudness) -> Option<Self> {
        let reached = trial.integrated_lufs?;
        let missing = self.target_lufs - reached;
        if missing.abs() <= CLOSE_ENOUGH_LU {
            return None;
        }
        let slope = match self.tried {
            Some((gain, lufs)) if (self.gain_db - gain).abs() > 0.01 => {
                ((reached - lufs) / (self.gain_db - gain)).clamp(0.2, 1.0)
            }
            _ => 1.0,
        };
        let mut next = self.with_gain(self.gain_db + missing / slope);
        next.tried = Some((self.gain_db, reached));
        Some(next)
    }

    /// The report, with what the second pass measured.
    pub(super) fn report(&self, output: Measured) -> LoudnessReport {
        LoudnessReport {
            target_lufs: self.target_lufs,
            ceiling_dbtp: self.ceiling_dbtp,
            input: self.input,
            output: output.loudness,
            gain_db: self.gain_db,
            limited: output.limited,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loudness(lufs: f64, peak: f64) -> Loudness {
        Loudness {
            integrated_lufs: Some(lufs),
            range_lu: Some(5.0),
            true_peak_dbtp: Some(peak),
        }
    }

    #[test]
    fn the_limiter_is_planned_only_where_the_gain_takes_a_peak_over() {
        let flac = OutputOptions {
            format: Format::Flac,
            ..OutputOptions::default()
        };
        let plan =
            |options: &OutputOptions, target, input| Plan::new(options, target, input, input);
        let quiet = plan(&flac, -16.0, loudness(-36.0, -30.0));
        assert_eq!(quiet.gain_db, 20.0);
        assert!(matches!(quiet.mode, Mode::Normalise { ceiling: None, .. }));
        let peaky = plan(&flac, -16.0, loudness(-36.0, -12.0));
        assert!(matches!(
            peaky.mode,
            Mode::Normalise {
                ceiling: Some(_),
                ..
            }
        ));
        let loud = plan(&flac, -23.0, loudness(-8.0, 0.5));
        assert_eq!(loud.gain_db, -15.0);
        assert!(matches!(loud.mode, Mode::Normalise { ceiling: None, .. }));
        // MP3 leaves the encoder its headroom.
        let mp3 = plan(&OutputOptions::default(), -16.0, loudness(-36.0, -21.5));
        assert!(mp3.limits());
        // A trial that lost 1.2 LU to the limiter raises the gain by as much.
        let better = mp3.corrected(loudness(-17.2, -2.0)).expect("corrected");
        assert_eq!(better.gain_db, 21.2);
        assert!(better.corrected(loudness(-16.05, -2.0)).is_none());
        // The second trial bought 0.6 LU for 1.2 dB: the next step is twice
        // what is missing.
        let again = better.corrected(loudness(-16.6, -2.0)).expect("again");
        assert!((again.gain_db - 22.4).abs() < 0.01, "{}", again.gain_db);
    }

    #[test]
    fn silence_keeps_its_level() {
        let silent = Loudness {
            integrated_lufs: None,
            range_lu: None,
            true_peak_dbtp: None,
        };
        let plan = Plan::new(&OutputOptions::default(), -16.0, silent, silent);
        assert_eq!(plan.gain_db, 0.0);
        assert_eq!(
            plan.mode,
            Mode::Normalise {
                gain: 1.0,
                ceiling: None
            }
        );
    }
}
