//! Profiles in memory, by phone.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{MemoryStore, lock};
use crate::domain::ids::Phone;
use crate::domain::profile::Profile;
use crate::ports::{ProfileStore, StoreResult};

#[async_trait]
impl ProfileStore for MemoryStore {
    async fn get(&self, phone: &Phone) -> StoreResult<Option<Profile>> {
        Ok(lock(&self.profiles).get(phone).cloned())
    }

    async fn put(&self, profile: &Profile) -> StoreResult<bool> {
        let mut profiles = lock(&self.profiles);
        let stored = profiles.get(&profile.phone).map_or(0, |p| p.version);
        if stored != profile.version {
            return Ok(false);
        }
        profiles.insert(profile.phone.clone(), Profile { version: stored + 1, ..profile.clone() });
        Ok(true)
    }

    async fn delete(&self, phone: &Phone) -> StoreResult<bool> {
        Ok(lock(&self.profiles).remove(phone).is_some())
    }

    async fn purge_before(&self, cutoff: DateTime<Utc>) -> StoreResult<u64> {
        let mut profiles = lock(&self.profiles);
        let before = profiles.len();
        profiles.retain(|_, p| p.updated_at >= cutoff);
        Ok((before - profiles.len()) as u64)
    }
}
