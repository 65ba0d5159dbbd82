//! Cursors in the [`MetaStore`]: per chat, the last message id a policy has taken care of, so a
//! restart neither skips nor repeats (a repeat would be harmless, the key decides, but costs reads).
//!
//! Writes are compare-and-set and only ever move a cursor forward: two pollers racing (a Lambda's
//! overlapping invocations) end at the larger value. Values are cached in the process; a stale cache
//! only costs a re-read of messages whose keys are known (the write then conflicts, and reloads).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::ports::{MetaPut, MetaStore, StoreError, StoreResult, Versioned};

/// How many times a conflicting write is retried over the newer value.
const WRITE_ATTEMPTS: usize = 5;

/// Named monotonic counters with a process cache.
pub(crate) struct Cursors {
    meta: Arc<dyn MetaStore>,
    cache: Mutex<HashMap<String, Option<Versioned>>>,
}

impl Cursors {
    pub(crate) fn new(meta: Arc<dyn MetaStore>) -> Self {
        Self { meta, cache: Mutex::default() }
    }

    fn cached(&self, name: &str) -> Option<Option<Versioned>> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner).get(name).cloned()
    }

    fn remember(&self, name: &str, v: Option<Versioned>) {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner).insert(name.to_owned(), v);
    }

    async fn load(&self, name: &str) -> StoreResult<Option<Versioned>> {
        if let Some(v) = self.cached(name) {
            return Ok(v);
        }
        let v = self.meta.get_value(name).await?;
        self.remember(name, v.clone());
        Ok(v)
    }

    /// The value of `name`, if any.
    pub(crate) async fn get(&self, name: &str) -> StoreResult<Option<u64>> {
        self.load(name).await?.map(|v| parse(name, &v.value)).transpose()
    }

    /// Moves `name` forward to `to` (never back).
    pub(crate) async fn advance(&self, name: &str, to: u64) -> StoreResult<()> {
        let mut current = self.load(name).await?;
        for _ in 0..WRITE_ATTEMPTS {
            if let Some(v) = &current
                && parse(name, &v.value)? >= to
            {
                return Ok(());
            }
            match self.meta.put_value(name, &to.to_string(), current.as_ref().map(|v| v.version)).await? {
                MetaPut::Written(v) => {
                    self.remember(name, Some(v));
                    return Ok(());
                }
                MetaPut::Conflict(stored) => {
                    self.remember(name, stored.clone());
                    current = stored;
                }
            }
        }
        Err(StoreError::Backend(format!("{name} kept changing under {WRITE_ATTEMPTS} attempts to move it forward")))
    }

    /// A value written once and never changed (the first start): the stored one, or `value`.
    pub(crate) async fn once(&self, name: &str, value: u64) -> StoreResult<u64> {
        if let Some(v) = self.get(name).await? {
            return Ok(v);
        }
        match self.meta.put_value(name, &value.to_string(), None).await? {
            MetaPut::Written(v) => {
                self.remember(name, Some(v));
                Ok(value)
            }
            MetaPut::Conflict(Some(v)) => {
                let n = parse(name, &v.value)?;
                self.remember(name, Some(v));
                Ok(n)
            }
            MetaPut::Conflict(None) => Err(StoreError::Backend(format!("{name} could not be written"))),
        }
    }
}

fn parse(name: &str, raw: &str) -> StoreResult<u64> {
    raw.parse().map_err(|_| StoreError::Corrupt(format!("{name}: expected a number, found {raw:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryStore;

    #[tokio::test]
    async fn cursors_only_move_forward_and_survive_a_new_process() {
        let store = Arc::new(MemoryStore::new());
        let a = Cursors::new(store.clone());
        assert_eq!(a.get("c").await.expect("get"), None);
        a.advance("c", 10).await.expect("advance");
        a.advance("c", 7).await.expect("advance back is a no-op");
        assert_eq!(a.get("c").await.expect("get"), Some(10));
        // Another process moved it meanwhile: the stale cache conflicts, reloads, and ends at the max.
        let b = Cursors::new(store.clone());
        b.advance("c", 30).await.expect("advance");
        a.advance("c", 20).await.expect("advance over a stale cache");
        assert_eq!(Cursors::new(store.clone()).get("c").await.expect("get"), Some(30));
        a.advance("c", 40).await.expect("advance");
        assert_eq!(Cursors::new(store).get("c").await.expect("get"), Some(40));
    }

    #[tokio::test]
    async fn a_once_value_is_the_first_writers() {
        let store = Arc::new(MemoryStore::new());
        assert_eq!(Cursors::new(store.clone()).once("first", 5).await.expect("once"), 5);
        assert_eq!(Cursors::new(store).once("first", 9).await.expect("once"), 5);
    }
}
