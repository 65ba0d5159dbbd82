//! Per-phone profiles: what the bot may remember about a customer between sessions.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreResult;
use crate::domain::ids::Phone;
use crate::domain::profile::Profile;

/// Per-phone profiles.
#[async_trait]
pub trait ProfileStore: Send + Sync {
    /// The profile of `phone`, if any, with its stored version.
    async fn get(&self, phone: &Phone) -> StoreResult<Option<Profile>>;

    /// Stores `profile` if the stored version is still `profile.version` (0: only if none is
    /// stored); the stored version becomes `profile.version + 1`. `false`: someone else wrote the
    /// profile since it was read — read it again, apply the change again, retry. Atomic.
    async fn put(&self, profile: &Profile) -> StoreResult<bool>;

    /// Deletes a profile (the customer asked to be forgotten); returns whether one existed.
    async fn delete(&self, phone: &Phone) -> StoreResult<bool>;

    /// Deletes profiles not updated since `cutoff` (the retention period); returns how many.
    async fn purge_before(&self, cutoff: DateTime<Utc>) -> StoreResult<u64>;
}
