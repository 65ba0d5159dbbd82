//! `IdempotencyStore` on the `claims` table. A claim reads and writes its row inside one
//! `BEGIN IMMEDIATE` transaction, which holds SQLite's write lock from the first read: that is the
//! conditional write. The other calls are single conditional `UPDATE`s.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use olbridge_core::domain::ids::DedupKey;
use olbridge_core::domain::turn::{TurnOutcome, TurnProgress};
use olbridge_core::ports::{Claim, IdempotencyStore, StoreResult};
use rusqlite::{OptionalExtension, params};

use super::{Fail, SqliteStore, from_ms, immediate, ms, ms_after, to_json};

/// A `claims` row as the claim needs it.
struct Row {
    owner: String,
    phase: String,
    lease_until: Option<i64>,
    progress: Option<String>,
    outcome: Option<String>,
}

fn progress_of(raw: Option<&str>) -> Result<Option<TurnProgress>, Fail> {
    Ok(raw.map(serde_json::from_str).transpose()?)
}

#[async_trait]
impl IdempotencyStore for SqliteStore {
    async fn claim(&self, key: &DedupKey, owner: &str, now: DateTime<Utc>, lease: Duration) -> StoreResult<Claim> {
        let (key, owner, until) = (key.as_str().to_owned(), owner.to_owned(), ms_after(now, lease));
        let now = ms(now);
        self.run(move |c| {
            let tx = immediate(c)?;
            let row = tx
                .query_row("SELECT owner, phase, lease_until, progress, outcome FROM claims WHERE key = ?1", [&key], |r| {
                    Ok(Row { owner: r.get(0)?, phase: r.get(1)?, lease_until: r.get(2)?, progress: r.get(3)?, outcome: r.get(4)? })
                })
                .optional()?;
            let answer = match row {
                None => {
                    tx.execute("INSERT INTO claims (key, owner, phase, lease_until) VALUES (?1, ?2, 'leased', ?3)", params![key, owner, until])?;
                    tx.commit()?;
                    return Ok(Claim::New);
                }
                Some(row) => match (row.phase.as_str(), row.lease_until) {
                    ("done", _) => {
                        let outcome = row.outcome.ok_or_else(|| Fail::Corrupt(format!("claim {key} is done without an outcome")))?;
                        return Ok(Claim::Done(serde_json::from_str(&outcome)?));
                    }
                    // Another owner's live lease; the holder itself may claim again (see the contract).
                    ("leased", Some(end)) if end > now && row.owner != owner => return Ok(Claim::InProgress { until: from_ms(end)? }),
                    ("leased", _) => Claim::Resumed(progress_of(row.progress.as_deref())?.unwrap_or_default()),
                    ("released", _) => progress_of(row.progress.as_deref())?.map_or(Claim::New, Claim::Resumed),
                    (other, _) => return Err(Fail::Corrupt(format!("claim {key} has unknown phase {other:?}"))),
                },
            };
            tx.execute("UPDATE claims SET owner = ?2, phase = 'leased', lease_until = ?3 WHERE key = ?1", params![key, owner, until])?;
            tx.commit()?;
            Ok(answer)
        })
        .await
    }

    async fn checkpoint(&self, key: &DedupKey, owner: &str, progress: &TurnProgress, now: DateTime<Utc>, lease: Duration) -> StoreResult<()> {
        let (key, owner, until) = (key.as_str().to_owned(), owner.to_owned(), ms_after(now, lease));
        let progress = to_json(progress)?;
        self.run(move |c| {
            let n = c.execute(
                "UPDATE claims SET progress = ?3, lease_until = ?4 WHERE key = ?1 AND owner = ?2 AND phase = 'leased'",
                params![key, owner, progress, until],
            )?;
            if n == 0 { Err(Fail::LeaseLost) } else { Ok(()) }
        })
        .await
    }

    async fn complete(&self, key: &DedupKey, owner: &str, outcome: &TurnOutcome, now: DateTime<Utc>) -> StoreResult<()> {
        let (key, owner, done_at) = (key.as_str().to_owned(), owner.to_owned(), ms(now));
        let outcome = to_json(outcome)?;
        self.run(move |c| {
            let tx = immediate(c)?;
            // The checkpoint is no longer needed once the outcome is final.
            let n = tx.execute(
                "UPDATE claims SET phase = 'done', outcome = ?3, done_at = ?4, lease_until = NULL, progress = NULL
                 WHERE key = ?1 AND owner = ?2 AND phase = 'leased'",
                params![key, owner, outcome, done_at],
            )?;
            // A retried complete whose first attempt went through is fine.
            let ok = n > 0
                || tx.query_row("SELECT 1 FROM claims WHERE key = ?1 AND owner = ?2 AND phase = 'done'", [&key, &owner], |_| Ok(())).optional()?.is_some();
            tx.commit()?;
            if ok { Ok(()) } else { Err(Fail::LeaseLost) }
        })
        .await
    }

    async fn release(&self, key: &DedupKey, owner: &str) -> StoreResult<()> {
        let (key, owner) = (key.as_str().to_owned(), owner.to_owned());
        self.run(move |c| {
            let n = c.execute(
                "UPDATE claims SET phase = 'released', lease_until = NULL
                 WHERE key = ?1 AND owner = ?2 AND phase IN ('leased', 'released')",
                [&key, &owner],
            )?;
            if n == 0 { Err(Fail::LeaseLost) } else { Ok(()) }
        })
        .await
    }

    async fn purge_done_before(&self, cutoff: DateTime<Utc>) -> StoreResult<u64> {
        let cutoff = ms(cutoff);
        self.run(move |c| Ok(c.execute("DELETE FROM claims WHERE phase = 'done' AND done_at < ?1", [cutoff])? as u64)).await
    }
}
