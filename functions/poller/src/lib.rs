//! `olbridge-poller`: the scheduled Lambda function (EventBridge, every minute) that reads the
//! portal instead of being told — operator mode's only source of messages, fetch mode's reader of
//! the bot's queue, and push mode's safety net (reconciliation: Bitrix24 never resends a lost
//! event). In every mode it also writes the CRM timeline comments the worker's turns left in the
//! table's outbox (unless `OLBRIDGE_CRM_TIMELINE=off`).
//!
//! # Modules
//! - [`work`]: what a run does in each mode, built once per instance from the configuration — the
//!   same choice the local runner makes (`OLBRIDGE_MODE`, `OLBRIDGE_POLL_SOURCE`,
//!   `OLBRIDGE_RECONCILE_SEC`).
//! - [`lease`]: the run lease (`poller/lease` in the table), so two overlapping invocations never
//!   poll at once.
//! - [`run`]: one invocation, `handle(deps, event, invocation) -> RunReport`: the lease, the passes
//!   on their schedules until the deadline less a margin, the run's metrics (EMF).
//! - [`probe`]: the direct invocations: `{"olbridge":"health"}` returns the deep health report,
//!   `{"olbridge":"canary"}` runs the synthetic canary and writes `CanaryFailed`/`CanaryLatency`;
//!   [`dispatch`] tells them from a scheduled event.
//! - `main.rs` only wires (configuration, DynamoDB, SQS, the REST client).
//!
//! # One run
//! ```text
//!   scheduled event -> take the lease (compare-and-set; busy: log and return at once)
//!     -> loop until deadline - margin:
//!          renew the lease; run the due task's pass (operator traversal or event log,
//!          reconciliation, fetch tick, CRM timeline drain); log its report; sleep until the
//!          next task is due
//!     -> release the lease; PollerRecovered / PollerFailed as one EMF line
//! ```
//! The passes are core's (`olbridge_core::usecase::poll`, `olbridge_core::usecase::fetch`): they
//! enqueue through the same SQS FIFO queue and de-duplication keys as the receiver, and move their
//! cursors (kept in the table) only past what was enqueued. So a pass that fails, a run cut off by
//! its deadline or an invocation that crashes loses nothing: the next pass finds the messages
//! again, and their keys make a second find harmless.
//!
//! # Why a lease, when the keys already de-duplicate
//! Two runs polling at once would not answer anything twice, but they would double the REST calls
//! on the portal's shared budget and race on the cursors' compare-and-set. The schedule (every
//! minute) and the run's length (up to the function timeout) make overlaps the normal case at the
//! edges, so the second run stands back instead. The stack also reserves a concurrency of 1 for
//! the function; the lease is what holds when that is not enough (a manual invoke, a redeploy).
#![warn(missing_docs)]

pub mod lease;
pub mod probe;
pub mod run;
pub mod work;

pub use run::{Invocation, PollerDeps, RunError, RunReport, Totals, handle};

use serde_json::Value;

/// Why an invocation failed.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    /// A poll run's lease could not be used.
    #[error(transparent)]
    Run(#[from] RunError),
    /// The payload is not one the poller knows.
    #[error(transparent)]
    Unknown(#[from] probe::UnknownRequest),
}

impl From<InvokeError> for lambda_runtime::Diagnostic {
    fn from(e: InvokeError) -> Self {
        match e {
            InvokeError::Run(e) => e.into(),
            InvokeError::Unknown(e) => e.into(),
        }
    }
}

/// One invocation, whatever it asks for (see [`probe`]); the result is the invocation's JSON.
pub async fn dispatch(deps: &PollerDeps, probes: &probe::ProbeDeps, payload: Value, invocation: &Invocation) -> Result<Value, InvokeError> {
    let json = |v: Result<Value, serde_json::Error>| v.unwrap_or_else(|e| serde_json::json!({"error": e.to_string()}));
    Ok(match probe::Request::parse(payload)? {
        probe::Request::Scheduled(event) => json(serde_json::to_value(handle(deps, &event, invocation).await?)),
        probe::Request::Health => json(serde_json::to_value(probe::health(probes).await)),
        probe::Request::Canary => json(serde_json::to_value(probe::canary(probes, invocation).await)),
    })
}
