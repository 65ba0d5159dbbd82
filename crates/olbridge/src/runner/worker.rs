//! The worker pool: lease the next job, wait out the burst window, run the turn, ack or retry.
//!
//! One dispatcher leases jobs and runs each turn as its own task, up to `OLBRIDGE_WORKERS` turns at
//! once: turns spend their time waiting on the bot and the portal, not on the CPU, so concurrency
//! is cheap and a slow RAG bot must not keep other chats waiting in the queue. The queue guarantees
//! one leased job per chat at a time, so turns never race on a chat; the
//! lease is renewed while a turn runs (a RAG bot may take minutes) and given back with a backoff
//! when the turn fails in a retryable way. A job that keeps failing is dead-lettered after
//! `OLBRIDGE_QUEUE_MAX_ATTEMPTS` deliveries instead of blocking its chat forever.

use std::sync::Arc;
use std::time::Duration;

use olbridge_core::domain::event::{Job, PortalEvent};
use olbridge_core::domain::message::AuthorKind;
use olbridge_core::ports::{Delivery, Receipt, Requeued};
use olbridge_core::usecase::process::{self, Processed};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tracing::{error, warn};

use super::Shared;

/// How long an idle worker sleeps when nobody wakes it (other workers may have been woken).
const IDLE_POLL: Duration = Duration::from_millis(250);
/// The burst window is extended while messages keep coming, up to this many windows.
const BURST_CAP_WINDOWS: u32 = 4;
/// At most this many messages are merged into one turn.
const BURST_MAX_MESSAGES: usize = 20;

pub(crate) async fn run(shared: Arc<Shared>, concurrency: usize, mut stop: watch::Receiver<bool>) {
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
        let delivery = match shared.queue.receive(1, now, shared.lease).await {
            Ok(mut d) => d.pop(),
            Err(e) => {
                error!(error = %e, "cannot read the queue");
                None
            }
        };
        let Some(first) = delivery else {
            drop(permit);
            tokio::select! {
                () = shared.wake.notified() => {}
                () = tokio::time::sleep(IDLE_POLL) => {}
                _ = stop.changed() => {}
            }
            continue;
        };
        if first.attempt > shared.max_attempts {
            dead_letter_poison(&shared, &first).await;
            continue;
        }
        counter += 1;
        // One owner per turn: a claim's owner must name one sequential executor.
        let owner = format!("{}-t{counter}", shared.instance);
        let shared = Arc::clone(&shared);
        turns.spawn(async move {
            let batch = gather_burst(&shared, first).await;
            handle(&shared, &owner, batch).await;
            drop(permit);
        });
    }
    // Stopping: no new turns; let the running ones finish (the bridge bounds how long).
    while turns.join_next().await.is_some() {}
}

/// A job delivered this often without ever being given back: the process died while handling it
/// each time (a poison job). It is set aside instead of crashing the bridge again.
async fn dead_letter_poison(shared: &Shared, delivery: &Delivery) {
    let error = "delivered too many times without finishing (the process stopped while handling it)";
    if let Err(e) = shared.queue.retry(&delivery.receipt, shared.deps.clock.now(), Duration::ZERO, shared.max_attempts, error).await {
        warn!(error = %e, "cannot dead-letter a poison job");
    }
    error!(key = %delivery.job.key, attempt = delivery.attempt, "a job was dead-lettered: see `olbridge dead-letters`");
}

