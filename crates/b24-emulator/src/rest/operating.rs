//! Per-method operating time (contract §2.2), after SRC `Bitrix\Rest\Engine\Access\LoadLimiter`.
//!
//! For each webhook and method the execution time is summed in one-minute buckets; the last ten buckets (a
//! sliding 10-minute window) make `time.operating`. A call is refused with HTTP 429 `OPERATION_TIME_LIMIT`
//! "Method is blocked due to operation time limit." when that sum is already over the limit (SRC
//! `CRestServer::processCall` checks `LoadLimiter::is` before running the method), so the call that crosses the
//! limit still runs and the next one is refused, until the oldest bucket expires. `batch` is neither checked
//! nor counted (`$ignoreMethod`); each command inside it is, against its own method.
//!
//! Three details follow the source, not the docs:
//! * only successful calls are charged (`registerEnding` runs after the callback returns; an exception skips it);
//! * within one HTTP request the charges of a method are summed and stored only when the sum exceeds
//!   `min_counted` (`$minimalFixTime = 0.1`), so a cheap single call adds nothing but a batch of fifty does;
//! * `operating_reset_at` is the expiry of the oldest bucket still counted, a bucket expiring `window` seconds
//!   after the first request that filled it, or, with nothing stored, this request's start plus the window.
//!
//! The emulator answers in microseconds, so what a call is charged comes from a cost table
//! ([`OperatingLimit::cost_of`]), not from a stopwatch. Time comes from the portal [`crate::clock::Clock`].

use super::errors::ApiError;
use crate::config::OperatingLimit;
use std::cell::RefCell;
use std::collections::BTreeMap;

/// One request's charges: (method, start, seconds), in call order.
#[derive(Debug, Default)]
pub(crate) struct Hit {
    /// When the request started (portal clock, Unix seconds).
    pub started: f64,
    charges: RefCell<Vec<(String, f64, f64)>>,
}

impl Hit {
    pub(crate) fn new(started: f64) -> Hit {
        Hit { started, charges: RefCell::default() }
    }

    pub(crate) fn charge(&self, method: &str, at: f64, secs: f64) {
        self.charges.borrow_mut().push((method.to_ascii_lowercase(), at, secs));
    }

    /// This request's charges of `method` that count individually (each over `min`, SRC `getRestTime`).
    fn pending(&self, method: &str, min: f64) -> f64 {
        self.charges.borrow().iter().filter(|(m, _, s)| m.eq_ignore_ascii_case(method) && *s > min).map(|(_, _, s)| s).sum()
    }
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    index: i64,
    secs: f64,
    expires_at: f64,
}

/// The figures a `time` object reports for one method.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Figures {
    pub operating: f64,
    pub reset_at: i64,
}

/// One row of [`crate::Emulator::operating_usage`]: what one webhook spent on one method.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct OperatingUsage {
    /// The webhook, as `<user id>/<code>`.
    pub webhook: String,
    /// The method, lowercase.
    pub method: String,
    /// Seconds counted in the current window.
    pub operating: f64,
    /// When the oldest counted bucket expires (Unix seconds).
    pub reset_at: i64,
}

/// The accounting state of the whole portal.
#[derive(Debug)]
pub(crate) struct Operating {
    limit: OperatingLimit,
    usage: BTreeMap<(String, String), Vec<Bucket>>,
}

/// 429 `OPERATION_TIME_LIMIT` (SRC text, with its full stop).
pub(crate) fn blocked_error() -> ApiError {
    ApiError::new(429, "OPERATION_TIME_LIMIT", "Method is blocked due to operation time limit.")
}

impl Operating {
    pub(crate) fn new(limit: OperatingLimit) -> Operating {
        Operating { limit, usage: BTreeMap::new() }
    }

    pub(crate) fn limit(&self) -> &OperatingLimit {
        &self.limit
    }

    pub(crate) fn set_limit(&mut self, limit: OperatingLimit) {
        self.limit = limit;
    }

    pub(crate) fn clear(&mut self) {
        self.usage.clear();
    }

    fn bucket_len(&self) -> f64 {
        self.limit.bucket.as_secs_f64().max(0.001)
    }

    fn window(&self) -> f64 {
        self.bucket_len() * f64::from(self.limit.buckets.max(1))
    }

    fn index(&self, t: f64) -> i64 {
        (t / self.bucket_len()).floor() as i64
    }

