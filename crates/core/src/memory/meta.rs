//! Named values in memory.

use async_trait::async_trait;

use super::{MemoryStore, lock};
use crate::ports::{MetaPut, MetaStore, StoreResult, Versioned};

#[async_trait]
impl MetaStore for MemoryStore {
    async fn get_value(&self, name: &str) -> StoreResult<Option<Versioned>> {
        Ok(lock(&self.meta).get(name).cloned())
    }

    async fn put_value(&self, name: &str, value: &str, expected: Option<u64>) -> StoreResult<MetaPut> {
        let mut meta = lock(&self.meta);
        let current = meta.get(name).cloned();
        if current.as_ref().map(|v| v.version) != expected {
            return Ok(MetaPut::Conflict(current));
        }
        let written = Versioned { value: value.to_owned(), version: expected.unwrap_or(0) + 1 };
        meta.insert(name.to_owned(), written.clone());
        Ok(MetaPut::Written(written))
    }
}
