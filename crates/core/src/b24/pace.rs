//! The portal's request budget as a value: our counter, mirroring the portal's leaky bucket
//! (contract §2.1), and the bucket we have *learned* the portal really gives us.
//!
//! [`super::RateLimiter`] keeps one [`Pace`] per portal, in process or in a shared store (every
//! concurrent Lambda then draws from one budget). Everything here is a pure function of the state
//! and the time, so the learning is tested without a clock and behaves the same in both places.
//!
//! ## Learning from refusals (AIMD)
//!
//! The configured plan ([`RatePlan`]) is an upper bound. When the portal still answers
//! `QUERY_LIMIT_EXCEEDED`, its counter is fuller than ours: the plan is larger than the portal's
//! bucket, or other tools on the portal share it. [`Pace::refused`] then
//!
//! - lowers the burst in force to 90 % of what we had in the bucket when the refused request went
//!   (the portal showed it holds no more than that for us);
//! - lowers the drain rate by a quarter when the portal refuses again soon after a lesson (within
//!   twice the time the bucket takes to drain: the burst was right, so the rate is wrong), down to
//!   an eighth of the plan's;
//! - and marks the bucket full, so the next request waits for a slot to drain.
//!
//! At most one lesson is learned per drain of the bucket (3 to 30 s): refusals of requests sent
//! before the last lesson, or within its window, are echoes of the same overload (requests in
//! flight, retries, a storm of refusals on the portal's side): they fill the bucket but teach
//! nothing, so a burst of refusals cannot collapse the budget.
//!
//! Recovery is additive: after [`RECOVERY_STEP_SECS`] without a lesson, the burst grows back by a
//! tenth of the plan's and the rate by a quarter, up to the plan. A portal whose bucket really is
//! smaller than the plan therefore costs one refusal per probe (at most one every five minutes), not a
//! steady stream.

use serde::{Deserialize, Serialize};

use super::ratelimit::{Priority, RatePlan};

/// Seconds without a new lesson before the learned figures take one step back towards the plan.
pub const RECOVERY_STEP_SECS: f64 = 300.0;

/// Bounds of the span after a lesson in which refusals teach nothing new, in seconds.
const MIN_LESSON_WINDOW_SECS: f64 = 3.0;
const MAX_LESSON_WINDOW_SECS: f64 = 30.0;

/// The lowest rate the learning goes down to, requests per second.
const MIN_PER_SEC: f64 = 0.05;

/// Float slack so that a wait computed to the nanosecond grants on wake-up.
const EPSILON: f64 = 1e-6;

/// A portal's budget as the bridge knows it. Times are seconds on the owner's clock (monotonic in
/// process, Unix time in a shared store).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pace {
    /// Our counter, drained to `at`.
    pub level: f64,
    /// When `level` was last drained.
    pub at: f64,
    /// The burst in force: the plan's, or less after the portal refused us.
    pub burst: f64,
    /// The drain rate in force, requests per second.
    pub per_sec: f64,
    /// When the portal last refused a request.
    #[serde(default)]
    pub refused_at: Option<f64>,
    /// When the figures in force last moved (down on a lesson, up on a recovery step).
    pub moved_at: f64,
    /// Refusals seen in all (echoes included).
    #[serde(default)]
    pub refusals: u64,
}

/// What [`Pace::refused`] concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lesson {
    /// The burst in force went down (and the rate with it when `rate` is true).
    Learned {
        /// The drain rate went down too.
        rate: bool,
    },
    /// A request sent before the last lesson: the bucket is marked full, the figures stay.
    Echo,
}

impl Pace {
    /// An empty bucket with the plan's figures.
    pub fn new(plan: &RatePlan, now: f64) -> Self {
        Self { level: 0.0, at: now, burst: f64::from(plan.burst), per_sec: plan.per_sec, refused_at: None, moved_at: now, refusals: 0 }
    }

