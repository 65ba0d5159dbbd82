//! `JobSink`, `WorkQueue` and `DeadLetters` on the `jobs` table.
//!
//! A job is *waiting* (`receipt IS NULL`, `dead_at IS NULL`), *leased* (`receipt` set) or *dead*
//! (`dead_at` set). A lease is live while `lease_until > now`; an expired lease keeps its receipt
//! until the job is delivered again (which counts an interruption), so the late holder can still
//! settle. The semantics are the contract's (`olbridge_core::contract::queue`); this file only
//! translates them to SQL.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use olbridge_core::domain::event::{GroupId, Job};
use olbridge_core::domain::ids::DedupKey;
use olbridge_core::ports::{DeadLetter, DeadLetters, Delivery, JobSink, QueueDepth, Receipt, Settle, StoreResult, WorkQueue};
use rusqlite::{Transaction, params};

use super::{Fail, SqliteStore, from_ms, immediate, ms, ms_after, to_json};

/// "Due" in SQL, for a job aliased `j`: waiting and available, or leased with an expired lease.
/// `?1` is now.
const DUE: &str = "(CASE WHEN j.receipt IS NULL THEN j.available_at <= ?1 ELSE j.lease_until <= ?1 END)";

/// The heads of the groups (oldest job not dead), for a query aliasing jobs as `j`.
const HEAD: &str = "j.dead_at IS NULL AND j.seq = (SELECT MIN(h.seq) FROM jobs h WHERE h.grp = j.grp AND h.dead_at IS NULL)";

fn count(v: i64, what: &str) -> Result<u32, Fail> {
    u32::try_from(v).map_err(|_| Fail::Corrupt(format!("job {what} is {v}")))
}

