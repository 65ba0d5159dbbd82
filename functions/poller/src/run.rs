//! One invocation: take the lease, run the mode's passes on their schedules until the deadline
//! (less a safety margin), release the lease, write the run's metrics.
//!
//! # Time
//! The run ends at `deadline − margin`, the margin being 10 s or a quarter of the invocation's
//! time, whichever is less (a short function timeout leaves most of its time to polling). A pass
//! is only started if the longest pass of this run so far would still end before that point, and
//! each pass is cut off half a margin before the deadline: a pass cut short is safe (cursors and
//! offsets only move past what was enqueued), and the release and the metrics still get written.
//! Between passes the run sleeps until the next task is due, as [`Poller::pace`](olbridge_core::usecase::poll::Poller::pace) stretches the
//! interval while the portal reports the polled methods near their operating-time limit.
//!
//! A context without a deadline (one built by hand) runs each task once.
//!
//! # Failures
//! A failed pass is logged and counted; the run goes on (the next pass may succeed). A run whose
//! polling passes all failed counts as failed (`PollerFailed`), and so does a run whose lease could
//! not be read or written — the only case that is also the invocation's error. The CRM timeline
//! passes are counted apart (`comments`, `timeline_failed`): a comment that cannot be written is
//! retried with backoff from the outbox and never fails the run.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use aws_lambda_events::eventbridge::EventBridgeEvent;
use chrono::{DateTime, TimeZone, Utc};
use lambda_runtime::Context;
use olbridge_aws::emf::Emf;
use olbridge_core::metrics;
use olbridge_core::ports::{Clock, StoreError};
use olbridge_core::usecase::crm::{DrainPolicy, drain};
use olbridge_core::usecase::poll::PassReport;
use serde::Serialize;
use serde_json::json;
use tracing::{error, info, warn};

use crate::lease::{Held, Lease};
use crate::work::{Task, Work};

/// The most a run keeps back before its deadline.
pub const MAX_MARGIN: Duration = Duration::from_secs(10);

/// How long a run without a deadline holds the lease.
const UNBOUNDED_LEASE: Duration = Duration::from_secs(60);

/// What a run needs, built once per Lambda instance.
#[derive(Debug)]
pub struct PollerDeps {
    /// The mode's tasks.
    pub work: Work,
    /// The run lease.
    pub lease: Lease,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Metrics.
    pub emf: Emf,
}

/// The invocation, as the runtime's context gives it.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// Lambda's request id: the lease's owner.
    pub request_id: String,
    /// When Lambda stops the invocation.
    pub deadline: Option<DateTime<Utc>>,
}

impl Invocation {
    /// From the runtime's context; a zero deadline (a context built by hand) means none.
    pub fn from_context(context: &Context) -> Self {
        let deadline = i64::try_from(context.deadline).ok().filter(|ms| *ms > 0).and_then(|ms| Utc.timestamp_millis_opt(ms).single());
        Self { request_id: context.request_id.clone(), deadline }
    }
}

/// What a run did (the invocation's result, and the test's view).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RunReport {
    /// Another invocation holds the lease: this one did nothing.
    Busy {
        /// The holder's request id.
        holder: String,
        /// Until when it holds it.
        until: DateTime<Utc>,
    },
    /// This invocation held the lease and ran its passes.
    Ran(Totals),
}

/// The sums of a run's passes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// Passes run (traversals, event-log reads, fetch ticks; not the timeline's).
    pub passes: usize,
    /// Passes that failed (or were cut off at the deadline).
    pub failed: usize,
    /// Messages the poll passes enqueued (`PollerRecovered`).
    pub enqueued: usize,
    /// Lost jobs the poll passes sent again (counted in `PollerRecovered` too).
    pub resent: usize,
    /// Messages the poll passes found already admitted.
    pub duplicates: usize,
    /// Events the fetch ticks queued.
    pub fetched: usize,
    /// CRM timeline comments the timeline passes wrote. Timeline passes are counted apart from
    /// the polling passes: a drain that works must not hide a run whose polling all failed.
    pub comments: usize,
    /// Timeline passes that failed (the outbox could not be used, or the deadline cut them off).
    pub timeline_failed: usize,
    /// The lease was taken over by another invocation during the run (it had expired).
    pub lost_lease: bool,
}

