//! The `IdempotencyStore` contract.
//!
//! Semantics pinned here (the port's doc comments say the same in fewer words):
//! - A lease is live while `until > now`; at `until` it has expired.
//! - A claim on a new key is `New`; on a done key `Done(outcome)`, forever (until purged); on
//!   another owner's live lease `InProgress { until }`.
//! - A claim on an expired lease takes the key over and is `Resumed(last checkpoint or default)`:
//!   the previous attempt died and may have done side effects.
//! - A claim by the holder of a live lease renews it and is `Resumed` the same way: the holder's
//!   previous attempt is over (a redelivered job after a retry), because an owner id names one
//!   sequential executor (a worker task, one Lambda invocation). Two attempts that may run at the
//!   same time must never share an owner id.
//! - A claim on a released key is `Resumed(saved progress)` if progress was saved, else `New`.
//! - The holder keeps the key until someone else takes it over, even after its lease expired:
//!   `checkpoint` (which also extends the lease), `complete` and `release` work until then and fail
//!   with `LeaseLost` after, or when called by anyone else.
//! - `complete` and `release` are idempotent for their owner (a retried call after a lost answer).
//! - `admit` is `New` for an unknown key and records it as queued; `Duplicate` for any known key.
//!   A claim on a queued key is `New`. `unadmit` removes a queued record only.
//! - `reopen` makes a done or leased key claimable again (done: no progress; leased: its progress).
//! - `purge_before` forgets done keys completed, and queued keys admitted, strictly before the
//!   cutoff; claimed keys stay.
//! - `phase` reads a key's phase (`None` when unknown) and changes nothing.

use std::sync::Arc;
use std::time::Duration;

use super::{all_at_once, key, run_each, t};
use crate::domain::ids::MessageId;
use crate::domain::turn::{HandoffReason, SavedAnswer, TurnOutcome, TurnProgress};
use crate::ports::{Admission, Claim, IdempotencyStore, RecordPhase, StoreError};

const LEASE: Duration = Duration::from_secs(30);

fn progress(sent: usize) -> TurnProgress {
    TurnProgress {
        answer: Some(SavedAnswer {
            chunks: vec!["Olá!".into(), "Como posso ajudar?".into()],
            handoff: false,
            profile: Some(serde_json::json!({"name": "Ana"})),
        }),
        sent,
        sending: true,
        posted_ids: (1..=sent as u64).filter_map(|n| MessageId::new(n).ok()).collect(),
        bot_attempts: 1,
        ..TurnProgress::default()
    }
}

fn answered() -> TurnOutcome {
    TurnOutcome::Answered { reply_ids: [7, 8].into_iter().filter_map(|n| MessageId::new(n).ok()).collect() }
}

fn is_lease_lost<T: std::fmt::Debug>(r: Result<T, StoreError>) -> bool {
    matches!(r, Err(StoreError::LeaseLost))
}

/// A new key is `New`; another owner's claim during the lease is `InProgress` with the lease's
/// end; other keys are unaffected.
pub async fn claim_new_then_in_progress<S: IdempotencyStore + ?Sized>(s: &S) {
    let k = key("idem:new");
    assert_eq!(s.claim(&k, "a", t(0), LEASE).await.expect("claim"), Claim::New);
    assert_eq!(s.claim(&k, "b", t(10), LEASE).await.expect("claim"), Claim::InProgress { until: t(30) });
    assert_eq!(s.claim(&k, "b", t(29), LEASE).await.expect("claim"), Claim::InProgress { until: t(30) });
    assert_eq!(s.claim(&key("idem:other"), "b", t(10), LEASE).await.expect("claim"), Claim::New);
}

/// The holder claiming again (its job came back after a retry) resumes from its own checkpoint,
/// or from the default, and its lease is renewed from `now`.
pub async fn holder_reclaim_resumes_and_renews<S: IdempotencyStore + ?Sized>(s: &S) {
    let k = key("idem:reclaim");
    s.claim(&k, "a", t(0), LEASE).await.expect("claim");
    assert_eq!(s.claim(&k, "a", t(5), LEASE).await.expect("claim"), Claim::Resumed(TurnProgress::default()));
    s.checkpoint(&k, "a", &progress(1), t(6), LEASE).await.expect("checkpoint");
    assert_eq!(s.claim(&k, "a", t(20), LEASE).await.expect("claim"), Claim::Resumed(progress(1)));
    assert_eq!(s.claim(&k, "b", t(49), LEASE).await.expect("claim"), Claim::InProgress { until: t(50) }, "renewed at t+20");
    s.complete(&k, "a", &TurnOutcome::Silent, t(21)).await.expect("the holder completes");
}

