//! The idempotency store: one record per message key, the one place that decides whether a
//! message is new, being worked on, or done.
//!
//! The record's life:
//!
//! ```text
//!   (none) --admit--> Queued --claim--> Leased(owner, until) --complete--> Done(outcome)
//!                                        |    ^      |
//!                                release |    | claim (lease expired, or the holder again)
//!                                        v    |
//!                                     Released (progress kept)
//! ```
//!
//! `admit` is the receiver's de-duplication (a conditional insert: DynamoDB `attribute_not_exists`,
//! an SQLite unique insert), so it lasts as long as the retention says, not SQS FIFO's five minutes.
//! `claim` is the worker's: one atomic step in the Powertools idempotency design (a conditional
//! write that succeeds for a new key, a given-back key, or an abandoned lease), answering with the
//! saved checkpoint so a turn resumes where a dead worker left it. Which claim wins and what it
//! answers is decided by one pure function, [`ClaimRecord::decide`], that every adapter uses (the
//! SQLite and memory adapters inside their transaction or lock, the DynamoDB adapter to interpret
//! the `ALL_OLD` item of a failed or successful conditional write).

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::StoreResult;
use crate::domain::ids::DedupKey;
use crate::domain::turn::{TurnOutcome, TurnProgress};

/// The answer to [`IdempotencyStore::admit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// First sighting: the caller enqueues the job.
    New,
    /// The key is known (queued, in progress or done): nothing to enqueue.
    Duplicate,
}

/// The answer to a claim on a de-duplication key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Nobody processed this key before: the caller owns it until the lease ends.
    New,
    /// A previous attempt ended (its lease expired, or it gave the key back) after checkpointing:
    /// the caller owns the key now and resumes from this progress.
    Resumed(TurnProgress),
    /// Someone else holds a live lease; try again after `until`.
    InProgress {
        /// When the other lease ends.
        until: DateTime<Utc>,
    },
    /// Already processed; nothing to do.
    Done(TurnOutcome),
}

/// Where a key's record is in its life (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum RecordPhase {
    /// Admitted by the receiver, not claimed yet.
    Queued {
        /// When it was admitted.
        at: DateTime<Utc>,
    },
    /// `owner` holds the key until `until`; from `until` on, anyone may take it over.
    Leased {
        /// The lease's end.
        until: DateTime<Utc>,
    },
    /// Given back on purpose (a retryable failure): claimable at once.
    Released,
    /// Finished.
    Done {
        /// How it ended.
        outcome: TurnOutcome,
        /// When.
        at: DateTime<Utc>,
    },
}

/// A key's record as every adapter stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRecord {
    /// The holder of the current lease, or the last one once released or done (so a retried
    /// `complete`/`release` by that owner is recognised); empty for a record never claimed.
    pub owner: String,
    /// The phase.
    pub phase: RecordPhase,
    /// The last checkpoint; survives takeovers and releases, dropped when the key is done.
    pub progress: Option<TurnProgress>,
}

impl ClaimRecord {
    /// The one decision table of a claim by `owner` at `now` on `record` (`None`: no record).
    ///
    /// Returns the answer; when it is `New` or `Resumed`, the caller writes the record as leased by
    /// `owner` (keeping `progress`), atomically with having read it.
    /// - no record, or a queued one: `New`;
    /// - done: `Done(outcome)`, forever (until purged);
    /// - leased by another owner and live (`until > now`): `InProgress { until }`;
    /// - leased and expired, or leased by `owner` itself (an owner id names one sequential executor,
    ///   so its previous attempt is over): `Resumed(progress or default)` — the previous attempt may
    ///   have had side effects, so even an empty checkpoint resumes;
    /// - released: `Resumed(progress)` when progress was saved, else `New`.
    pub fn decide(record: Option<&Self>, owner: &str, now: DateTime<Utc>) -> Claim {
        let Some(r) = record else { return Claim::New };
        match &r.phase {
            RecordPhase::Queued { .. } => r.progress.clone().map_or(Claim::New, Claim::Resumed),
            RecordPhase::Done { outcome, .. } => Claim::Done(outcome.clone()),
            RecordPhase::Leased { until } if *until > now && r.owner != owner => Claim::InProgress { until: *until },
            RecordPhase::Leased { .. } => Claim::Resumed(r.progress.clone().unwrap_or_default()),
            RecordPhase::Released => r.progress.clone().map_or(Claim::New, Claim::Resumed),
        }
    }

    /// Whether `owner` may still act on the key (checkpoint, complete, release): it holds the
    /// lease, expired or not, as long as nobody else took it over.
    pub fn held_by(&self, owner: &str) -> bool {
        self.owner == owner && matches!(self.phase, RecordPhase::Leased { .. })
    }
}

