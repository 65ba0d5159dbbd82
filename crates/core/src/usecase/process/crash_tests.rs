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
use crate::domain::ids::{DedupKey, MessageId};
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

/// Found by the AWS path's harness under overload: a folded turn's first record reached the
/// queue's redrive limit and was dead-lettered after the answer went out, while a folded message
/// not yet marked done came back alone. It resumes the turn through its primary's saved
/// composition instead of being asked about alone and answered a second time.
#[tokio::test]
async fn a_folded_message_back_without_its_dead_lettered_first_is_not_answered_again() {
    let mut w = world();
    let jobs = [customer(1, "a"), customer(2, "b"), customer(3, "c")];
    // Keys are marked done folded first, primary last: the attempt stops with "b" done and "c"
    // and "a" not.
    w.deps.idempotency = CompleteFails::new(w.store.clone(), &jobs[2].key, &[1]);
    let r = process(&w.deps, &jobs, &owner()).await;
    assert!(r.stopped.is_some(), "{r:?}");
    assert!(matches!(w.store.phase(&jobs[1].key).await.unwrap(), Some(RecordPhase::Done { .. })));
    assert_eq!(w.portal.posts(), ["echo: a\nb\nc"]);
    // "a"'s record is in the dead-letter queue: only "c" comes back.
    let again = process(&w.deps, &jobs[2..], &Owner::new("second-worker")).await;
    assert_eq!(again.finished, [true], "{again:?}");
    assert_eq!(w.portal.posts(), ["echo: a\nb\nc"], "nothing answered twice");
    assert_eq!(w.bot.texts(), ["a\nb\nc"], "the bot was asked once");
    for job in &jobs {
        assert!(matches!(w.store.phase(&job.key).await.unwrap(), Some(RecordPhase::Done { .. })), "{} is done", job.key);
    }
    assert_eq!(w.store.recent(10).await.unwrap().len(), 1, "one turn in the log");
    // The dead-lettered record, redriven later, finds its turn done.
    let redriven = process(&w.deps, &jobs[..1], &Owner::new("redrive")).await;
    assert_eq!(redriven.finished, [true]);
    assert_eq!(w.portal.posts(), ["echo: a\nb\nc"]);
}

/// The same message back while another attempt holds its turn: given back untouched, for that
/// attempt to mark; the bot is not asked.
#[tokio::test]
async fn a_folded_message_whose_turn_someone_holds_waits_for_it() {
    let mut w = world();
    let jobs = [customer(1, "a"), customer(2, "b"), customer(3, "c")];
    w.deps.idempotency = CompleteFails::new(w.store.clone(), &jobs[2].key, &[1]);
    process(&w.deps, &jobs, &owner()).await;
    let now = w.clock.now();
    assert!(matches!(w.store.claim(&jobs[0].key, "holder", now, Duration::from_secs(60)).await.unwrap(), Claim::Resumed(_)));
    let again = process(&w.deps, &jobs[2..], &Owner::new("second-worker")).await;
    assert_eq!(again.finished, [false], "{again:?}");
    assert!(matches!(again.stopped, Some(super::Stopped::Busy { .. })), "{again:?}");
    assert_eq!(w.bot.texts(), ["a\nb\nc"], "the bot was not asked again");
    assert_eq!(w.store.phase(&jobs[2].key).await.unwrap(), Some(RecordPhase::Released), "given back for the holder to mark");
}

/// A folded message whose turn finished without marking it (its first record completed the turn
/// elsewhere): marked done with the turn's outcome, nothing asked or posted.
#[tokio::test]
async fn a_folded_message_whose_turn_is_done_is_marked_done_with_it() {
    let w = world();
    let jobs = [customer(1, "a"), customer(3, "c")];
    let (now, lease) = (w.clock.now(), Duration::from_secs(60));
    for job in &jobs {
        w.store.claim(&job.key, "dead", now, lease).await.unwrap();
    }
    let pointer = TurnProgress { part_of: Some(jobs[0].key.clone()), ..TurnProgress::default() };
    w.store.checkpoint(&jobs[1].key, "dead", &pointer, now, lease).await.unwrap();
    let outcome = TurnOutcome::Answered { reply_ids: vec![MessageId::new(77).unwrap()] };
    w.store.complete(&jobs[0].key, "dead", &outcome, now).await.unwrap();
    w.clock.advance(Duration::from_secs(61));
    let r = process(&w.deps, &jobs[1..], &owner()).await;
    assert_eq!(r.finished, [true], "{r:?}");
    assert!(w.bot.texts().is_empty() && w.portal.posts().is_empty());
    assert!(matches!(w.store.phase(&jobs[1].key).await.unwrap(), Some(RecordPhase::Done { outcome: o, .. }) if o == outcome));
}
