//! The one retry helper of the project: Bitrix24 REST calls and the bot call both go through
//! [`retry`].
//!
//! Why one helper: retry behaviour is where outages get amplified. Keeping the schedule, the jitter,
//! the total budget and the respect for server hints (`Retry-After`, `QUERY_LIMIT_EXCEEDED`) in one
//! place means every caller backs off the same, testable way, and nobody writes an ad-hoc loop that
//! hammers a portal that is already refusing us.
//!
//! The helper knows nothing about errors: the caller passes a `verdict` function that classifies
//! each failure as [`Verdict::Retry`], [`Verdict::RetryAfter`] (the server said when) or
//! [`Verdict::Stop`] (a permanent failure: retrying would get the same answer).
//!
//! Time is `tokio::time`, so tests run under a paused clock and assert exact schedules without
//! sleeping.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// How many times to try, how long to wait in between, and how long the whole thing may take.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// The waits between attempts; there are `delays.len() + 1` attempts at most.
    pub delays: Vec<Duration>,
    /// A cap on the total wall time: a retry whose wait would end past it is not started, so a
    /// caller with a deadline (a Lambda, a lease) gets the last error in time to act on it.
    pub budget: Option<Duration>,
    /// In `0.0..=1.0`: each wait is scaled by a random factor in `[1 - jitter, 1]`, so clients that
    /// failed together do not retry together. Values outside the range are clamped.
    pub jitter: f64,
}

impl RetryPolicy {
    /// The longest a server hint ([`Verdict::RetryAfter`]) can make us wait before one retry: a
    /// hint of an hour from a misbehaving proxy must not park a worker for an hour.
    pub const MAX_SERVER_DELAY: Duration = Duration::from_secs(60);

    /// A policy with this schedule, no budget and no jitter.
    pub fn new(delays: Vec<Duration>) -> Self {
        Self { delays, budget: None, jitter: 0.0 }
    }

    /// Exponential backoff: `attempts` tries in all, waits `first, 2*first, 4*first, ...` capped at
    /// `max`, with 50 % jitter.
    pub fn exponential(attempts: u32, first: Duration, max: Duration) -> Self {
        let mut delays = Vec::new();
        let mut d = first;
        for _ in 1..attempts.max(1) {
            delays.push(d.min(max));
            d = d.saturating_mul(2);
        }
        Self { delays, budget: None, jitter: 0.5 }
    }

    /// Tries exactly once.
    pub fn none() -> Self {
        Self::new(Vec::new())
    }

    /// Sets the total time budget.
    pub fn with_budget(mut self, budget: Duration) -> Self {
        self.budget = Some(budget);
        self
    }

    /// Sets the jitter (clamped to `0.0..=1.0`).
    pub fn with_jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter;
        self
    }

    /// The most attempts this policy makes.
    pub fn max_attempts(&self) -> u32 {
        u32::try_from(self.delays.len()).unwrap_or(u32::MAX - 1).saturating_add(1)
    }

    /// The scheduled wait after failed attempt `attempt` (from 1), jitter applied; `None` when the
    /// schedule is used up. For callers that schedule retries themselves (a queue's redelivery).
    pub fn delay_after(&self, attempt: u32) -> Option<Duration> {
        self.scheduled(attempt)
    }

    fn scheduled(&self, attempt: u32) -> Option<Duration> {
        let index = usize::try_from(attempt).ok()?.checked_sub(1)?;
        let base = *self.delays.get(index)?;
        let jitter = if self.jitter.is_finite() { self.jitter.clamp(0.0, 1.0) } else { 0.0 };
        if jitter == 0.0 || base.is_zero() {
            return Some(base);
        }
        let factor = rand::random_range((1.0 - jitter)..=1.0);
        Some(base.mul_f64(factor))
    }
}

/// What to do about one failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Transient: try again after the scheduled wait.
    Retry,
    /// The server said when to come back (`Retry-After`, a rate limit): wait at least that long
    /// (and at least the scheduled wait), but never more than [`RetryPolicy::MAX_SERVER_DELAY`].
    RetryAfter(Duration),
    /// Permanent: give up now.
    Stop,
}

/// The operation failed for good: the last error, and how many attempts were made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exhausted<E> {
    /// The error of the last attempt.
    pub last: E,
    /// Attempts made, the failed last one included.
    pub attempts: u32,
}

impl<E> Exhausted<E> {
    /// The last error.
    pub fn into_inner(self) -> E {
        self.last
    }
}

impl<E: fmt::Display> fmt::Display for Exhausted<E> {
    /// The last error's text: callers report what went wrong, `attempts` is there for metrics.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.last.fmt(f)
    }
}

impl<E: std::error::Error> std::error::Error for Exhausted<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.last.source()
    }
}

