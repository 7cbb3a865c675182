//! A true-peak detector: the peak of a signal between its samples, found
//! by interpolating it four times over as ITU-R BS.1770-4 (annex 2)
//! describes, with a 48-tap windowed-sinc filter in four phases.
//!
//! The limiter needs this rather than the sample peak: a signal whose
//! samples stay under the ceiling can still reconstruct above it (by up to
//! 3 dB near the Nyquist frequency), and a meter reading true peak would
//! see it. The estimate for a sample arrives [`DELAY`] samples after it.

/// Interpolation factor.
const FACTOR: usize = 4;
/// Taps per phase.
const TAPS: usize = 12;

/// Samples from a sample entering the detector to the estimate covering it
/// (the filter's group delay, rounded up).
pub(super) const DELAY: usize = TAPS / 2 + 1;

/// One detector for all channels of an interleaved stream. Its state is
/// sized when it is made; pushing a frame allocates nothing.
pub(super) struct TruePeak {
    coefficients: [[f32; FACTOR]; TAPS],
    /// Per channel, the last [`TAPS`] samples twice over (a window is then
    /// always one contiguous slice), newest first from `position`.
    history: Vec<[f32; 2 * TAPS]>,
    position: usize,
}

impl TruePeak {
    pub(super) fn new(channels: usize) -> Self {
        let mut coefficients = [[0f32; FACTOR]; TAPS];
        let window = (FACTOR * TAPS) as f64;
        for (j, c) in coefficients.iter_mut().flatten().enumerate() {
            let j = j as f64;
            let hann = 0.5 * (1.0 - (2.0 * std::f64::consts::PI * j / window).cos());
            let m = (j - window / 2.0) * std::f64::consts::PI / FACTOR as f64;
            *c = if m.abs() < 1e-9 {
                hann
            } else {
                hann * m.sin() / m
            } as f32;
        }
        Self {
            coefficients,
            history: vec![[0.0; 2 * TAPS]; channels.max(1)],
            position: 0,
        }
    }

    /// Takes one frame and returns the largest magnitude, over its channels
    /// and the interpolated points, of the signal [`DELAY`] samples back.
    pub(super) fn push(&mut self, frame: &[f32]) -> f32 {
        self.position = if self.position == 0 {
            TAPS - 1
        } else {
            self.position - 1
        };
        let mut peak = 0f32;
        for (history, &sample) in self.history.iter_mut().zip(frame) {
            history[self.position] = sample;
            history[self.position + TAPS] = sample;
            let window = &history[self.position..self.position + TAPS];
            let mut phases = [0f32; FACTOR];
            for (taps, &x) in self.coefficients.iter().zip(window) {
                for (phase, &c) in phases.iter_mut().zip(taps) {
                    *phase += c * x;
                }
            }
            for phase in phases {
                peak = peak.max(phase.abs());
            }
        }
        peak
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A full-scale sine at a quarter of the rate, sampled 45° off its
    /// peaks: every sample is at 0.707, the signal itself reaches 1.0.
    #[test]
    fn finds_the_peak_between_the_samples() {
        let mut detector = TruePeak::new(1);
        let mut peak = 0f32;
        for n in 0..400 {
            let phase = std::f32::consts::FRAC_PI_2 * n as f32 + std::f32::consts::FRAC_PI_4;
            peak = peak.max(detector.push(&[phase.sin()]));
        }
        assert!((0.97..1.03).contains(&peak), "{peak}");
    }

    #[test]
    fn a_quiet_signal_stays_quiet() {
        let mut detector = TruePeak::new(2);
        let peak = (0..1000)
            .map(|n| {
                let x = 0.1 * (n as f32 * 0.05).sin();
                detector.push(&[x, -x])
            })
            .fold(0f32, f32::max);
        assert!((0.095..0.105).contains(&peak), "{peak}");
    }
}
