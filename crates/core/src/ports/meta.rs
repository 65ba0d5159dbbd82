//! Small named values with compare-and-set: facts the bridge learns and must agree on across
//! processes (the portal it serves, pinned from the first verified event; later the pollers'
//! cursors and leases). One item per name in every backend.

use async_trait::async_trait;

use super::StoreResult;

/// A stored value and its version (incremented by every write).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    /// The value.
    pub value: String,
    /// Starts at 1.
    pub version: u64,
}

/// The outcome of [`MetaStore::put_value`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetaPut {
    /// Written; the new version.
    Written(Versioned),
    /// The condition failed; what is stored now (`None`: nothing).
    Conflict(Option<Versioned>),
}

/// Named values with optimistic concurrency.
#[async_trait]
pub trait MetaStore: Send + Sync {
    /// The value of `name`, if any.
    async fn get_value(&self, name: &str) -> StoreResult<Option<Versioned>>;

    /// Writes `value` if the stored version is `expected` (`None`: only if `name` does not exist).
    /// Atomic: of two writers expecting the same version, one wins.
    async fn put_value(&self, name: &str, value: &str, expected: Option<u64>) -> StoreResult<MetaPut>;
}