/// Waits for the burst window to pass quietly and leases the messages that arrived meanwhile.
async fn gather_burst(shared: &Shared, first: Delivery) -> Vec<Delivery> {
    let window = shared.burst_window;
    // A redelivered job may be a turn that already decided what to say: it is resumed as it was,
    // never grown (the messages that came since are the next turn).
    if window.is_zero() || first.attempt > 1 || !is_customer_message(&first.job) {
        return vec![first];
    }
    let group = first.job.group.clone();
    let started = first.job.received_at;
    let cap = chrono::Duration::from_std(window * BURST_CAP_WINDOWS).unwrap_or(chrono::Duration::MAX);
    let window_c = chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX);
    let mut batch = vec![first];
    loop {
        let last = batch.last().map(|d| d.job.received_at).unwrap_or(started);
        let quiet_until = (last + window_c).min(started + cap);
        let wait = (quiet_until - shared.deps.clock.now()).to_std().unwrap_or(Duration::ZERO);
        tokio::time::sleep(wait).await;
        let room = BURST_MAX_MESSAGES.saturating_sub(batch.len());
        if room == 0 {
            break;
        }
        match shared.queue.receive_more(&group, room, shared.deps.clock.now(), shared.lease).await {
            Ok(more) if !more.is_empty() => {
                // Only customer messages merge; anything else ends the burst and is handled with it.
                let stop_here = more.iter().any(|d| !is_customer_message(&d.job));
                batch.extend(more);
                if stop_here || shared.deps.clock.now() >= started + cap {
                    break;
                }
            }
            Ok(_) => break,
            Err(e) => {
                warn!(error = %e, "cannot gather the burst; answering what we have");
                break;
            }
        }
    }
    batch
}

fn is_customer_message(job: &Job) -> bool {
    matches!(&job.event, PortalEvent::Message(m) if m.author.kind == AuthorKind::Customer)
}

async fn handle(shared: &Shared, owner: &str, batch: Vec<Delivery>) {
    let receipts: Vec<Receipt> = batch.iter().map(|d| d.receipt.clone()).collect();
    let heartbeat = spawn_heartbeat(shared, receipts.clone());
    let jobs: Vec<Job> = batch.iter().map(|d| d.job.clone()).collect();
    let result = process::process(&shared.deps, &jobs, owner).await;
    heartbeat.abort();
    let attempt = batch.iter().map(|d| d.attempt).max().unwrap_or(1);
    match result {
        Ok(Processed::Finished { deferred, .. }) => {
            for d in &batch {
                if deferred.contains(&d.job.key) {
                    requeue(shared, std::slice::from_ref(&d.receipt), Duration::ZERO, "left for the next turn").await;
                } else if let Err(e) = shared.queue.ack(&d.receipt).await {
                    // The turn is done and recorded; a redelivery will find the keys done.
                    warn!(error = %e, "cannot ack a finished job");
                }
            }
        }
        Ok(Processed::Busy { until }) => {
            let delay = (until - shared.deps.clock.now()).to_std().unwrap_or(Duration::ZERO).max(Duration::from_secs(1));
            requeue(shared, &receipts, delay, "another worker holds this turn").await;
        }
        Err(e) => {
            let delay = backoff(attempt);
            let max = if e.is_retryable() { shared.max_attempts } else { attempt };
            warn!(error = %e, attempt, retry_in_ms = delay.as_millis() as u64, "turn failed; it will be retried");
            for r in &receipts {
                match shared.queue.retry(r, shared.deps.clock.now(), delay, max, &e.to_string()).await {
                    Ok(Requeued::DeadLettered) => error!(error = %e, "a job used all its attempts and was dead-lettered: see `olbridge dead-letters`"),
                    Ok(Requeued::Later) => {}
                    Err(e) => warn!(error = %e, "cannot give a job back; its lease will expire instead"),
                }
            }
        }
    }
}

async fn requeue(shared: &Shared, receipts: &[Receipt], delay: Duration, why: &str) {
    for r in receipts {
        // Waiting for another worker is not a failure: it does not use up attempts.
        if let Err(e) = shared.queue.retry(r, shared.deps.clock.now(), delay, u32::MAX, why).await {
            warn!(error = %e, "cannot give a job back; its lease will expire instead");
        }
    }
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_secs(2u64.saturating_pow(attempt.min(6))).min(Duration::from_secs(60))
}

fn spawn_heartbeat(shared: &Shared, receipts: Vec<Receipt>) -> tokio::task::JoinHandle<()> {
    let queue = Arc::clone(&shared.queue);
    let clock = Arc::clone(&shared.deps.clock);
    let lease = shared.lease;
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(lease / 3).await;
            for r in &receipts {
                if let Err(e) = queue.extend(r, clock.now(), lease).await {
                    warn!(error = %e, "cannot renew a job's lease");
                }
            }
        }
    })
}
