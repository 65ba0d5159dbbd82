//! A turn that stops between marking one key done and the next (a crash, a lost store call): the
//! retry never answers any of its messages a second time.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::tests::{customer, owner, world};
use super::{Owner, process};
use crate::domain::ids::DedupKey;
use crate::domain::turn::{TurnOutcome, TurnProgress};
use crate::memory::MemoryStore;
use crate::ports::{Admission, Claim, Clock as _, IdempotencyStore, RecordPhase, StoreError, StoreResult, TurnLog as _};

/// The memory store, with the `complete` calls of one key numbered in `fail` (from 1) failing, as
/// if the process died there.
struct CompleteFails {
    inner: Arc<MemoryStore>,
    key: DedupKey,
    fail: Vec<usize>,
    calls: AtomicUsize,
}

impl CompleteFails {
    fn new(inner: Arc<MemoryStore>, key: &DedupKey, fail: &[usize]) -> Arc<Self> {
        Arc::new(Self { inner, key: key.clone(), fail: fail.to_vec(), calls: AtomicUsize::new(0) })
    }
}

#[async_trait]
impl IdempotencyStore for CompleteFails {
    async fn admit(&self, key: &DedupKey, now: DateTime<Utc>) -> StoreResult<Admission> {
        self.inner.admit(key, now).await
    }
    async fn unadmit(&self, key: &DedupKey) -> StoreResult<()> {
        self.inner.unadmit(key).await
    }
    async fn claim(&self, key: &DedupKey, owner: &str, now: DateTime<Utc>, lease: Duration) -> StoreResult<Claim> {
        self.inner.claim(key, owner, now, lease).await
    }
    async fn checkpoint(&self, key: &DedupKey, owner: &str, progress: &TurnProgress, now: DateTime<Utc>, lease: Duration) -> StoreResult<()> {
        self.inner.checkpoint(key, owner, progress, now, lease).await
    }
    async fn complete(&self, key: &DedupKey, owner: &str, outcome: &TurnOutcome, now: DateTime<Utc>) -> StoreResult<()> {
        if *key == self.key && self.fail.contains(&(self.calls.fetch_add(1, Ordering::SeqCst) + 1)) {
            return Err(StoreError::Backend("the process died here".into()));
        }
        self.inner.complete(key, owner, outcome, now).await
    }
    async fn release(&self, key: &DedupKey, owner: &str) -> StoreResult<()> {
        self.inner.release(key, owner).await
    }
    async fn reopen(&self, key: &DedupKey) -> StoreResult<()> {
        self.inner.reopen(key).await
    }
    async fn purge_before(&self, cutoff: DateTime<Utc>) -> StoreResult<u64> {
        self.inner.purge_before(cutoff).await
    }
    async fn phase(&self, key: &DedupKey) -> StoreResult<Option<RecordPhase>> {
        self.inner.phase(key).await
    }
}

/// Found by the AWS path's fault harness (a worker invocation killed after the post, while the
/// turn's keys were being marked done): the primary was done first, the folded messages were left
/// claimed with nothing saved, and each was asked again alone after its lease.
#[tokio::test]
async fn a_folded_turn_stopped_between_its_keys_is_resumed_whole_and_answered_once() {
    for stop_at in 0..3 {
        let mut w = world();
        let jobs = [customer(1, "a"), customer(2, "b"), customer(3, "c")];
        w.deps.idempotency = CompleteFails::new(w.store.clone(), &jobs[stop_at].key, &[1]);
        let r = process(&w.deps, &jobs, &owner()).await;
        assert_eq!(w.portal.posts(), ["echo: a\nb\nc"], "stopped at key {stop_at}: the reply went out");
        // SQS redelivers the group from its first record not done, in order.
        let from = r.finished.iter().position(|f| !f).expect("the turn did not finish");
        let again = process(&w.deps, &jobs[from..], &Owner::new("second-worker")).await;
        assert!(again.finished.iter().all(|f| *f), "stopped at key {stop_at}: {again:?}");
        assert_eq!(w.portal.posts(), ["echo: a\nb\nc"], "stopped at key {stop_at}: nothing answered twice");
        assert_eq!(w.bot.texts(), ["a\nb\nc"], "stopped at key {stop_at}: the bot was asked once");
        let records = w.store.recent(10).await.unwrap();
        assert_eq!(records.len(), 1, "stopped at key {stop_at}: the resumed turn is logged once: {records:?}");
    }
}

/// Found by the same harness: an attempt that resumed a folded turn took over a folded message the
/// dead attempt still held, and died between that claim and its complete. The claim's lease is
/// bounded by the attempt's deadline (as every claim), so the next attempt after that deadline
/// finishes the turn instead of failing with `LeaseLost` for the whole `lease`.
#[tokio::test]
async fn a_message_taken_over_by_an_attempt_that_died_is_free_again_after_its_deadline() {
    let mut w = world();
    let jobs = [customer(1, "a"), customer(2, "b"), customer(3, "c")];
    // Calls of complete(3): the first attempt's (dies), the second's (LeaseLost: the first attempt
    // holds it), the second's after taking it over (dies).
    w.deps.idempotency = CompleteFails::new(w.store.clone(), &jobs[2].key, &[1, 3]);
    let attempt = |name: &str| Owner { id: name.into(), deadline: Some(w.clock.now() + chrono::Duration::seconds(3)) };
    for name in ["first", "second"] {
        let r = process(&w.deps, &jobs, &attempt(name)).await;
        assert!(r.finished.iter().any(|f| !f), "{name}: {r:?}");
        w.clock.advance(Duration::from_secs(4));
    }
    let r = process(&w.deps, &jobs, &attempt("third")).await;
    assert!(r.finished.iter().all(|f| *f), "the third attempt, after the second's deadline: {r:?}");
    assert_eq!(w.portal.posts(), ["echo: a\nb\nc"]);
}