/// At the lease's end the key is taken over with `Resumed(default)` when nothing was checkpointed.
pub async fn expired_lease_resumes_from_default<S: IdempotencyStore + ?Sized>(s: &S) {
    let k = key("idem:expired");
    s.claim(&k, "a", t(0), LEASE).await.expect("claim");
    assert_eq!(s.claim(&k, "b", t(30), LEASE).await.expect("claim"), Claim::Resumed(TurnProgress::default()));
    assert_eq!(s.claim(&k, "c", t(31), LEASE).await.expect("claim"), Claim::InProgress { until: t(60) }, "b holds it now");
}

/// A checkpoint saves progress and extends the lease; the next owner resumes from the last one.
pub async fn expired_lease_resumes_from_last_checkpoint<S: IdempotencyStore + ?Sized>(s: &S) {
    let k = key("idem:checkpointed");
    s.claim(&k, "a", t(0), LEASE).await.expect("claim");
    s.checkpoint(&k, "a", &progress(1), t(2), LEASE).await.expect("checkpoint");
    s.checkpoint(&k, "a", &progress(2), t(5), LEASE).await.expect("checkpoint");
    assert_eq!(s.claim(&k, "b", t(34), LEASE).await.expect("claim"), Claim::InProgress { until: t(35) });
    assert_eq!(s.claim(&k, "b", t(35), LEASE).await.expect("claim"), Claim::Resumed(progress(2)));
}

/// The holder may checkpoint after its lease expired as long as nobody took the key over; the
/// checkpoint renews the lease from `now`.
pub async fn late_checkpoint_without_takeover_renews<S: IdempotencyStore + ?Sized>(s: &S) {
    let k = key("idem:late");
    s.claim(&k, "a", t(0), LEASE).await.expect("claim");
    s.checkpoint(&k, "a", &progress(1), t(60), LEASE).await.expect("late checkpoint");
    assert_eq!(s.claim(&k, "b", t(61), LEASE).await.expect("claim"), Claim::InProgress { until: t(90) });
}

/// Checkpoint, complete and release by anyone but the holder fail with `LeaseLost`, including on
/// unknown keys, and leave the holder's lease alone.
pub async fn non_owner_is_lease_lost<S: IdempotencyStore + ?Sized>(s: &S) {
    let k = key("idem:owned");
    s.claim(&k, "a", t(0), LEASE).await.expect("claim");
    assert!(is_lease_lost(s.checkpoint(&k, "b", &progress(1), t(1), LEASE).await));
    assert!(is_lease_lost(s.complete(&k, "b", &TurnOutcome::Silent, t(1)).await));
    assert!(is_lease_lost(s.release(&k, "b").await));
    let unknown = key("idem:unknown");
    assert!(is_lease_lost(s.checkpoint(&unknown, "a", &progress(1), t(1), LEASE).await));
    assert!(is_lease_lost(s.complete(&unknown, "a", &TurnOutcome::Silent, t(1)).await));
    assert!(is_lease_lost(s.release(&unknown, "a").await));
    assert_eq!(s.claim(&k, "c", t(1), LEASE).await.expect("claim"), Claim::InProgress { until: t(30) });
    s.complete(&k, "a", &TurnOutcome::Silent, t(2)).await.expect("the holder completes");
}

/// Once another owner took the key over, the old owner's calls fail with `LeaseLost` and change
/// nothing; the new owner carries on.
pub async fn taken_over_owner_is_lease_lost<S: IdempotencyStore + ?Sized>(s: &S) {
    let k = key("idem:takeover");
    s.claim(&k, "a", t(0), LEASE).await.expect("claim");
    s.checkpoint(&k, "a", &progress(1), t(1), LEASE).await.expect("checkpoint");
    assert_eq!(s.claim(&k, "b", t(40), LEASE).await.expect("claim"), Claim::Resumed(progress(1)));
    assert!(is_lease_lost(s.checkpoint(&k, "a", &progress(2), t(41), LEASE).await));
    assert!(is_lease_lost(s.complete(&k, "a", &TurnOutcome::Silent, t(41)).await));
    assert!(is_lease_lost(s.release(&k, "a").await));
    s.checkpoint(&k, "b", &progress(2), t(42), LEASE).await.expect("the new owner checkpoints");
    assert_eq!(s.claim(&k, "c", t(72), LEASE).await.expect("claim"), Claim::Resumed(progress(2)));
}

