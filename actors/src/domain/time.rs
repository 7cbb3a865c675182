//! Points in time as the node records them: milliseconds since the Unix
//! epoch, UTC. What MongoDB's dates and the embedded store's integers both
//! hold exactly, so a time survives a move between backends unchanged.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp {
    millis: i64,
}

impl Timestamp {
    pub fn now() -> Self {
        let millis = match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(since) => i64::try_from(since.as_millis()).unwrap_or(i64::MAX),
            Err(before) => -i64::try_from(before.duration().as_millis()).unwrap_or(i64::MAX),
        };
        Self { millis }
    }

    pub const fn from_millis(millis: i64) -> Self {
        Self { millis }
    }

    pub const fn millis(self) -> i64 {
        self.millis
    }

    pub fn plus(self, span: Duration) -> Self {
        Self::from_millis(self.millis.saturating_add(duration_millis(span)))
    }

    pub fn minus(self, span: Duration) -> Self {
        Self::from_millis(self.millis.saturating_sub(duration_millis(span)))
    }

    /// RFC 3339 in UTC, e.g. `2026-12-01T21:10:46.5Z`; empty if out of range.
    pub fn to_rfc3339(self) -> String {
        use time::format_description::well_known::Rfc3339;
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.millis) * 1_000_000)
            .ok()
            .and_then(|t| t.format(&Rfc3339).ok())
            .unwrap_or_default()
    }
}

fn duration_millis(span: Duration) -> i64 {
    i64::try_from(span.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_and_text() {
        let t = Timestamp::from_millis(1_764_623_446_500);
        assert_eq!(t.to_rfc3339(), "2025-12-01T21:10:46.5Z");
        assert_eq!(t.plus(Duration::from_secs(1)).millis(), 1_764_623_447_500);
        assert_eq!(
            t.minus(Duration::from_millis(500)).to_rfc3339(),
            "2025-12-01T21:10:46Z"
        );
        assert!(Timestamp::now() > t);
    }
}
