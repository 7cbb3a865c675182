//! Loudness as EBU R128 (ITU-R BS.1770) measures it, and what a job's
//! normalisation measured and did: the figures the API and the job record
//! carry.

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
