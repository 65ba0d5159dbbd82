//! The turn log in memory, with the reference definition of its statistics.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{MemoryStore, lock};
use crate::domain::turn::TurnRecord;
use crate::ports::{LogStats, StoreResult, TurnLog};

/// The nearest-rank percentile of ascending `sorted` values: the smallest value with at least
/// `p`% of the values at or below it (no interpolation, so the answer is always a real turn's).
fn nearest_rank(sorted: &[u64], p: usize) -> Option<u64> {
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

/// Received → finished in milliseconds, and the part of it that was not the bot's (both clamped at
/// zero: clocks of different machines may disagree by a little).
fn durations(r: &TurnRecord) -> (u64, u64) {
    let t = &r.timings;
    let total = u64::try_from((t.finished_at - t.received_at).num_milliseconds()).unwrap_or(0);
    (total, total.saturating_sub(t.bot_ms.unwrap_or(0)))
}

#[async_trait]
impl TurnLog for MemoryStore {
    async fn record(&self, record: &TurnRecord) -> StoreResult<()> {
        lock(&self.log).push(record.clone());
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

#[cfg(test)]
mod tests {
    use super::nearest_rank;

    #[test]
    fn nearest_rank_picks_real_values() {
        assert_eq!(nearest_rank(&[], 50), None);
        assert_eq!(nearest_rank(&[7], 95), Some(7));
        let v: Vec<u64> = (1..=20).collect();
        assert_eq!(nearest_rank(&v, 50), Some(10));
        assert_eq!(nearest_rank(&v, 95), Some(19));
        assert_eq!(nearest_rank(&[1, 2, 3], 50), Some(2));
        assert_eq!(nearest_rank(&[1, 2, 3, 4], 50), Some(2));
    }
}