    /// Brings the state to `now`: drains the counter, takes a recovery step when one is due, and
    /// keeps the figures within `plan` (a plan lowered since the state was stored wins at once).
    pub fn advance(&mut self, plan: &RatePlan, now: f64) {
        let elapsed = (now - self.at).max(0.0);
        self.level = (self.level - elapsed * self.per_sec).max(0.0);
        self.at = self.at.max(now);
        let plan_burst = f64::from(plan.burst);
        let below = self.burst < plan_burst || self.per_sec < plan.per_sec;
        if below && now - self.moved_at >= RECOVERY_STEP_SECS {
            self.burst = (self.burst + (plan_burst / 10.0).max(1.0)).min(plan_burst).floor().max(1.0);
            self.per_sec = (self.per_sec * 1.25).min(plan.per_sec);
            self.moved_at = now;
        }
        self.burst = self.burst.clamp(1.0, plan_burst.max(1.0));
        self.per_sec = self.per_sec.clamp(min_per_sec(plan), plan.per_sec);
    }

    /// The counter a request of `priority` may lift the bucket to: the burst for essential ones,
    /// the burst less the optional reserve (scaled to the burst in force) for the others.
    pub fn limit(&self, plan: &RatePlan, priority: Priority) -> f64 {
        match priority {
            Priority::Essential => self.burst,
            Priority::Optional | Priority::Background => {
                let share = f64::from(plan.optional_reserve) / f64::from(plan.burst.max(1));
                let reserve = (self.burst * share).floor().min(self.burst - 1.0).max(0.0);
                self.burst - reserve
            }
        }
    }

    /// Takes a slot when `level + 1 <= limit`; otherwise how many seconds until it would fit.
    /// Call [`Pace::advance`] first.
    pub fn try_take(&mut self, limit: f64) -> Result<(), f64> {
        let over = self.level + 1.0 - limit;
        if over <= EPSILON {
            self.level += 1.0;
            Ok(())
        } else {
            Err(over / self.per_sec)
        }
    }

    /// The portal refused a request that took its slot at `sent_at`. Call [`Pace::advance`] first.
    /// With `plan.adaptive` off, the bucket is only marked full (every refusal is an echo).
    pub fn refused(&mut self, plan: &RatePlan, sent_at: f64, now: f64) -> Lesson {
        self.refusals += 1;
        let last = self.refused_at.is_some().then_some(self.moved_at);
        // At most one lesson per drain of the bucket: refusals of requests sent before the last
        // lesson, or within its window, are the same overload seen again (requests in flight, a
        // retry after the wait, a storm on the portal's side), not news about its size.
        let window = self.lesson_window();
        let echo = !plan.adaptive || last.is_some_and(|t| sent_at <= t || now - t < window);
        let lesson = if echo {
            Lesson::Echo
        } else {
            // What we had in the bucket before the refused request went: the portal holds no more
            // than that for us.
            let held = (self.level - 1.0).max(0.0);
            // Refused again soon after a lesson: the burst was not the problem, the rate is.
            let rate = last.is_some_and(|t| now - t < 2.0 * window);
            self.burst = (held.min(self.burst) * 0.9).floor().max(1.0);
            if rate {
                self.per_sec = (self.per_sec * 0.75).max(min_per_sec(plan));
            }
            self.moved_at = now;
            Lesson::Learned { rate }
        };
        self.refused_at = Some(now);
        self.level = self.level.max(self.burst);
        lesson
    }

    /// How long after a lesson refusals teach nothing new: the time the bucket in force takes to
    /// drain, between [`MIN_LESSON_WINDOW_SECS`] and [`MAX_LESSON_WINDOW_SECS`].
    fn lesson_window(&self) -> f64 {
        (self.burst / self.per_sec).clamp(MIN_LESSON_WINDOW_SECS, MAX_LESSON_WINDOW_SECS)
    }
}

