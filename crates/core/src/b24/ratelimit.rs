//! A client-side leaky bucket that mirrors the portal's own (contract §2.1), so the bridge stays
//! under the portal's limit instead of living on `QUERY_LIMIT_EXCEEDED`.
//!
//! Bitrix24 adds 1 to a per-portal counter for every request (a `batch` counts once), drains it at
//! `Y` per second, and refuses requests once it passed `X`. We keep the same counter on our side with
//! a smaller `burst` than the portal's `X` (other tools on the same portal share its counter), and a
//! request is sent only when `counter + 1 <= burst`.
//!
//! Three priorities: [`Priority::Essential`] requests (replies, transfers) wait their turn, first
//! come first served; [`Priority::Optional`] ones (typing indicators, read marks, analytics) are
//! granted only while the bucket has `optional_reserve` slots of headroom and are skipped at once
//! otherwise; [`Priority::Background`] ones (the pollers' reads) need the same headroom but wait
//! for it instead of being skipped. So when the budget is short the slots go to replies, and
//! polling slows down before replies do: a poll never queues in front of a reply.
//!
//! Time is `tokio::time`, so tests run under a paused clock.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// The client's share of the portal's rate budget.
#[derive(Debug, Clone, PartialEq)]
pub struct RatePlan {
    /// Requests per second the bucket drains (the sustainable rate). Bitrix24: 2 (5 on Enterprise).
    pub per_sec: f64,
    /// Requests that may go in a burst. Keep it under the portal's 50 (250 on Enterprise).
    pub burst: u32,
    /// Slots kept free for essential requests: an optional one goes only while
    /// `counter + 1 <= burst - optional_reserve`.
    pub optional_reserve: u32,
}

impl RatePlan {
    /// A plan with the default reserve, a third of the burst.
    pub fn new(per_sec: f64, burst: u32) -> Self {
        Self { per_sec, burst, optional_reserve: burst / 3 }
    }
}

impl Default for RatePlan {
    /// 2 requests/s, burst 40: the portal's sustainable rate, with 10 of its 50 slots left for other
    /// tools on the same portal.
    fn default() -> Self {
        Self::new(2.0, 40)
    }
}

/// How much a request matters when the budget is short.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Priority {
    /// Must happen: waits for a slot.
    Essential,
    /// Nice to have: taken only when there is headroom, skipped otherwise.
    Optional,
    /// Must happen, but after everything essential: waits until there is headroom (the optional
    /// reserve is free), without holding essential requests' turn.
    Background,
}

/// The answer to [`RateLimiter::acquire`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permit {
    /// Send the request now.
    Granted,
    /// An optional request was dropped to leave the budget to essential ones.
    Skipped,
}

#[derive(Debug)]
struct Bucket {
    level: f64,
    at: Instant,
}

/// The leaky bucket. Share one per portal (the client's clones share it through an `Arc`).
#[derive(Debug)]
pub struct RateLimiter {
    per_sec: f64,
    burst: f64,
    optional_limit: f64,
    plan: RatePlan,
    bucket: Mutex<Bucket>,
    /// Essential requests queue here one at a time; tokio's mutex is fair (FIFO), so the first to ask
    /// is the first to go.
    turnstile: tokio::sync::Mutex<()>,
}

/// Float slack so that a wait computed to the nanosecond grants on wake-up.
const EPSILON: f64 = 1e-6;

impl RateLimiter {
    /// A limiter for `plan`. Nonsense values are made safe rather than refused: a rate that is not a
    /// positive number becomes 1/s, a zero burst becomes 1, and the reserve is kept below the burst.
    pub fn new(plan: RatePlan) -> Self {
        let per_sec = if plan.per_sec.is_finite() && plan.per_sec > 0.0 { plan.per_sec } else { 1.0 };
        let burst = plan.burst.max(1);
        let reserve = plan.optional_reserve.min(burst - 1);
        Self {
            per_sec,
            burst: f64::from(burst),
            optional_limit: f64::from(burst - reserve),
            plan: RatePlan { per_sec, burst, optional_reserve: reserve },
            bucket: Mutex::new(Bucket { level: 0.0, at: Instant::now() }),
            turnstile: tokio::sync::Mutex::new(()),
        }
    }

