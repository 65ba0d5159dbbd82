//! The queue, cut the way SQS FIFO can implement it: a producer port for the receiver and the
//! pollers ([`JobSink`]), a lease-based consumer for the local runner ([`WorkQueue`]) and the
//! dead-letter store ([`DeadLetters`]).
//!
//! De-duplication is not the queue's job: SQS FIFO de-duplicates silently and only for five
//! minutes, so "have we seen this message" lives in the idempotency store (`admit`, `claim`),
//! for as long as the retention says. Sending a job twice is harmless: the second copy finds its
//! key done.
//!
//! What becomes of a job after a turn is decided in one place, `crate::usecase::job`, as a
//! [`Settle`]; the local runner applies it with [`WorkQueue::settle`], the Lambda worker turns it
//! into a batch item failure or a visibility change.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::StoreResult;
use crate::domain::event::{GroupId, Job};
use crate::domain::ids::DedupKey;

/// The producer side: puts a verified job on the queue of its FIFO group (its chat).
#[async_trait]
pub trait JobSink: Send + Sync {
    /// Sends `job`. It may be stored twice if sent twice (SQS forgets its de-duplication id after
    /// five minutes); adapters that can tell drop a copy of a job still in the queue.
    async fn send(&self, job: &Job, now: DateTime<Utc>) -> StoreResult<()>;
}

/// A leased job.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The job.
    pub job: Job,
    /// Identifies this lease for extend/settle.
    pub receipt: Receipt,
    /// Handling attempts that failed (settled with a failure).
    pub failures: u32,
    /// Deliveries during which the process died (or stopped renewing the lease): not failures of
    /// the job, counted apart so restarts never give up an innocent message (see
    /// `crate::usecase::job`).
    pub interruptions: u32,
    /// The last failure's text, for the operator and the give-up reason.
    pub last_error: Option<String>,
}

/// A lease handle on a delivered job.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Receipt(pub String);

/// What becomes of a delivered job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settle {
    /// Finished: remove it.
    Ack,
    /// Back to the queue, due after `delay`; it stays its group's head (strict FIFO). `failure`
    /// counts a failed attempt and keeps its text; `None` (another worker holds the turn) counts
    /// nothing.
    Retry {
        /// How long until it is due again.
        delay: Duration,
        /// Why, when the attempt failed.
        failure: Option<String>,
    },
    /// Set aside for an operator; its group moves on.
    DeadLetter {
        /// Why.
        reason: String,
    },
}

/// The local runner's consumer: a durable FIFO-per-group queue with visibility leases, like SQS
/// FIFO: at most one *group* is leased to one turn at a time, so one chat's messages are handled
/// in order; a job whose lease runs out (the worker died) is delivered again and counted as an
/// interruption. The full semantics are pinned by `crate::contract::queue`.
#[async_trait]
pub trait WorkQueue: JobSink {
    /// Leases up to `max` jobs, each the oldest job (not dead) of a group that has no live lease,
    /// if it is due.
    async fn receive(&self, max: usize, now: DateTime<Utc>, visibility: Duration) -> StoreResult<Vec<Delivery>>;

    /// Leases up to `max` further due jobs of `group`, enqueued after the group's last live-leased
    /// job, in order, stopping at the first job that is not due; nothing when nobody holds the
    /// group. This is how messages a customer wrote while the bot was thinking are folded into one
    /// turn.
    async fn receive_more(&self, group: &GroupId, max: usize, now: DateTime<Utc>, visibility: Duration) -> StoreResult<Vec<Delivery>>;

    /// Extends a lease (a heartbeat during a long bot call).
    async fn extend(&self, receipt: &Receipt, now: DateTime<Utc>, visibility: Duration) -> StoreResult<()>;

    /// Applies what was decided about a delivered job.
    async fn settle(&self, receipt: &Receipt, settle: &Settle, now: DateTime<Utc>) -> StoreResult<()>;

    /// When the next job may become deliverable (a delayed head's due time, a live lease's end),
    /// `None` when nothing is waiting: lets a dispatcher sleep exactly as long as needed.
    async fn next_due(&self, now: DateTime<Utc>) -> StoreResult<Option<DateTime<Utc>>>;

    /// Gauges at `now`.
    async fn depth(&self, now: DateTime<Utc>) -> StoreResult<QueueDepth>;
}

/// Queue gauges.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueDepth {
    /// Waiting for a worker (due, or delayed by a retry).
    pub ready: u64,
    /// Held by a live lease.
    pub in_flight: u64,
    /// Set aside; needs an operator.
    pub dead: u64,
    /// When the oldest job still to be finished (waiting or leased) was received: the queue's age.
    pub oldest_received_at: Option<DateTime<Utc>>,
}

/// What a deep health check can learn about a queue: its age when the backend tracks it (SQLite
/// and memory do; SQS only reports it to CloudWatch as `ApproximateAgeOfOldestMessage`, not as a
/// queue attribute), and how many jobs wait.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueGauge {
    /// Jobs waiting or in flight, as far as the backend knows (SQS: approximate).
    pub pending: Option<u64>,
    /// When the oldest job still to be finished was received, when the backend knows.
    pub oldest_received_at: Option<DateTime<Utc>>,
}

/// Reads a queue's [`QueueGauge`] for the deep health check (`crate::usecase::health`).
#[async_trait]
pub trait QueueAge: Send + Sync {
    /// The gauge at `now`.
    async fn gauge(&self, now: DateTime<Utc>) -> StoreResult<QueueGauge>;
}

/// Every [`WorkQueue`] knows its age from [`WorkQueue::depth`].
pub struct WorkQueueAge<'a>(pub &'a dyn WorkQueue);

impl std::fmt::Debug for WorkQueueAge<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WorkQueueAge")
    }
}

#[async_trait]
impl QueueAge for WorkQueueAge<'_> {
    async fn gauge(&self, now: DateTime<Utc>) -> StoreResult<QueueGauge> {
        let d = self.0.depth(now).await?;
        Ok(QueueGauge { pending: Some(d.ready + d.in_flight), oldest_received_at: d.oldest_received_at })
    }
}

/// A job set aside after its turn was given up.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// The job.
    pub job: Job,
    /// Why it was set aside.
    pub reason: String,
    /// Failed attempts.
    pub failures: u32,
    /// Interrupted deliveries.
    pub interruptions: u32,
    /// When.
    pub dead_at: DateTime<Utc>,
}

/// The dead-letter store: what was given up, and putting it back.
#[async_trait]
pub trait DeadLetters: Send + Sync {
    /// Up to `limit` dead letters, oldest first.
    async fn dead_letters(&self, limit: usize) -> StoreResult<Vec<DeadLetter>>;

    /// Puts dead-lettered jobs back on the queue as new (counters reset), all of them or those with
    /// the given keys; returns the keys put back. The caller reopens the keys in the idempotency
    /// store first (`crate::usecase::job::redrive`).
    async fn redrive(&self, keys: Option<&[DedupKey]>, now: DateTime<Utc>) -> StoreResult<Vec<DedupKey>>;
}
