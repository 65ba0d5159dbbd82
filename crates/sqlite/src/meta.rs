//! `MetaStore` on the `meta` table: a compare-and-set is one conditional statement.

use async_trait::async_trait;
use olbridge_core::ports::{MetaPut, MetaStore, StoreResult, Versioned};
use rusqlite::{OptionalExtension, params};

use super::{Fail, SqliteStore, immediate};

fn version(v: i64) -> Result<u64, Fail> {
    u64::try_from(v).map_err(|_| Fail::Corrupt(format!("meta version {v}")))
}

#[async_trait]
impl MetaStore for SqliteStore {
    async fn get_value(&self, name: &str) -> StoreResult<Option<Versioned>> {
        let name = name.to_owned();
        self.run(move |c| {
            let row: Option<(String, i64)> =
                c.query_row("SELECT value, version FROM meta WHERE name = ?1", [name], |r| Ok((r.get(0)?, r.get(1)?))).optional()?;
            row.map(|(value, v)| Ok(Versioned { value, version: version(v)? })).transpose()
        })
        .await
    }

    async fn put_value(&self, name: &str, value: &str, expected: Option<u64>) -> StoreResult<MetaPut> {
        let (name, value) = (name.to_owned(), value.to_owned());
        let expected = expected.map(|v| i64::try_from(v).unwrap_or(i64::MAX));
        self.run(move |c| {
            let tx = immediate(c)?;
            let written = match expected {
                None => tx.execute("INSERT INTO meta (name, value, version) VALUES (?1, ?2, 1) ON CONFLICT DO NOTHING", params![name, value])?,
                Some(v) => tx.execute("UPDATE meta SET value = ?2, version = version + 1 WHERE name = ?1 AND version = ?3", params![name, value, v])?,
            };
            let row: Option<(String, i64)> =
                tx.query_row("SELECT value, version FROM meta WHERE name = ?1", [&name], |r| Ok((r.get(0)?, r.get(1)?))).optional()?;
            tx.commit()?;
            let current = row.map(|(value, v)| Ok::<_, Fail>(Versioned { value, version: version(v)? })).transpose()?;
            match (written, current) {
                (1, Some(v)) => Ok(MetaPut::Written(v)),
                (_, current) => Ok(MetaPut::Conflict(current)),
            }
        })
        .await
    }
}
