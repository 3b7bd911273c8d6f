//! A token bucket per key: a sustained rate per minute plus a burst, on the
//! `governor` crate's GCRA limiter, which keeps one 8-byte state per key.

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};
use prometheus_client::metrics::counter::Counter;
use std::hash::Hash;
use std::num::NonZeroU32;
use std::time::Duration;

/// A rate limit shared by every connection, keyed by user id or address.
pub struct KeyedRate<K: Hash + Eq + Clone, C: Clock = DefaultClock> {
    limiter: RateLimiter<K, DashMapStateStore<K>, C, NoOpMiddleware<C::Instant>>,
    clock: C,
    /// Refusals, for `/metrics` (unregistered unless [`KeyedRate::counting`]).
    refused: Counter,
}

impl<K: Hash + Eq + Clone> KeyedRate<K> {
    /// `per_minute` sustained, `burst` at once (zeros count as one; the
    /// configuration refuses them anyway).
    pub fn new(per_minute: u32, burst: u32) -> Self {
        Self::with_clock(per_minute, burst, DefaultClock::default())
    }
}

impl<K: Hash + Eq + Clone, C: Clock + Clone> KeyedRate<K, C> {
    /// Like [`KeyedRate::new`] on a given clock (tests drive a fake one).
    pub fn with_clock(per_minute: u32, burst: u32, clock: C) -> Self {
        let quota = Quota::per_minute(NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN));
        KeyedRate {
            limiter: RateLimiter::dashmap_with_clock(quota, clock.clone()),
            clock,
            refused: Counter::default(),
        }
    }

    /// Counts every refusal in `refused` (a series of the server's metrics).
    pub fn counting(mut self, refused: Counter) -> Self {
        self.refused = refused;
        self
    }

    /// Takes one unit for `key`, or says how long until one is available.
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        self.limiter.check_key(key).map_err(|not_until| {
            self.refused.inc();
            not_until.wait_time_from(self.clock.now())
        })
    }

    /// Drops keys whose bucket is full again (they would behave exactly like
    /// a new key) and shrinks the map.
    pub fn gc(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    /// Keys currently held.
    pub fn len(&self) -> usize {
        self.limiter.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.limiter.is_empty()
    }
}

/// Whole milliseconds to wait, rounded up so that a client retrying after
/// `retry_after_ms` is never early.
pub fn ceil_millis(wait: Duration) -> u64 {
    let millis = wait.as_micros().div_ceil(1000);
    u64::try_from(millis).unwrap_or(u64::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    #[test]
    fn burst_then_sustained_rate_per_key() {
        let clock = FakeRelativeClock::default();
        let rate = KeyedRate::with_clock(60, 3, clock.clone());
        for _ in 0..3 {
            assert!(rate.check(&"a").is_ok());
        }
        let wait = rate.check(&"a").unwrap_err();
        assert_eq!(
            wait,
            Duration::from_secs(1),
            "one unit per second at 60/min"
        );
        assert!(rate.check(&"b").is_ok(), "keys are independent");
        clock.advance(Duration::from_secs(1));
        assert!(rate.check(&"a").is_ok());
        assert!(rate.check(&"a").is_err());
    }

    #[test]
    fn gc_forgets_refilled_keys_only() {
        let clock = FakeRelativeClock::default();
        let rate = KeyedRate::with_clock(60, 2, clock.clone());
        for key in 0..1000u32 {
            assert!(rate.check(&key).is_ok());
        }
        assert_eq!(rate.len(), 1000);
        clock.advance(Duration::from_millis(500));
        assert!(rate.check(&7).is_ok());
        assert!(rate.check(&7).is_err(), "key 7 is now empty");
        // Every other key has refilled; key 7 is still paying back its burst.
        clock.advance(Duration::from_millis(1600));
        rate.gc();
        assert_eq!(rate.len(), 1, "only the key still refilling is kept");
        clock.advance(Duration::from_secs(10));
        rate.gc();
        assert!(rate.is_empty());
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(ceil_millis(Duration::from_micros(1)), 1);
        assert_eq!(ceil_millis(Duration::from_micros(1001)), 2);
        assert_eq!(ceil_millis(Duration::ZERO), 1);
        assert_eq!(ceil_millis(Duration::from_secs(1)), 1000);
    }
}
