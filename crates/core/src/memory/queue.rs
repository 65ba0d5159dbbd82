//! The job queue in memory: jobs in enqueue order, leases with receipts, dead letters.
//!
//! A lease is "live" while `until > now`; from `until` on the job is deliverable again (and its next
//! delivery counts an interruption), but the old receipt keeps working (extend, settle) until
//! someone else receives the job, because only then is the lease really taken over. Every delivery
//! gets a fresh receipt, so a stale receipt can never act on a newer delivery.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{MemoryStore, after, lock};
use crate::domain::event::{GroupId, Job};
use crate::domain::ids::DedupKey;
use crate::ports::{DeadLetter, DeadLetters, Delivery, JobSink, QueueDepth, Receipt, Settle, StoreError, StoreResult, WorkQueue};

#[derive(Debug, Default)]
pub(super) struct State {
    /// Jobs still in the queue (waiting, leased or dead), by enqueue sequence number.
    pub(super) jobs: BTreeMap<u64, Entry>,
    next_seq: u64,
    next_lease: u64,
}

#[derive(Debug)]
pub(super) struct Entry {
    pub(super) job: Job,
    available_at: DateTime<Utc>,
    failures: u32,
    interruptions: u32,
    last_error: Option<String>,
    lease: Option<Lease>,
    pub(super) dead: Option<(String, DateTime<Utc>)>,
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

    /// When a receive may lease it: at `available_at` when waiting, at the lease's end when leased.
    fn due_at(&self) -> DateTime<Utc> {
        self.lease.as_ref().map_or(self.available_at, |l| l.until)
    }
}

impl State {
    fn lease(&mut self, seq: u64, now: DateTime<Utc>, visibility: Duration) -> Option<Delivery> {
        self.next_lease += 1;
        let receipt = Receipt(format!("mem-{seq}-{}", self.next_lease));
        let entry = self.jobs.get_mut(&seq)?;
        // Delivered again while still leased: the holder stopped renewing its lease (it died).
        if entry.lease.is_some() {
            entry.interruptions += 1;
        }
        entry.lease = Some(Lease { receipt: receipt.clone(), until: after(now, visibility) });
        Some(Delivery { job: entry.job.clone(), receipt, failures: entry.failures, interruptions: entry.interruptions, last_error: entry.last_error.clone() })
    }

    fn by_receipt(&mut self, receipt: &Receipt) -> StoreResult<(u64, &mut Entry)> {
        self.jobs.iter_mut().find(|(_, e)| e.lease.as_ref().is_some_and(|l| &l.receipt == receipt)).map(|(seq, e)| (*seq, e)).ok_or(StoreError::LeaseLost)
    }

    /// The head (oldest job not dead) of each group, in order.
    fn heads(&self) -> Vec<u64> {
        let mut seen: HashSet<&GroupId> = HashSet::new();
        self.jobs.iter().filter(|(_, e)| e.dead.is_none() && seen.insert(&e.job.group)).map(|(seq, _)| *seq).collect()
    }

    fn held(&self, now: DateTime<Utc>) -> HashSet<GroupId> {
        self.jobs.values().filter(|e| e.live_lease(now)).map(|e| e.job.group.clone()).collect()
    }
}

#[async_trait]
impl JobSink for MemoryStore {
    async fn send(&self, job: &Job, now: DateTime<Utc>) -> StoreResult<()> {
        let mut state = lock(&self.queue);
        if state.jobs.values().any(|e| e.job.key == job.key) {
            return Ok(());
        }
        state.next_seq += 1;
        let seq = state.next_seq;
        state.jobs.insert(seq, Entry { job: job.clone(), available_at: now, failures: 0, interruptions: 0, last_error: None, lease: None, dead: None });
        Ok(())
    }
}

#[async_trait]
impl WorkQueue for MemoryStore {
    async fn receive(&self, max: usize, now: DateTime<Utc>, visibility: Duration) -> StoreResult<Vec<Delivery>> {
        let mut state = lock(&self.queue);
        let held = state.held(now);
        let picked: Vec<u64> =
            state.heads().into_iter().filter(|seq| state.jobs.get(seq).is_some_and(|e| !held.contains(&e.job.group) && e.due_at() <= now)).take(max).collect();
        Ok(picked.into_iter().filter_map(|seq| state.lease(seq, now, visibility)).collect())
    }