/// After `complete`, every claim is `Done(outcome)`, whoever asks and however late; a repeated
/// complete by the owner is accepted, one by anyone else is `LeaseLost`.
pub async fn complete_makes_claims_done<S: IdempotencyStore + ?Sized>(s: &S) {
    let k = key("idem:done");
    s.claim(&k, "a", t(0), LEASE).await.expect("claim");
    s.complete(&k, "a", &answered(), t(5)).await.expect("complete");
    for (owner, at) in [("b", t(6)), ("a", t(7)), ("c", t(86_400 * 30))] {
        assert_eq!(s.claim(&k, owner, at, LEASE).await.expect("claim"), Claim::Done(answered()));
    }
    s.complete(&k, "a", &answered(), t(8)).await.expect("a retried complete");
    assert!(is_lease_lost(s.complete(&k, "b", &TurnOutcome::Silent, t(8)).await));
    assert!(is_lease_lost(s.checkpoint(&k, "a", &progress(1), t(8), LEASE).await));
    assert!(is_lease_lost(s.release(&k, "a").await));
    assert_eq!(s.claim(&k, "b", t(9), LEASE).await.expect("claim"), Claim::Done(answered()));
}

/// A released key is claimable at once: `New` when nothing was checkpointed.
pub async fn release_without_progress_is_new_again<S: IdempotencyStore + ?Sized>(s: &S) {
    let k = key("idem:released");
    s.claim(&k, "a", t(0), LEASE).await.expect("claim");
    s.release(&k, "a").await.expect("release");
    s.release(&k, "a").await.expect("a retried release");
    assert_eq!(s.claim(&k, "b", t(1), LEASE).await.expect("claim"), Claim::New);
    assert!(is_lease_lost(s.release(&k, "a").await), "a gave the key up");
    assert_eq!(s.claim(&k, "c", t(2), LEASE).await.expect("claim"), Claim::InProgress { until: t(31) });
}

/// A released key keeps its saved progress: the next claim resumes from it.
pub async fn release_keeps_progress<S: IdempotencyStore + ?Sized>(s: &S) {
    let k = key("idem:released-progress");
    let handoff = TurnProgress { handoff: Some(HandoffReason::BotRequested), ..progress(1) };
    s.claim(&k, "a", t(0), LEASE).await.expect("claim");
    s.checkpoint(&k, "a", &handoff, t(1), LEASE).await.expect("checkpoint");
    s.release(&k, "a").await.expect("release");
    assert_eq!(s.claim(&k, "b", t(2), LEASE).await.expect("claim"), Claim::Resumed(handoff));
}

/// `purge_before` forgets done keys completed strictly before the cutoff, and nothing else.
pub async fn purge_forgets_old_done_keys<S: IdempotencyStore + ?Sized>(s: &S) {
    let (old, recent, edge, open) = (key("idem:old"), key("idem:recent"), key("idem:edge"), key("idem:open"));
    for (k, done_at) in [(&old, t(10)), (&recent, t(200)), (&edge, t(100))] {
        s.claim(k, "a", t(0), LEASE).await.expect("claim");
        s.complete(k, "a", &TurnOutcome::Silent, done_at).await.expect("complete");
    }
    s.claim(&open, "a", t(0), LEASE).await.expect("claim");
    s.checkpoint(&open, "a", &progress(1), t(1), LEASE).await.expect("checkpoint");

    assert_eq!(s.purge_before(t(100)).await.expect("purge"), 1);
    assert_eq!(s.claim(&old, "b", t(300), LEASE).await.expect("claim"), Claim::New);
    assert_eq!(s.claim(&edge, "b", t(300), LEASE).await.expect("claim"), Claim::Done(TurnOutcome::Silent));
    assert_eq!(s.claim(&recent, "b", t(300), LEASE).await.expect("claim"), Claim::Done(TurnOutcome::Silent));
    assert_eq!(s.purge_before(t(1000)).await.expect("purge"), 2);
    assert_eq!(s.claim(&open, "b", t(1000), LEASE).await.expect("claim"), Claim::Resumed(progress(1)), "open claims survive purges");
}

