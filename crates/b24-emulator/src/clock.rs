//! The portal's clock: wall time plus an offset that tests move forward instead of sleeping.
//!
//! It drives what depends on elapsed portal time: message and session dates, the 24-hour retention of
//! `im.v2.Event.*` records, the operating-time windows ([`crate::rest::operating`]) and timed delivery outages.
//! Envelope timing (`time.start`, `duration`) stays on the real clock: it measures the request itself.

use chrono::{DateTime, Utc};
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// Wall time plus an advanceable offset.
#[derive(Debug, Default)]
pub(crate) struct Clock {
    offset_ms: AtomicI64,
}

impl Clock {
    /// Now, on the portal's clock.
    pub(crate) fn now(&self) -> DateTime<Utc> {
        Utc::now() + chrono::Duration::milliseconds(self.offset_ms.load(Ordering::SeqCst))
    }

    /// Now as Unix seconds (fractional).
    pub(crate) fn secs(&self) -> f64 {
        let t = self.now();
        t.timestamp() as f64 + f64::from(t.timestamp_subsec_micros()) / 1_000_000.0
    }

    /// Moves the clock forward.
    pub(crate) fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.offset_ms.fetch_add(ms, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advancing_moves_now() {
        let c = Clock::default();
        let before = c.secs();
        c.advance(Duration::from_secs(600));
        assert!(c.secs() - before >= 600.0);
    }
}
