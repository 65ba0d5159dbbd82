//! The idempotency store in memory: one [`ClaimRecord`] per key, changed under one lock, so a claim
//! is a single check-and-write like a DynamoDB conditional write. The decisions are
//! [`ClaimRecord::decide`] and [`ClaimRecord::held_by`], shared with every adapter.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{MemoryStore, after, lock};
use crate::domain::ids::DedupKey;
use crate::domain::turn::{TurnOutcome, TurnProgress};
use crate::ports::{Admission, Claim, ClaimRecord, IdempotencyStore, RecordPhase, StoreError, StoreResult};

/// All records, by key.
pub(super) type State = HashMap<DedupKey, ClaimRecord>;

#[async_trait]
impl IdempotencyStore for MemoryStore {
    async fn admit(&self, key: &DedupKey, now: DateTime<Utc>) -> StoreResult<Admission> {
        let mut state = lock(&self.idempotency);
        if state.contains_key(key) {
            return Ok(Admission::Duplicate);
        }
        state.insert(key.clone(), ClaimRecord { owner: String::new(), phase: RecordPhase::Queued { at: now }, progress: None });
        Ok(Admission::New)
    }

    async fn unadmit(&self, key: &DedupKey) -> StoreResult<()> {
        let mut state = lock(&self.idempotency);
        if state.get(key).is_some_and(|r| matches!(r.phase, RecordPhase::Queued { .. })) {
            state.remove(key);
        }
        Ok(())
    }

    async fn claim(&self, key: &DedupKey, owner: &str, now: DateTime<Utc>, lease: Duration) -> StoreResult<Claim> {
        let mut state = lock(&self.idempotency);
        let answer = ClaimRecord::decide(state.get(key), owner, now);
        if matches!(answer, Claim::New | Claim::Resumed(_)) {
            let progress = state.remove(key).and_then(|r| r.progress);
            state.insert(key.clone(), ClaimRecord { owner: owner.to_owned(), phase: RecordPhase::Leased { until: after(now, lease) }, progress });
        }
        Ok(answer)
    }

    async fn checkpoint(&self, key: &DedupKey, owner: &str, progress: &TurnProgress, now: DateTime<Utc>, lease: Duration) -> StoreResult<()> {
        let mut state = lock(&self.idempotency);
        let record = state.get_mut(key).filter(|r| r.held_by(owner)).ok_or(StoreError::LeaseLost)?;
        record.progress = Some(progress.clone());
        record.phase = RecordPhase::Leased { until: after(now, lease) };
        Ok(())
    }

    async fn complete(&self, key: &DedupKey, owner: &str, outcome: &TurnOutcome, now: DateTime<Utc>) -> StoreResult<()> {
        let mut state = lock(&self.idempotency);
        let record = state.get_mut(key).filter(|r| r.owner == owner).ok_or(StoreError::LeaseLost)?;
        match record.phase {
            RecordPhase::Leased { .. } => {
                record.phase = RecordPhase::Done { outcome: outcome.clone(), at: now };
                record.progress = None;
                Ok(())
            }
            // A retried complete whose first attempt went through.
            RecordPhase::Done { .. } => Ok(()),
            RecordPhase::Released | RecordPhase::Queued { .. } => Err(StoreError::LeaseLost),
        }
    }

    async fn release(&self, key: &DedupKey, owner: &str) -> StoreResult<()> {
        let mut state = lock(&self.idempotency);
        let record = state.get_mut(key).filter(|r| r.owner == owner).ok_or(StoreError::LeaseLost)?;
        match record.phase {
            RecordPhase::Leased { .. } | RecordPhase::Released => {
                record.phase = RecordPhase::Released;
                Ok(())
            }
            RecordPhase::Done { .. } | RecordPhase::Queued { .. } => Err(StoreError::LeaseLost),
        }
    }

    async fn reopen(&self, key: &DedupKey) -> StoreResult<()> {
        let mut state = lock(&self.idempotency);
        if let Some(record) = state.get_mut(key).filter(|r| matches!(r.phase, RecordPhase::Leased { .. } | RecordPhase::Done { .. })) {
            record.phase = RecordPhase::Released;
        }
        Ok(())
    }

    async fn purge_before(&self, cutoff: DateTime<Utc>) -> StoreResult<u64> {
        let mut state = lock(&self.idempotency);
        let before = state.len();
        state.retain(|_, r| match r.phase {
            RecordPhase::Done { at, .. } | RecordPhase::Queued { at } => at >= cutoff,
            RecordPhase::Leased { .. } | RecordPhase::Released => true,
        });
        Ok((before - state.len()) as u64)
    }

    async fn phase(&self, key: &DedupKey) -> StoreResult<Option<RecordPhase>> {
        Ok(lock(&self.idempotency).get(key).map(|r| r.phase.clone()))
    }
}
