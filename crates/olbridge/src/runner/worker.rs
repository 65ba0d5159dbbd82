//! The worker pool: lease the next chat's jobs, run its turns, settle the jobs.
//!
//! One dispatcher leases a chat's head job and runs the chat's turns as a task of their own, up to
//! `OLBRIDGE_WORKERS` at once: turns spend their time waiting on the bot and the portal, not the
//! CPU, so concurrency is cheap and a slow RAG bot must not keep other chats waiting. The queue
//! leases one chat to one task at a time, so turns never race on a chat.
//!
//! A task takes, with its chat's head, every later job of the chat that is already waiting: the
//! messages a customer wrote while the bot was thinking are folded into one turn by core's planner
//! (`OLBRIDGE_BURST_MS` adds an optional quiet window before that). What becomes of each job is
//! core's decision (`olbridge_core::usecase::job`); this module only applies it.
//!
//! The dispatcher does not wait on a polling timer: it sleeps until the receiver enqueues
//! something, a turn ends (its chat's next message may go), or the queue's next due time (a
//! retry's backoff, a lease that runs out) — at most [`MAX_IDLE_WAIT`], for changes another
//! process makes to the store.
//!
//! A turn that panics is caught here and counted as a failure; the lease heartbeat is stopped by a
//! guard, so nothing keeps renewing the lease of a dead turn.

use std::sync::Arc;
use std::time::Duration;

use olbridge_core::domain::event::Job;
use olbridge_core::ports::{Delivery, Settle};
use olbridge_core::usecase::job::{JobPolicy, Mode, Next};
use olbridge_core::usecase::process::{self, GroupResult, Owner, ProcessError, ProcessSettings, Stopped};
use tokio::sync::{Semaphore, oneshot, watch};
use tokio::task::JoinSet;
use tracing::{error, warn};

use super::Shared;

/// The longest an idle dispatcher sleeps without being woken: the store may be changed by another
/// process (an operator's `olbridge dead-letters --redrive`), which cannot wake it.
const MAX_IDLE_WAIT: Duration = Duration::from_secs(2);
/// The quiet window is extended while messages keep coming, up to this many windows.
const BURST_CAP_WINDOWS: u32 = 4;

/// How long the workers wait at start for push mode's catch-up pass (the portal may be down: the
/// queue's own jobs must not wait for it for long).
const CATCH_UP_PATIENCE: Duration = Duration::from_secs(15);

/// Runs the pool; with a `gate`, only once the start-up catch-up has queued what was written while
/// the bridge was down (or after [`CATCH_UP_PATIENCE`]), so those messages go before what their
/// customers write next.
pub(crate) async fn run(shared: Arc<Shared>, concurrency: usize, gate: Option<oneshot::Receiver<()>>, mut stop: watch::Receiver<bool>) {
    if let Some(gate) = gate {
        tokio::select! {
            r = gate => if r.is_err() { warn!("the start-up catch-up did not run; the workers start without it") },
            () = tokio::time::sleep(CATCH_UP_PATIENCE) => warn!(wait_s = CATCH_UP_PATIENCE.as_secs(), "the start-up catch-up pass has not finished (is the portal reachable?); the workers start without it: a message written while the bridge was down may be answered after a later one"),
            _ = stop.changed() => return,
        }
    }
    let permits = Arc::new(Semaphore::new(concurrency));
    let mut turns = JoinSet::new();
    let mut counter: u64 = 0;
    loop {
        // Reap finished turns so the set does not grow.
        while turns.try_join_next().is_some() {}
        let permit = tokio::select! {
            p = Arc::clone(&permits).acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = stop.changed() => break,
        };
        if *stop.borrow() {
            break;
        }
        let now = shared.deps.clock.now();
        let head = match shared.queue.receive(1, now, shared.lease).await {
            Ok(mut d) => d.pop(),
            Err(e) => {
                error!(error = %e, "cannot read the queue");
                None
            }
        };
        let Some(head) = head else {
            drop(permit);
            let wait = idle_wait(&shared).await;
            tokio::select! {
                () = shared.wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
                _ = stop.changed() => {}
            }
            continue;
        };
        counter += 1;
        // One owner per task: a claim's owner must name one sequential executor.
        let owner = Owner::new(format!("{}-t{counter}", shared.instance));
        let shared = Arc::clone(&shared);
        turns.spawn(async move {
            let mut batch = gather(&shared, head).await;
            // A message reconciliation found (its event was lost) is queued after later ones.
            olbridge_core::domain::event::written_order(&mut batch, |d| Some(&d.job));
            handle(&shared, &owner, batch).await;
            drop(permit);
            // The chat is free again: its next message may already be waiting.
            shared.wake.notify_one();
        });
    }
    // Stopping: no new turns; let the running ones finish (the bridge bounds how long).
    while turns.join_next().await.is_some() {}
}

