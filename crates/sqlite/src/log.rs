//! `TurnLog` on the `turns` table: the record as JSON, plus the columns `recent` and `stats` sort
//! and filter on, computed once when the record is written.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use olbridge_core::domain::stats::{durations, nearest_rank_position};
use olbridge_core::domain::turn::TurnRecord;
use olbridge_core::ports::{LogStats, StoreResult, TurnLog};
use rusqlite::{Connection, OptionalExtension, params};

use super::{Fail, SqliteStore, ms, to_json};

/// The nearest-rank percentile `p` of `column` over the `n` turns started at or after `since`.
fn percentile(c: &Connection, column: &str, since: i64, n: i64, p: i64) -> Result<Option<u64>, Fail> {
    if n == 0 {
        return Ok(None);
    }
    // OFFSET is zero-based.
    let rank = nearest_rank_position(usize::try_from(n).unwrap_or(0), usize::try_from(p).unwrap_or(0));
    let offset = i64::try_from(rank).unwrap_or(i64::MAX) - 1;
    let sql = format!("SELECT {column} FROM turns WHERE started_at >= ?1 ORDER BY {column} LIMIT 1 OFFSET ?2");
    let v: Option<i64> = c.prepare_cached(&sql)?.query_row(params![since, offset], |r| r.get(0)).optional()?;
    Ok(v.map(|v| u64::try_from(v).unwrap_or(0)))
}

#[async_trait]
impl TurnLog for SqliteStore {
    async fn record(&self, record: &TurnRecord) -> StoreResult<()> {
        let (total, overhead) = durations(record);
        let (total, overhead) = (i64::try_from(total).unwrap_or(i64::MAX), i64::try_from(overhead).unwrap_or(i64::MAX));
        let (started, finished) = (ms(record.timings.started_at), ms(record.timings.finished_at));
        let (outcome, body) = (record.outcome.name(), to_json(record)?);
        let turn_key = record.keys.first().map(|k| k.as_str().to_owned());
        self.run(move |c| {
            c.execute(
                "INSERT INTO turns (started_at, finished_at, outcome, total_ms, overhead_ms, body, turn_key) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
                 ON CONFLICT (turn_key) DO NOTHING",
                params![started, finished, outcome, total, overhead, body, turn_key],
            )?;
            Ok(())
        })
        .await
    }

    async fn recent(&self, limit: usize) -> StoreResult<Vec<TurnRecord>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run(move |c| {
            let mut stmt = c.prepare_cached("SELECT body FROM turns ORDER BY finished_at DESC, id DESC LIMIT ?1")?;
            let bodies = stmt.query_map([limit], |r| r.get::<_, String>(0))?;
            let mut out = Vec::new();
            for body in bodies {
                out.push(serde_json::from_str(&body?)?);
            }
            Ok(out)
        })
        .await
    }

    async fn stats(&self, since: DateTime<Utc>) -> StoreResult<LogStats> {
        let since = ms(since);
        self.run(move |c| {
            // One read transaction: every aggregate sees the same rows.
            let tx = c.transaction()?;
            let n: i64 = tx.query_row("SELECT COUNT(*) FROM turns WHERE started_at >= ?1", [since], |r| r.get(0))?;
            let by_outcome = tx
                .prepare_cached("SELECT outcome, COUNT(*) FROM turns WHERE started_at >= ?1 GROUP BY outcome ORDER BY outcome")?
                .query_map([since], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
                .map(|row| row.map(|(k, v)| (k, u64::try_from(v).unwrap_or(0))))
                .collect::<Result<Vec<_>, _>>()?;
            let stats = LogStats {
                turns: u64::try_from(n).unwrap_or(0),
                by_outcome,
                p50_ms: percentile(&tx, "total_ms", since, n, 50)?,
                p95_ms: percentile(&tx, "total_ms", since, n, 95)?,
                overhead_p50_ms: percentile(&tx, "overhead_ms", since, n, 50)?,
                overhead_p95_ms: percentile(&tx, "overhead_ms", since, n, 95)?,
            };
            tx.commit()?;
            Ok(stats)
        })
        .await
    }
}
