//! Loudness as EBU R128 (ITU-R BS.1770) measures it, what a job's
//! normalisation measured and did, and the ReplayGain 2.0 tags a job was
//! given instead: the figures the API and the job record carry.

use serde::{Deserialize, Serialize};

/// One measurement of a stream. A stream too quiet to measure (everything
/// under the -70 LUFS gate) has no integrated loudness or range.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Loudness {
    /// Integrated (programme) loudness, LUFS.
    pub integrated_lufs: Option<f64>,
    /// Loudness range, LU.
    pub range_lu: Option<f64>,
    /// Maximum true peak over the channels, dBTP.
    pub true_peak_dbtp: Option<f64>,
}

/// What normalising a job's audio measured and did.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LoudnessReport {
    /// The integrated loudness asked for, LUFS.
    pub target_lufs: f64,
    /// The true-peak ceiling kept to, dBTP.
    pub ceiling_dbtp: f64,
    /// The input as it is (trimmed, in the output's channels and rate).
    pub input: Loudness,
    /// The output as it went to the encoder.
    pub output: Loudness,
    /// The one gain applied, dB.
    pub gain_db: f64,
    /// Whether the true-peak limiter had to act (the gain alone would have
    /// taken a peak over the ceiling).
    pub limited: bool,
}

/// ReplayGain 2.0's reference: a track gain brings the audio to this.
pub const REPLAYGAIN_REFERENCE_LUFS: f64 = -18.0;

/// The ReplayGain 2.0 track tags a job's audio was given (`replaygain`):
/// the audio is left as it is, players apply the gain.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReplayGainReport {
    /// The audio as it went to the encoder (the tags describe it).
    pub measured: Loudness,
    /// `REPLAYGAIN_TRACK_GAIN`: the reference (-18 LUFS) less the
    /// integrated loudness, dB; 0 for audio too quiet to measure.
    pub track_gain_db: f64,
    /// `REPLAYGAIN_TRACK_PEAK`: the true peak as a linear amplitude (1.0 is
    /// full scale).
    pub track_peak: f64,
}

impl ReplayGainReport {
    pub fn from_measured(measured: Loudness) -> Self {
        Self {
            measured,
            track_gain_db: measured
                .integrated_lufs
                .map_or(0.0, |lufs| REPLAYGAIN_REFERENCE_LUFS - lufs),
            track_peak: measured
                .true_peak_dbtp
                .map_or(0.0, |dbtp| 10f64.powf(dbtp / 20.0)),
        }
    }
}

/// `-20.01 LUFS, … (track gain +2.01 dB, peak 0.223872)`.
impl std::fmt::Display for ReplayGainReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (track gain {:+.2} dB, peak {:.6})",
            self.measured, self.track_gain_db, self.track_peak
        )
    }
}

/// `-16.02 LUFS, LRA 5.3 LU, -1.10 dBTP`; `silent` for a stream under the gate.
impl std::fmt::Display for Loudness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.integrated_lufs {
            Some(lufs) => write!(f, "{lufs:.2} LUFS")?,
            None => write!(f, "silent")?,
        }
        if let Some(range) = self.range_lu {
            write!(f, ", LRA {range:.1} LU")?;
        }
        if let Some(peak) = self.true_peak_dbtp {
            write!(f, ", {peak:.2} dBTP")?;
        }
        Ok(())
    }
}

/// `-29.31 LUFS, … → -16.00 LUFS, … (gain +13.31 dB, limited)`.
impl std::fmt::Display for LoudnessReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} -> {} (gain {:+.2} dB{})",
            self.input,
            self.output,
            self.gain_db,
            if self.limited { ", limited" } else { "" }
        )
    }
}