/// Leases the job `seq` until `until` with a fresh receipt; a job still holding an (expired)
/// receipt was interrupted.
fn lease(tx: &Transaction<'_>, seq: i64, until: i64) -> Result<Delivery, Fail> {
    let receipt = format!("sq-{seq}-{}", uuid::Uuid::new_v4().simple());
    let (payload, failures, interruptions, last_error): (String, i64, i64, Option<String>) = tx.query_row(
        "UPDATE jobs SET attempt = attempt + 1, interruptions = interruptions + (receipt IS NOT NULL), receipt = ?2, lease_until = ?3
         WHERE seq = ?1 RETURNING payload, failures, interruptions, last_error",
        params![seq, receipt, until],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?;
    let job: Job = serde_json::from_str(&payload)?;
    Ok(Delivery { job, receipt: Receipt(receipt), failures: count(failures, "failures")?, interruptions: count(interruptions, "interruptions")?, last_error })
}

fn lease_all(tx: &Transaction<'_>, seqs: &[i64], until: i64) -> Result<Vec<Delivery>, Fail> {
    seqs.iter().map(|seq| lease(tx, *seq, until)).collect()
}

#[async_trait]
impl JobSink for SqliteStore {
    async fn send(&self, job: &Job, now: DateTime<Utc>) -> StoreResult<()> {
        let payload = to_json(job)?;
        let (key, group, received, now) = (job.key.as_str().to_owned(), job.group.as_str().to_owned(), ms(job.received_at), ms(now));
        self.run(move |c| {
            // A copy of a job still in the queue is dropped (the key is UNIQUE in `jobs`).
            c.execute(
                "INSERT INTO jobs (key, grp, payload, enqueued_at, available_at, received_at) VALUES (?1, ?2, ?3, ?4, ?4, ?5) ON CONFLICT (key) DO NOTHING",
                params![key, group, payload, now, received],
            )?;
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl WorkQueue for SqliteStore {
    async fn receive(&self, max: usize, now: DateTime<Utc>, visibility: Duration) -> StoreResult<Vec<Delivery>> {
        let (until, now) = (ms_after(now, visibility), ms(now));
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        self.run(move |c| {
            let tx = immediate(c)?;
            // Each group's head, if its group is not held and it is due.
            let seqs: Vec<i64> = tx
                .prepare_cached(&format!(
                    "SELECT j.seq FROM jobs j
                     WHERE {HEAD}
                       AND NOT EXISTS (SELECT 1 FROM jobs l WHERE l.grp = j.grp AND l.receipt IS NOT NULL AND l.lease_until > ?1)
                       AND {DUE}
                     ORDER BY j.seq LIMIT ?2"
                ))?
                .query_map(params![now, max], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            let out = lease_all(&tx, &seqs, until)?;
            tx.commit()?;
            Ok(out)
        })
        .await
    }

    async fn receive_more(&self, group: &GroupId, max: usize, now: DateTime<Utc>, visibility: Duration) -> StoreResult<Vec<Delivery>> {
        let (group, until, now) = (group.as_str().to_owned(), ms_after(now, visibility), ms(now));
        self.run(move |c| {
            let tx = immediate(c)?;
            let last_leased: Option<i64> = tx.query_row(
                "SELECT MAX(seq) FROM jobs WHERE grp = ?2 AND dead_at IS NULL AND receipt IS NOT NULL AND lease_until > ?1",
                params![now, group],
                |r| r.get(0),
            )?;
            // Nobody holds the group: its head must go through `receive` first.
            let Some(last_leased) = last_leased else { return Ok(Vec::new()) };
            let mut seqs = Vec::new();
            {
                let mut stmt =
                    tx.prepare_cached(&format!("SELECT j.seq, {DUE} FROM jobs j WHERE j.grp = ?2 AND j.seq > ?3 AND j.dead_at IS NULL ORDER BY j.seq"))?;
                let mut rows = stmt.query(params![now, group, last_leased])?;
                while seqs.len() < max {
                    let Some(row) = rows.next()? else { break };
                    // Strict FIFO: a job that is not due holds back the ones after it.
                    if !row.get::<_, bool>(1)? {
                        break;
                    }
                    seqs.push(row.get(0)?);
                }
            }
            let out = lease_all(&tx, &seqs, until)?;
            tx.commit()?;
            Ok(out)
        })
        .await
    }

    async fn extend(&self, receipt: &Receipt, now: DateTime<Utc>, visibility: Duration) -> StoreResult<()> {
        let (receipt, until) = (receipt.0.clone(), ms_after(now, visibility));
        self.run(move |c| {
            let n = c.execute("UPDATE jobs SET lease_until = ?2 WHERE receipt = ?1", params![receipt, until])?;
            if n == 0 { Err(Fail::LeaseLost) } else { Ok(()) }
        })
        .await
    }

    async fn settle(&self, receipt: &Receipt, settle: &Settle, now: DateTime<Utc>) -> StoreResult<()> {
        let receipt = receipt.0.clone();
        let settle = settle.clone();
        self.run(move |c| {
            let n = match &settle {
                Settle::Ack => c.execute("DELETE FROM jobs WHERE receipt = ?1", [&receipt])?,
                Settle::Retry { delay, failure } => c.execute(
                    "UPDATE jobs SET receipt = NULL, lease_until = NULL, available_at = ?2,
                        failures = failures + (?3 IS NOT NULL), last_error = COALESCE(?3, last_error)
                     WHERE receipt = ?1",
                    params![receipt, ms_after(now, *delay), failure],
                )?,
                Settle::DeadLetter { reason } => c.execute(
                    "UPDATE jobs SET receipt = NULL, lease_until = NULL, dead_at = ?2, dead_reason = ?3 WHERE receipt = ?1",
                    params![receipt, ms(now), reason],
                )?,
            };
            if n == 0 { Err(Fail::LeaseLost) } else { Ok(()) }
        })
        .await
    }

    async fn next_due(&self, now: DateTime<Utc>) -> StoreResult<Option<DateTime<Utc>>> {
        let now = ms(now);
        self.run(move |c| {
            let next: Option<i64> = c.query_row(
                &format!(
                    "SELECT MIN(t) FROM (
                        SELECT CASE WHEN j.receipt IS NULL THEN j.available_at ELSE j.lease_until END AS t FROM jobs j WHERE {HEAD}
                        UNION ALL
                        SELECT lease_until FROM jobs WHERE receipt IS NOT NULL AND lease_until > ?1 AND dead_at IS NULL
                     )"
                ),
                [now],
                |r| r.get(0),
            )?;
            next.map(from_ms).transpose()
        })
        .await
    }

    async fn depth(&self, now: DateTime<Utc>) -> StoreResult<QueueDepth> {
        let now = ms(now);
        self.run(move |c| {
            let (ready, in_flight, dead, oldest): (i64, i64, i64, Option<i64>) = c.query_row(
                "SELECT COUNT(*) FILTER (WHERE dead_at IS NULL AND NOT (receipt IS NOT NULL AND lease_until > ?1)),
                        COUNT(*) FILTER (WHERE dead_at IS NULL AND receipt IS NOT NULL AND lease_until > ?1),
                        COUNT(*) FILTER (WHERE dead_at IS NOT NULL),
                        MIN(received_at) FILTER (WHERE dead_at IS NULL)
                 FROM jobs",
                [now],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )?;
            let n = |v: i64| u64::try_from(v).unwrap_or(0);
            Ok(QueueDepth { ready: n(ready), in_flight: n(in_flight), dead: n(dead), oldest_received_at: oldest.map(from_ms).transpose()? })
        })
        .await
    }
}

#[async_trait]
impl DeadLetters for SqliteStore {
    async fn dead_letters(&self, limit: usize) -> StoreResult<Vec<DeadLetter>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT payload, COALESCE(dead_reason, ''), failures, interruptions, dead_at FROM jobs
                 WHERE dead_at IS NOT NULL ORDER BY dead_at, seq LIMIT ?1",
            )?;
            let rows = stmt
                .query_map([limit], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?, r.get::<_, i64>(3)?, r.get::<_, i64>(4)?)))?;
            let mut out = Vec::new();
            for row in rows {
                let (payload, reason, failures, interruptions, dead_at) = row?;
                out.push(DeadLetter {
                    job: serde_json::from_str(&payload)?,
                    reason,
                    failures: count(failures, "failures")?,
                    interruptions: count(interruptions, "interruptions")?,
                    dead_at: from_ms(dead_at)?,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn redrive(&self, keys: Option<&[DedupKey]>, now: DateTime<Utc>) -> StoreResult<Vec<DedupKey>> {
        let keys: Option<Vec<String>> = keys.map(|k| k.iter().map(|k| k.as_str().to_owned()).collect());
        let now = ms(now);
        self.run(move |c| {
            let tx = immediate(c)?;
            let dead: Vec<String> =
                tx.prepare_cached("SELECT key FROM jobs WHERE dead_at IS NOT NULL ORDER BY seq")?.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
            let mut out = Vec::new();
            for key in dead.into_iter().filter(|k| keys.as_ref().is_none_or(|only| only.contains(k))) {
                tx.execute(
                    "UPDATE jobs SET dead_at = NULL, dead_reason = NULL, failures = 0, interruptions = 0, last_error = NULL,
                        available_at = ?2, receipt = NULL, lease_until = NULL
                     WHERE key = ?1",
                    params![key, now],
                )?;
                out.push(DedupKey::from_stored(key));
            }
            tx.commit()?;
            Ok(out)
        })
        .await
    }
}
