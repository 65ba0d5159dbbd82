//! `IdempotencyStore` on the `claims` table. A claim reads its row and writes the decision inside
//! one `BEGIN IMMEDIATE` transaction, which holds SQLite's write lock from the first read: that is
//! the conditional write. The decision itself is core's [`ClaimRecord::decide`], shared with every
//! adapter. The other calls are single conditional statements.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use olbridge_core::domain::ids::DedupKey;
use olbridge_core::domain::turn::{TurnOutcome, TurnProgress};
use olbridge_core::ports::{Admission, Claim, ClaimRecord, IdempotencyStore, RecordPhase, StoreResult};
use rusqlite::{OptionalExtension, Transaction, params};

use super::{Fail, SqliteStore, from_ms, immediate, ms, ms_after, to_json};

/// Reads a key's row as a [`ClaimRecord`].
fn read(tx: &Transaction<'_>, key: &str) -> Result<Option<ClaimRecord>, Fail> {
    type Row = (String, String, Option<i64>, Option<String>, Option<String>, Option<i64>, Option<i64>);
    let row: Option<Row> = tx
        .query_row("SELECT owner, phase, lease_until, progress, outcome, done_at, queued_at FROM claims WHERE key = ?1", [key], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?))
        })
        .optional()?;
    let Some((owner, phase, lease_until, progress, outcome, done_at, queued_at)) = row else { return Ok(None) };
    let corrupt = |what: &str| Fail::Corrupt(format!("claim {key}: {what}"));
    let phase = match phase.as_str() {
        "queued" => RecordPhase::Queued { at: from_ms(queued_at.ok_or_else(|| corrupt("queued without queued_at"))?)? },
        "leased" => RecordPhase::Leased { until: from_ms(lease_until.ok_or_else(|| corrupt("leased without lease_until"))?)? },
        "released" => RecordPhase::Released,
        "done" => RecordPhase::Done {
            outcome: serde_json::from_str(&outcome.ok_or_else(|| corrupt("done without an outcome"))?)?,
            at: from_ms(done_at.ok_or_else(|| corrupt("done without done_at"))?)?,
        },
        other => return Err(corrupt(&format!("unknown phase {other:?}"))),
    };
    let progress = progress.map(|p| serde_json::from_str::<TurnProgress>(&p)).transpose()?;
    Ok(Some(ClaimRecord { owner, phase, progress }))
}

#[async_trait]
impl IdempotencyStore for SqliteStore {
    async fn admit(&self, key: &DedupKey, now: DateTime<Utc>) -> StoreResult<Admission> {
        let (key, now) = (key.as_str().to_owned(), ms(now));
        self.run(move |c| {
            let n = c.execute("INSERT INTO claims (key, owner, phase, queued_at) VALUES (?1, '', 'queued', ?2) ON CONFLICT DO NOTHING", params![key, now])?;
            Ok(if n == 1 { Admission::New } else { Admission::Duplicate })
        })
        .await
    }

    async fn unadmit(&self, key: &DedupKey) -> StoreResult<()> {
        let key = key.as_str().to_owned();
        self.run(move |c| {
            c.execute("DELETE FROM claims WHERE key = ?1 AND phase = 'queued'", [key])?;
            Ok(())
        })
        .await
    }

    async fn claim(&self, key: &DedupKey, owner: &str, now: DateTime<Utc>, lease: Duration) -> StoreResult<Claim> {
        let (key, owner, until) = (key.as_str().to_owned(), owner.to_owned(), ms_after(now, lease));
        self.run(move |c| {
            let tx = immediate(c)?;
            let record = read(&tx, &key)?;
            let answer = ClaimRecord::decide(record.as_ref(), &owner, now);
            if matches!(answer, Claim::New | Claim::Resumed(_)) {
                tx.execute(
                    "INSERT INTO claims (key, owner, phase, lease_until) VALUES (?1, ?2, 'leased', ?3)
                     ON CONFLICT (key) DO UPDATE SET owner = ?2, phase = 'leased', lease_until = ?3, queued_at = NULL",
                    params![key, owner, until],
                )?;
                tx.commit()?;
            }
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

    async fn reopen(&self, key: &DedupKey) -> StoreResult<()> {
        let key = key.as_str().to_owned();
        self.run(move |c| {
            c.execute(
                "UPDATE claims SET phase = 'released', lease_until = NULL, outcome = NULL, done_at = NULL
                 WHERE key = ?1 AND phase IN ('leased', 'done')",
                [key],
            )?;
            Ok(())
        })
        .await
    }

    async fn purge_before(&self, cutoff: DateTime<Utc>) -> StoreResult<u64> {
        let cutoff = ms(cutoff);
        self.run(move |c| {
            let done = c.execute("DELETE FROM claims WHERE phase = 'done' AND done_at < ?1", [cutoff])?;
            let queued = c.execute("DELETE FROM claims WHERE phase = 'queued' AND queued_at < ?1", [cutoff])?;
            Ok((done + queued) as u64)
        })
        .await
    }

    async fn phase(&self, key: &DedupKey) -> StoreResult<Option<RecordPhase>> {
        let key = key.as_str().to_owned();
        self.run(move |c| {
            let tx = c.transaction()?;
            Ok(read(&tx, &key)?.map(|r| r.phase))
        })
        .await
    }
}
