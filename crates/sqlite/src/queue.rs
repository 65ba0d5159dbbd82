//! `JobQueue` on the `jobs` and `queue_keys` tables.
//!
//! A job is *waiting* (`receipt IS NULL`, `dead_at IS NULL`), *leased* (`receipt` set) or *dead*
//! (`dead_at` set). A lease is live while `lease_until > now`; an expired lease keeps its receipt
//! until the job is delivered again, so the late holder can still ack. The semantics are the
//! contract's (`olbridge_core::contract::queue`); this file only translates them to SQL.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use olbridge_core::domain::event::{GroupId, Job};
use olbridge_core::ports::{Delivery, Enqueued, JobQueue, QueueDepth, Receipt, Requeued, StoreResult};
use rusqlite::{OptionalExtension, Transaction, params};

use super::{Fail, SqliteStore, immediate, ms, ms_after, to_json};

/// "Due" in SQL, for a job aliased `j`: waiting and available, or leased with an expired lease.
/// `?1` is now.
const DUE: &str = "(CASE WHEN j.receipt IS NULL THEN j.available_at <= ?1 ELSE j.lease_until <= ?1 END)";

/// Leases the job `seq` until `until` with a fresh receipt.
fn lease(tx: &Transaction<'_>, seq: i64, until: i64) -> Result<Delivery, Fail> {
    let receipt = format!("sq-{seq}-{}", uuid::Uuid::new_v4().simple());
    let (payload, attempt): (String, i64) = tx.query_row(
        "UPDATE jobs SET attempt = attempt + 1, receipt = ?2, lease_until = ?3 WHERE seq = ?1 RETURNING payload, attempt",
        params![seq, receipt, until],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let job: Job = serde_json::from_str(&payload)?;
    let attempt = u32::try_from(attempt).map_err(|_| Fail::Corrupt(format!("job {seq} has attempt {attempt}")))?;
    Ok(Delivery { job, receipt: Receipt(receipt), attempt })
}

fn lease_all(tx: &Transaction<'_>, seqs: &[i64], until: i64) -> Result<Vec<Delivery>, Fail> {
    seqs.iter().map(|seq| lease(tx, *seq, until)).collect()
}

impl SqliteStore {
    /// Forgets the de-duplication record of jobs enqueued before `cutoff` that have left the queue
    /// (acked); returns how many. Keys of jobs still waiting, leased or dead are kept.
    pub async fn purge_queue_keys_before(&self, cutoff: DateTime<Utc>) -> StoreResult<u64> {
        let cutoff = ms(cutoff);
        self.run(move |c| {
            let n = c.execute("DELETE FROM queue_keys WHERE enqueued_at < ?1 AND NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.key = queue_keys.key)", [cutoff])?;
            Ok(n as u64)
        })
        .await
    }
}

#[async_trait]
impl JobQueue for SqliteStore {
    async fn enqueue(&self, job: &Job, now: DateTime<Utc>) -> StoreResult<Enqueued> {
        let payload = to_json(job)?;
        let (key, group, now) = (job.key.as_str().to_owned(), job.group.as_str().to_owned(), ms(now));
        self.run(move |c| {
            let tx = immediate(c)?;
            let fresh = tx.execute("INSERT INTO queue_keys (key, enqueued_at) VALUES (?1, ?2) ON CONFLICT DO NOTHING", params![key, now])?;
            if fresh == 0 {
                return Ok(Enqueued::Duplicate);
            }
            tx.execute("INSERT INTO jobs (key, grp, payload, enqueued_at, available_at) VALUES (?1, ?2, ?3, ?4, ?4)", params![key, group, payload, now])?;
            tx.commit()?;
            Ok(Enqueued::New)
        })
        .await
    }

    async fn receive(&self, max: usize, now: DateTime<Utc>, visibility: Duration) -> StoreResult<Vec<Delivery>> {
        let (until, now) = (ms_after(now, visibility), ms(now));
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        self.run(move |c| {
            let tx = immediate(c)?;
            // Each group's head (oldest job not dead), if its group is not held and it is due.
            let seqs: Vec<i64> = tx
                .prepare_cached(&format!(
                    "SELECT j.seq FROM jobs j
                     WHERE j.dead_at IS NULL
                       AND j.seq = (SELECT MIN(h.seq) FROM jobs h WHERE h.grp = j.grp AND h.dead_at IS NULL)
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

    async fn ack(&self, receipt: &Receipt) -> StoreResult<()> {
        let receipt = receipt.0.clone();
        self.run(move |c| {
            // The key stays in `queue_keys`, so the job cannot be enqueued again.
            let n = c.execute("DELETE FROM jobs WHERE receipt = ?1", [receipt])?;
            if n == 0 { Err(Fail::LeaseLost) } else { Ok(()) }
        })
        .await
    }

    async fn retry(&self, receipt: &Receipt, now: DateTime<Utc>, delay: Duration, max_attempts: u32, error: &str) -> StoreResult<Requeued> {
        let (receipt, error, later, now) = (receipt.0.clone(), error.to_owned(), ms_after(now, delay), ms(now));
        self.run(move |c| {
            let dead: Option<bool> = c
                .query_row(
                    "UPDATE jobs SET receipt = NULL, lease_until = NULL, last_error = ?3,
                        dead_at = CASE WHEN attempt >= ?4 THEN ?2 END,
                        available_at = CASE WHEN attempt >= ?4 THEN available_at ELSE ?5 END
                     WHERE receipt = ?1 RETURNING dead_at IS NOT NULL",
                    params![receipt, now, error, max_attempts, later],
                    |r| r.get(0),
                )
                .optional()?;
            match dead {
                None => Err(Fail::LeaseLost),
                Some(true) => Ok(Requeued::DeadLettered),
                Some(false) => Ok(Requeued::Later),
            }
        })
        .await
    }

    async fn depth(&self) -> StoreResult<QueueDepth> {
        self.run(|c| {
            let (ready, in_flight, dead): (i64, i64, i64) = c.query_row(
                "SELECT COUNT(*) FILTER (WHERE dead_at IS NULL AND receipt IS NULL),
                        COUNT(*) FILTER (WHERE receipt IS NOT NULL),
                        COUNT(*) FILTER (WHERE dead_at IS NOT NULL)
                 FROM jobs",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?;
            let n = |v: i64| u64::try_from(v).unwrap_or(0);
            Ok(QueueDepth { ready: n(ready), in_flight: n(in_flight), dead: n(dead) })
        })
        .await
    }
}
