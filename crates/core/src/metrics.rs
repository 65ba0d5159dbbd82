//! The metrics catalogue: every application metric olbridge emits, defined once — its name, unit,
//! dimensions and who emits it — and the pure functions that turn what happened (a finished turn, a
//! received event, a worker's decision about an SQS record) into metric values.
//!
//! # Why a catalogue
//! Three parties must agree on a metric's spelling: the code that emits it (the Lambda functions,
//! through the EMF writer in `olbridge-aws`), the CDK stack's alarms and dashboard, and the
//! operator reading `docs/metrics.md`. The stack reads `infra/metrics.json`, which a test keeps
//! equal to [`catalogue_json`]; the docs are checked for every metric name. A metric renamed here
//! without the file fails the build instead of silently breaking an alarm.
//!
//! # Why no I/O
//! Values are computed here from the domain's records ([`TurnRecord`], the receiver's result), so
//! the definitions (what "end-to-end latency" measures, which outcomes count as escalations) are
//! unit-tested and shared with the local runner's statistics (`crate::domain::stats`): the p95
//! CloudWatch shows and the p95 `olbridge stats` prints are the same definition. Writing them out
//! is the adapter's business (CloudWatch Embedded Metric Format on Lambda).
//!
//! Every dimension's value set is closed (outcome names, handoff rules, refusal codes) except
//! where noted, so no metric can explode into unbounded dimension values (each value is a billed
//! custom metric).

use serde_json::{Value, json};

use crate::domain::stats;
use crate::domain::turn::{TurnOutcome, TurnRecord};
use crate::usecase::receive::{ReceiveError, Received};

/// The CloudWatch namespace of every olbridge metric.
pub const NAMESPACE: &str = "Olbridge";

/// A CloudWatch unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// A count of things.
    Count,
    /// A duration in milliseconds.
    Milliseconds,
}

impl Unit {
    /// CloudWatch's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Count => "Count",
            Self::Milliseconds => "Milliseconds",
        }
    }
}

/// A dimension name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dimension {
    /// A turn's outcome ([`TurnOutcome::name`]).
    Outcome,
    /// Why a chat went to a human ([`escalation_reason`]).
    Reason,
    /// What became of an event or a record.
    Result,
    /// A Bitrix24 REST method.
    Method,
    /// A customer's CSAT answer (`up`, `down`).
    Answer,
}

impl Dimension {
    /// The dimension's name in CloudWatch.
    pub fn name(self) -> &'static str {
        match self {
            Self::Outcome => "Outcome",
            Self::Reason => "Reason",
            Self::Result => "Result",
            Self::Method => "Method",
            Self::Answer => "Answer",
        }
    }
}

/// Which function emits a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Emitter {
    /// `olbridge-receiver`.
    Receiver,
    /// `olbridge-worker`.
    Worker,
    /// `olbridge-poller`.
    Poller,
    /// `olbridge-rotator`.
    Rotator,
}

impl Emitter {
    /// The name used in `infra/metrics.json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Receiver => "receiver",
            Self::Worker => "worker",
            Self::Poller => "poller",
            Self::Rotator => "rotator",
        }
    }
}

/// Every metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    /// Receiver: one per event, by what became of it.
    Events,
    /// Worker: one per recorded turn, by outcome.
    Turns,
    /// Worker: received → finished, per turn.
    EndToEndLatency,
    /// Worker: received → finished minus the bot's time, per turn.
    BridgeOverhead,
    /// Worker: time spent waiting for the bot, per turn that called it.
    BotLatency,
    /// Worker: bot calls made, per turn that called it.
    BotAttempts,
    /// Worker: one per turn that sent the chat to a human, by reason.
    Escalations,
    /// Worker: one per SQS record, by what became of it.
    WorkerRecords,
    /// Worker: HTTP requests to the portal, per turn that counted them.
    TurnRestCalls,
    /// Worker: one per consumed CSAT answer, by answer.
    CsatAnswers,
    /// Reserved: Bitrix24 REST calls, by method.
    RestCalls,
    /// Poller: messages a pass enqueued (found by polling, or recovered by reconciliation).
    PollerRecovered,
    /// Poller: runs that failed (every pass failed, or the run itself did).
    PollerFailed,
    /// Poller (canary invocation): 1 when the synthetic canary got no bot reply in time, else 0.
    CanaryFailed,
    /// Poller (canary invocation): from the canary's message to the bot's reply, per passed canary.
    CanaryLatency,
    /// Rotator: a rotation step found no pending version to work on (the quarterly rotation is due).
    RotationNothingStaged,
    /// Rotator: a rotation step failed.
    RotationFailed,
}

