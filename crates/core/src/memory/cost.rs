//! The answer cache and the usage counters in memory.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{MemoryStore, lock};
use crate::ports::{AnswerCache, CacheLookup, CachedAnswer, StoreResult, Subject, UsageCounters};

/// The cache's state: entries by (line, key), and each line's version.
#[derive(Debug, Default)]
pub(super) struct CacheState {
    entries: HashMap<(String, String), (CachedAnswer, DateTime<Utc>)>,
    versions: HashMap<String, String>,
}

/// A counter: its total and the last token added.
#[derive(Debug, Default)]
pub(super) struct Counter {
    count: u64,
    last: String,
}

#[async_trait]
impl AnswerCache for MemoryStore {
    async fn lookup(&self, line: &str, key: &str, now: DateTime<Utc>) -> StoreResult<CacheLookup> {
        let state = lock(&self.cache);
        let kb_version = state.versions.get(line).cloned();
        let answer =
            state.entries.get(&(line.to_owned(), key.to_owned())).filter(|(a, until)| *until > now && a.kb_version == kb_version).map(|(a, _)| a.clone());
        Ok(CacheLookup { answer, kb_version })
    }

    async fn set_version(&self, line: &str, version: &str) -> StoreResult<()> {
        lock(&self.cache).versions.insert(line.to_owned(), version.to_owned());
        Ok(())
    }

    async fn store(&self, line: &str, key: &str, answer: &CachedAnswer, _now: DateTime<Utc>, expires_at: DateTime<Utc>) -> StoreResult<()> {
        lock(&self.cache).entries.insert((line.to_owned(), key.to_owned()), (answer.clone(), expires_at));
        Ok(())
    }
}

#[async_trait]
impl UsageCounters for MemoryStore {
    async fn add(&self, subject: &Subject, name: &str, token: &str, amount: u64, _now: DateTime<Utc>, _expires_at: DateTime<Utc>) -> StoreResult<u64> {
        let mut counters = lock(&self.counters);
        let c = counters.entry((subject.clone(), name.to_owned())).or_default();
        if c.last != token {
            c.count = c.count.saturating_add(amount);
            token.clone_into(&mut c.last);
        }
        Ok(c.count)
    }

    async fn count(&self, subject: &Subject, name: &str) -> StoreResult<u64> {
        Ok(lock(&self.counters).get(&(subject.clone(), name.to_owned())).map_or(0, |c| c.count))
    }
}
