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

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

pub use super::pace::{Lesson, Pace};
use crate::ports::{MetaPut, MetaStore, StoreError};

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
    /// Learn a smaller budget from the portal's refusals ([`super::pace`]); `false` only fills the
    /// bucket on a refusal and keeps the plan (`B24_RATE_ADAPTIVE=false`).
    pub adaptive: bool,
}

impl RatePlan {
    /// A plan with the default reserve, a third of the burst.
    pub fn new(per_sec: f64, burst: u32) -> Self {
        Self { per_sec, burst, optional_reserve: burst / 3, adaptive: true }
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

/// Where the [`Pace`] lives.
enum Store {
    /// In this process: one bucket for every clone of the client. Time is `tokio::time`, so tests run
    /// under a paused clock.
    Local { pace: Mutex<Pace>, origin: Instant },
    /// In a [`MetaStore`] item every process reads and writes with compare-and-set: the budget of a
    /// portal shared by every concurrent worker (on AWS, every Lambda instance). Time is Unix time.
    /// When the store fails, the process falls back to `fallback`, its own bucket, so a store
    /// outage slows nothing down that the portal would not.
    Shared { meta: Arc<dyn MetaStore>, name: String, fallback: Mutex<Pace>, warned: AtomicBool },
}

/// Compare-and-set attempts on the shared item before a take counts as contended and waits a
/// little (several workers writing the same item at once).
const SHARED_CAS_ATTEMPTS: u32 = 8;

/// The leaky bucket. Share one per portal (the client's clones share it through an `Arc`).
pub struct RateLimiter {
    plan: RatePlan,
    store: Store,
    /// Essential requests queue here one at a time; tokio's mutex is fair (FIFO), so the first to ask
    /// is the first to go.
    turnstile: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let store = match &self.store {
            Store::Local { .. } => "local".to_owned(),
            Store::Shared { name, .. } => format!("shared:{name}"),
        };
        f.debug_struct("RateLimiter").field("plan", &self.plan).field("store", &store).finish_non_exhaustive()
    }
}

impl RateLimiter {
    /// A limiter for `plan`, in this process. Nonsense values are made safe rather than refused: a
    /// rate that is not a positive number becomes 1/s, a zero burst becomes 1, and the reserve is
    /// kept below the burst.
    pub fn new(plan: RatePlan) -> Self {
        let plan = sane(plan);
        let pace = Pace::new(&plan, 0.0);
        Self { plan, store: Store::Local { pace: Mutex::new(pace), origin: Instant::now() }, turnstile: tokio::sync::Mutex::new(()) }
    }

    /// A limiter whose bucket is the item `name` of `meta`, shared by every process that uses the
    /// same store and name (one name per portal). Each take costs a read and a conditional write.
    pub fn shared(plan: RatePlan, meta: Arc<dyn MetaStore>, name: impl Into<String>) -> Self {
        let plan = sane(plan);
        let fallback = Mutex::new(Pace::new(&plan, unix_now()));
        let store = Store::Shared { meta, name: name.into(), fallback, warned: AtomicBool::new(false) };
        Self { plan, store, turnstile: tokio::sync::Mutex::new(()) }
    }

    /// The name of a portal's shared budget in a [`MetaStore`]: `rate/<portal domain>`.
    pub fn budget_name(domain: &crate::domain::ids::PortalDomain) -> String {
        format!("rate/{}", domain.as_str())
    }

    /// The plan in force (after the corrections of [`RateLimiter::new`]); what was learned from the
    /// portal is [`RateLimiter::pace`].
    pub fn plan(&self) -> &RatePlan {
        &self.plan
    }

