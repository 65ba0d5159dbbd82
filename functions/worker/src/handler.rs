//! The worker's handler: `handle(deps, event, invocation) -> SqsBatchResponse`.
//!
//! Groups run concurrently; each group's runnable records go, in order, to one `process` call (it
//! claims them in order and folds follow-ups into one turn). Whatever did not finish is decided by
//! core's `JobPolicy` — the one place that decides what becomes of a job — and applied here as SQS
//! allows: acknowledged (not reported), or reported in `batchItemFailures` after its visibility is
//! set to the policy's delay. See the crate docs for the FIFO, failure-count and dead-letter rules.
//!
//! A turn that panics is caught here (its claims released) and counts as a failed attempt, so one
//! chat's bug does not fail the other chats of the batch.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use chrono::{DateTime, TimeZone, Utc};
use futures::FutureExt as _;
use futures::future::join_all;
use lambda_runtime::Context;
use olbridge_aws::emf::Emf;
use olbridge_core::domain::event::Job;
use olbridge_core::metrics::{self, RecordResult};
use olbridge_core::ports::Settle;
use olbridge_core::usecase::job::{JobPolicy, Mode, Next};
use olbridge_core::usecase::process::{self, GroupResult, Owner, ProcessError, Stopped};
use tracing::{error, warn};

use crate::batch::{self, Group};
use crate::metered::MeteredLog;
use crate::visibility::Visibility;

/// The queue's redrive limit (`maxReceiveCount` in `infra/resources.json`; a test keeps them
/// equal): the last delivery on which the worker may still give a turn up itself.
pub const QUEUE_MAX_RECEIVES: u32 = 10;

/// What the handler needs, built once per Lambda instance.
#[derive(Clone)]
pub struct WorkerDeps {
    /// Core's worker dependencies; the turn log writes each turn's metrics ([`MeteredLog`]).
    pub process: process::Deps,
    /// What becomes of a job that did not finish.
    pub policy: JobPolicy,
    /// The queue's redrive limit.
    pub max_receives: u32,
    /// Retry delays.
    pub visibility: Arc<dyn Visibility>,
    /// Where metrics go.
    pub emf: Emf,
}

impl std::fmt::Debug for WorkerDeps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerDeps").field("policy", &self.policy).field("max_receives", &self.max_receives).finish_non_exhaustive()
    }
}

impl WorkerDeps {
    /// The dependencies, with the turn log decorated to write each recorded turn's metrics.
    pub fn new(mut process: process::Deps, policy: JobPolicy, visibility: Arc<dyn Visibility>, emf: Emf) -> Self {
        process.log = Arc::new(MeteredLog::new(Arc::clone(&process.log), emf.clone()));
        Self { process, policy, max_receives: QUEUE_MAX_RECEIVES, visibility, emf }
    }
}

/// The invocation, as far as the handler cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// Lambda's request id: with the group, the claims' owner id (one sequential executor).
    pub request_id: String,
    /// When Lambda will stop the invocation: bounds the claims' leases and the bot's timeout.
    pub deadline: Option<DateTime<Utc>>,
}

impl Invocation {
    /// From the runtime's context; a zero deadline (a context built by hand) means none.
    pub fn from_context(context: &Context) -> Self {
        let deadline = i64::try_from(context.deadline).ok().filter(|ms| *ms > 0).and_then(|ms| Utc.timestamp_millis_opt(ms).single());
        Self { request_id: context.request_id.clone(), deadline }
    }
}

/// Handles one batch.
pub async fn handle(deps: &WorkerDeps, event: SqsEvent, invocation: &Invocation) -> SqsBatchResponse {
    let batch = batch::parse(event.records);
    let mut data = Vec::new();
    for p in &batch.poison {
        error!(message_id = ?p.message_id, group = ?p.group, why = %p.why, "an SQS record is not a job: acknowledged and dropped (it can never succeed)");
        data.push(metrics::record(RecordResult::Poison));
    }
    let results = join_all(batch.groups.iter().map(|g| run_group(deps, g, invocation))).await;
    let mut response = SqsBatchResponse::default();
    for (group, results) in batch.groups.iter().zip(results) {
        for (entry, result) in group.entries.iter().zip(results) {
            if !result.acknowledged() {
                response.add_failure(entry.message_id.clone());
            }
            data.push(metrics::record(result));
        }
    }
    deps.emf.emit(&data, deps.process.clock.now(), &[("requestId", serde_json::json!(invocation.request_id))]);
    response
}