    fn live<'a>(&'a self, key: &(String, String), now: f64) -> impl Iterator<Item = &'a Bucket> + 'a {
        let oldest = self.index(now) - i64::from(self.limit.buckets.max(1));
        self.usage.get(key).into_iter().flatten().filter(move |b| b.index > oldest && b.expires_at > now)
    }

    fn key(webhook: &str, method: &str) -> (String, String) {
        (webhook.to_owned(), method.to_ascii_lowercase())
    }

    fn stored(&self, webhook: &str, method: &str, now: f64) -> f64 {
        self.live(&Self::key(webhook, method), now).map(|b| b.secs).sum()
    }

    /// Whether the next call of `method` is refused.
    pub(crate) fn blocked(&self, webhook: &str, method: &str, now: f64, hit: &Hit) -> bool {
        let min = self.limit.min_counted.as_secs_f64();
        self.limit.enabled && self.stored(webhook, method, now) + hit.pending(method, min) > self.limit.limit.as_secs_f64()
    }

    /// What a response reports for `method`: stored time plus this request's individually counted charges.
    pub(crate) fn figures(&self, webhook: &str, method: &str, now: f64, hit: &Hit) -> Figures {
        let min = self.limit.min_counted.as_secs_f64();
        let key = Self::key(webhook, method);
        let operating = if self.limit.enabled { self.stored(webhook, method, now) + hit.pending(method, min) } else { 0.0 };
        let oldest = self.live(&key, now).min_by_key(|b| b.index).map(|b| b.expires_at);
        let reset = oldest.unwrap_or(hit.started + self.window());
        Figures { operating, reset_at: reset as i64 }
    }

    /// The cost charged for one successful call of `method`.
    pub(crate) fn cost(&self, method: &str) -> f64 {
        self.limit.cost_of(method).as_secs_f64()
    }

    /// Stores a finished request's charges (SRC `LoadLimiter::finalize`): per method, the sum when over the floor.
    pub(crate) fn finalize(&mut self, webhook: &str, hit: &Hit, now: f64) {
        if !self.limit.enabled {
            return;
        }
        let mut per_method: BTreeMap<String, (f64, f64)> = BTreeMap::new();
        for (m, at, secs) in hit.charges.borrow().iter() {
            let e = per_method.entry(m.clone()).or_insert((*at, 0.0));
            e.1 += secs;
        }
        let min = self.limit.min_counted.as_secs_f64();
        let (index, window, keep) = (self.index(now), self.window(), i64::from(self.limit.buckets.max(1)));
        for (method, (first, secs)) in per_method {
            if secs <= min {
                continue;
            }
            let buckets = self.usage.entry((webhook.to_owned(), method)).or_default();
            buckets.retain(|b| b.index > index - keep && b.expires_at > now);
            match buckets.iter_mut().find(|b| b.index == index) {
                Some(b) => b.secs += secs,
                None => buckets.push(Bucket { index, secs, expires_at: first + window }),
            }
        }
    }

    /// Every (webhook, method) with time in the current window.
    pub(crate) fn usage(&self, now: f64) -> Vec<OperatingUsage> {
        let empty = Hit::new(now);
        self.usage
            .keys()
            .filter_map(|(w, m)| {
                let f = self.figures(w, m, now, &empty);
                (f.operating > 0.0).then(|| OperatingUsage { webhook: w.clone(), method: m.clone(), operating: f.operating, reset_at: f.reset_at })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn op(limit_secs: u64) -> Operating {
        Operating::new(OperatingLimit { limit: Duration::from_secs(limit_secs), ..OperatingLimit::default() })
    }

    fn request(o: &mut Operating, method: &str, secs: f64, at: f64) {
        let hit = Hit::new(at);
        hit.charge(method, at, secs);
        o.finalize("1/x", &hit, at);
    }

    #[test]
    fn sums_a_sliding_window_and_blocks_after_the_limit() {
        let mut o = op(10);
        let t0 = 6_000.0;
        for i in 0..4 {
            request(&mut o, "crm.lead.list", 3.0, t0 + f64::from(i) * 70.0);
        }
        let idle = Hit::new(t0 + 300.0);
        assert!((o.figures("1/x", "CRM.LEAD.LIST", t0 + 300.0, &idle).operating - 12.0).abs() < 1e-9);
        assert!(o.blocked("1/x", "crm.lead.list", t0 + 300.0, &idle));
        assert!(!o.blocked("1/x", "crm.deal.list", t0 + 300.0, &idle), "other methods keep working");
        assert!(!o.blocked("2/y", "crm.lead.list", t0 + 300.0, &idle), "other webhooks keep working");
        // The first bucket expires ten minutes after the request that opened it.
        let f = o.figures("1/x", "crm.lead.list", t0 + 300.0, &idle);
        assert_eq!(f.reset_at, (t0 + 600.0) as i64);
        assert!(!o.blocked("1/x", "crm.lead.list", t0 + 600.5, &Hit::new(t0 + 600.5)));
    }

    #[test]
    fn cheap_requests_are_not_stored_but_their_sum_in_one_request_is() {
        let mut o = op(480);
        request(&mut o, "scope", 0.05, 1_000.0);
        assert_eq!(o.figures("1/x", "scope", 1_000.0, &Hit::new(1_000.0)).operating, 0.0);
        let hit = Hit::new(1_001.0);
        for _ in 0..3 {
            hit.charge("scope", 1_001.0, 0.05);
        }
        o.finalize("1/x", &hit, 1_001.0);
        assert!((o.figures("1/x", "scope", 1_001.0, &Hit::new(1_001.0)).operating - 0.15).abs() < 1e-9);
    }
}