    /// Takes one slot: essential requests wait for it (in arrival order), optional ones get it only
    /// with headroom and are [`Permit::Skipped`] otherwise, background ones wait for headroom.
    /// Dropping the future while it waits takes nothing.
    pub async fn acquire(&self, priority: Priority) -> Permit {
        match priority {
            Priority::Background => loop {
                match self.try_take(priority).await {
                    Ok(()) => return Permit::Granted,
                    Err(wait) => tokio::time::sleep(wait).await,
                }
            },
            Priority::Optional => {
                if self.try_take(priority).await.is_ok() {
                    Permit::Granted
                } else {
                    Permit::Skipped
                }
            }
            Priority::Essential => {
                let _turn = self.turnstile.lock().await;
                loop {
                    match self.try_take(priority).await {
                        Ok(()) => return Permit::Granted,
                        Err(wait) => tokio::time::sleep(wait).await,
                    }
                }
            }
        }
    }

    /// Now, on the clock of the bucket: pass it to [`RateLimiter::refused`] for a request sent now.
    pub fn now(&self) -> f64 {
        match &self.store {
            Store::Local { origin, .. } => origin.elapsed().as_secs_f64(),
            Store::Shared { .. } => unix_now(),
        }
    }

    /// The portal said `QUERY_LIMIT_EXCEEDED` to a request sent at `sent_at` ([`RateLimiter::now`]
    /// when its slot was taken): its counter is fuller than ours. The bucket is marked full, and the
    /// limiter learns a smaller burst (and rate) as [`Pace::refused`] explains.
    pub async fn refused(&self, sent_at: f64) -> Lesson {
        let plan = &self.plan;
        let lesson = self
            .update(|pace, now| {
                pace.advance(plan, now);
                (pace.refused(plan, sent_at, now), true)
            })
            .await
            .unwrap_or(Lesson::Echo);
        if let Lesson::Learned { rate } = lesson {
            let pace = self.pace().await;
            tracing::info!(
                burst = pace.burst,
                per_sec = pace.per_sec,
                rate_lowered = rate,
                "the portal refused a request (QUERY_LIMIT_EXCEEDED): pacing at the learned budget"
            );
        }
        lesson
    }

    /// The portal said `QUERY_LIMIT_EXCEEDED` to a request sent just now: see
    /// [`RateLimiter::refused`].
    pub async fn penalize(&self) {
        self.refused(self.now()).await;
    }

    /// Gives back a slot taken by [`RateLimiter::acquire`] for a request that was not sent after
    /// all (a coalesced call another request carried).
    pub async fn refund(&self) {
        self.update(|pace, now| {
            pace.advance(&self.plan, now);
            pace.level = (pace.level - 1.0).max(0.0);
            ((), true)
        })
        .await;
    }

    /// The state of the bucket now (drained, recovery applied): the counter and the figures in
    /// force, for metrics, `doctor` and tests.
    pub async fn pace(&self) -> Pace {
        let plan = &self.plan;
        let now = self.now();
        match &self.store {
            Store::Local { pace, .. } => {
                let mut p = lock(pace);
                p.advance(plan, now);
                p.clone()
            }
            Store::Shared { meta, name, fallback, .. } => match meta.get_value(name).await {
                Ok(Some(v)) => {
                    let mut p = serde_json::from_str::<Pace>(&v.value).unwrap_or_else(|_| Pace::new(plan, now));
                    p.advance(plan, now);
                    p
                }
                Ok(None) => Pace::new(plan, now),
                Err(_) => {
                    let mut p = lock(fallback);
                    p.advance(plan, now);
                    p.clone()
                }
            },
        }
    }

    /// The current counter (drained to now).
    pub async fn level(&self) -> f64 {
        self.pace().await.level
    }

    /// Takes a slot when the counter has room for a request of `priority`; otherwise how long until
    /// it would.
    async fn try_take(&self, priority: Priority) -> Result<(), Duration> {
        let plan = &self.plan;
        let taken = self
            .update(|pace, now| {
                pace.advance(plan, now);
                let limit = pace.limit(plan, priority);
                let taken = pace.try_take(limit);
                let write = taken.is_ok();
                (taken, write)
            })
            .await;
        match taken {
            Some(Ok(())) => Ok(()),
            // Round up to the next millisecond: tokio's timer has millisecond resolution.
            Some(Err(secs)) => Err(Duration::from_secs_f64(secs.max(0.0)).max(Duration::from_millis(1))),
            // The shared item stayed contended: wait a little and try again.
            None => Err(Duration::from_millis(20)),
        }
    }

