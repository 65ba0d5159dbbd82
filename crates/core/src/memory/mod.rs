//! In-memory adapters for every storage port: the reference semantics.
//!
//! [`MemoryStore`] implements every storage port ([`IdempotencyStore`](crate::ports::IdempotencyStore),
//! [`JobSink`](crate::ports::JobSink), [`WorkQueue`](crate::ports::WorkQueue),
//! [`DeadLetters`](crate::ports::DeadLetters), [`ChatStore`](crate::ports::ChatStore),
//! [`ProfileStore`](crate::ports::ProfileStore), [`TurnLog`](crate::ports::TurnLog),
//! [`MetaStore`](crate::ports::MetaStore), [`Privacy`](crate::ports::Privacy),
//! [`AnswerCache`](crate::ports::AnswerCache), [`UsageCounters`](crate::ports::UsageCounters)) over plain collections. It is what the use cases' unit tests run on, and the contract suite
//! (`crate::contract`) is written against it first: when the SQLite or AWS adapters disagree with
//! it, the adapter is wrong (or the contract is missing a case).
//!
//! # Why a std `Mutex` per port
//! Every operation is a short, synchronous critical section: it takes the lock, reads and writes
//! the collections and releases the lock before returning. No `.await` happens while a guard is
//! alive, so a blocking `std::sync::Mutex` is both correct and cheaper than an async one, and
//! holding the whole check-and-write under one lock is what makes `claim` and `enqueue` atomic.
//! A poisoned lock is recovered rather than propagated: no critical section here can panic halfway
//! through a change.
//!
//! Nothing is persisted: a process restart forgets everything, which is exactly what a unit test
//! wants and exactly what production must never use.

mod chat;
mod cost;
mod idempotency;
mod log;
mod meta;
mod privacy;
mod profile;
mod queue;
mod timeline;

pub use timeline::MemoryOutbox;

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::domain::ids::Phone;
use crate::domain::profile::Profile;
use crate::domain::turn::TurnRecord;

/// Every storage port in memory. Cheap to create; share it behind an `Arc`.
#[derive(Debug, Default)]
pub struct MemoryStore {
    idempotency: Mutex<idempotency::State>,
    queue: Mutex<queue::State>,
    chats: Mutex<chat::State>,
    profiles: Mutex<HashMap<Phone, Profile>>,
    log: Mutex<Vec<TurnRecord>>,
    meta: Mutex<HashMap<String, crate::ports::Versioned>>,
    cache: Mutex<cost::CacheState>,
    counters: Mutex<HashMap<(crate::ports::Subject, String), cost::Counter>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

/// Takes a lock, recovering it if a previous holder panicked (see the module docs).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `now + d`, saturating instead of overflowing (a lease of `Duration::MAX` never ends).
pub(crate) fn after(now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(d).ok().and_then(|d| now.checked_add_signed(d)).unwrap_or(DateTime::<Utc>::MAX_UTC)
}
