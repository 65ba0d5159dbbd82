//! The `JobSink` + `WorkQueue` + `DeadLetters` contract: SQS-FIFO-like delivery with per-group
//! order, for the local runner.
//!
//! Semantics pinned here:
//! - `send` stores a job available at `now`, unless a job with the same key is still in the queue
//!   (waiting, leased or dead): a copy is dropped. After the job was acked, the key may be sent
//!   again (the idempotency store, not the queue, remembers what was done).
//! - A lease is live while `until > now`. A group is *held* while one of its jobs has a live lease.
//! - The *head* of a group is its oldest job that is not dead. `receive` leases, for every group
//!   that is not held, its head if the head is due (waiting with `available_at <= now`, or leased
//!   with an expired lease); a head delayed by a retry holds its group back (strict FIFO). Groups
//!   are served oldest head first, at most `max` jobs.
//! - `receive_more(group)` serves the fold of a caller that holds `group`: it leases, in order, the
//!   due jobs enqueued after the group's last live-leased job, stopping at the first job that is
//!   not due, at most `max`. A group nobody holds yields nothing (its head comes first).
//! - Every delivery gets a fresh receipt; a receipt works (extend, settle) until the job is
//!   delivered again, after that it is `LeaseLost`. A delivery of a job whose previous lease was
//!   never settled (it expired) counts one more `interruption`.
//! - `settle(Retry { delay, failure })` drops the lease and makes the job due at `now + delay`
//!   (still its group's head); `failure: Some` counts one more failure and keeps the text.
//!   `settle(DeadLetter)` sets the job aside (never delivered, not its group's head any more);
//!   `settle(Ack)` removes it.
//! - `next_due(now)` is the earliest due time among group heads and live leases' ends; `None` for
//!   an empty queue.
//! - `depth(now)`: `ready` (waiting or with an expired lease), `in_flight` (live leases), `dead`,
//!   and the oldest `received_at` among jobs not dead.
//! - `dead_letters` lists dead jobs oldest first; `redrive` makes them waiting again at `now` with
//!   counters reset and returns their keys.

mod burst;
mod delivery;

pub use burst::*;
pub use delivery::*;

use std::time::Duration;

use super::{job, run_each, t};
use crate::domain::event::GroupId;
use crate::ports::{Delivery, QueueDepth, Receipt, Settle, WorkQueue};

const VIS: Duration = Duration::from_secs(30);
const DELAY: Duration = Duration::from_secs(10);

fn keys(deliveries: &[Delivery]) -> Vec<&str> {
    deliveries.iter().map(|d| d.job.key.as_str()).collect()
}

fn group(name: &str) -> GroupId {
    GroupId::from_stored(name.to_owned())
}

fn depth(ready: u64, in_flight: u64, dead: u64) -> (u64, u64, u64) {
    (ready, in_flight, dead)
}

fn counts(d: QueueDepth) -> (u64, u64, u64) {
    (d.ready, d.in_flight, d.dead)
}

async fn send_all<Q: WorkQueue + ?Sized>(q: &Q, jobs: &[(&str, &str)]) {
    for (g, k) in jobs {
        q.send(&job(g, k), t(0)).await.expect("send");
    }
}

async fn ack<Q: WorkQueue + ?Sized>(q: &Q, r: &Receipt) {
    q.settle(r, &Settle::Ack, t(0)).await.expect("ack");
}

fn failed(delay: Duration, why: &str) -> Settle {
    Settle::Retry { delay, failure: Some(why.to_owned()) }
}

/// Runs every behaviour of this module, each on a fresh adapter from `fresh`.
pub async fn run_all<S, F, Fut>(mut fresh: F)
where
    S: WorkQueue + crate::ports::DeadLetters + 'static,
    F: FnMut() -> Fut,
    Fut: Future<Output = S>,
{
    run_each!(fresh:
        delivers_the_job_as_enqueued,
        send_drops_a_copy_of_a_queued_job,
        groups_are_fifo,
        groups_are_served_oldest_head_first,
        expired_lease_redelivers_as_an_interruption,
        extend_keeps_the_lease,
        ack_removes_the_job,
        retry_delays_holds_the_group_and_counts_failures,
        dead_letter_unblocks_the_group_and_redrive_puts_it_back,
        next_due_says_when_to_look_again,
        receive_more_extends_a_held_group,
        receive_more_stops_at_a_delayed_job,
        receive_more_redelivers_expired_burst,
        any_live_lease_holds_the_group,
    );
    run_each!(fresh => arc: concurrent_sends_store_one_job, concurrent_receivers_share_nothing);
}
