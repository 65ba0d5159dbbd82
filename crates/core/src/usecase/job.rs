//! What becomes of a job after a turn: the one place it is decided, for the local worker and the
//! Lambda worker alike.
//!
//! # A crash is not a failure
//! Two things can go wrong with a job, and they are counted apart:
//! - **a failure**: handling it returned an error (the portal or the store failed, a panic in the
//!   turn was caught). Transient failures (the portal down or rate-limited, the store busy) are
//!   retried with a short backoff for as long as [`JobPolicy::patience`] allows, so a portal that
//!   recovers after a 60 s 503 storm is answered within seconds of recovering; other failures are
//!   retried [`JobPolicy::max_failures`] times.
//! - **an interruption**: the process died (or stopped renewing the lease) while holding the job.
//!   That says nothing about the job: a deploy, an OOM elsewhere, a supervisor restarting the
//!   bridge. Panics are caught per turn and input sizes are capped, so a job can only kill the
//!   process by aborting it (stack overflow, out of memory); [`JobPolicy::max_interruptions`] is
//!   there so such a poison job cannot crash-loop the bridge forever, and it is high, so restarts
//!   never give up an innocent message.
//!
//! # Giving up is never silence
//! A turn that is given up ([`Next::GiveUp`]) runs `process::give_up`: the customer gets the
//! fallback message and the chat goes to a human, exactly once (it is checkpointed like any turn).
//! Only then is the job set aside as a dead letter, which an operator can put back
//! ([`redrive`]). If giving up fails too (the portal is still down), the job is retried with a
//! backoff that grows to [`JobPolicy::MAX_GIVE_UP_DELAY`], and resumes the give-up where it stopped.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::process::ProcessError;
use crate::config::Config;
use crate::domain::event::PortalEvent;
use crate::domain::ids::DedupKey;
use crate::domain::turn::HandoffReason;
use crate::ports::{ChatMode, ChatStore, DeadLetters, IdempotencyStore, Settle, StoreError};
use crate::retry::RetryPolicy;

/// How jobs are retried and when they are given up.
#[derive(Debug, Clone, PartialEq)]
pub struct JobPolicy {
    /// Failed attempts before a turn is given up (`OLBRIDGE_QUEUE_MAX_ATTEMPTS`), unless the
    /// failures are transient and the job is younger than `patience`.
    pub max_failures: u32,
    /// Interrupted deliveries before a job is treated as poison (`OLBRIDGE_POISON_RESTARTS`).
    pub max_interruptions: u32,
    /// How long transient failures are retried (`OLBRIDGE_TRANSIENT_PATIENCE_SEC`).
    pub patience: Duration,
    /// The redelivery backoff, through the one retry helper's schedule.
    pub backoff: RetryPolicy,
}

/// What to do with a delivery before handling it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Run the turn.
    Process,
    /// Do not run it (it kept killing the process): give it up at once.
    GiveUp {
        /// Why.
        reason: String,
    },
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Apply this (a retry).
    Settle(Settle),
    /// Give the turn up now: tell the customer and hand the chat over, then dead-letter the job.
    GiveUp {
        /// Why.
        reason: String,
    },
}

impl JobPolicy {
    /// The longest wait between attempts to give a turn up (the portal is down for a long time, or
    /// refuses our credentials until an admin fixes them).
    pub const MAX_GIVE_UP_DELAY: Duration = Duration::from_secs(300);

    /// The policy the configuration describes.
    pub fn from_config(config: &Config) -> Self {
        Self {
            max_failures: config.runner.queue_max_attempts,
            max_interruptions: config.runner.poison_restarts,
            patience: config.runner.transient_patience,
            backoff: RetryPolicy::exponential(config.runner.queue_max_attempts.saturating_add(1), Duration::from_millis(500), Duration::from_secs(8))
                .with_jitter(0.2),
        }
    }

    /// Whether to run a delivery that was interrupted `interruptions` times.
    pub fn mode(&self, interruptions: u32) -> Mode {
        if interruptions >= self.max_interruptions {
            return Mode::GiveUp { reason: format!("the process stopped {interruptions} times while handling this message") };
        }
        Mode::Process
    }

    /// After attempt number `failures + 1` failed with `error`, for a job received at `received_at`.
    pub fn after_failure(&self, failures: u32, error: &ProcessError, received_at: DateTime<Utc>, now: DateTime<Utc>) -> Next {
        let failures = failures.saturating_add(1);
        let young = (now - received_at).to_std().unwrap_or_default() < self.patience;
        if error.is_transient() && young {
            return Next::Settle(self.retry(failures, error));
        }
        if failures >= self.max_failures || !error.is_retryable() {
            return Next::GiveUp { reason: format!("gave up after {failures} failed attempt(s): {error}") };
        }
        Next::Settle(self.retry(failures, error))
    }

    /// After giving up failed (attempt number `failures + 1`): retry later, resuming the give-up.
    pub fn after_failed_give_up(&self, failures: u32, error: &ProcessError) -> Settle {
        self.retry(failures.saturating_add(1), error)
    }

