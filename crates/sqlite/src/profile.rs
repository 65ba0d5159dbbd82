//! `ProfileStore` on the `profiles` table: the profile as JSON, keyed by the normalised phone.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use olbridge_core::domain::ids::Phone;
use olbridge_core::domain::profile::Profile;
use olbridge_core::ports::{ProfileStore, StoreResult};
use rusqlite::{OptionalExtension, params};

use super::{Fail, SqliteStore, ms, to_json};

#[async_trait]
impl ProfileStore for SqliteStore {
    async fn get(&self, phone: &Phone) -> StoreResult<Option<Profile>> {
        let phone = phone.as_str().to_owned();
        self.run(move |c| {
            let row: Option<(String, i64)> =
                c.query_row("SELECT body, version FROM profiles WHERE phone = ?1", [phone], |r| Ok((r.get(0)?, r.get(1)?))).optional()?;
            let Some((body, version)) = row else { return Ok(None) };
            let mut profile: Profile = serde_json::from_str(&body)?;
            profile.version = u64::try_from(version).map_err(|_| Fail::Corrupt(format!("profile version {version}")))?;
            Ok(Some(profile))
        })
        .await
    }

    async fn put(&self, profile: &Profile) -> StoreResult<bool> {
        let (phone, updated_at, body) = (profile.phone.as_str().to_owned(), ms(profile.updated_at), to_json(profile)?);
        let expected = i64::try_from(profile.version).unwrap_or(i64::MAX);
        self.run(move |c| {
            // One conditional statement: insert when none is stored and 0 was expected, or update
            // when the stored version is the expected one.
            let n = c.execute(
                "INSERT INTO profiles (phone, updated_at, body, version) SELECT ?1, ?2, ?3, 1 WHERE ?4 = 0
                 ON CONFLICT (phone) DO UPDATE SET updated_at = excluded.updated_at, body = excluded.body, version = profiles.version + 1
                 WHERE profiles.version = ?4",
                params![phone, updated_at, body, expected],
            )?;
            let n = if n == 0 && expected > 0 {
                c.execute(
                    "UPDATE profiles SET updated_at = ?2, body = ?3, version = version + 1 WHERE phone = ?1 AND version = ?4",
                    params![phone, updated_at, body, expected],
                )?
            } else {
                n
            };
            Ok(n == 1)
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
