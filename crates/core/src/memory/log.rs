//! The turn log in memory; the statistics' definitions are `crate::domain::stats`.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{MemoryStore, lock};
use crate::domain::stats::{durations, nearest_rank};
use crate::domain::turn::TurnRecord;
use crate::ports::{LogStats, StoreResult, TurnLog};

#[async_trait]
impl TurnLog for MemoryStore {
    async fn record(&self, record: &TurnRecord) -> StoreResult<()> {
        let mut log = lock(&self.log);
        let first = record.keys.first();
        if first.is_none() || !log.iter().any(|r| r.keys.first() == first) {
            log.push(record.clone());
        }
        Ok(())
    }

    async fn recent(&self, limit: usize) -> StoreResult<Vec<TurnRecord>> {
        let log = lock(&self.log);
        // Newest by finish time; among equal times the later recorded first.
        let mut order: Vec<(DateTime<Utc>, usize)> = log.iter().enumerate().map(|(i, r)| (r.timings.finished_at, i)).collect();
        order.sort_unstable_by(|a, b| b.cmp(a));
        Ok(order.into_iter().take(limit).map(|(_, i)| log[i].clone()).collect())
    }

    async fn stats(&self, since: DateTime<Utc>) -> StoreResult<LogStats> {
        let log = lock(&self.log);
        let mut by_outcome: BTreeMap<&str, u64> = BTreeMap::new();
        let mut totals = Vec::new();
        let mut overheads = Vec::new();
        for r in log.iter().filter(|r| r.timings.started_at >= since) {
            *by_outcome.entry(r.outcome.name()).or_default() += 1;
            let (total, overhead) = durations(r);
            totals.push(total);
            overheads.push(overhead);
        }
        totals.sort_unstable();
        overheads.sort_unstable();
        Ok(LogStats {
            turns: totals.len() as u64,
            by_outcome: by_outcome.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            p50_ms: nearest_rank(&totals, 50),
            p95_ms: nearest_rank(&totals, 95),
            overhead_p50_ms: nearest_rank(&overheads, 50),
            overhead_p95_ms: nearest_rank(&overheads, 95),
        })
    }
}
