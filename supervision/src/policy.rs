//! Restart intensity: how many restarts in how long before giving up.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct RestartIntensity {
    max: usize,
    window: Duration,
    recent: VecDeque<Instant>,
}

impl RestartIntensity {
    pub fn new(max: usize, window: Duration) -> Self {
        Self {
            max,
            window,
            recent: VecDeque::new(),
        }
    }

    /// Records a restart at `now`; `false` when it would exceed the limit.
    pub fn allow(&mut self, now: Instant) -> bool {
        while self
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > self.window)
        {
            self.recent.pop_front();
        }
        if self.recent.len() >= self.max {
            return false;
        }
        self.recent.push_back(now);
        true
    }

    pub fn recent(&self) -> usize {
        self.recent.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_up_to_max_within_the_window_then_recovers() {
        let mut policy = RestartIntensity::new(3, Duration::from_secs(10));
        let t0 = Instant::now();
        assert!(policy.allow(t0));
        assert!(policy.allow(t0 + Duration::from_secs(1)));
        assert!(policy.allow(t0 + Duration::from_secs(2)));
        assert!(!policy.allow(t0 + Duration::from_secs(3)));
        // Once the first restarts age out of the window, restarts are allowed again.
        assert!(policy.allow(t0 + Duration::from_secs(12)));
        assert_eq!(policy.recent(), 2);
    }
}
