//! The idempotency store in memory: one record per key, changed under one lock, so a claim is a
//! single check-and-write like a DynamoDB conditional put.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{MemoryStore, after, lock};
use crate::domain::ids::DedupKey;
use crate::domain::turn::{TurnOutcome, TurnProgress};
use crate::ports::{Claim, IdempotencyStore, StoreError, StoreResult};

/// All records, by key.
pub(super) type State = HashMap<DedupKey, Record>;

/// What is known about one key.
#[derive(Debug)]
pub(super) struct Record {
    /// The owner of the current lease, or the last owner once released or done (a retried
    /// `complete`/`release` by that owner is then recognised).
    owner: String,
    phase: Phase,
    /// The last checkpoint; survives lease takeovers and releases.
    progress: Option<TurnProgress>,
}

#[derive(Debug)]
enum Phase {
    /// `owner` holds the key until `until`; from `until` on, anyone may take it over.
    Leased { until: DateTime<Utc> },
    /// Given back with `release`: claimable at once.
    Released,
    /// Finished; kept until purged.
    Done { outcome: TurnOutcome, at: DateTime<Utc> },
}

impl Record {
    /// Whether `owner` may still act on the key: it holds the lease, expired or not, as long as
    /// nobody else took it over.
    fn held_by(&self, owner: &str) -> bool {
        self.owner == owner && matches!(self.phase, Phase::Leased { .. })
    }
}

#[async_trait]
impl IdempotencyStore for MemoryStore {
    async fn claim(&self, key: &DedupKey, owner: &str, now: DateTime<Utc>, lease: Duration) -> StoreResult<Claim> {
        let mut state = lock(&self.idempotency);
        let leased = Phase::Leased { until: after(now, lease) };
        let Some(record) = state.get_mut(key) else {
            state.insert(key.clone(), Record { owner: owner.to_owned(), phase: leased, progress: None });
            return Ok(Claim::New);
        };
        let answer = match &record.phase {
            Phase::Done { outcome, .. } => return Ok(Claim::Done(outcome.clone())),
            Phase::Leased { until } if *until > now && record.owner != owner => {
                return Ok(Claim::InProgress { until: *until });
            }
            // The previous attempt is over (its lease expired, or its owner, which runs one attempt
            // at a time, is claiming again): resume, even from an empty checkpoint.
            Phase::Leased { .. } => Claim::Resumed(record.progress.clone().unwrap_or_default()),
            // Given back on purpose: a fresh start unless something was checkpointed.
            Phase::Released => record.progress.clone().map_or(Claim::New, Claim::Resumed),
        };
        record.owner = owner.to_owned();
        record.phase = leased;
        Ok(answer)
    }

    async fn checkpoint(&self, key: &DedupKey, owner: &str, progress: &TurnProgress, now: DateTime<Utc>, lease: Duration) -> StoreResult<()> {
        let mut state = lock(&self.idempotency);
        let record = state.get_mut(key).filter(|r| r.held_by(owner)).ok_or(StoreError::LeaseLost)?;
        record.progress = Some(progress.clone());
        record.phase = Phase::Leased { until: after(now, lease) };
        Ok(())
    }

    async fn complete(&self, key: &DedupKey, owner: &str, outcome: &TurnOutcome, now: DateTime<Utc>) -> StoreResult<()> {
        let mut state = lock(&self.idempotency);
        let record = state.get_mut(key).filter(|r| r.owner == owner).ok_or(StoreError::LeaseLost)?;
        match record.phase {
            Phase::Leased { .. } => {
                record.phase = Phase::Done { outcome: outcome.clone(), at: now };
                Ok(())
            }
            // A retried complete whose first attempt went through.
            Phase::Done { .. } => Ok(()),
            Phase::Released => Err(StoreError::LeaseLost),
        }
    }

    async fn release(&self, key: &DedupKey, owner: &str) -> StoreResult<()> {
        let mut state = lock(&self.idempotency);
        let record = state.get_mut(key).filter(|r| r.owner == owner).ok_or(StoreError::LeaseLost)?;
        match record.phase {
            Phase::Leased { .. } | Phase::Released => {
                record.phase = Phase::Released;
                Ok(())
            }
            Phase::Done { .. } => Err(StoreError::LeaseLost),
        }
    }

    async fn purge_done_before(&self, cutoff: DateTime<Utc>) -> StoreResult<u64> {
        let mut state = lock(&self.idempotency);
        let before = state.len();
        state.retain(|_, r| !matches!(r.phase, Phase::Done { at, .. } if at < cutoff));
        Ok((before - state.len()) as u64)
    }
}
