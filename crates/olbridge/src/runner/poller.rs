//! The poller task: core's `poll` use case on a schedule, beside the receiver and the workers.
//!
//! - Operator mode, `OLBRIDGE_POLL_SOURCE=recent` (default): a traversal every `B24_POLL_SEC`.
//! - Operator mode, `events`: the webhook user's `im.v2.Event.get` log every `B24_POLL_SEC`, and
//!   the traversal every `OLBRIDGE_SWEEP_SEC` as the safety net.
//! - Push mode: reconciliation every `OLBRIDGE_RECONCILE_SEC`, and at once at start as a catch-up
//!   ([`CatchUp`]): what was written while the bridge was down is taken without the grace period
//!   and queued before the workers start, so it is answered before what the customer writes next.
//!
//! The first pass runs at start. Between passes the task sleeps the interval, stretched while the
//! portal reports the polled methods near their operating-time limit. A pass that fails is logged
//! and tried again at the next tick (nothing is lost: cursors only move past what was enqueued).
//! It stops with the bridge; a pass under way finishes within the shutdown grace or is cut off,
//! which is safe for the same reason.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use olbridge_core::usecase::poll::{PassReport, PollError, Poller};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::Shared;

/// What runs when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Plan {
    /// A traversal every `every`.
    Traverse {
        /// The interval.
        every: Duration,
    },
    /// The event log every `every`, a traversal every `sweep_every`.
    Events {
        /// The interval.
        every: Duration,
        /// The safety net's interval.
        sweep_every: Duration,
    },
}

/// The poller's state, for `/health`.
#[derive(Debug)]
pub(crate) struct PollStatus {
    role: &'static str,
    source: &'static str,
    inner: Mutex<Status>,
}

#[derive(Debug, Default)]
struct Status {
    passes: u64,
    last_success: Option<DateTime<Utc>>,
    last_error: Option<(DateTime<Utc>, String)>,
}

impl PollStatus {
    pub(crate) fn new(role: &'static str, source: &'static str) -> Self {
        Self { role, source, inner: Mutex::default() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Status> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn succeeded(&self, at: DateTime<Utc>) {
        let mut s = self.lock();
        s.passes += 1;
        s.last_success = Some(at);
    }

    fn failed(&self, at: DateTime<Utc>, e: &PollError) {
        self.lock().last_error = Some((at, e.to_string()));
    }

    /// The `/health` field.
    pub(crate) fn to_json(&self) -> Value {
        let s = self.lock();
        json!({
            "role": self.role,
            "source": self.source,
            "passes": s.passes,
            "last_success": s.last_success.map(|t| t.to_rfc3339()),
            "last_error": s.last_error.as_ref().map(|(t, e)| json!({"at": t.to_rfc3339(), "error": e})),
        })
    }
}

/// The start-up catch-up of push mode's reconciliation: its first pass takes what was written
/// while the bridge was down at once (`Poller::catch_up`), and `ready` lets the workers start
/// when it has.
#[derive(Debug)]
pub(crate) struct CatchUp {
    /// The moment the restarted bridge was listening again.
    pub(crate) down_until: DateTime<Utc>,
    /// Told once the catch-up pass has queued what it found.
    pub(crate) ready: tokio::sync::oneshot::Sender<()>,
}

/// A catch-up pass that failed is tried again this soon (the workers are waiting for it).
const CATCH_UP_RETRY: Duration = Duration::from_secs(1);

pub(crate) async fn run(
    shared: Arc<Shared>,
    poller: Arc<Poller>,
    plan: Plan,
    status: Arc<PollStatus>,
    mut catch_up: Option<CatchUp>,
    mut stop: watch::Receiver<bool>,
) {
    info!(role = status.role, source = status.source, ?plan, "poller started");
    let mut subscribed = false;
    let mut next_sweep = Instant::now();
    loop {
        let every = match plan {
            Plan::Traverse { every } => match catch_up.take() {
                Some(c) => {
                    // Complete only when every chat it looked at could be read.
                    let pass = async {
                        let report = poller.catch_up(c.down_until).await?;
                        match report.unread {
                            0 => Ok(report),
                            n => Err(PollError::Incomplete(n)),
                        }
                    };
                    if once(&shared, &poller, &status, "catch-up", pass).await {
                        let _ = c.ready.send(());
                        every
                    } else {
                        catch_up = Some(c);
                        every.min(CATCH_UP_RETRY)
                    }
                }
                None => {
                    once(&shared, &poller, &status, "traverse", poller.pass()).await;
                    every
                }
            },
            Plan::Events { every, sweep_every } => {
                if !subscribed {
                    match poller.subscribe().await {
                        Ok(()) => subscribed = true,
                        Err(e) => warn!(error = %e, "im.v2.Event.subscribe failed; the recent-list sweep keeps finding messages meanwhile"),
                    }
                }
                if subscribed {
                    once(&shared, &poller, &status, "events", poller.events_pass()).await;
                }
                if Instant::now() >= next_sweep {
                    once(&shared, &poller, &status, "sweep", poller.pass()).await;
                    next_sweep = Instant::now() + sweep_every;
                }
                every
            }
        };
        let wait = poller.pace(every);
        if wait > every {
            let wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
            info!(wait_ms, "the portal reports the polled methods near their operating-time limit: polling slower");
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = stop.changed() => break,
        }
        if *stop.borrow() {
            break;
        }
    }
    info!(role = status.role, "poller stopped");
}

async fn once(
    shared: &Shared,
    poller: &Poller,
    status: &PollStatus,
    what: &'static str,
    pass: impl std::future::Future<Output = Result<PassReport, PollError>>,
) -> bool {
    let at = shared.deps.clock.now();
    match pass.await {
        Ok(report) => {
            status.succeeded(at);
            if report.enqueued + report.resent > 0 {
                shared.wake.notify_one();
                info!(
                    role = status.role,
                    pass = what,
                    chats = report.chats,
                    read = report.read,
                    enqueued = report.enqueued,
                    resent = report.resent,
                    duplicates = report.duplicates,
                    waiting = report.waiting,
                    "poll pass found messages"
                );
            } else if let Some(why) = report.skipped {
                debug!(role = status.role, pass = what, reason = why, "poll pass skipped");
            } else {
                debug!(
                    role = status.role,
                    pass = what,
                    chats = report.chats,
                    read = report.read,
                    duplicates = report.duplicates,
                    waiting = report.waiting,
                    "poll pass"
                );
            }
            true
        }
        Err(e) => {
            status.failed(at, &e);
            warn!(role = status.role, pass = what, error = %e, policy = poller.settings().policy.name(), "poll pass failed; trying again at the next tick");
            false
        }
    }
}
