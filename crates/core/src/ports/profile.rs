//! Per-phone profiles: what the bot may remember about a customer between sessions.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreResult;
use crate::domain::ids::Phone;
use crate::domain::profile::Profile;

/// Per-phone profiles.
#[async_trait]
pub trait ProfileStore: Send + Sync {
    /// The profile of `phone`, if any.
    async fn get(&self, phone: &Phone) -> StoreResult<Option<Profile>>;

    /// Stores a profile (insert or replace).
    async fn put(&self, profile: &Profile) -> StoreResult<()>;

    /// Deletes a profile (the customer asked to be forgotten); returns whether one existed.
    async fn delete(&self, phone: &Phone) -> StoreResult<bool>;

    /// Deletes profiles not updated since `cutoff` (the retention period); returns how many.
    async fn purge_before(&self, cutoff: DateTime<Utc>) -> StoreResult<u64>;
}
