//! The turn log, decorated: every turn recorded is also written as metrics (one EMF line per
//! turn, `olbridge_core::metrics::turn`).
//!
//! Core's `process` records each finished turn in the log exactly where the turn is final, so
//! hooking the log is how the metrics and the per-message log agree turn for turn — including the
//! turns of a give-up and the ignored messages — without the use case knowing about metrics.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use olbridge_aws::emf::Emf;
use olbridge_core::domain::turn::TurnRecord;
use olbridge_core::metrics;
use olbridge_core::ports::{LogStats, StoreResult, TurnLog};
use serde_json::json;

/// A [`TurnLog`] that writes each recorded turn's metrics after recording it.
#[derive(Clone)]
pub struct MeteredLog {
    inner: Arc<dyn TurnLog>,
    emf: Emf,
}

impl std::fmt::Debug for MeteredLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeteredLog").finish_non_exhaustive()
    }
}

impl MeteredLog {
    /// Decorates `inner`.
    pub fn new(inner: Arc<dyn TurnLog>, emf: Emf) -> Self {
        Self { inner, emf }
    }
}

#[async_trait]
impl TurnLog for MeteredLog {
    async fn record(&self, record: &TurnRecord) -> StoreResult<()> {
        self.inner.record(record).await?;
        // The turn's key and chat make an outlier findable in Logs Insights; no phone, no text.
        let key = record.keys.first().map(|k| k.as_str().to_owned()).unwrap_or_default();
        self.emf.emit(&metrics::turn(record), record.timings.finished_at, &[("key", json!(key)), ("dialog", json!(record.dialog))]);
        Ok(())
    }

    async fn recent(&self, limit: usize) -> StoreResult<Vec<TurnRecord>> {
        self.inner.recent(limit).await
    }

    async fn stats(&self, since: DateTime<Utc>) -> StoreResult<LogStats> {
        self.inner.stats(since).await
    }
}