    /// Applies `f` to the pace and stores the result when `f` says it changed something worth
    /// writing (a take that found no room writes nothing: every reader recomputes the drain).
    /// `None` when a shared item stayed contended.
    async fn update<T>(&self, f: impl Fn(&mut Pace, f64) -> (T, bool)) -> Option<T> {
        let now = self.now();
        match &self.store {
            Store::Local { pace, .. } => Some(f(&mut lock(pace), now).0),
            Store::Shared { meta, name, fallback, warned } => {
                for _ in 0..SHARED_CAS_ATTEMPTS {
                    let now = self.now();
                    let current = match meta.get_value(name).await {
                        Ok(c) => c,
                        Err(e) => return fall_back(fallback, warned, &e, |p| f(p, now)),
                    };
                    let mut pace = current.as_ref().and_then(|v| serde_json::from_str::<Pace>(&v.value).ok()).unwrap_or_else(|| Pace::new(&self.plan, now));
                    let (out, write) = f(&mut pace, now);
                    if !write {
                        return Some(out);
                    }
                    let value = serde_json::to_string(&pace).unwrap_or_default();
                    match meta.put_value(name, &value, current.map(|v| v.version)).await {
                        Ok(MetaPut::Written(_)) => {
                            warned.store(false, Ordering::Relaxed);
                            return Some(out);
                        }
                        Ok(MetaPut::Conflict(_)) => continue,
                        Err(e) => return fall_back(fallback, warned, &e, |p| f(p, now)),
                    }
                }
                None
            }
        }
    }
}

fn fall_back<T>(fallback: &Mutex<Pace>, warned: &AtomicBool, e: &StoreError, f: impl FnOnce(&mut Pace) -> (T, bool)) -> Option<T> {
    if !warned.swap(true, Ordering::Relaxed) {
        tracing::warn!(error = %e, "the shared rate budget is unreachable: pacing this process on its own until it is back");
    }
    Some(f(&mut lock(fallback)).0)
}

fn sane(plan: RatePlan) -> RatePlan {
    let per_sec = if plan.per_sec.is_finite() && plan.per_sec > 0.0 { plan.per_sec } else { 1.0 };
    let burst = plan.burst.max(1);
    let optional_reserve = plan.optional_reserve.min(burst - 1);
    RatePlan { per_sec, burst, optional_reserve, ..plan }
}

fn unix_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

fn lock(pace: &Mutex<Pace>) -> std::sync::MutexGuard<'_, Pace> {
    // The pace is a few numbers updated together; a panic elsewhere cannot leave them
    // inconsistent, so a poisoned lock is still usable.
    pace.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::memory::MemoryStore;