    /// The plan in force (after the corrections of [`RateLimiter::new`]).
    pub fn plan(&self) -> &RatePlan {
        &self.plan
    }

    /// Takes one slot: essential requests wait for it (in arrival order), optional ones get it only
    /// with headroom and are [`Permit::Skipped`] otherwise, background ones wait for headroom.
    /// Dropping the future while it waits takes nothing.
    pub async fn acquire(&self, priority: Priority) -> Permit {
        match priority {
            Priority::Background => loop {
                match self.try_take(self.optional_limit) {
                    Ok(()) => return Permit::Granted,
                    Err(wait) => tokio::time::sleep(wait).await,
                }
            },
            Priority::Optional => {
                if self.try_take(self.optional_limit).is_ok() {
                    Permit::Granted
                } else {
                    Permit::Skipped
                }
            }
            Priority::Essential => {
                let _turn = self.turnstile.lock().await;
                loop {
                    match self.try_take(self.burst) {
                        Ok(()) => return Permit::Granted,
                        Err(wait) => tokio::time::sleep(wait).await,
                    }
                }
            }
        }
    }

    /// The portal said `QUERY_LIMIT_EXCEEDED`: its counter is fuller than ours (another tool on the
    /// same portal, or a plan smaller than configured), so treat our bucket as full and let it drain
    /// before the next request.
    pub fn penalize(&self) {
        let mut b = self.lock();
        self.drain(&mut b);
        b.level = b.level.max(self.burst);
    }

    /// The current counter (drained to now), for metrics and tests.
    pub fn level(&self) -> f64 {
        let mut b = self.lock();
        self.drain(&mut b);
        b.level
    }

    /// Takes a slot when `counter + 1 <= limit`; otherwise returns how long until it would fit.
    fn try_take(&self, limit: f64) -> Result<(), Duration> {
        let mut b = self.lock();
        self.drain(&mut b);
        let over = b.level + 1.0 - limit;
        if over <= EPSILON {
            b.level += 1.0;
            Ok(())
        } else {
            // Round up to the next millisecond: tokio's timer has millisecond resolution.
            Err(Duration::from_secs_f64(over / self.per_sec).max(Duration::from_millis(1)))
        }
    }