/// Runs one group's records in order; returns what became of each.
async fn run_group(deps: &WorkerDeps, group: &Group, invocation: &Invocation) -> Vec<RecordResult> {
    let entries = &group.entries;
    let mut results: Vec<Option<RecordResult>> = vec![None; entries.len()];
    // Records up to the first one this worker cannot read run; that one and the rest wait for a
    // newer worker, in order.
    let runnable = entries.iter().position(|e| e.job().is_none()).unwrap_or(entries.len());
    if let Some(result) = results.get_mut(runnable) {
        warn!(group = %group.id, "a job of a newer payload version: left for a newer worker, with its chat's later records");
        *result = Some(RecordResult::Unsupported);
    }
    let jobs: Vec<Job> = entries[..runnable].iter().filter_map(|e| e.job().cloned()).collect();
    let owner = Owner { id: format!("{}:{}", invocation.request_id, group.id), deadline: invocation.deadline };
    // SQS counts no interruptions (see the crate docs): the policy's mode is asked for uniformity.
    let mut giving_up = match deps.policy.mode(0) {
        Mode::Process => None,
        Mode::GiveUp { reason } => Some(reason),
    };
    let mut start = 0;
    let mut delay = None;
    while start < jobs.len() {
        let result = guarded(deps, &jobs[start..], &owner, giving_up.as_deref()).await;
        let gave_up = giving_up.take();
        for (i, finished) in result.finished.iter().enumerate() {
            if *finished {
                results[start + i] = Some(if gave_up.is_some() && i == 0 { RecordResult::GivenUp } else { RecordResult::Done });
            }
        }
        if let (Some(reason), Some(RecordResult::GivenUp)) = (&gave_up, results[start]) {
            error!(key = %jobs[start].key, reason = %reason, "a turn was given up: the customer was told and the chat handed to a human (this line and WorkerRecords Result=given_up are its dead letter)");
        }
        let Some(k) = result.finished.iter().position(|f| !f) else { break };
        let at = start + k;
        let (entry, job) = (&entries[at], &jobs[at]);
        let now = deps.process.clock.now();
        let failures = entry.receives.saturating_sub(1);
        let (outcome, wait) = match result.stopped {
            Some(Stopped::Busy { until }) => (RecordResult::Busy, settle_delay(&JobPolicy::after_busy(until, now))),
            Some(Stopped::Failed(e)) if gave_up.is_some() && k == 0 => {
                error!(key = %job.key, error = %e, receives = entry.receives, "cannot give a turn up yet (the customer is not told); retrying, the dead-letter queue takes it at the receive limit");
                (RecordResult::GiveUpFailed, settle_delay(&deps.policy.after_failed_give_up(failures, &e)))
            }
            Some(Stopped::Failed(e)) => {
                warn!(key = %job.key, error = %e, receives = entry.receives, "turn failed");
                match deps.policy.after_failure_on_delivery(entry.receives, deps.max_receives, &e, job.received_at, now) {
                    Next::Settle(settle) => (RecordResult::Retry, settle_delay(&settle)),
                    Next::GiveUp { reason } => {
                        start = at;
                        giving_up = Some(reason);
                        continue;
                    }
                }
            }
            // `process` stops early only with a reason; should it not, the record is retried.
            None => (RecordResult::Retry, Duration::ZERO),
        };
        results[at] = Some(outcome);
        delay = Some(wait);
        break;
    }
    let results: Vec<RecordResult> = results.into_iter().map(|r| r.unwrap_or(RecordResult::Deferred)).collect();
    if let Some(delay) = delay {
        // The failed record and those reported behind it come back together, in order.
        for (entry, result) in entries.iter().zip(&results) {
            if matches!(result, RecordResult::Busy | RecordResult::Retry | RecordResult::GiveUpFailed | RecordResult::Deferred) && entry.job().is_some() {
                set_visibility(deps, entry.receipt_handle.as_deref(), delay).await;
            }
        }
    }
    results
}

fn settle_delay(settle: &Settle) -> Duration {
    match settle {
        Settle::Retry { delay, .. } => *delay,
        Settle::Ack | Settle::DeadLetter { .. } => Duration::ZERO,
    }
}

async fn set_visibility(deps: &WorkerDeps, receipt_handle: Option<&str>, delay: Duration) {
    let Some(handle) = receipt_handle else { return };
    if let Err(e) = deps.visibility.change(handle, delay).await {
        warn!(error = %e, "the record keeps the queue's visibility timeout: its retry comes later than the policy asked");
    }
}

/// `process` (or, with a reason, `give_up`) with a panic caught and turned into a failed attempt;
/// the claims the panicking turn held are released so the retry need not wait for their lease.
async fn guarded(deps: &WorkerDeps, jobs: &[Job], owner: &Owner, give_up: Option<&str>) -> GroupResult {
    let run = async {
        match give_up {
            None => process::process(&deps.process, jobs, owner).await,
            Some(reason) => process::give_up(&deps.process, jobs, owner, reason).await,
        }
    };
    let panic = match AssertUnwindSafe(run).catch_unwind().await {
        Ok(result) => return result,
        Err(panic) => panic,
    };
    let why =
        panic.downcast_ref::<&str>().map(|s| (*s).to_owned()).or_else(|| panic.downcast_ref::<String>().cloned()).unwrap_or_else(|| "unknown panic".into());
    error!(panic = %why, "a turn panicked; it counts as a failed attempt");
    for job in jobs {
        // Only the keys this owner still holds are released; the others answer LeaseLost.
        let _ = deps.process.idempotency.release(&job.key, &owner.id).await;
    }
    GroupResult { finished: vec![false; jobs.len()], outcomes: Vec::new(), stopped: Some(Stopped::Failed(ProcessError::Panicked(why))) }
}

#[cfg(test)]
mod tests;