/// How long an idle dispatcher may sleep: until the queue's next due time.
async fn idle_wait(shared: &Shared) -> Duration {
    let now = shared.deps.clock.now();
    match shared.queue.next_due(now).await {
        Ok(Some(at)) => (at - now).to_std().unwrap_or_default().clamp(Duration::from_millis(1), MAX_IDLE_WAIT),
        Ok(None) => MAX_IDLE_WAIT,
        Err(e) => {
            warn!(error = %e, "cannot read the queue's next due time");
            MAX_IDLE_WAIT
        }
    }
}

/// Takes the jobs of the head's chat that are waiting behind it (after the optional quiet window).
async fn gather(shared: &Shared, head: Delivery) -> Vec<Delivery> {
    let group = head.job.group.clone();
    let max = shared.deps.settings.max_turn_messages.max(ProcessSettings::MAX_TURN_MESSAGES);
    let mut batch = vec![head];
    let window = shared.burst_window;
    let started = batch[0].job.received_at;
    let cap = chrono::Duration::from_std(window * BURST_CAP_WINDOWS).unwrap_or(chrono::Duration::MAX);
    let window_c = chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX);
    loop {
        if !window.is_zero() {
            let last = batch.last().map_or(started, |d| d.job.received_at);
            let quiet_until = (last + window_c).min(started + cap);
            let wait = (quiet_until - shared.deps.clock.now()).to_std().unwrap_or_default();
            tokio::time::sleep(wait).await;
        }
        let room = max.saturating_sub(batch.len());
        if room == 0 {
            break;
        }
        match shared.queue.receive_more(&group, room, shared.deps.clock.now(), shared.lease).await {
            Ok(more) if !more.is_empty() => {
                batch.extend(more);
                if window.is_zero() || shared.deps.clock.now() >= started + cap {
                    break;
                }
            }
            Ok(_) => break,
            Err(e) => {
                warn!(error = %e, "cannot take the chat's next jobs; handling what we have");
                break;
            }
        }
    }
    batch
}

/// Runs the chat's jobs and settles each.
async fn handle(shared: &Arc<Shared>, owner: &Owner, batch: Vec<Delivery>) {
    let _heartbeat = Heartbeat::start(shared, &batch);
    let jobs: Vec<Job> = batch.iter().map(|d| d.job.clone()).collect();
    let poison = match shared.policy.mode(batch[0].interruptions) {
        Mode::Process => None,
        Mode::GiveUp { reason } => Some(reason),
    };
    let result = guarded(shared, owner, &jobs, poison.clone()).await;
    let mut settles = settle_group(shared, owner, &batch, &jobs, result, poison.is_some()).await;
    if let (Some(reason), Some(Settle::Ack)) = (poison, settles.first()) {
        error!(key = %batch[0].job.key, reason = %reason, "a job kept stopping the process: its turn was given up (the customer was told, the chat handed to a human); see `olbridge dead-letters`");
        settles[0] = Settle::DeadLetter { reason };
    }
    let now = shared.deps.clock.now();
    for (d, s) in batch.iter().zip(&settles) {
        if let Err(e) = shared.queue.settle(&d.receipt, s, now).await {
            // Finished jobs whose ack is lost come back and find their keys done.
            warn!(key = %d.job.key, error = %e, "cannot settle a job; its lease will expire instead");
        }
    }
}