/// A metric's definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricDef {
    /// The metric's name in CloudWatch.
    pub name: &'static str,
    /// Its unit.
    pub unit: Unit,
    /// Who emits it.
    pub emitter: Emitter,
    /// Its one dimension set (empty: no dimensions).
    pub dimensions: &'static [Dimension],
    /// The closed set of values of its dimension, when it has one with a closed set.
    pub values: Option<&'static [&'static str]>,
    /// Whether a function emits it today (reserved metrics are defined so the stack can refer to
    /// them; the function that will emit them is not written yet).
    pub emitted: bool,
    /// What one value means.
    pub about: &'static str,
}

/// The outcome names ([`TurnOutcome::name`]), the values of `Turns`' `Outcome`.
pub const OUTCOMES: &[&str] = &["answered", "cached", "rate_limited", "silent", "handed_off", "fallback", "gave_up", "window_closed", "ignored"];

/// The values of `CsatAnswers`' `Answer`.
pub const CSAT_ANSWERS: &[&str] = &["up", "down"];

/// The handoff rules ([`crate::domain::turn::HandoffReason::rule`]), the values of
/// `Escalations`' `Reason`.
pub const ESCALATION_REASONS: &[&str] = &["phrase", "lone_word", "bot_handoff", "bot_failure", "portal_refused", "gave_up", "window_closed", "daily_cap"];

/// The values of `Events`' `Result`: the accepted results, then the refusal codes
/// ([`ReceiveError::code`]).
pub const EVENT_RESULTS: &[&str] =
    &["enqueued", "duplicate", "ignored", "too_large", "malformed", "unauthorized", "stale", "unknown_portal", "not_allowed", "unavailable"];

/// What the worker did with one SQS record (the values of `WorkerRecords`' `Result`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordResult {
    /// Its turn finished (now or before): acknowledged.
    Done,
    /// Its turn was given up (the customer got the fallback message, the chat a human):
    /// acknowledged.
    GivenUp,
    /// Not a job at all: acknowledged and dropped (it can never succeed).
    Poison,
    /// A job of a newer payload version than this worker reads: reported, for a newer worker.
    Unsupported,
    /// Its turn failed: reported, to be redelivered after the policy's delay.
    Retry,
    /// Another invocation holds its turn: reported, to be redelivered when that lease ends.
    Busy,
    /// Behind a failed or busy record of its chat: reported without being tried (FIFO order).
    Deferred,
    /// Giving its turn up failed too: reported (the dead-letter queue takes it at the queue's
    /// receive limit).
    GiveUpFailed,
}

impl RecordResult {
    /// Every result, in the catalogue's order.
    pub const ALL: [Self; 8] = [Self::Done, Self::GivenUp, Self::Poison, Self::Unsupported, Self::Retry, Self::Busy, Self::Deferred, Self::GiveUpFailed];

    /// The dimension value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Done => "done",
            Self::GivenUp => "given_up",
            Self::Poison => "poison",
            Self::Unsupported => "unsupported",
            Self::Retry => "retry",
            Self::Busy => "busy",
            Self::Deferred => "deferred",
            Self::GiveUpFailed => "give_up_failed",
        }
    }

    /// Whether the record is acknowledged (deleted from the queue) rather than reported.
    pub fn acknowledged(self) -> bool {
        matches!(self, Self::Done | Self::GivenUp | Self::Poison)
    }
}

