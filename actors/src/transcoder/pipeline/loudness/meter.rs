//! The meter: EBU R128 integrated loudness, loudness range and true peak of
//! interleaved floats, by the `ebur128` crate (a port of libebur128).
//! Histogram mode keeps its memory fixed however long the stream is.

use ebur128::{EbuR128, Mode};

use crate::domain::Loudness;

pub(super) struct Meter {
    ebu: EbuR128,
    channels: u32,
}

impl Meter {
    pub(super) fn new(channels: u32, rate: u32) -> Result<Self, ebur128::Error> {
        let mode = Mode::I | Mode::LRA | Mode::TRUE_PEAK | Mode::HISTOGRAM;
        Ok(Self {
            ebu: EbuR128::new(channels, rate, mode)?,
            channels,
        })
    }

    pub(super) fn add(&mut self, samples: &[f32]) -> Result<(), ebur128::Error> {
        self.ebu.add_frames_f32(samples)
    }

    pub(super) fn loudness(&self) -> Loudness {
        let finite = |v: Result<f64, ebur128::Error>| v.ok().filter(|v| v.is_finite());
        let peak = (0..self.channels)
            .filter_map(|c| self.ebu.true_peak(c).ok())
            .fold(0f64, f64::max);
        Loudness {
            integrated_lufs: finite(self.ebu.loudness_global()).map(round2),
            range_lu: finite(self.ebu.loudness_range())
                .filter(|_| self.ebu.loudness_global().is_ok_and(f64::is_finite))
                .map(round2),
            true_peak_dbtp: (peak > 0.0).then(|| round2(20.0 * peak.log10())),
        }
    }
}

/// Hundredths are as far as a loudness figure means anything.
fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// BS.1770's calibration: a 1 kHz sine peaking at -20 dBFS in both
    /// channels reads -20 LUFS (the -0.691 dB offset cancels the
    /// K-weighting at 1 kHz, and summing two channels the sine's -3 dB).
    #[test]
    fn a_sine_reads_as_bs1770_says() {
        let rate = 48_000;
        let mut meter = Meter::new(2, rate).expect("meter");
        let amplitude = 10f32.powf(-20.0 / 20.0);
        let samples: Vec<f32> = (0..rate * 5)
            .flat_map(|n| {
                let x = amplitude
                    * (n as f32 * 2.0 * std::f32::consts::PI * 1000.0 / rate as f32).sin();
                [x, x]
            })
            .collect();
        meter.add(&samples).expect("add");
        let loudness = meter.loudness();
        let lufs = loudness.integrated_lufs.expect("measured");
        assert!((lufs - -20.0).abs() < 0.1, "{lufs}");
        assert!(loudness.range_lu.expect("range") < 0.1);
        let peak = loudness.true_peak_dbtp.expect("peak");
        assert!((peak - -20.0).abs() < 0.1, "{peak}");
    }

    #[test]
    fn silence_has_no_loudness() {
        let mut meter = Meter::new(1, 44_100).expect("meter");
        meter.add(&vec![0.0; 44_100 * 2]).expect("add");
        let loudness = meter.loudness();
        assert_eq!(loudness.integrated_lufs, None);
        assert_eq!(loudness.range_lu, None);
        assert_eq!(loudness.true_peak_dbtp, None);
    }
}
