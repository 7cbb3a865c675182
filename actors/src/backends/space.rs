//! Room to store: whether the node's storage was last found full, and when
//! a conversion may try to store again.
//!
//! A full disk is no fault of a job's: a conversion that cannot store its
//! audio for want of space hands its job back with the attempt given back
//! (`JobStore::requeue_refunded`), and conversions wait, one trying at a
//! time after a pause that grows from 15 s to 5 min, until one stores its
//! audio again. Meanwhile `/ready` says the storage is full (a check named
//! `storage`, which serves files and jobs), and so do `ctl status` and
//! `dependency_up{dependency="storage"}`.
//!
//! What is full is seen where a write fails (`StoreError::Full`: ENOSPC on
//! the data directory or the spool, SQLite's disk full), not guessed from a
//! free-space figure. A MongoDB whose disk fills stops (mongod shuts down;
//! SecantusDB's storage engine panics): that is a dependency down, and
//! nothing is claimed while it is.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{Check, Part};
use crate::domain::Timestamp;

/// The longest pause, as a multiple of the first.
const LONGEST: u32 = 20;

pub struct Space {
    full: Mutex<Option<Full>>,
    /// The first pause after storage is found full (`transcoder.
    /// room_wait_secs`), doubled at each failure since, up to [`LONGEST`]
    /// times itself.
    first_wait: Duration,
}

#[derive(Clone)]
struct Full {
    since: Timestamp,
    reason: String,
    failures: u32,
    /// When the next conversion may try to store (one does, and pushes
    /// this on for the others).
    next_try: Instant,
}

/// The storage as last found full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shortage {
    pub since: Timestamp,
    pub reason: String,
}

/// Whether a conversion may go on to store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// Storage is not known to be full.
    Go,
    /// Storage was full; this conversion is the one to try again.
    Try,
    /// Storage is full: wait this long, then hand the job back.
    Wait(Duration),
}

impl Space {
    pub fn new(first_wait: Duration) -> Self {
        Self {
            full: Mutex::new(None),
            first_wait: first_wait.max(Duration::from_millis(100)),
        }
    }

    fn wait_after(&self, failures: u32) -> Duration {
        self.first_wait
            .saturating_mul(1 << failures.saturating_sub(1).min(5))
            .min(self.first_wait * LONGEST)
    }

    fn with<T>(&self, f: impl FnOnce(&mut Option<Full>) -> T) -> T {
        f(&mut self
            .full
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// A write failed for want of space.
    pub fn note_full(&self, reason: &str) {
        self.with(|full| {
            let failures = full.as_ref().map_or(0, |f| f.failures) + 1;
            let since = full.as_ref().map_or_else(Timestamp::now, |f| f.since);
            *full = Some(Full {
                since,
                reason: reason.to_owned(),
                failures,
                next_try: Instant::now() + self.wait_after(failures),
            });
        });
    }

    /// A write succeeded: there is room again.
    pub fn note_room(&self) {
        self.with(|full| *full = None);
    }

    /// The shortage, if storage was last found full.
    pub fn shortage(&self) -> Option<Shortage> {
        self.with(|full| {
            full.as_ref().map(|f| Shortage {
                since: f.since,
                reason: f.reason.clone(),
            })
        })
    }

    /// Whether a conversion may store now. While storage is full one
    /// conversion tries each time the pause is over (`Try`; the others
    /// wait for the next pause, however its try ends).
    pub fn turn(&self) -> Turn {
        self.with(|full| match full {
            None => Turn::Go,
            Some(f) => {
                let now = Instant::now();
                if now >= f.next_try {
                    f.next_try = now + self.wait_after(f.failures);
                    Turn::Try
                } else {
                    Turn::Wait(f.next_try - now)
                }
            }
        })
    }

    /// How long a conversion that found storage full waits before its job
    /// is handed back.
    pub fn wait(&self) -> Duration {
        let failures = self.with(|full| full.as_ref().map_or(1, |f| f.failures));
        self.wait_after(failures)
    }
}

/// The `storage` check: down while storage was last found full.
pub struct SpaceCheck(pub std::sync::Arc<Space>);

#[async_trait]
impl Check for SpaceCheck {
    fn name(&self) -> &'static str {
        "storage"
    }

    fn serves(&self) -> &'static [Part] {
        &[Part::Files, Part::Jobs]
    }

    async fn up(&self) -> bool {
        self.0.shortage().is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_conversion_tries_at_a_time_after_a_growing_pause() {
        let first = Duration::from_secs(15);
        let space = Space::new(first);
        assert_eq!(space.turn(), Turn::Go);
        space.note_full("no space left on device");
        assert!(matches!(space.turn(), Turn::Wait(_)));
        assert_eq!(
            space.shortage().map(|s| s.reason),
            Some("no space left on device".into())
        );
        assert_eq!(space.wait_after(1), first);
        assert_eq!(space.wait_after(2), first * 2);
        assert_eq!(space.wait_after(30), first * 20);
        // Due: one tries, the others keep waiting.
        space.with(|f| f.as_mut().map(|f| f.next_try = Instant::now()));
        assert_eq!(space.turn(), Turn::Try);
        assert!(matches!(space.turn(), Turn::Wait(_)));
        space.note_room();
        assert_eq!(space.turn(), Turn::Go);
        assert!(space.shortage().is_none());
    }
}