const RECORD_RESULTS: &[&str] = &["done", "given_up", "poison", "unsupported", "retry", "busy", "deferred", "give_up_failed"];

impl Metric {
    /// Every metric, in the catalogue's order.
    pub const ALL: [Self; 17] = [
        Self::Events,
        Self::Turns,
        Self::EndToEndLatency,
        Self::BridgeOverhead,
        Self::BotLatency,
        Self::BotAttempts,
        Self::Escalations,
        Self::WorkerRecords,
        Self::TurnRestCalls,
        Self::CsatAnswers,
        Self::RestCalls,
        Self::PollerRecovered,
        Self::PollerFailed,
        Self::CanaryFailed,
        Self::CanaryLatency,
        Self::RotationNothingStaged,
        Self::RotationFailed,
    ];

    /// The metric's definition.
    pub fn def(self) -> MetricDef {
        use Dimension as D;
        use Emitter as E;
        use Unit::{Count, Milliseconds};
        let (name, unit, emitter, dimensions, values, emitted, about): (_, _, _, &'static [Dimension], _, _, _) = match self {
            Self::Events => ("Events", Count, E::Receiver, &[D::Result], Some(EVENT_RESULTS), true, "one event POSTed to /bitrix/events, by what became of it"),
            Self::Turns => (
                "Turns",
                Count,
                E::Worker,
                &[D::Outcome],
                Some(OUTCOMES),
                true,
                "one recorded turn (one or more customer messages answered together), by outcome",
            ),
            Self::EndToEndLatency => (
                "EndToEndLatency",
                Milliseconds,
                E::Worker,
                &[],
                None,
                true,
                "a turn's first message received by the bridge -> its reply (or handoff) confirmed by the portal",
            ),
            Self::BridgeOverhead => {
                ("BridgeOverhead", Milliseconds, E::Worker, &[], None, true, "EndToEndLatency minus the time spent waiting for the bot: the bridge's own share")
            }
            Self::BotLatency => ("BotLatency", Milliseconds, E::Worker, &[], None, true, "time spent waiting for the bot in one turn, over all its attempts"),
            Self::BotAttempts => ("BotAttempts", Count, E::Worker, &[], None, true, "bot calls made for one turn (1 unless the bot failed and was retried)"),
            Self::Escalations => (
                "Escalations",
                Count,
                E::Worker,
                &[D::Reason],
                Some(ESCALATION_REASONS),
                true,
                "one turn that sent the chat to a human operator, by the rule that fired",
            ),
            Self::WorkerRecords => {
                ("WorkerRecords", Count, E::Worker, &[D::Result], Some(RECORD_RESULTS), true, "one SQS record handled by the worker, by what became of it")
            }
            Self::TurnRestCalls => {
                ("TurnRestCalls", Count, E::Worker, &[], None, true, "HTTP requests to the portal one turn made, retries included (turns that counted them)")
            }
            Self::CsatAnswers => (
                "CsatAnswers",
                Count,
                E::Worker,
                &[D::Answer],
                Some(CSAT_ANSWERS),
                true,
                "one customer's answer to the CSAT prompt after a bot answer: up (1, it helped) or down (2)",
            ),
            Self::RestCalls => ("RestCalls", Count, E::Worker, &[D::Method], None, false, "one Bitrix24 REST call, by method (reserved)"),
            Self::PollerRecovered => (
                "PollerRecovered",
                Count,
                E::Poller,
                &[],
                None,
                true,
                "messages the poller's passes enqueued in one run (operator mode: every new message; push and fetch mode: a message whose event was lost, recovered)",
            ),
            Self::PollerFailed => (
                "PollerFailed",
                Count,
                E::Poller,
                &[],
                None,
                true,
                "one poller run that failed: every pass of the run failed, or the run itself did (0 for a run that worked)",
            ),
            Self::CanaryFailed => (
                "CanaryFailed",
                Count,
                E::Poller,
                &[],
                None,
                true,
                "one synthetic canary (a poller invocation with {\"olbridge\":\"canary\"}): 1 when no bot reply came in time or the reply was the fallback message, 0 when it passed",
            ),
            Self::CanaryLatency => (
                "CanaryLatency",
                Milliseconds,
                E::Poller,
                &[],
                None,
                true,
                "a passed canary: from posting its test message to seeing the bot's reply in the canary dialog",
            ),
            Self::RotationNothingStaged => {
                ("RotationNothingStaged", Count, E::Rotator, &[], None, true, "a rotation that found no staged webhook: the quarterly webhook rotation is due")
            }
            Self::RotationFailed => ("RotationFailed", Count, E::Rotator, &[], None, true, "a rotation step that failed (nothing staged included)"),
        };
        MetricDef { name, unit, emitter, dimensions, values, emitted, about }
    }
}

