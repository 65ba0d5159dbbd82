//! `ProfileStore` on the `profiles` table: the profile as JSON, keyed by the normalised phone.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use olbridge_core::domain::ids::Phone;
use olbridge_core::domain::profile::Profile;
use olbridge_core::ports::{ProfileStore, StoreResult};
use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, ms, to_json};

#[async_trait]
impl ProfileStore for SqliteStore {
    async fn get(&self, phone: &Phone) -> StoreResult<Option<Profile>> {
        let phone = phone.as_str().to_owned();
        self.run(move |c| {
            let body: Option<String> = c.query_row("SELECT body FROM profiles WHERE phone = ?1", [phone], |r| r.get(0)).optional()?;
            Ok(body.map(|b| serde_json::from_str(&b)).transpose()?)
        })
        .await
    }

    async fn put(&self, profile: &Profile) -> StoreResult<()> {
        let (phone, updated_at, body) = (profile.phone.as_str().to_owned(), ms(profile.updated_at), to_json(profile)?);
        self.run(move |c| {
            c.execute(
                "INSERT INTO profiles (phone, updated_at, body) VALUES (?1, ?2, ?3)
                 ON CONFLICT (phone) DO UPDATE SET updated_at = excluded.updated_at, body = excluded.body",
                params![phone, updated_at, body],
            )?;
            Ok(())
        })
        .await
    }

    async fn delete(&self, phone: &Phone) -> StoreResult<bool> {
        let phone = phone.as_str().to_owned();
        self.run(move |c| Ok(c.execute("DELETE FROM profiles WHERE phone = ?1", [phone])? > 0)).await
    }

    async fn purge_before(&self, cutoff: DateTime<Utc>) -> StoreResult<u64> {
        let cutoff = ms(cutoff);
        self.run(move |c| Ok(c.execute("DELETE FROM profiles WHERE updated_at < ?1", [cutoff])? as u64)).await
    }
}