    const EPSILON: f64 = 1e-6;

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
        assert!(limiter.level().await < EPSILON);
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
        let limiter = RateLimiter::new(RatePlan { per_sec: 1.0, burst: 9, optional_reserve: 3, adaptive: true });
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
        let limiter = RateLimiter::new(RatePlan { per_sec: 1.0, burst: 6, optional_reserve: 3, adaptive: true });
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
        let limiter = RateLimiter::new(RatePlan { per_sec: 1.0, burst: 3, optional_reserve: 3, adaptive: true });
        assert_eq!(limiter.plan().optional_reserve, 2, "the reserve stays below the burst");
        assert_eq!(limiter.acquire(Priority::Optional).await, Permit::Granted);
        let before = limiter.level().await;
        assert_eq!(limiter.acquire(Priority::Optional).await, Permit::Skipped);
        assert!((limiter.level().await - before).abs() < EPSILON);
    }

    #[tokio::test(start_paused = true)]
    async fn a_portal_refusal_fills_the_bucket() {
        let limiter = RateLimiter::new(RatePlan::new(4.0, 10));
        limiter.penalize().await;
        let start = Instant::now();
        limiter.acquire(Priority::Essential).await;
        assert_eq!(start.elapsed(), ms(250));
    }

    #[test]
    fn the_default_plan_leaves_headroom_under_the_portal_limit() {
        let p = RatePlan::default();
        assert!(p.burst < 50 && p.per_sec <= 2.0);
        assert_eq!(p.optional_reserve, 13);
        let fixed = RateLimiter::new(RatePlan { per_sec: f64::NAN, burst: 0, optional_reserve: 5, adaptive: true });
        assert_eq!(fixed.plan(), &RatePlan { per_sec: 1.0, burst: 1, optional_reserve: 0, adaptive: true });
    }

    #[tokio::test(start_paused = true)]
    async fn a_plan_larger_than_the_portal_is_learned_from_the_first_refusal() {
        let limiter = RateLimiter::new(RatePlan::new(2.0, 40));
        for _ in 0..11 {
            limiter.acquire(Priority::Essential).await;
        }
        let sent = limiter.now();
        assert_eq!(limiter.refused(sent).await, Lesson::Learned { rate: false });
        let pace = limiter.pace().await;
        assert_eq!(pace.burst, 9.0, "90 % of the 10 held before the refused request");
        // The bucket is full: the next request waits for one slot to drain at 2/s... from 11 to 8.
        let start = Instant::now();
        limiter.acquire(Priority::Essential).await;
        assert_eq!(start.elapsed(), ms(1_500));
        // A request that was already in flight when the lesson was learned is an echo.
        assert_eq!(limiter.refused(sent).await, Lesson::Echo);
        assert_eq!(limiter.pace().await.burst, 9.0);
    }

    #[tokio::test]
    async fn limiters_sharing_a_store_draw_from_one_bucket() {
        let meta: Arc<dyn MetaStore> = Arc::new(MemoryStore::new());
        let plan = RatePlan { per_sec: 0.01, burst: 6, optional_reserve: 2, adaptive: true };
        let a = RateLimiter::shared(plan.clone(), Arc::clone(&meta), "rate:portal.example");
        let b = RateLimiter::shared(plan.clone(), Arc::clone(&meta), "rate:portal.example");
        let other = RateLimiter::shared(plan, Arc::clone(&meta), "rate:other.example");
        // Four optional slots in all (6 less the reserve of 2), whoever takes them.
        for l in [&a, &b, &a, &b] {
            assert_eq!(l.acquire(Priority::Optional).await, Permit::Granted);
        }
        assert_eq!(a.acquire(Priority::Optional).await, Permit::Skipped);
        assert_eq!(b.acquire(Priority::Optional).await, Permit::Skipped);
        assert_eq!(other.acquire(Priority::Optional).await, Permit::Granted, "another portal has its own bucket");
        // What one learns, the other paces by.
        assert_eq!(a.acquire(Priority::Essential).await, Permit::Granted);
        a.refused(a.now()).await;
        assert_eq!(b.pace().await.burst, 3.0, "90 % of the 4 held before the refused request (the 5th)");
        assert!(b.level().await >= 4.9, "the bucket is full for both");
    }

    #[tokio::test]
    async fn a_failing_shared_store_falls_back_to_a_bucket_of_its_own() {
        struct Down;
        #[async_trait::async_trait]
        impl MetaStore for Down {
            async fn get_value(&self, _: &str) -> crate::ports::StoreResult<Option<crate::ports::Versioned>> {
                Err(StoreError::Backend("the table is unreachable".into()))
            }
            async fn put_value(&self, _: &str, _: &str, _: Option<u64>) -> crate::ports::StoreResult<MetaPut> {
                Err(StoreError::Backend("the table is unreachable".into()))
            }
        }
        let meta: Arc<dyn MetaStore> = Arc::new(Down);
        let limiter = RateLimiter::shared(RatePlan { per_sec: 0.01, burst: 3, optional_reserve: 0, adaptive: true }, meta, "rate:x");
        for _ in 0..3 {
            assert_eq!(limiter.acquire(Priority::Optional).await, Permit::Granted);
        }
        assert_eq!(limiter.acquire(Priority::Optional).await, Permit::Skipped, "still paced, by the fallback bucket");
    }
}
