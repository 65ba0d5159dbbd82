//! The job queue in memory: jobs in enqueue order, leases with receipts, and the set of keys seen.
//!
//! A lease is "live" while `until > now`; from `until` on the job is deliverable again, but the old
//! receipt keeps working (ack, extend, retry) until someone else receives the job, because only
//! then is the lease really taken over. Every delivery gets a fresh receipt, so a stale receipt can
//! never act on a newer delivery.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{MemoryStore, after, lock};
use crate::domain::event::{GroupId, Job};
use crate::domain::ids::DedupKey;
use crate::ports::{Delivery, Enqueued, JobQueue, QueueDepth, Receipt, Requeued, StoreError, StoreResult};

#[derive(Debug, Default)]
pub(super) struct State {
    /// Jobs still in the queue (waiting, leased or dead), by enqueue sequence number.
    jobs: BTreeMap<u64, Entry>,
    /// Every key ever enqueued, with its enqueue time, until purged: the de-duplication record,
    /// which outlives the job itself.
    keys: HashMap<DedupKey, DateTime<Utc>>,
    next_seq: u64,
    next_lease: u64,
}

#[derive(Debug)]
struct Entry {
    job: Job,
    available_at: DateTime<Utc>,
    attempt: u32,
    lease: Option<Lease>,
    dead: bool,
}

#[derive(Debug)]
struct Lease {
    receipt: Receipt,
    until: DateTime<Utc>,
}

impl Entry {
    fn live_lease(&self, now: DateTime<Utc>) -> bool {
        self.lease.as_ref().is_some_and(|l| l.until > now)
    }

    /// Whether a receive may lease it now: waiting and due, or leased by someone whose lease ran out.
    fn deliverable(&self, now: DateTime<Utc>) -> bool {
        !self.dead
            && match &self.lease {
                Some(l) => l.until <= now,
                None => self.available_at <= now,
            }
    }
}

impl State {
    fn lease(&mut self, seq: u64, now: DateTime<Utc>, visibility: Duration) -> Option<Delivery> {
        self.next_lease += 1;
        let receipt = Receipt(format!("mem-{seq}-{}", self.next_lease));
        let entry = self.jobs.get_mut(&seq)?;
        entry.attempt += 1;
        entry.lease = Some(Lease { receipt: receipt.clone(), until: after(now, visibility) });
        Some(Delivery { job: entry.job.clone(), receipt, attempt: entry.attempt })
    }

    fn by_receipt(&mut self, receipt: &Receipt) -> StoreResult<(u64, &mut Entry)> {
        self.jobs.iter_mut().find(|(_, e)| e.lease.as_ref().is_some_and(|l| &l.receipt == receipt)).map(|(seq, e)| (*seq, e)).ok_or(StoreError::LeaseLost)
    }
}

impl MemoryStore {
    /// Forgets the de-duplication record of jobs enqueued before `cutoff` that have left the queue
    /// (acked); returns how many. Keys of jobs still queued, leased or dead are kept.
    pub fn purge_queue_keys_before(&self, cutoff: DateTime<Utc>) -> u64 {
        let mut state = lock(&self.queue);
        let queued: HashSet<DedupKey> = state.jobs.values().map(|e| e.job.key.clone()).collect();
        let before = state.keys.len();
        state.keys.retain(|k, at| *at >= cutoff || queued.contains(k));
        (before - state.keys.len()) as u64
    }
}

#[async_trait]
impl JobQueue for MemoryStore {
    async fn enqueue(&self, job: &Job, now: DateTime<Utc>) -> StoreResult<Enqueued> {
        let mut state = lock(&self.queue);
        if state.keys.contains_key(&job.key) {
            return Ok(Enqueued::Duplicate);
        }
        state.keys.insert(job.key.clone(), now);
        state.next_seq += 1;
        let seq = state.next_seq;
        state.jobs.insert(seq, Entry { job: job.clone(), available_at: now, attempt: 0, lease: None, dead: false });
        Ok(Enqueued::New)
    }