/// Runs `process` (or, with a reason, `give_up`) in a task of its own, so a panic is caught and
/// becomes a failure of the turn; the claims the panicking turn held are released.
async fn guarded(shared: &Arc<Shared>, owner: &Owner, jobs: &[Job], give_up: Option<String>) -> GroupResult {
    let (task_shared, task_owner, task_jobs) = (Arc::clone(shared), owner.clone(), jobs.to_vec());
    let run = async move {
        match give_up {
            None => process::process(&task_shared.deps, &task_jobs, &task_owner).await,
            Some(reason) => process::give_up(&task_shared.deps, &task_jobs, &task_owner, &reason).await,
        }
    };
    // A task's panic is caught by Tokio and comes back as the join error.
    let why = match tokio::spawn(run).await {
        Ok(result) => return result,
        Err(e) if e.is_panic() => panic_text(e.into_panic().as_ref()),
        Err(e) => format!("the turn's task failed: {e}"),
    };
    error!(panic = %why, "a turn panicked; it counts as a failed attempt");
    for job in jobs {
        // Only the keys this owner still holds are released; the others answer LeaseLost.
        let _ = shared.deps.idempotency.release(&job.key, &owner.id).await;
    }
    GroupResult { finished: vec![false; jobs.len()], outcomes: Vec::new(), stopped: Some(Stopped::Failed(ProcessError::Panicked(why))) }
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic.downcast_ref::<&str>().map(|s| (*s).to_owned()).or_else(|| panic.downcast_ref::<String>().cloned()).unwrap_or_else(|| "unknown panic".into())
}

/// Core's decisions for each job of the batch: finished ones are acked; the first unfinished one
/// is retried, or its turn given up now (then dead-lettered); the ones behind it go back to wait
/// their turn, without counting anything against them.
async fn settle_group(shared: &Arc<Shared>, owner: &Owner, batch: &[Delivery], jobs: &[Job], result: GroupResult, giving_up: bool) -> Vec<Settle> {
    let waiting = Settle::Retry { delay: Duration::ZERO, failure: None };
    let mut settles: Vec<Settle> = result.finished.iter().map(|f| if *f { Settle::Ack } else { waiting.clone() }).collect();
    let Some(k) = result.finished.iter().position(|f| !f) else { return settles };
    let head = &batch[k];
    let now = shared.deps.clock.now();
    settles[k] = match &result.stopped {
        Some(Stopped::Busy { until }) => JobPolicy::after_busy(*until, now),
        Some(Stopped::Failed(e)) => {
            warn!(key = %head.job.key, error = %e, failures = head.failures + 1, "turn failed");
            let next = if giving_up && k == 0 {
                Next::Settle(shared.policy.after_failed_give_up(head.failures, e))
            } else {
                shared.policy.after_failure(head.failures, e, head.job.received_at, now)
            };
            match next {
                Next::Settle(s) => s,
                Next::GiveUp { reason } => give_up_now(shared, owner, head, &jobs[k..], reason, &mut settles[k..]).await,
            }
        }
        None => waiting,
    };
    settles
}

/// Gives the turn of `jobs[0]` up in this delivery; returns what becomes of that job, and marks
/// the later jobs the give-up finished.
async fn give_up_now(shared: &Arc<Shared>, owner: &Owner, head: &Delivery, jobs: &[Job], reason: String, settles: &mut [Settle]) -> Settle {
    let given = guarded(shared, owner, jobs, Some(reason.clone())).await;
    for (s, finished) in settles.iter_mut().zip(&given.finished).skip(1) {
        if *finished {
            *s = Settle::Ack;
        }
    }
    if given.finished.first().copied().unwrap_or(false) {
        error!(key = %head.job.key, reason = %reason, "a turn was given up: the customer was told and the chat handed to a human; see `olbridge dead-letters`");
        return Settle::DeadLetter { reason };
    }
    let error = match &given.stopped {
        Some(Stopped::Failed(e)) => e.to_string(),
        Some(Stopped::Busy { .. }) | None => "giving up did not finish".into(),
    };
    error!(key = %head.job.key, error = %error, "cannot give a turn up yet (the customer is not told); retrying");
    Settle::Retry { delay: shared.policy.delay(head.failures.saturating_add(1), false), failure: Some(error) }
}

/// Renews the leases of a batch while its turns run; stops when dropped (also on a panic).
struct Heartbeat(tokio::task::JoinHandle<()>);

impl Heartbeat {
    fn start(shared: &Arc<Shared>, batch: &[Delivery]) -> Self {
        let receipts: Vec<_> = batch.iter().map(|d| d.receipt.clone()).collect();
        let shared = Arc::clone(shared);
        let lease = shared.lease;
        Self(tokio::spawn(async move {
            loop {
                tokio::time::sleep(lease / 3).await;
                for r in &receipts {
                    if let Err(e) = shared.queue.extend(r, shared.deps.clock.now(), lease).await {
                        warn!(error = %e, "cannot renew a job's lease");
                    }
                }
            }
        }))
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.0.abort();
    }
}
