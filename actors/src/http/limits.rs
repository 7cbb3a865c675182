//! Rate limits on the endpoints that check passwords (`/login`,
//! `/register`): per client IP and per account, GCRA (governor) with a burst
//! of a minute's allowance. Going over is a 429 with Retry-After before any
//! hashing, so guessing passwords costs the guesser time, not us CPU.
//!
//! The client IP is the request's [`ClientAddr`](super::ClientAddr): the
//! peer, or behind a proxy in `http.trusted_proxies` the client it names,
//! so clients behind one proxy do not share one allowance.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::error::{ApiError, ProblemKind};
use crate::settings::AuthSettings;

/// Keys kept before idle ones are forgotten (bounds the limiters' memory).
const MAX_KEYS: usize = 100_000;

#[derive(Clone, Default)]
pub struct AuthLimits {
    per_ip: Option<Arc<DefaultKeyedRateLimiter<IpAddr>>>,
    per_account: Option<Arc<DefaultKeyedRateLimiter<String>>>,
}

fn per_minute(n: u32) -> Option<Quota> {
    NonZeroU32::new(n).map(Quota::per_minute)
}

impl AuthLimits {
    /// A limit of 0 turns that limit off.
    pub fn new(settings: &AuthSettings) -> Self {
        Self {
            per_ip: per_minute(settings.attempts_per_ip_per_minute)
                .map(|q| Arc::new(RateLimiter::keyed(q))),
            per_account: per_minute(settings.attempts_per_account_per_minute)
                .map(|q| Arc::new(RateLimiter::keyed(q))),
        }
    }

    pub fn check_ip(&self, ip: IpAddr) -> Result<(), ApiError> {
        check(self.per_ip.as_deref(), &ip, "from your address")
    }

    /// Accounts are keyed case-insensitively, so case games do not multiply
    /// the allowance.
    pub fn check_account(&self, email: &str) -> Result<(), ApiError> {
        check(
            self.per_account.as_deref(),
            &email.trim().to_lowercase(),
            "for this account",
        )
    }
}

fn check<K>(
    limiter: Option<&DefaultKeyedRateLimiter<K>>,
    key: &K,
    whose: &str,
) -> Result<(), ApiError>
where
    K: Clone + std::hash::Hash + Eq,
{
    let Some(limiter) = limiter else {
        return Ok(());
    };
    if limiter.len() > MAX_KEYS {
        limiter.retain_recent();
    }
    limiter.check_key(key).map_err(|not_until| {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        ApiError::of_kind(
            ProblemKind::RateLimited,
            format!(
                "too many attempts {whose}; try again in {} s",
                wait.as_secs() + 1
            ),
        )
        .retry_after(wait.as_secs() + 1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn over_the_allowance_is_429_with_retry_after() {
        let limits = AuthLimits::new(&AuthSettings {
            attempts_per_ip_per_minute: 3,
            attempts_per_account_per_minute: 2,
            ..AuthSettings::default()
        });
        let ip: IpAddr = [127, 0, 0, 1].into();
        for _ in 0..3 {
            assert!(limits.check_ip(ip).is_ok());
        }
        let refused = limits.check_ip(ip).unwrap_err();
        assert_eq!(refused.status.as_u16(), 429);
        assert!(refused.retry_after.is_some_and(|s| (1..=21).contains(&s)));
        assert!(limits.check_ip([127, 0, 0, 2].into()).is_ok());
        assert!(limits.check_account("A@x.example").is_ok());
        assert!(limits.check_account("a@X.example").is_ok());
        assert!(limits.check_account(" a@x.example").is_err());
        let off = AuthLimits::new(&AuthSettings {
            attempts_per_ip_per_minute: 0,
            attempts_per_account_per_minute: 0,
            ..AuthSettings::default()
        });
        assert!((0..100).all(|_| off.check_ip(ip).is_ok()));
    }
}