    fn drain(&self, b: &mut Bucket) {
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.level = (b.level - elapsed * self.per_sec).max(0.0);
        b.at = now;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Bucket> {
        // The bucket is two numbers updated together; a panic elsewhere cannot leave them
        // inconsistent, so a poisoned lock is still usable.
        self.bucket.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_goes_at_once_then_the_drain_rate_holds() {
        let limiter = RateLimiter::new(RatePlan::new(2.0, 5));
        let start = Instant::now();
        for _ in 0..5 {
            assert_eq!(limiter.acquire(Priority::Essential).await, Permit::Granted);
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
        let mut at = Vec::new();
        for _ in 0..4 {
            limiter.acquire(Priority::Essential).await;
            at.push(start.elapsed());
        }
        assert_eq!(at, vec![ms(500), ms(1_000), ms(1_500), ms(2_000)]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_bucket_drains_back_to_a_full_burst() {
        let limiter = RateLimiter::new(RatePlan::new(10.0, 3));
        for _ in 0..3 {
            limiter.acquire(Priority::Essential).await;
        }
        tokio::time::sleep(ms(1_000)).await;
        assert!(limiter.level() < EPSILON);
        let start = Instant::now();
        for _ in 0..3 {
            limiter.acquire(Priority::Essential).await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn essential_requests_are_served_in_arrival_order() {
        let limiter = Arc::new(RateLimiter::new(RatePlan::new(5.0, 1)));
        limiter.acquire(Priority::Essential).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..10 {
            let (limiter, order) = (Arc::clone(&limiter), Arc::clone(&order));
            tasks.push(tokio::spawn(async move {
                limiter.acquire(Priority::Essential).await;
                order.lock().map(|mut o| o.push(i)).ok();
            }));
            // Let task `i` reach the turnstile before task `i + 1` is spawned.
            tokio::task::yield_now().await;
        }
        for t in tasks {
            t.await.expect("task");
        }
        assert_eq!(*order.lock().expect("order"), (0..10).collect::<Vec<_>>());
    }

    #[tokio::test(start_paused = true)]
    async fn optional_requests_give_way_when_headroom_is_short() {
        let limiter = RateLimiter::new(RatePlan { per_sec: 1.0, burst: 9, optional_reserve: 3 });
        // Optional requests fill the bucket up to burst - reserve = 6, then are skipped.
        for _ in 0..6 {
            assert_eq!(limiter.acquire(Priority::Optional).await, Permit::Granted);
        }
        assert_eq!(limiter.acquire(Priority::Optional).await, Permit::Skipped);
        // The reserve is still there for essential requests, without waiting.
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.acquire(Priority::Essential).await, Permit::Granted);
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
        assert_eq!(limiter.acquire(Priority::Optional).await, Permit::Skipped);
        // Once the bucket drained below the optional limit, optional work resumes.
        tokio::time::sleep(ms(4_000)).await;
        assert_eq!(limiter.acquire(Priority::Optional).await, Permit::Granted);
        assert_eq!(limiter.acquire(Priority::Optional).await, Permit::Skipped);
    }

    #[tokio::test(start_paused = true)]
    async fn background_requests_wait_for_headroom_and_leave_the_reserve_to_essential_ones() {
        let limiter = RateLimiter::new(RatePlan { per_sec: 1.0, burst: 6, optional_reserve: 3 });
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.acquire(Priority::Background).await, Permit::Granted);
        }
        assert_eq!(start.elapsed(), Duration::ZERO, "headroom: no wait");
        // The reserve is left: essential requests still go at once.
        for _ in 0..3 {
            limiter.acquire(Priority::Essential).await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
        // A background request now waits until the bucket drained below the reserve (6 -> 2).
        assert_eq!(limiter.acquire(Priority::Background).await, Permit::Granted);
        assert_eq!(start.elapsed(), ms(4_000));
    }

    #[tokio::test(start_paused = true)]
    async fn a_skipped_optional_request_costs_nothing() {
        let limiter = RateLimiter::new(RatePlan { per_sec: 1.0, burst: 3, optional_reserve: 3 });
        assert_eq!(limiter.plan().optional_reserve, 2, "the reserve stays below the burst");
        assert_eq!(limiter.acquire(Priority::Optional).await, Permit::Granted);
        let before = limiter.level();
        assert_eq!(limiter.acquire(Priority::Optional).await, Permit::Skipped);
        assert!((limiter.level() - before).abs() < EPSILON);
    }

    #[tokio::test(start_paused = true)]
    async fn a_portal_refusal_fills_the_bucket() {
        let limiter = RateLimiter::new(RatePlan::new(4.0, 10));
        limiter.penalize();
        let start = Instant::now();
        limiter.acquire(Priority::Essential).await;
        assert_eq!(start.elapsed(), ms(250));
    }

    #[test]
    fn the_default_plan_leaves_headroom_under_the_portal_limit() {
        let p = RatePlan::default();
        assert!(p.burst < 50 && p.per_sec <= 2.0);
        assert_eq!(p.optional_reserve, 13);
        let fixed = RateLimiter::new(RatePlan { per_sec: f64::NAN, burst: 0, optional_reserve: 5 });
        assert_eq!(fixed.plan(), &RatePlan { per_sec: 1.0, burst: 1, optional_reserve: 0 });
    }
}