impl Totals {
    /// Whether the run failed: it ran passes and every one failed.
    pub fn failed_run(&self) -> bool {
        self.passes > 0 && self.failed == self.passes
    }

    fn add_pass(&mut self, r: &PassReport) {
        self.enqueued += r.enqueued;
        self.resent += r.resent;
        self.duplicates += r.duplicates;
    }
}

/// Why a run failed as an invocation: the lease's store could not be used.
#[derive(Debug, thiserror::Error)]
#[error("the poller's lease could not be read or written: {0}")]
pub struct RunError(#[from] pub StoreError);

impl From<RunError> for lambda_runtime::Diagnostic {
    fn from(e: RunError) -> Self {
        Self { error_type: "PollerLease".to_owned(), error_message: e.to_string() }
    }
}

/// Handles one scheduled event.
pub async fn handle(deps: &PollerDeps, event: &EventBridgeEvent, invocation: &Invocation) -> Result<RunReport, RunError> {
    let start = deps.clock.now();
    info!(request_id = %invocation.request_id, source = %event.source, detail_type = %event.detail_type, time = ?event.time, mode = deps.work.mode.name(), "poller run");
    let until = invocation.deadline.unwrap_or(start + chrono::Duration::from_std(UNBOUNDED_LEASE).unwrap_or_default());
    let held = match deps.lease.acquire(&invocation.request_id, start, until).await {
        Ok(Ok(held)) => held,
        Ok(Err(busy)) => {
            info!(holder = %busy.owner, until = %busy.until, "another invocation is polling: nothing to do in this one");
            return Ok(RunReport::Busy { holder: busy.owner, until: busy.until });
        }
        Err(e) => {
            emit(deps, &Totals::default(), true, invocation);
            error!(error = %e, "the poller's lease could not be taken: no pass ran");
            return Err(e.into());
        }
    };
    let (totals, renewal) = passes(deps, invocation, held, start, until).await;
    let failed = totals.failed_run() || renewal.is_err();
    emit(deps, &totals, failed, invocation);
    if failed {
        error!(passes = totals.passes, failed = totals.failed, "poller run failed");
    }
    info!(?totals, "poller run done");
    renewal.map(|()| RunReport::Ran(totals))
}

fn emit(deps: &PollerDeps, totals: &Totals, failed: bool, invocation: &Invocation) {
    let data = metrics::poller_run(totals.enqueued + totals.resent, failed);
    deps.emf.emit(&data, deps.clock.now(), &[("requestId", json!(invocation.request_id)), ("mode", json!(deps.work.mode.name()))]);
}

fn to_std(d: chrono::Duration) -> Duration {
    d.to_std().unwrap_or_default()
}

/// The passes of a run; then the lease's release. The error is the lease's store failing.
async fn passes(deps: &PollerDeps, invocation: &Invocation, mut held: Held, start: DateTime<Utc>, until: DateTime<Utc>) -> (Totals, Result<(), RunError>) {
    let margin = to_std(until - start).div_f64(4.0).min(MAX_MARGIN);
    let stop_at = until - chrono::Duration::from_std(margin).unwrap_or_default();
    let cut_at = until - chrono::Duration::from_std(margin / 2).unwrap_or_default();
    let once = invocation.deadline.is_none();
    let mut totals = Totals::default();
    let mut due: Vec<Option<DateTime<Utc>>> = vec![Some(start); deps.work.tasks.len()];
    let mut longest = Duration::ZERO;
    if deps.work.tasks.is_empty() {
        info!(mode = deps.work.mode.name(), "nothing to poll in this mode (OLBRIDGE_RECONCILE_SEC=0)");
    }
    loop {
        let now = deps.clock.now();
        let next = due.iter().enumerate().filter_map(|(i, d)| d.map(|d| (i, d))).min_by_key(|(_, d)| *d);
        let Some((i, at)) = next else { break };
        if at > now {
            if at + chrono::Duration::from_std(longest).unwrap_or_default() > stop_at {
                break;
            }
            tokio::time::sleep(to_std(at - now)).await;
            continue;
        }
        if now + chrono::Duration::from_std(longest).unwrap_or_default() > stop_at {
            break;
        }
        match deps.lease.renew(&mut held, until).await {
            Ok(true) => {}
            Ok(false) => {
                warn!("the lease was taken over by another invocation: stopping");
                totals.lost_lease = true;
                return (totals, Ok(()));
            }
            Err(e) => return (totals, Err(e.into())),
        }
        let task = &deps.work.tasks[i];
        let polling = !matches!(task, Task::Timeline { .. });
        let began = tokio::time::Instant::now();
        let wait = match tokio::time::timeout(to_std(cut_at - now), pass(task, deps, &mut totals)).await {
            Ok(wait) => wait,
            Err(_) => {
                warn!(task = task.name(), "a pass was cut off at the deadline; what it did not enqueue (or write) is found again by the next run");
                *if polling { &mut totals.failed } else { &mut totals.timeline_failed } += 1;
                None
            }
        };
        totals.passes += usize::from(polling);
        longest = longest.max(began.elapsed());
        due[i] = if once { None } else { Some(deps.clock.now() + chrono::Duration::from_std(wait.unwrap_or_else(|| interval(task))).unwrap_or_default()) };
    }
    let released = deps.lease.release(held).await.map_err(RunError::from);
    (totals, released)
}

/// A task's configured interval.
fn interval(task: &Task) -> Duration {
    match task {
        Task::Traverse { poller, every, .. } | Task::Events { poller, every, .. } => poller.pace(*every),
        Task::Fetch { fetcher } => fetcher.settings.idle,
        Task::Timeline { every, .. } => *every,
    }
}

/// Runs one pass of `task`; returns how long to wait before its next one (`None`: the interval).
async fn pass(task: &Task, deps: &PollerDeps, totals: &mut Totals) -> Option<Duration> {
    let name = task.name();
    match task {
        Task::Traverse { poller, .. } => record(name, poller.pass().await, totals),
        Task::Events { poller, subscribed, .. } => {
            if !subscribed.load(Ordering::Relaxed) {
                match poller.subscribe().await {
                    Ok(()) => subscribed.store(true, Ordering::Relaxed),
                    Err(e) => {
                        warn!(error = %e, "im.v2.Event.subscribe failed; the recent-list sweep keeps finding messages meanwhile");
                        totals.failed += 1;
                        return None;
                    }
                }
            }
            record(name, poller.events_pass().await, totals)
        }
        Task::Fetch { fetcher } => match fetcher.tick(deps.clock.now()).await {
            Ok(tick) => {
                info!(task = name, fetched = tick.fetched, enqueued = tick.enqueued, duplicates = tick.duplicates, ignored = tick.ignored, skipped = tick.skipped, offset = ?tick.offset, "pass");
                totals.fetched += tick.enqueued;
                Some(tick.wait(fetcher.settings.idle))
            }
            Err(e) => {
                warn!(task = name, error = %e, retryable = e.is_retryable(), "fetch failed; nothing is acknowledged, the next tick reads the events again");
                totals.failed += 1;
                None
            }
        },
        Task::Timeline { portal, outbox, .. } => match drain(portal.as_ref(), outbox.as_ref(), deps.clock.now(), DrainPolicy::default()).await {
            Ok(done) => {
                if done.written + done.failed > 0 {
                    info!(task = name, written = done.written, failed = done.failed, "pass");
                }
                totals.comments += done.written;
                None
            }
            Err(e) => {
                warn!(task = name, error = %e, "the CRM timeline outbox could not be read or updated; the next pass tries again");
                totals.timeline_failed += 1;
                None
            }
        },
    }
}

fn record(name: &'static str, result: Result<PassReport, olbridge_core::usecase::poll::PollError>, totals: &mut Totals) -> Option<Duration> {
    match result {
        Ok(r) => {
            info!(
                task = name,
                chats = r.chats,
                read = r.read,
                enqueued = r.enqueued,
                duplicates = r.duplicates,
                resent = r.resent,
                waiting = r.waiting,
                skipped = r.skipped,
                "pass"
            );
            totals.add_pass(&r);
        }
        Err(e) => {
            warn!(task = name, error = %e, "pass failed; the next one tries again (cursors only move past what was enqueued)");
            totals.failed += 1;
        }
    }
    None
}