/// One metric value with its dimension values.
#[derive(Debug, Clone, PartialEq)]
pub struct Datum {
    /// The metric.
    pub metric: Metric,
    /// The value, in the metric's unit.
    pub value: f64,
    /// The value of each of the metric's dimensions, in its definition's order.
    pub dimensions: Vec<(Dimension, &'static str)>,
}

impl Datum {
    fn plain(metric: Metric, value: f64) -> Self {
        Self { metric, value, dimensions: Vec::new() }
    }

    fn one(metric: Metric, dimension: Dimension, value: &'static str) -> Self {
        Self { metric, value: 1.0, dimensions: vec![(dimension, value)] }
    }

    /// Whether the datum has exactly its metric's dimensions, with values from their closed sets.
    pub fn conforms(&self) -> bool {
        let def = self.metric.def();
        let names: Vec<Dimension> = self.dimensions.iter().map(|(d, _)| *d).collect();
        names == def.dimensions && def.values.is_none_or(|values| self.dimensions.iter().all(|(_, v)| values.contains(v)))
    }
}

/// The handoff rule of a turn that sent the chat to a human, `None` for other outcomes: the
/// rule of [`TurnOutcome::HandedOff`]'s reason, `bot_failure` for a fallback (the bot kept
/// failing), `gave_up` for a turn the bridge gave up, `window_closed` for a chat handed over
/// because WhatsApp's 24-hour window closed — the rules of the `HandoffReason`s those outcomes
/// come from.
pub fn escalation_reason(outcome: &TurnOutcome) -> Option<&'static str> {
    match outcome {
        TurnOutcome::HandedOff { reason } => Some(reason.rule()),
        TurnOutcome::Fallback { .. } => Some("bot_failure"),
        TurnOutcome::GaveUp { .. } => Some("gave_up"),
        TurnOutcome::WindowClosed { .. } => Some("window_closed"),
        TurnOutcome::Answered { .. } | TurnOutcome::Cached { .. } | TurnOutcome::RateLimited { .. } | TurnOutcome::Silent | TurnOutcome::Ignored { .. } => None,
    }
}

/// The metric values of one recorded turn: `Turns` by outcome, the latencies (every turn, the
/// same population as `olbridge stats`), the bot's time and attempts when the bot was called, and
/// `Escalations` when the chat went to a human.
pub fn turn(record: &TurnRecord) -> Vec<Datum> {
    let (total, overhead) = stats::durations(record);
    let mut data = vec![
        Datum::one(Metric::Turns, Dimension::Outcome, record.outcome.name()),
        Datum::plain(Metric::EndToEndLatency, total as f64),
        Datum::plain(Metric::BridgeOverhead, overhead as f64),
    ];
    if let Some(bot_ms) = record.timings.bot_ms {
        data.push(Datum::plain(Metric::BotLatency, bot_ms as f64));
    }
    if record.bot_attempts > 0 {
        data.push(Datum::plain(Metric::BotAttempts, f64::from(record.bot_attempts)));
    }
    if let Some(reason) = escalation_reason(&record.outcome) {
        data.push(Datum::one(Metric::Escalations, Dimension::Reason, reason));
    }
    if let Some(n) = record.trace.rest_calls {
        data.push(Datum::plain(Metric::TurnRestCalls, f64::from(n)));
    }
    match record.trace.csat.as_deref() {
        Some("up") => data.push(Datum::one(Metric::CsatAnswers, Dimension::Answer, "up")),
        Some("down") => data.push(Datum::one(Metric::CsatAnswers, Dimension::Answer, "down")),
        _ => {}
    }
    data
}

