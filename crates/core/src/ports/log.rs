//! The per-message log and its statistics.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::StoreResult;
use crate::domain::turn::TurnRecord;

/// Aggregates over the message log.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LogStats {
    /// Turns recorded.
    pub turns: u64,
    /// Count per outcome name.
    pub by_outcome: Vec<(String, u64)>,
    /// Median of received → finished, milliseconds.
    pub p50_ms: Option<u64>,
    /// 95th percentile of received → finished, milliseconds.
    pub p95_ms: Option<u64>,
    /// Median of the bridge's own time (received → finished minus the bot's time), milliseconds.
    pub overhead_p50_ms: Option<u64>,
    /// 95th percentile of the bridge's own time, milliseconds.
    pub overhead_p95_ms: Option<u64>,
}

/// The per-message log: one record per turn with timings and outcome.
#[async_trait]
pub trait TurnLog: Send + Sync {
    /// Appends a record, once per turn: a record whose first key is already recorded is not
    /// appended again (a turn resumed after a crash between its record and its completion records
    /// itself again; the first record stands).
    async fn record(&self, record: &TurnRecord) -> StoreResult<()>;

    /// The most recent `limit` records, newest first.
    async fn recent(&self, limit: usize) -> StoreResult<Vec<TurnRecord>>;

    /// Aggregates over records whose turn started at or after `since`.
    async fn stats(&self, since: DateTime<Utc>) -> StoreResult<LogStats>;
}