    /// Another worker holds the turn until `until`: come back then, without counting a failure.
    pub fn after_busy(until: DateTime<Utc>, now: DateTime<Utc>) -> Settle {
        let delay = (until - now).to_std().unwrap_or_default().max(Duration::from_millis(200));
        Settle::Retry { delay, failure: None }
    }

    /// The wait after failed attempt `failures`: the backoff's schedule, and past its end (a turn
    /// being given up, or failing for reasons a retry may not fix) doubling up to
    /// [`Self::MAX_GIVE_UP_DELAY`]. Transient failures never wait longer than the schedule's last
    /// step, so a recovered portal is used within seconds.
    pub fn delay(&self, failures: u32, transient: bool) -> Duration {
        let last = self.backoff.delays.last().copied().unwrap_or(Duration::from_secs(1));
        if let Some(d) = self.backoff.delay_after(failures) {
            return d;
        }
        if transient {
            return last;
        }
        let extra = failures.saturating_sub(self.backoff.max_attempts());
        last.saturating_mul(2u32.saturating_pow(extra.saturating_add(1).min(16))).min(Self::MAX_GIVE_UP_DELAY)
    }

    fn retry(&self, failures: u32, error: &ProcessError) -> Settle {
        Settle::Retry { delay: self.delay(failures, error.is_transient()), failure: Some(error.to_string()) }
    }
}

/// Puts dead-lettered jobs back on the queue (all, or those with `keys`) to be answered by the bot
/// once the cause is fixed; returns the keys put back. Their keys are reopened first, and a chat
/// that went to a human only because its turn was given up is handed back to the bot for that
/// session (a chat a human took for any other reason stays theirs). Safe to repeat: a crash between
/// the steps leaves keys reopened and jobs still dead, and running it again finishes the job.
pub async fn redrive(
    dead: &dyn DeadLetters,
    idempotency: &dyn IdempotencyStore,
    chats: &dyn ChatStore,
    keys: Option<&[DedupKey]>,
    now: DateTime<Utc>,
) -> Result<Vec<DedupKey>, StoreError> {
    let chosen: Vec<_> = dead.dead_letters(usize::MAX).await?.into_iter().filter(|d| keys.is_none_or(|k| k.contains(&d.job.key))).collect();
    for d in &chosen {
        idempotency.reopen(&d.job.key).await?;
        if let PortalEvent::Message(m) = &d.job.event
            && matches!(chats.mode(m.chat_id, m.lines.session_id).await?, ChatMode::Human { rule, .. } if rule == HandoffReason::GAVE_UP_RULE)
        {
            chats.set_bot(m.chat_id, m.lines.session_id).await?;
        }
    }
    let keys: Vec<DedupKey> = chosen.into_iter().map(|d| d.job.key).collect();
    dead.redrive(Some(&keys), now).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::t;
    use crate::ports::{PortalError, PortalErrorKind};

    fn policy() -> JobPolicy {
        JobPolicy {
            max_failures: 5,
            max_interruptions: 30,
            patience: Duration::from_secs(3600),
            backoff: RetryPolicy::exponential(6, Duration::from_millis(500), Duration::from_secs(8)).with_jitter(0.0),
        }
    }

    fn portal(kind: PortalErrorKind) -> ProcessError {
        ProcessError::Portal(PortalError { kind, method: "imbot.message.add".into(), code: "X".into(), description: "d".into() })
    }

    #[test]
    fn transient_failures_are_retried_quickly_while_the_job_is_young() {
        let p = policy();
        let e = portal(PortalErrorKind::Retryable);
        for failures in 0..40 {
            let Next::Settle(Settle::Retry { delay, failure: Some(_) }) = p.after_failure(failures, &e, t(0), t(600)) else { panic!("retry expected") };
            assert!(delay <= Duration::from_secs(8), "{failures}: {delay:?}");
        }
        assert!(matches!(p.after_failure(7, &e, t(0), t(3600)), Next::GiveUp { .. }), "patience is over");
    }

    #[test]
    fn other_failures_give_up_after_the_maximum() {
        let p = policy();
        let e = portal(PortalErrorKind::Auth);
        assert!(matches!(p.after_failure(3, &e, t(0), t(1)), Next::Settle(_)));
        assert!(matches!(p.after_failure(4, &e, t(0), t(1)), Next::GiveUp { .. }));
        let corrupt = ProcessError::Store(StoreError::Corrupt("x".into()));
        assert!(matches!(p.after_failure(0, &corrupt, t(0), t(1)), Next::GiveUp { .. }), "retrying cannot help");
    }

    #[test]
    fn interruptions_are_not_failures() {
        let p = policy();
        assert_eq!(p.mode(29), Mode::Process);
        assert!(matches!(p.mode(30), Mode::GiveUp { .. }));
    }

    #[test]
    fn the_backoff_follows_the_schedule_then_grows_while_giving_up() {
        let p = policy();
        let secs: Vec<f64> = (1..=12).map(|f| p.delay(f, false).as_secs_f64()).collect();
        assert_eq!(secs, [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 300.0, 300.0]);
        assert_eq!(p.delay(12, true), Duration::from_secs(8));
        let busy = JobPolicy::after_busy(t(10), t(4));
        assert_eq!(busy, Settle::Retry { delay: Duration::from_secs(6), failure: None });
    }
}