/// The `Result` of a received event: `enqueued`, `duplicate`, `ignored`, or the refusal's code.
pub fn event_result(result: &Result<Received, ReceiveError>) -> &'static str {
    match result {
        Ok(Received::Enqueued(_)) => "enqueued",
        Ok(Received::Duplicate(_)) => "duplicate",
        Ok(Received::Ignored(_)) => "ignored",
        Err(e) => e.code(),
    }
}

/// The metric value of one event the receiver handled.
pub fn event(result: &Result<Received, ReceiveError>) -> Datum {
    Datum::one(Metric::Events, Dimension::Result, event_result(result))
}

/// The metric values of a rotation step that failed: `RotationFailed`, and `RotationNothingStaged`
/// when the cause was that no new webhook was staged.
pub fn rotation_failed(nothing_staged: bool) -> Vec<Datum> {
    let mut data = vec![Datum::plain(Metric::RotationFailed, 1.0)];
    if nothing_staged {
        data.push(Datum::plain(Metric::RotationNothingStaged, 1.0));
    }
    data
}

/// The metric values of one poller run that held the lease: `PollerRecovered` (the messages its
/// passes enqueued, resent lost jobs included) and `PollerFailed` (1 when the run failed, else 0, so
/// the alarm's sum has data points from every run).
pub fn poller_run(recovered: usize, failed: bool) -> Vec<Datum> {
    vec![Datum::plain(Metric::PollerRecovered, recovered as f64), Datum::plain(Metric::PollerFailed, if failed { 1.0 } else { 0.0 })]
}

/// The metric values of one canary: `CanaryFailed` (1 or 0, so the alarm's sum has a data point
/// from every canary) and, when it passed, `CanaryLatency`.
pub fn canary(result: &crate::usecase::canary::CanaryResult) -> Vec<Datum> {
    match result {
        crate::usecase::canary::CanaryResult::Passed { latency_ms } => {
            vec![Datum::plain(Metric::CanaryFailed, 0.0), Datum::plain(Metric::CanaryLatency, *latency_ms as f64)]
        }
        crate::usecase::canary::CanaryResult::Failed { .. } => vec![Datum::plain(Metric::CanaryFailed, 1.0)],
    }
}

/// The metric value of one SQS record the worker handled.
pub fn record(result: RecordResult) -> Datum {
    Datum::one(Metric::WorkerRecords, Dimension::Result, result.as_str())
}

/// The catalogue as `infra/metrics.json` holds it (the CDK stack's alarms and dashboard read that
/// file): the namespace, and per metric its name, unit, emitter, dimension sets (EMF's shape: a
/// list of sets), the closed value set of each dimension that has one, whether it is emitted yet,
/// and what it counts.
pub fn catalogue_json() -> Value {
    let metrics: Vec<Value> = Metric::ALL
        .iter()
        .map(|m| {
            let d = m.def();
            let set: Vec<&str> = d.dimensions.iter().map(|x| x.name()).collect();
            let values: serde_json::Map<String, Value> = match (d.dimensions.first(), d.values) {
                (Some(dim), Some(values)) => std::iter::once((dim.name().to_owned(), json!(values))).collect(),
                _ => serde_json::Map::new(),
            };
            json!({
                "name": d.name,
                "unit": d.unit.as_str(),
                "emitter": d.emitter.as_str(),
                "dimension_sets": [set],
                "dimension_values": values,
                "emitted": d.emitted,
                "about": d.about,
            })
        })
        .collect();
    json!({
        "_about": "The olbridge metrics catalogue, generated from crates/core/src/metrics.rs (a test fails when they differ). The CDK stack's alarms and dashboard read it; docs/metrics.md explains each metric.",
        "namespace": NAMESPACE,
        "metrics": metrics,
    })
}

#[cfg(test)]
mod tests;
