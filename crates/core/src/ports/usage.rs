//! Usage counters: how many customer messages a phone (or a chat) sent in the current rate-limit
//! window, and how many bot calls it caused today. Shared by every worker (the SQLite file, the
//! DynamoDB table), so the limits hold across processes and Lambdas.
//!
//! A counter is named by its subject and a name that carries its period (`win#<index>`,
//! `day#<yyyy-mm-dd>`), so a new period is a new counter and nothing is ever reset; `expires_at`
//! only lets the store drop it later. A count is one atomic store operation.
//!
//! # Retries count once
//! Each addition carries a token (the turn's de-duplication key). A counter remembers the last
//! token added to it, and an addition with the same token changes nothing: a turn retried after a
//! crash between its count and its checkpoint is not counted twice. Turns of one chat are
//! sequential (the queue is FIFO per chat), so the retried turn is always the last one to have
//! counted on its chat's counters; on a phone's counters a turn of another chat of the same phone
//! may come in between, and the retry then counts again (over-counting, never under-counting).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreResult;
use crate::domain::ids::{ChatId, Phone};

/// Whose counter.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    /// A customer's phone number: every chat of that phone counts together. Erased with the
    /// phone's other data ([`Privacy`](super::Privacy)).
    Phone(Phone),
    /// A chat whose phone is not known.
    Chat(ChatId),
}

/// Atomic, idempotent counters.
#[async_trait]
pub trait UsageCounters: Send + Sync {
    /// Adds `amount` to `subject`'s counter `name` and answers the new total, unless `token` is
    /// the last token added to that counter: then nothing changes and the current total is
    /// answered. A counter that does not exist starts at 0; `expires_at` is when the store may
    /// drop it (extended by every addition; a store may drop counters expired at `now`).
    async fn add(&self, subject: &Subject, name: &str, token: &str, amount: u64, now: DateTime<Utc>, expires_at: DateTime<Utc>) -> StoreResult<u64>;

    /// The current total of `subject`'s counter `name` (0 when it does not exist).
    async fn count(&self, subject: &Subject, name: &str) -> StoreResult<u64>;
}