/// The lowest rate the learning goes down to: an eighth of the plan's (and never under 0.05/s).
fn min_per_sec(plan: &RatePlan) -> f64 {
    (plan.per_sec / 8.0).max(MIN_PER_SEC).min(plan.per_sec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(per_sec: f64, burst: u32) -> RatePlan {
        RatePlan::new(per_sec, burst)
    }

    /// The portal's own bucket (contract §2.1), as the emulator models it.
    struct Portal {
        per_sec: f64,
        burst: f64,
        level: f64,
        at: f64,
    }

    impl Portal {
        fn new(per_sec: f64, burst: f64) -> Self {
            Self { per_sec, burst, level: 0.0, at: 0.0 }
        }

        fn accepts(&mut self, now: f64) -> bool {
            self.level = (self.level - (now - self.at) * self.per_sec).max(0.0);
            self.at = now;
            let ok = self.level + 1.0 <= self.burst;
            if ok {
                self.level += 1.0;
            }
            ok
        }
    }

    /// Sends `n` requests as fast as the pace allows; returns how many the portal refused. Time
    /// advances by the pace's own waits.
    fn drive(pace: &mut Pace, plan: &RatePlan, portal: &mut Portal, n: usize, now: &mut f64) -> usize {
        let mut refused = 0;
        let mut sent = 0;
        while sent < n {
            pace.advance(plan, *now);
            match pace.try_take(pace.limit(plan, Priority::Essential)) {
                Err(wait) => *now += wait,
                Ok(()) => {
                    if portal.accepts(*now) {
                        sent += 1;
                    } else {
                        refused += 1;
                        pace.refused(plan, *now, *now);
                    }
                }
            }
        }
        refused
    }

    /// `waves` bursts of `per_wave` requests with `quiet` seconds between them; refusals per wave.
    fn waves(plan: &RatePlan, portal: &mut Portal, waves: usize, per_wave: usize, quiet: f64) -> (Vec<usize>, Pace) {
        let mut now = 0.0;
        let mut pace = Pace::new(plan, now);
        let refused = (0..waves)
            .map(|_| {
                let r = drive(&mut pace, plan, portal, per_wave, &mut now);
                now += quiet;
                r
            })
            .collect();
        (refused, pace)
    }

    #[test]
    fn a_plan_bigger_than_the_portal_costs_a_few_refusals_not_a_stream() {
        // The case: the portal gives 2/s with a burst of 10, the bridge is set to 2/s, 40;
        // customers write in waves, with quiet spells in which our bucket drains.
        let plan = plan(2.0, 40);
        let (refused, pace) = waves(&plan, &mut Portal::new(2.0, 10.0), 10, 20, 20.0);
        eprintln!("2/10 portal, 2/40 plan, learning: refusals per wave {refused:?}");
        assert!((1..=3).contains(&refused[0]), "{refused:?}: refusals while learning");
        assert_eq!(refused[1..].iter().sum::<usize>(), 0, "{refused:?}: none once learned");
        assert_eq!(pace.burst, 9.0);
    }

    #[test]
    fn without_learning_every_wave_after_a_quiet_spell_is_refused_again() {
        let plan = RatePlan { adaptive: false, ..plan(2.0, 40) };
        let (refused, pace) = waves(&plan, &mut Portal::new(2.0, 10.0), 10, 20, 20.0);
        eprintln!("2/10 portal, 2/40 plan, without learning: refusals per wave {refused:?}");
        assert!(refused.iter().all(|r| *r >= 1), "{refused:?}");
        assert_eq!(pace.burst, 40.0);
    }

    #[test]
    fn a_slower_portal_teaches_the_rate_too() {
        let plan = plan(2.0, 10);
        let mut now = 0.0;
        let mut pace = Pace::new(&plan, now);
        let refused = drive(&mut pace, &plan, &mut Portal::new(0.5, 10.0), 200, &mut now);
        assert!(pace.per_sec < 2.0, "rate learned: {}", pace.per_sec);
        let fixed = RatePlan { adaptive: false, ..plan.clone() };
        let mut now = 0.0;
        let mut unlearned = Pace::new(&fixed, now);
        let refused_fixed = drive(&mut unlearned, &fixed, &mut Portal::new(0.5, 10.0), 200, &mut now);
        eprintln!("portal at 0.5/s, plan 2/s: {refused} refusals learning (rate {:.3}/s), {refused_fixed} without", pace.per_sec);
        assert!(refused * 3 < refused_fixed, "{refused} refusals learning the rate, {refused_fixed} without");
    }

    #[test]
    fn a_storm_of_refusals_teaches_a_lesson_per_drain_not_one_per_refusal() {
        // 30 refusals, one every half second (the portal overloaded by something else): without a
        // bound on lessons, each would cut the rate by a quarter, to the floor.
        let plan = plan(2.0, 40);
        let mut pace = Pace::new(&plan, 0.0);
        pace.level = 20.0;
        let mut now = 0.0;
        let mut lessons = 0;
        for _ in 0..30 {
            pace.advance(&plan, now);
            if let Lesson::Learned { .. } = pace.refused(&plan, now, now) {
                lessons += 1;
            }
            now += 0.5;
        }
        assert!(lessons <= 3, "{lessons} lessons in 15 s");
        assert!(pace.per_sec >= 1.0, "rate {} after the storm", pace.per_sec);
    }

    #[test]
    fn echoes_of_one_overload_teach_nothing() {
        let plan = plan(2.0, 40);
        let mut pace = Pace::new(&plan, 0.0);
        for _ in 0..20 {
            pace.try_take(40.0).expect("room");
        }
        // Eight requests in flight, all sent at t=1, all refused.
        let lessons: Vec<_> = (0..8).map(|_| pace.refused(&plan, 1.0, 1.2)).collect();
        assert_eq!(lessons[0], Lesson::Learned { rate: false });
        assert!(lessons[1..].iter().all(|l| *l == Lesson::Echo), "{lessons:?}");
        assert_eq!(pace.burst, 17.0, "90 % of the 19 held before the refused request");
        assert_eq!(pace.refusals, 8);
    }

    #[test]
    fn the_learned_figures_recover_step_by_step_up_to_the_plan() {
        let plan = plan(2.0, 40);
        let mut pace = Pace::new(&plan, 0.0);
        pace.level = 10.0;
        pace.refused(&plan, 0.0, 0.0);
        assert_eq!(pace.burst, 8.0);
        pace.advance(&plan, RECOVERY_STEP_SECS - 1.0);
        assert_eq!(pace.burst, 8.0, "no step before its time");
        let mut at = 0.0;
        let mut steps = 0;
        while pace.burst < 40.0 {
            at += RECOVERY_STEP_SECS;
            pace.advance(&plan, at);
            steps += 1;
        }
        assert_eq!(steps, 8, "4 a step, from 8 to 40");
        pace.advance(&plan, at + 10.0 * RECOVERY_STEP_SECS);
        assert_eq!((pace.burst, pace.per_sec), (40.0, 2.0), "never above the plan");
    }

    #[test]
    fn a_lowered_plan_wins_over_a_stored_state_and_reserves_scale_with_the_burst() {
        let mut pace = Pace::new(&plan(5.0, 250), 0.0);
        let small = plan(2.0, 40);
        pace.advance(&small, 1.0);
        assert_eq!((pace.burst, pace.per_sec), (40.0, 2.0));
        assert_eq!(pace.limit(&small, Priority::Essential), 40.0);
        assert_eq!(pace.limit(&small, Priority::Optional), 27.0, "reserve 13 of 40");
        pace.burst = 10.0;
        assert_eq!(pace.limit(&small, Priority::Background), 7.0, "reserve scaled to 3 of 10");
        pace.burst = 1.0;
        assert_eq!(pace.limit(&small, Priority::Optional), 1.0);
    }

    #[test]
    fn the_state_round_trips_as_json() {
        let plan = plan(2.0, 40);
        let mut pace = Pace::new(&plan, 1_700_000_000.5);
        pace.refused(&plan, 1_700_000_000.0, 1_700_000_001.0);
        let json = serde_json::to_string(&pace).expect("json");
        assert_eq!(serde_json::from_str::<Pace>(&json).expect("back"), pace);
    }
}