/// Runs `op` until it succeeds, `verdict` says stop, the schedule is used up, or the next wait would
/// end past the budget. `op` gets the attempt number, from 1.
pub async fn retry<T, E, F, Fut>(policy: &RetryPolicy, mut op: F, verdict: impl Fn(&E) -> Verdict) -> Result<T, Exhausted<E>>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let started = Instant::now();
    let mut attempt: u32 = 1;
    loop {
        let last = match op(attempt).await {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        let wait = match (verdict(&last), policy.scheduled(attempt)) {
            (Verdict::Stop, _) | (_, None) => None,
            (Verdict::Retry, Some(scheduled)) => Some(scheduled),
            (Verdict::RetryAfter(hint), Some(scheduled)) => Some(hint.min(RetryPolicy::MAX_SERVER_DELAY).max(scheduled)),
        };
        let Some(wait) = wait else {
            return Err(Exhausted { last, attempts: attempt });
        };
        if let Some(budget) = policy.budget
            && started.elapsed().saturating_add(wait) > budget
        {
            return Err(Exhausted { last, attempts: attempt });
        }
        tokio::time::sleep(wait).await;
        attempt = attempt.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Runs a policy against an operation that always fails with `verdict`, returning the instants
    /// (offsets from the start) of every attempt.
    async fn attempts_at(policy: &RetryPolicy, verdict: Verdict) -> (Vec<Duration>, u32) {
        let start = Instant::now();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        let res: Result<(), Exhausted<&str>> = retry(
            policy,
            |_| {
                let log = Arc::clone(&log);
                async move {
                    log.lock().map(|mut l| l.push(start.elapsed())).ok();
                    Err("nope")
                }
            },
            |_| verdict,
        )
        .await;
        let attempts = res.err().map(|e| e.attempts).unwrap_or(0);
        let at = seen.lock().map(|l| l.clone()).unwrap_or_default();
        (at, attempts)
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[tokio::test(start_paused = true)]
    async fn the_schedule_is_respected_exactly_without_jitter() {
        let policy = RetryPolicy::new(vec![ms(100), ms(200), ms(400)]);
        let (at, attempts) = attempts_at(&policy, Verdict::Retry).await;
        assert_eq!(attempts, 4);
        assert_eq!(at, vec![ms(0), ms(100), ms(300), ms(700)]);
    }

    #[tokio::test(start_paused = true)]
    async fn success_returns_at_once_with_the_attempt_number() {
        let policy = RetryPolicy::new(vec![ms(10); 5]);
        let got: Result<u32, Exhausted<&str>> = retry(&policy, |n| async move { if n < 3 { Err("transient") } else { Ok(n) } }, |_| Verdict::Retry).await;
        assert_eq!(got, Ok(3));
    }

    #[tokio::test(start_paused = true)]
    async fn stop_stops_at_once() {
        let policy = RetryPolicy::new(vec![ms(100); 5]);
        let (at, attempts) = attempts_at(&policy, Verdict::Stop).await;
        assert_eq!(attempts, 1);
        assert_eq!(at, vec![ms(0)]);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_waits_at_least_the_hint_and_at_least_the_schedule_but_is_clamped() {
        let policy = RetryPolicy::new(vec![ms(100), ms(5_000)]);
        let (at, _) = attempts_at(&policy, Verdict::RetryAfter(ms(1_000))).await;
        // First wait: the hint (1 s) beats the schedule (100 ms); second: the schedule (5 s) wins.
        assert_eq!(at, vec![ms(0), ms(1_000), ms(6_000)]);

        let policy = RetryPolicy::new(vec![ms(100)]);
        let (at, _) = attempts_at(&policy, Verdict::RetryAfter(Duration::from_secs(3_600))).await;
        assert_eq!(at, vec![ms(0), RetryPolicy::MAX_SERVER_DELAY]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_budget_stops_before_a_wait_that_would_overrun_it() {
        let policy = RetryPolicy::new(vec![ms(1_000); 10]).with_budget(ms(2_500));
        let (at, attempts) = attempts_at(&policy, Verdict::Retry).await;
        assert_eq!(attempts, 3);
        assert_eq!(at, vec![ms(0), ms(1_000), ms(2_000)]);
    }

    #[tokio::test(start_paused = true)]
    async fn jitter_scales_each_wait_within_its_bounds() {
        let policy = RetryPolicy::new(vec![ms(1_000); 50]).with_jitter(0.5);
        let (at, attempts) = attempts_at(&policy, Verdict::Retry).await;
        assert_eq!(attempts, 51);
        let waits: Vec<Duration> = at.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(waits.iter().all(|w| *w >= ms(500) && *w <= ms(1_000)), "{waits:?}");
        // 50 draws from [0.5, 1.0] are not all the same value.
        assert!(waits.iter().any(|w| *w != waits[0]), "{waits:?}");
    }

    #[test]
    fn exponential_policies_double_up_to_the_cap() {
        let p = RetryPolicy::exponential(5, ms(500), ms(2_000));
        assert_eq!(p.delays, vec![ms(500), ms(1_000), ms(2_000), ms(2_000)]);
        assert_eq!(p.max_attempts(), 5);
        assert_eq!(RetryPolicy::none().max_attempts(), 1);
    }

    #[test]
    fn exhausted_displays_the_last_error() {
        let e = Exhausted { last: "boom", attempts: 3 };
        assert_eq!(e.to_string(), "boom");
    }
}