/// One atomic claim per key with a lease for in-progress work. The full semantics are pinned by
/// `crate::contract::idempotency`.
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// The receiver's de-duplication: records `key` as queued unless any record of it exists.
    /// Atomic: of two concurrent admissions of a new key exactly one is `New`.
    async fn admit(&self, key: &DedupKey, now: DateTime<Utc>) -> StoreResult<Admission>;

    /// Undoes an admission whose enqueue failed: removes the record if it is still queued (never a
    /// claimed or done one), so the message can be admitted again.
    async fn unadmit(&self, key: &DedupKey) -> StoreResult<()>;

    /// Claims `key` for `owner` until `now + lease` (see [`ClaimRecord::decide`]). A claim by the
    /// lease's own holder renews it and resumes, so an owner id must name one sequential executor
    /// (a worker task, a Lambda invocation), never two attempts that may run at once.
    async fn claim(&self, key: &DedupKey, owner: &str, now: DateTime<Utc>, lease: Duration) -> StoreResult<Claim>;

    /// Saves progress and extends the lease; fails with `LeaseLost` if `owner` no longer holds it.
    async fn checkpoint(&self, key: &DedupKey, owner: &str, progress: &TurnProgress, now: DateTime<Utc>, lease: Duration) -> StoreResult<()>;

    /// Marks the key done with its outcome (kept for the retention period); the checkpoint is
    /// dropped. Idempotent for the owner.
    async fn complete(&self, key: &DedupKey, owner: &str, outcome: &TurnOutcome, now: DateTime<Utc>) -> StoreResult<()>;

    /// Gives the key up without completing it (a retryable failure), so the next attempt may claim
    /// it at once instead of waiting for the lease to end; the saved progress is kept. Idempotent
    /// for the owner.
    async fn release(&self, key: &DedupKey, owner: &str) -> StoreResult<()>;

    /// Makes a key claimable again whatever its phase (an operator put its dead-lettered job back):
    /// a done key becomes released with no progress, a leased one released with its progress; a
    /// queued or unknown key is left alone.
    async fn reopen(&self, key: &DedupKey) -> StoreResult<()>;

    /// Forgets done records completed before `cutoff`, and queued records admitted before it
    /// (admissions whose job was lost); returns how many.
    async fn purge_before(&self, cutoff: DateTime<Utc>) -> StoreResult<u64>;

    /// Where `key`'s record is in its life; `None` for a key never admitted or claimed (or
    /// purged). A plain read: the reconciliation poller uses it to tell an admission whose job was
    /// lost (the receiver died between `admit` and the send, so the record stays `Queued` long
    /// after its admission) from a key someone is working on or has finished.
    async fn phase(&self, key: &DedupKey) -> StoreResult<Option<RecordPhase>>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::t;

    fn record(owner: &str, phase: RecordPhase, progress: Option<TurnProgress>) -> ClaimRecord {
        ClaimRecord { owner: owner.into(), phase, progress }
    }

    #[test]
    fn the_decision_table() {
        let saved = TurnProgress { sent: 1, ..TurnProgress::default() };
        let live = RecordPhase::Leased { until: t(30) };
        let cases = [
            (None, Claim::New),
            (Some(record("", RecordPhase::Queued { at: t(0) }, None)), Claim::New),
            (Some(record("a", live.clone(), None)), Claim::InProgress { until: t(30) }),
            (Some(record("me", live.clone(), None)), Claim::Resumed(TurnProgress::default())),
            (Some(record("a", RecordPhase::Leased { until: t(10) }, Some(saved.clone()))), Claim::Resumed(saved.clone())),
            (Some(record("a", RecordPhase::Released, None)), Claim::New),
            (Some(record("a", RecordPhase::Released, Some(saved.clone()))), Claim::Resumed(saved.clone())),
            (Some(record("a", RecordPhase::Done { outcome: TurnOutcome::Silent, at: t(1) }, None)), Claim::Done(TurnOutcome::Silent)),
        ];
        for (rec, want) in cases {
            assert_eq!(ClaimRecord::decide(rec.as_ref(), "me", t(10)), want, "{rec:?}");
        }
    }

    #[test]
    fn only_the_holder_acts_on_a_lease() {
        assert!(record("a", RecordPhase::Leased { until: t(0) }, None).held_by("a"));
        assert!(!record("a", RecordPhase::Leased { until: t(0) }, None).held_by("b"));
        assert!(!record("a", RecordPhase::Released, None).held_by("a"));
    }
}