    async fn receive_more(&self, group: &GroupId, max: usize, now: DateTime<Utc>, visibility: Duration) -> StoreResult<Vec<Delivery>> {
        let mut state = lock(&self.queue);
        let in_group = |e: &&Entry| &e.job.group == group && e.dead.is_none();
        let Some(last_leased) = state.jobs.iter().filter(|(_, e)| in_group(e) && e.live_lease(now)).map(|(seq, _)| *seq).max() else {
            // The caller does not hold this group: its head must be received first.
            return Ok(Vec::new());
        };
        let picked: Vec<u64> =
            state.jobs.range(last_leased + 1..).filter(|(_, e)| in_group(e)).take_while(|(_, e)| e.due_at() <= now).take(max).map(|(seq, _)| *seq).collect();
        Ok(picked.into_iter().filter_map(|seq| state.lease(seq, now, visibility)).collect())
    }

    async fn extend(&self, receipt: &Receipt, now: DateTime<Utc>, visibility: Duration) -> StoreResult<()> {
        let mut state = lock(&self.queue);
        let (_, entry) = state.by_receipt(receipt)?;
        entry.lease = Some(Lease { receipt: receipt.clone(), until: after(now, visibility) });
        Ok(())
    }

    async fn settle(&self, receipt: &Receipt, settle: &Settle, now: DateTime<Utc>) -> StoreResult<()> {
        let mut state = lock(&self.queue);
        let (seq, entry) = state.by_receipt(receipt)?;
        match settle {
            Settle::Ack => {
                state.jobs.remove(&seq);
            }
            Settle::Retry { delay, failure } => {
                entry.lease = None;
                entry.available_at = after(now, *delay);
                if let Some(error) = failure {
                    entry.failures += 1;
                    entry.last_error = Some(error.clone());
                }
            }
            Settle::DeadLetter { reason } => {
                entry.lease = None;
                entry.dead = Some((reason.clone(), now));
            }
        }
        Ok(())
    }

    async fn next_due(&self, now: DateTime<Utc>) -> StoreResult<Option<DateTime<Utc>>> {
        let state = lock(&self.queue);
        let heads = state.heads().into_iter().filter_map(|seq| state.jobs.get(&seq)).map(Entry::due_at);
        let leases = state.jobs.values().filter(|e| e.live_lease(now)).map(Entry::due_at);
        Ok(heads.chain(leases).min())
    }

    async fn depth(&self, now: DateTime<Utc>) -> StoreResult<QueueDepth> {
        let state = lock(&self.queue);
        let mut d = QueueDepth::default();
        for e in state.jobs.values() {
            if e.dead.is_some() {
                d.dead += 1;
                continue;
            }
            if e.live_lease(now) {
                d.in_flight += 1;
            } else {
                d.ready += 1;
            }
            d.oldest_received_at = Some(d.oldest_received_at.map_or(e.job.received_at, |o| o.min(e.job.received_at)));
        }
        Ok(d)
    }
}

#[async_trait]
impl DeadLetters for MemoryStore {
    async fn dead_letters(&self, limit: usize) -> StoreResult<Vec<DeadLetter>> {
        let state = lock(&self.queue);
        let mut dead: Vec<(DateTime<Utc>, u64, DeadLetter)> = state
            .jobs
            .iter()
            .filter_map(|(seq, e)| {
                let (reason, at) = e.dead.clone()?;
                Some((at, *seq, DeadLetter { job: e.job.clone(), reason, failures: e.failures, interruptions: e.interruptions, dead_at: at }))
            })
            .collect();
        dead.sort_by_key(|(at, seq, _)| (*at, *seq));
        Ok(dead.into_iter().take(limit).map(|(_, _, d)| d).collect())
    }

    async fn redrive(&self, keys: Option<&[DedupKey]>, now: DateTime<Utc>) -> StoreResult<Vec<DedupKey>> {
        let mut state = lock(&self.queue);
        let mut out = Vec::new();
        for e in state.jobs.values_mut().filter(|e| e.dead.is_some() && keys.is_none_or(|k| k.contains(&e.job.key))) {
            e.dead = None;
            e.failures = 0;
            e.interruptions = 0;
            e.last_error = None;
            e.available_at = now;
            out.push(e.job.key.clone());
        }
        Ok(out)
    }
}