    async fn receive(&self, max: usize, now: DateTime<Utc>, visibility: Duration) -> StoreResult<Vec<Delivery>> {
        let mut state = lock(&self.queue);
        let blocked: HashSet<GroupId> = state.jobs.values().filter(|e| e.live_lease(now)).map(|e| e.job.group.clone()).collect();
        // The head of each group is its oldest job that is not dead; the group delivers only if
        // that head is deliverable (strict FIFO: a delayed head holds back the rest).
        let mut seen: HashSet<&GroupId> = HashSet::new();
        let mut picked = Vec::new();
        for (seq, e) in &state.jobs {
            if picked.len() >= max {
                break;
            }
            if e.dead || !seen.insert(&e.job.group) {
                continue;
            }
            if !blocked.contains(&e.job.group) && e.deliverable(now) {
                picked.push(*seq);
            }
        }
        Ok(picked.into_iter().filter_map(|seq| state.lease(seq, now, visibility)).collect())
    }

    async fn receive_more(&self, group: &GroupId, max: usize, now: DateTime<Utc>, visibility: Duration) -> StoreResult<Vec<Delivery>> {
        let mut state = lock(&self.queue);
        let in_group = |e: &&Entry| &e.job.group == group && !e.dead;
        let Some(last_leased) = state.jobs.iter().filter(|(_, e)| in_group(e) && e.live_lease(now)).map(|(seq, _)| *seq).max() else {
            // The caller does not hold this group: it must `receive` its head first.
            return Ok(Vec::new());
        };
        let picked: Vec<u64> =
            state.jobs.range(last_leased + 1..).filter(|(_, e)| in_group(e)).take_while(|(_, e)| e.deliverable(now)).take(max).map(|(seq, _)| *seq).collect();
        Ok(picked.into_iter().filter_map(|seq| state.lease(seq, now, visibility)).collect())
    }

    async fn extend(&self, receipt: &Receipt, now: DateTime<Utc>, visibility: Duration) -> StoreResult<()> {
        let mut state = lock(&self.queue);
        let (_, entry) = state.by_receipt(receipt)?;
        entry.lease = Some(Lease { receipt: receipt.clone(), until: after(now, visibility) });
        Ok(())
    }

    async fn ack(&self, receipt: &Receipt) -> StoreResult<()> {
        let mut state = lock(&self.queue);
        let (seq, _) = state.by_receipt(receipt)?;
        state.jobs.remove(&seq);
        Ok(())
    }

    async fn retry(&self, receipt: &Receipt, now: DateTime<Utc>, delay: Duration, max_attempts: u32, _error: &str) -> StoreResult<Requeued> {
        let mut state = lock(&self.queue);
        let (_, entry) = state.by_receipt(receipt)?;
        entry.lease = None;
        if entry.attempt >= max_attempts {
            entry.dead = true;
            return Ok(Requeued::DeadLettered);
        }
        entry.available_at = after(now, delay);
        Ok(Requeued::Later)
    }

    async fn depth(&self) -> StoreResult<QueueDepth> {
        let state = lock(&self.queue);
        let mut d = QueueDepth::default();
        for e in state.jobs.values() {
            match (e.dead, &e.lease) {
                (true, _) => d.dead += 1,
                (false, Some(_)) => d.in_flight += 1,
                (false, None) => d.ready += 1,
            }
        }
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::{job, t};

    #[tokio::test]
    async fn purged_keys_of_acked_jobs_can_be_enqueued_again() -> Result<(), StoreError> {
        let q = MemoryStore::new();
        q.enqueue(&job("g", "acked"), t(0)).await?;
        q.enqueue(&job("h", "waiting"), t(0)).await?;
        let d = q.receive(10, t(1), Duration::from_secs(30)).await?;
        let acked = d.iter().find(|d| d.job.key.as_str() == "acked").ok_or(StoreError::LeaseLost)?;
        q.ack(&acked.receipt).await?;

        assert_eq!(q.purge_queue_keys_before(t(0)), 0, "the cutoff is exclusive");
        assert_eq!(q.purge_queue_keys_before(t(10)), 1, "only the acked job's key goes");
        assert_eq!(q.enqueue(&job("g", "acked"), t(11)).await?, Enqueued::New);
        assert_eq!(q.enqueue(&job("h", "waiting"), t(11)).await?, Enqueued::Duplicate);
        Ok(())
    }
}
