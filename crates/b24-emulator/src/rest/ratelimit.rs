//! The per-portal leaky bucket (contract §2.1).
//!
//! One counter for the whole portal (Bitrix counts per portal and source IP; every test client is on one IP).
//! Each request adds 1, the counter drains continuously at `per_sec`, and a request that would lift it above
//! `burst` is refused. A `batch` is one request. Time is passed in, so unit tests control the clock.

use crate::config::RateLimit;
use std::time::Instant;

/// The bucket state.
#[derive(Debug)]
pub struct Bucket {
    rate: RateLimit,
    level: f64,
    last: Instant,
}

impl Bucket {
    /// An empty bucket.
    pub fn new(rate: RateLimit, now: Instant) -> Bucket {
        Bucket { rate, level: 0.0, last: now }
    }

    fn drain(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.level = (self.level - dt * self.rate.per_sec).max(0.0);
        self.last = now;
    }

    /// Counts one request; `false` when it must be refused (a refused request does not fill the bucket).
    pub fn try_acquire(&mut self, now: Instant) -> bool {
        self.drain(now);
        if self.level + 1.0 > self.rate.burst {
            return false;
        }
        self.level += 1.0;
        true
    }

    /// Changes the rate at runtime; the current level is kept (clamped to the new burst).
    pub fn set_rate(&mut self, rate: RateLimit, now: Instant) {
        self.drain(now);
        self.rate = rate;
        self.level = self.level.min(rate.burst.max(0.0));
    }

    /// The current counter value.
    pub fn level(&mut self, now: Instant) -> f64 {
        self.drain(now);
        self.level
    }

    /// The configured rate.
    pub fn rate(&self) -> RateLimit {
        self.rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn refuses_past_burst_and_drains() {
        let t0 = Instant::now();
        let mut b = Bucket::new(RateLimit { per_sec: 2.0, burst: 5.0 }, t0);
        for _ in 0..5 {
            assert!(b.try_acquire(t0));
        }
        assert!(!b.try_acquire(t0));
        // Half a second drains one request.
        assert!(b.try_acquire(t0 + Duration::from_millis(500)));
        assert!(!b.try_acquire(t0 + Duration::from_millis(500)));
        // Long idle empties the bucket entirely.
        assert!((b.level(t0 + Duration::from_secs(60)) - 0.0).abs() < f64::EPSILON);
    }
}