/// `admit` records a new key once; any known key is a duplicate; a claim takes a queued key as new.
pub async fn admit_dedups_and_claim_takes_queued_keys<S: IdempotencyStore + ?Sized>(s: &S) {
    let k = key("idem:admitted");
    assert_eq!(s.admit(&k, t(0)).await.expect("admit"), Admission::New);
    assert_eq!(s.admit(&k, t(1)).await.expect("admit"), Admission::Duplicate);
    assert_eq!(s.claim(&k, "a", t(2), LEASE).await.expect("claim"), Claim::New);
    assert_eq!(s.admit(&k, t(3)).await.expect("admit"), Admission::Duplicate, "claimed");
    s.complete(&k, "a", &TurnOutcome::Silent, t(4)).await.expect("complete");
    assert_eq!(s.admit(&k, t(5)).await.expect("admit"), Admission::Duplicate, "done");
    let claimed_first = key("idem:claimed-first");
    s.claim(&claimed_first, "a", t(0), LEASE).await.expect("claim");
    assert_eq!(s.admit(&claimed_first, t(1)).await.expect("admit"), Admission::Duplicate);
}

/// `unadmit` forgets a queued key (its enqueue failed), and nothing else.
pub async fn unadmit_forgets_only_queued_keys<S: IdempotencyStore + ?Sized>(s: &S) {
    let (queued, claimed) = (key("idem:unadmit-queued"), key("idem:unadmit-claimed"));
    s.admit(&queued, t(0)).await.expect("admit");
    s.admit(&claimed, t(0)).await.expect("admit");
    s.claim(&claimed, "a", t(1), LEASE).await.expect("claim");
    s.unadmit(&queued).await.expect("unadmit");
    s.unadmit(&claimed).await.expect("unadmit a claimed key is a no-op");
    s.unadmit(&key("idem:unknown")).await.expect("unadmit an unknown key is a no-op");
    assert_eq!(s.admit(&queued, t(2)).await.expect("admit"), Admission::New, "admissible again");
    assert_eq!(s.claim(&claimed, "b", t(2), LEASE).await.expect("claim"), Claim::InProgress { until: t(31) });
}

/// `reopen` makes a done key claimable from scratch and a leased one claimable at once with its
/// progress; queued and unknown keys are left alone.
pub async fn reopen_makes_keys_claimable_again<S: IdempotencyStore + ?Sized>(s: &S) {
    let (done, leased, queued) = (key("idem:reopen-done"), key("idem:reopen-leased"), key("idem:reopen-queued"));
    s.claim(&done, "a", t(0), LEASE).await.expect("claim");
    s.checkpoint(&done, "a", &progress(1), t(1), LEASE).await.expect("checkpoint");
    s.complete(&done, "a", &answered(), t(2)).await.expect("complete");
    s.claim(&leased, "a", t(0), LEASE).await.expect("claim");
    s.checkpoint(&leased, "a", &progress(2), t(1), LEASE).await.expect("checkpoint");
    s.admit(&queued, t(0)).await.expect("admit");
    for k in [&done, &leased, &queued, &key("idem:reopen-unknown")] {
        s.reopen(k).await.expect("reopen");
    }
    assert_eq!(s.claim(&done, "b", t(3), LEASE).await.expect("claim"), Claim::New);
    assert_eq!(s.claim(&leased, "b", t(3), LEASE).await.expect("claim"), Claim::Resumed(progress(2)), "no need to wait for the lease");
    assert_eq!(s.admit(&queued, t(3)).await.expect("admit"), Admission::Duplicate);
    assert_eq!(s.claim(&queued, "b", t(3), LEASE).await.expect("claim"), Claim::New);
}

/// Old queued admissions (their job was lost) are purged like done keys; claimed ones stay.
pub async fn purge_forgets_old_admissions<S: IdempotencyStore + ?Sized>(s: &S) {
    let (old, recent) = (key("idem:admit-old"), key("idem:admit-recent"));
    s.admit(&old, t(10)).await.expect("admit");
    s.admit(&recent, t(200)).await.expect("admit");
    assert_eq!(s.purge_before(t(100)).await.expect("purge"), 1);
    assert_eq!(s.admit(&old, t(300)).await.expect("admit"), Admission::New);
    assert_eq!(s.admit(&recent, t(300)).await.expect("admit"), Admission::Duplicate);
}

