//! The gain stage: one gain for the whole stream and, only where that gain
//! would take the true peak over the ceiling, a look-ahead limiter.
//!
//! The limiter sees each peak [`Limiter::latency`] frames before it plays
//! it: the gain it needs there is held over a window, followed down at once
//! and back up slowly (release), and averaged over the look-ahead, so the
//! gain at a peak is at most what that peak needs (every value averaged is)
//! and it never jumps (a jump would click). It works on interleaved
//! floats in place; all its state is sized when it is made.

use std::collections::VecDeque;

use super::true_peak::{self, TruePeak};

/// How far the limiter looks ahead: its attack.
const LOOKAHEAD_SECS: f64 = 0.005;
/// How fast the gain recovers after a peak (time constant).
const RELEASE_SECS: f64 = 0.1;

pub(super) struct Limiter {
    channels: usize,
    gain: f32,
    ceiling: f32,
    detector: TruePeak,
    /// The window minimum of the gain each estimate needs: (frame, gain).
    hold: VecDeque<(u64, f32)>,
    hold_frames: u64,
    /// The released gain, and the last `lookahead` of it with their sum.
    envelope: f32,
    average: VecDeque<f32>,
    sum: f64,
    release: f32,
    /// Frames not yet played, interleaved.
    delay: VecDeque<f32>,
    frame: u64,
    /// Whether any gain below unity was applied.
    pub(super) engaged: bool,
}

impl Limiter {
    /// A limiter for `gain` (linear) with its output's true peak held at
    /// `ceiling` (linear).
    pub(super) fn new(channels: usize, rate: u32, gain: f32, ceiling: f32) -> Self {
        let channels = channels.max(1);
        let lookahead = ((f64::from(rate) * LOOKAHEAD_SECS).round() as usize).max(1);
        // The detector's estimate for a frame comes `DELAY` frames after
        // it and may lean on the frames either side: the hold covers them.
        let hold_frames = (lookahead + 4) as u64;
        let latency = lookahead + true_peak::DELAY;
        Self {
            channels,
            gain,
            ceiling,
            detector: TruePeak::new(channels),
            hold: VecDeque::with_capacity(hold_frames as usize + 1),
            hold_frames,
            envelope: 1.0,
            average: std::iter::repeat_n(1.0, lookahead).collect(),
            sum: lookahead as f64,
            release: (1.0 - (-1.0 / (f64::from(rate) * RELEASE_SECS)).exp()) as f32,
            delay: std::iter::repeat_n(0.0, latency * channels).collect(),
            frame: 0,
            engaged: false,
        }
    }

    /// Frames between one going in and coming out.
    pub(super) fn latency(&self) -> usize {
        self.delay.len() / self.channels
    }

    /// Replaces `samples` (whole interleaved frames) by the limited output
    /// [`Limiter::latency`] frames behind them.
    pub(super) fn process(&mut self, samples: &mut [f32]) {
        let lookahead = self.average.len() as f64;
        for frame in samples.chunks_exact_mut(self.channels) {
            for sample in frame.iter_mut() {
                *sample *= self.gain;
            }
            let peak = self.detector.push(frame);
            let needed = if peak > self.ceiling {
                self.ceiling / peak
            } else {
                1.0
            };
            // Sliding-window minimum: drop what the newcomer undercuts and
            // what has left the window.
            while self.hold.back().is_some_and(|&(_, g)| g >= needed) {
                self.hold.pop_back();
            }
            self.hold.push_back((self.frame, needed));
            while self
                .hold
                .front()
                .is_some_and(|&(at, _)| at + self.hold_frames <= self.frame)
            {
                self.hold.pop_front();
            }
            self.frame += 1;
            let held = self.hold.front().map_or(1.0, |&(_, g)| g);
            self.envelope = if held < self.envelope {
                held
            } else {
                self.envelope + (held - self.envelope) * self.release
            };
            let leaving = self.average.pop_front().unwrap_or(1.0);
            self.average.push_back(self.envelope);
            self.sum += f64::from(self.envelope) - f64::from(leaving);
            let gain = ((self.sum / lookahead) as f32).min(1.0);
            if gain < 1.0 {
                self.engaged = true;
            }
            for sample in frame.iter_mut() {
                let played = self.delay.pop_front().unwrap_or(0.0);
                self.delay.push_back(*sample);
                *sample = played * gain;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(linear: f32) -> f32 {
        20.0 * linear.log10()
    }

    /// Runs `input` through and returns what came out, aligned with it.
    fn run(limiter: &mut Limiter, input: &[f32]) -> Vec<f32> {
        let channels = limiter.channels;
        let latency = limiter.latency();
        let mut samples = input.to_vec();
        samples.extend(std::iter::repeat_n(0.0, latency * channels));
        limiter.process(&mut samples);
        samples.drain(..latency * channels);
        samples
    }

    fn true_peak(samples: &[f32], channels: usize) -> f32 {
        let mut detector = TruePeak::new(channels);
        let mut padded = samples.to_vec();
        padded.extend(std::iter::repeat_n(0.0, 32 * channels));
        padded
            .chunks_exact(channels)
            .map(|f| detector.push(f))
            .fold(0.0, f32::max)
    }

    #[test]
    fn bursts_over_the_ceiling_are_held_at_it() {
        let rate = 48_000;
        let ceiling = 10f32.powf(-1.0 / 20.0);
        let mut limiter = Limiter::new(2, rate, 4.0, ceiling);
        // A quiet tone with loud bursts: the gain of 4 takes them to +6 dB.
        let input: Vec<f32> = (0..rate * 2)
            .flat_map(|n| {
                let loud = (n / 4800) % 4 == 0;
                let level = if loud { 0.5 } else { 0.05 };
                let x = level * (n as f32 * 2.0 * std::f32::consts::PI * 997.0 / rate as f32).sin();
                [x, x * 0.8]
            })
            .collect();
        let output = run(&mut limiter, &input);
        assert_eq!(output.len(), input.len());
        assert!(limiter.engaged);
        let peak = db(true_peak(&output, 2));
        assert!(peak <= -0.95, "true peak {peak} dBTP");
        // The quiet parts come out at the gain once the limiter has
        // released (0.3 s after a burst: within 5 %).
        let window = 18_600 * 2..18_900 * 2;
        let level = |s: &[f32]| s.iter().map(|x| x.abs()).sum::<f32>();
        let ratio = level(&output[window.clone()]) / (4.0 * level(&input[window]));
        assert!((0.95..=1.0).contains(&ratio), "{ratio}");
    }

    #[test]
    fn under_the_ceiling_it_is_only_the_gain_late() {
        let mut limiter = Limiter::new(1, 44_100, 0.5, 1.0);
        let input: Vec<f32> = (0..10_000).map(|n| (n as f32 * 0.01).sin() * 0.9).collect();
        let output = run(&mut limiter, &input);
        assert!(!limiter.engaged);
        for (out, x) in output.iter().zip(&input) {
            assert!((out - x * 0.5).abs() < 1e-6);
        }
    }
}
