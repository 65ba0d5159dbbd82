//! The `JobQueue` contract: SQS-FIFO-like delivery with per-group order.
//!
//! Semantics pinned here:
//! - `enqueue` stores a job available at `now`, unless its key was enqueued before: a key whose job
//!   is waiting, leased, dead or already acked is `Duplicate` (the adapter keeps acked keys for a
//!   retention period and purges them with an adapter-specific method).
//! - A lease is live while `until > now`. A group is *held* while one of its jobs has a live lease.
//! - The *head* of a group is its oldest job that is not dead. `receive` leases, for every group
//!   that is not held, its head if the head is due (waiting with `available_at <= now`, or leased
//!   with an expired lease); a head delayed by `retry` holds its group back (strict FIFO). Groups
//!   are served oldest head first, at most `max` jobs.
//! - `receive_more(group)` serves the burst window of a caller that holds `group`: it leases, in
//!   order, the due jobs enqueued after the group's last live-leased job, stopping at the first job
//!   that is not due, at most `max`. A group nobody holds yields nothing (its head comes first).
//! - Every delivery (either call) increments `attempt` and gets a fresh receipt. A receipt works
//!   (ack, extend, retry) until the job is delivered again; after that it is `LeaseLost`.
//! - `retry` drops the lease and makes the job due at `now + delay` (still its group's head), or
//!   dead-letters it when `attempt >= max_attempts`, which unblocks the group.
//! - `depth` counts jobs by state: `ready` (waiting, delayed ones included), `in_flight` (leased,
//!   until delivered again or given back — `depth` has no clock to tell expired leases apart), `dead`.

mod burst;
mod delivery;

pub use burst::*;
pub use delivery::*;

use std::time::Duration;

use super::{job, run_each, t};
use crate::domain::event::GroupId;
use crate::ports::{Delivery, Enqueued, JobQueue, QueueDepth};

const VIS: Duration = Duration::from_secs(30);
const DELAY: Duration = Duration::from_secs(10);

fn keys(deliveries: &[Delivery]) -> Vec<&str> {
    deliveries.iter().map(|d| d.job.key.as_str()).collect()
}

fn group(name: &str) -> GroupId {
    GroupId::from_stored(name.to_owned())
}

fn depth(ready: u64, in_flight: u64, dead: u64) -> QueueDepth {
    QueueDepth { ready, in_flight, dead }
}

async fn enqueue_all<Q: JobQueue + ?Sized>(q: &Q, jobs: &[(&str, &str)]) {
    for (g, k) in jobs {
        assert_eq!(q.enqueue(&job(g, k), t(0)).await.expect("enqueue"), Enqueued::New, "enqueue {k}");
    }
}

/// Runs every behaviour of this module, each on a fresh adapter from `fresh`.
pub async fn run_all<S, F, Fut>(mut fresh: F)
where
    S: JobQueue + 'static,
    F: FnMut() -> Fut,
    Fut: Future<Output = S>,
{
    run_each!(fresh:
        delivers_the_job_as_enqueued,
        enqueue_dedups_on_key_in_every_state,
        groups_are_fifo,
        groups_are_served_oldest_head_first,
        expired_lease_redelivers_with_new_receipt,
        extend_keeps_the_lease,
        ack_removes_the_job,
        retry_delays_and_holds_the_group,
        retry_dead_letters_after_max_attempts,
        receive_more_extends_a_held_group,
        receive_more_stops_at_a_delayed_job,
        receive_more_redelivers_expired_burst,
        any_live_lease_holds_the_group,
    );
    run_each!(fresh => arc: concurrent_enqueues_store_one_job, concurrent_receivers_share_nothing);
}