/// `phase` reads where a key is in its life without changing it: unknown, queued with its
/// admission time, leased until the lease's end, released, done with its outcome and time.
pub async fn phase_reads_each_step<S: IdempotencyStore + ?Sized>(s: &S) {
    let k = key("idem:phase");
    assert_eq!(s.phase(&k).await.expect("phase"), None);
    s.admit(&k, t(5)).await.expect("admit");
    assert_eq!(s.phase(&k).await.expect("phase"), Some(RecordPhase::Queued { at: t(5) }));
    assert_eq!(s.phase(&k).await.expect("phase"), Some(RecordPhase::Queued { at: t(5) }), "reading changes nothing");
    s.claim(&k, "a", t(6), LEASE).await.expect("claim");
    assert_eq!(s.phase(&k).await.expect("phase"), Some(RecordPhase::Leased { until: t(36) }));
    s.release(&k, "a").await.expect("release");
    assert_eq!(s.phase(&k).await.expect("phase"), Some(RecordPhase::Released));
    s.claim(&k, "b", t(7), LEASE).await.expect("claim");
    s.complete(&k, "b", &answered(), t(8)).await.expect("complete");
    assert_eq!(s.phase(&k).await.expect("phase"), Some(RecordPhase::Done { outcome: answered(), at: t(8) }));
    let claimed = key("idem:phase-claimed-first");
    s.claim(&claimed, "a", t(0), LEASE).await.expect("claim");
    assert_eq!(s.phase(&claimed).await.expect("phase"), Some(RecordPhase::Leased { until: t(30) }));
    s.purge_before(t(100)).await.expect("purge");
    assert_eq!(s.phase(&k).await.expect("phase"), None, "purged");
}

/// The same new key admitted by many receivers at once: exactly one `New`.
pub async fn concurrent_admissions_have_one_winner<S: IdempotencyStore + ?Sized + 'static>(s: Arc<S>) {
    let admissions = all_at_once(s, 32, |s, _| async move { s.admit(&key("idem:admit-race"), t(0)).await.expect("admit") }).await;
    assert_eq!(admissions.iter().filter(|a| **a == Admission::New).count(), 1, "{admissions:?}");
}

/// The same new key claimed by many owners at once: exactly one `New`, all others `InProgress`.
pub async fn concurrent_claims_have_one_winner<S: IdempotencyStore + ?Sized + 'static>(s: Arc<S>) {
    let claims = all_at_once(s, 32, |s, i| async move { s.claim(&key("idem:race"), &format!("worker-{i}"), t(0), LEASE).await.expect("claim") }).await;
    assert_eq!(claims.iter().filter(|c| **c == Claim::New).count(), 1, "{claims:?}");
    assert!(claims.iter().all(|c| *c == Claim::New || *c == Claim::InProgress { until: t(30) }), "{claims:?}");
}

/// An expired lease taken over by many owners at once: exactly one `Resumed`.
pub async fn concurrent_takeovers_have_one_winner<S: IdempotencyStore + ?Sized + 'static>(s: Arc<S>) {
    let k = key("idem:takeover-race");
    s.claim(&k, "dead", t(0), LEASE).await.expect("claim");
    s.checkpoint(&k, "dead", &progress(1), t(1), LEASE).await.expect("checkpoint");
    let claims =
        all_at_once(s, 32, |s, i| async move { s.claim(&key("idem:takeover-race"), &format!("worker-{i}"), t(100), LEASE).await.expect("claim") }).await;
    assert_eq!(claims.iter().filter(|c| **c == Claim::Resumed(progress(1))).count(), 1, "{claims:?}");
    assert!(claims.iter().all(|c| *c == Claim::Resumed(progress(1)) || *c == Claim::InProgress { until: t(130) }), "{claims:?}");
}

/// Runs every behaviour of this module, each on a fresh adapter from `fresh`.
pub async fn run_all<S, F, Fut>(mut fresh: F)
where
    S: IdempotencyStore + 'static,
    F: FnMut() -> Fut,
    Fut: Future<Output = S>,
{
    run_each!(fresh:
        claim_new_then_in_progress,
        holder_reclaim_resumes_and_renews,
        expired_lease_resumes_from_default,
        expired_lease_resumes_from_last_checkpoint,
        late_checkpoint_without_takeover_renews,
        non_owner_is_lease_lost,
        taken_over_owner_is_lease_lost,
        complete_makes_claims_done,
        release_without_progress_is_new_again,
        release_keeps_progress,
        purge_forgets_old_done_keys,
        admit_dedups_and_claim_takes_queued_keys,
        unadmit_forgets_only_queued_keys,
        reopen_makes_keys_claimable_again,
        purge_forgets_old_admissions,
        phase_reads_each_step,
    );
    run_each!(fresh => arc: concurrent_claims_have_one_winner, concurrent_takeovers_have_one_winner, concurrent_admissions_have_one_winner);
}
