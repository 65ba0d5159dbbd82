//! The FAQ answer cache: a normalised question (per Open Lines line) → the reply the bot gave,
//! for answers the bot marked `cacheable`, so the next customer asking the same question is
//! answered without a bot call.
//!
//! Entries are invalidated two ways: by time (each is stored with its expiry) and by the
//! knowledge-base version the bot reports (`kb_version` in its answer). Each line keeps the
//! latest version seen; an entry stored under another version is a miss, and the next cacheable
//! answer replaces it. What may be stored (nothing personal) is the use case's decision
//! (`crate::domain::faq`); the port stores what it is given.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::StoreResult;

/// A cached answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedAnswer {
    /// The reply, split into postable chunks.
    pub chunks: Vec<String>,
    /// The knowledge-base version the bot answered under, if it reported one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kb_version: Option<String>,
}

/// The outcome of [`AnswerCache::lookup`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheLookup {
    /// The entry, when one is stored, not expired at `now` and of the line's current version.
    pub answer: Option<CachedAnswer>,
    /// The line's current knowledge-base version (the latest the bot reported), if any.
    pub kb_version: Option<String>,
}

/// Cached answers per line and question key.
#[async_trait]
pub trait AnswerCache: Send + Sync {
    /// The entry for `key` on `line` and the line's current version. An entry whose version
    /// differs from the line's (both absent counts as equal) or that expired at `now` is not
    /// returned.
    async fn lookup(&self, line: &str, key: &str, now: DateTime<Utc>) -> StoreResult<CacheLookup>;

    /// Records `version` as the line's current knowledge-base version (last writer wins).
    async fn set_version(&self, line: &str, version: &str) -> StoreResult<()>;

    /// Stores (or replaces) the entry for `key` on `line` until `expires_at` (a store may drop
    /// entries expired at `now`).
    async fn store(&self, line: &str, key: &str, answer: &CachedAnswer, now: DateTime<Utc>, expires_at: DateTime<Utc>) -> StoreResult<()>;
}
