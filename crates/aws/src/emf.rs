//! CloudWatch Embedded Metric Format (EMF): metric values from `olbridge_core::metrics` written as
//! JSON lines on stdout, which CloudWatch Logs turns into metrics (no `PutMetricData` call, no
//! latency on the handler's path, no IAM permission beyond writing logs).
//!
//! # Why hand-rolled
//! The maintained crates were weighed against the ~100 lines here:
//! - `metrics_cloudwatch_embedded` 0.10 (a backend for the `metrics` facade; its `lambda` feature
//!   depends on `lambda_runtime`/`lambda_http` 1.x, so no second runtime would enter the tree):
//!   it installs a process-global recorder (`init()` once per process, so tests in one binary share
//!   it and cannot check their own output in parallel), names metrics by strings at each call site
//!   (a second, unchecked catalogue beside ours), and aggregates counters until a flush after each
//!   invocation — we want one line per turn and per event, carrying that turn's values, so a
//!   CloudWatch Logs Insights query can find the turn behind an outlier.
//! - `metrique` (awslabs, 0.1.x): a general "unit of work" metrics library with global entry sinks
//!   and background queues; far more machinery than printing a line, and not Lambda-aware (the
//!   queue must be flushed before the invocation returns or the sandbox is frozen with lines
//!   unwritten).
//! - Here: a pure function from [`Datum`]s to EMF documents (unit-tested), and a writer that prints
//!   each as one line, synchronously, before the handler returns. The catalogue in core stays the
//!   only place metric names and units are spelled. EMF is a stable, documented JSON shape; what it
//!   costs us is this module.
//!
//! # The format
//! A document is a JSON object with an `_aws` member (`Timestamp` in epoch milliseconds and
//! `CloudWatchMetrics`: directives of `Namespace`, `Dimensions` — a list of dimension-name sets —
//! and `Metrics` — name and unit) and top-level members holding each metric's value and each
//! dimension's value. One document may carry several directives (a turn's `Turns` by `Outcome`,
//! its latencies without dimensions, its `Escalations` by `Reason`) as long as no member needs two
//! values; [`documents`] packs the values into as few documents as that allows.
//!
//! Lines go to stdout, each written whole, separate from tracing's log lines (CloudWatch extracts
//! only lines that are EMF documents, not EMF embedded in a log message). moto does not extract
//! EMF, so tests parse the lines ([`Emf::capture`], [`read`]).

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use olbridge_core::metrics::{Datum, NAMESPACE};
use serde_json::{Map, Value, json};

/// Why an EMF line could not be read back ([`read`]).
#[derive(Debug, thiserror::Error)]
pub enum EmfError {
    /// Not JSON.
    #[error("not JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// JSON, but not an EMF document as CloudWatch requires it.
    #[error("not an EMF document: {0}")]
    Shape(String),
}

/// Builds the EMF documents for `data` at `at`, with `properties` as extra top-level members
/// (searchable in Logs Insights, not metrics; their names must not be metric or dimension names).
/// Values are packed into as few documents as possible: a metric appears once per document, and a
/// dimension has one value per document.
pub fn documents(data: &[Datum], at: DateTime<Utc>, properties: &[(&str, Value)]) -> Vec<Value> {
    struct Doc<'a> {
        dims: BTreeMap<&'static str, &'static str>,
        data: Vec<&'a Datum>,
    }
    let mut docs: Vec<Doc<'_>> = Vec::new();
    for d in data {
        let name = d.metric.def().name;
        let fits = |doc: &Doc<'_>| {
            doc.data.iter().all(|x| x.metric.def().name != name) && d.dimensions.iter().all(|(k, v)| doc.dims.get(k.name()).is_none_or(|have| have == v))
        };
        let doc = match docs.iter().position(fits) {
            Some(i) => &mut docs[i],
            None => {
                docs.push(Doc { dims: BTreeMap::new(), data: Vec::new() });
                let last = docs.len() - 1;
                &mut docs[last]
            }
        };
        doc.dims.extend(d.dimensions.iter().map(|(k, v)| (k.name(), *v)));
        doc.data.push(d);
    }
    docs.into_iter()
        .map(|doc| {
            // One directive per dimension set, in first-seen order.
            let mut directives: Vec<(Vec<&str>, Vec<Value>)> = Vec::new();
            let mut body = Map::new();
            for d in &doc.data {
                let def = d.metric.def();
                let set: Vec<&str> = d.dimensions.iter().map(|(k, _)| k.name()).collect();
                let metric = json!({"Name": def.name, "Unit": def.unit.as_str()});
                match directives.iter_mut().find(|(s, _)| *s == set) {
                    Some((_, metrics)) => metrics.push(metric),
                    None => directives.push((set, vec![metric])),
                }
                body.insert(def.name.to_owned(), json!(d.value));
            }
            for (k, v) in &doc.dims {
                body.insert((*k).to_owned(), json!(v));
            }
            for (k, v) in properties {
                body.entry(*k).or_insert_with(|| v.clone());
            }
            let directives: Vec<Value> =
                directives.into_iter().map(|(set, metrics)| json!({"Namespace": NAMESPACE, "Dimensions": [set], "Metrics": metrics})).collect();
            body.insert("_aws".into(), json!({"Timestamp": at.timestamp_millis(), "CloudWatchMetrics": directives}));
            Value::Object(body)
        })
        .collect()
}

/// Writes EMF lines. Cheap to clone; clones share the output.
#[derive(Clone)]
pub struct Emf {
    out: Arc<Mutex<Box<dyn Write + Send>>>,
}

impl std::fmt::Debug for Emf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emf").finish_non_exhaustive()
    }
}

/// What an [`Emf::capture`] writer received, for tests.
#[derive(Debug, Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    /// The lines written so far.
    pub fn lines(&self) -> Vec<String> {
        let bytes = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        String::from_utf8_lossy(&bytes).lines().map(str::to_owned).collect()
    }

    /// Every metric value written so far, read back from the lines (a line that is not EMF is
    /// skipped; [`read`] each line to check the format).
    pub fn readings(&self) -> Vec<Reading> {
        self.lines().iter().filter_map(|l| read(l).ok()).flatten().collect()
    }
}

struct CaptureWriter(Arc<Mutex<Vec<u8>>>);

impl Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Emf {
    /// Lines to the process's stdout (where Lambda sends them to CloudWatch Logs).
    pub fn stdout() -> Self {
        Self { out: Arc::new(Mutex::new(Box::new(std::io::stdout()))) }
    }

    /// Lines to memory, for tests.
    pub fn capture() -> (Self, Captured) {
        let captured = Captured::default();
        (Self { out: Arc::new(Mutex::new(Box::new(CaptureWriter(Arc::clone(&captured.0))))) }, captured)
    }

    /// Writes `data` as EMF lines (see [`documents`]). Metrics must never fail a handler: a line
    /// that cannot be written is reported once in the log and dropped.
    pub fn emit(&self, data: &[Datum], at: DateTime<Utc>, properties: &[(&str, Value)]) {
        if data.is_empty() {
            return;
        }
        let mut text = String::new();
        for doc in documents(data, at, properties) {
            text.push_str(&doc.to_string());
            text.push('\n');
        }
        let mut out = self.out.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
            tracing::warn!(error = %e, "cannot write metrics (EMF) to stdout; these values are lost");
        }
    }
}

/// One metric value read back from an EMF line.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// The namespace.
    pub namespace: String,
    /// The metric's name.
    pub name: String,
    /// Its unit.
    pub unit: String,
    /// Its value.
    pub value: f64,
    /// Its dimensions and their values.
    pub dimensions: Vec<(String, String)>,
    /// `_aws.Timestamp`.
    pub timestamp_ms: i64,
}

fn shape(what: &str) -> EmfError {
    EmfError::Shape(what.to_owned())
}

/// Reads one EMF line back, checking what CloudWatch requires of it: an `_aws` member with an
/// integer `Timestamp` and directives whose metrics and dimensions are all top-level members
/// (numbers and strings respectively). Used by the tests of every function that emits metrics.
pub fn read(line: &str) -> Result<Vec<Reading>, EmfError> {
    let doc: Value = serde_json::from_str(line)?;
    let aws = doc.get("_aws").ok_or_else(|| shape("no _aws member"))?;
    let timestamp_ms = aws.get("Timestamp").and_then(Value::as_i64).ok_or_else(|| shape("_aws.Timestamp is not an integer"))?;
    let directives = aws.get("CloudWatchMetrics").and_then(Value::as_array).ok_or_else(|| shape("_aws.CloudWatchMetrics is not a list"))?;
    let mut readings = Vec::new();
    for directive in directives {
        let namespace = directive.get("Namespace").and_then(Value::as_str).ok_or_else(|| shape("a directive has no Namespace"))?;
        let sets = directive.get("Dimensions").and_then(Value::as_array).ok_or_else(|| shape("a directive has no Dimensions"))?;
        let mut dimensions = Vec::new();
        for set in sets {
            for key in set.as_array().ok_or_else(|| shape("a dimension set is not a list"))? {
                let key = key.as_str().ok_or_else(|| shape("a dimension name is not a string"))?;
                let value = doc.get(key).and_then(Value::as_str).ok_or_else(|| shape(&format!("dimension {key} has no string value")))?;
                dimensions.push((key.to_owned(), value.to_owned()));
            }
        }
        for metric in directive.get("Metrics").and_then(Value::as_array).ok_or_else(|| shape("a directive has no Metrics"))? {
            let name = metric.get("Name").and_then(Value::as_str).ok_or_else(|| shape("a metric has no Name"))?;
            let unit = metric.get("Unit").and_then(Value::as_str).unwrap_or("None");
            let value = doc.get(name).and_then(Value::as_f64).ok_or_else(|| shape(&format!("metric {name} has no numeric value")))?;
            readings.push(Reading {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                unit: unit.to_owned(),
                value,
                dimensions: dimensions.clone(),
                timestamp_ms,
            });
        }
    }
    Ok(readings)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, clippy::unwrap_used)]

    use chrono::TimeZone;
    use olbridge_core::domain::ids::DedupKey;
    use olbridge_core::domain::turn::{HandoffReason, TurnOutcome, TurnRecord, TurnTimings};
    use olbridge_core::metrics::{self, Metric, RecordResult};

    use super::*;

    fn at() -> DateTime<Utc> {
        Utc.timestamp_millis_opt(1_711_455_834_123).single().expect("valid")
    }

    fn escalated_turn() -> TurnRecord {
        TurnRecord {
            keys: vec![DedupKey::from_stored("m:msg:1".into())],
            dialog: "chat5".into(),
            session_id: None,
            outcome: TurnOutcome::HandedOff { reason: HandoffReason::BotRequested },
            timings: TurnTimings { received_at: at(), started_at: at(), bot_ms: Some(1_200), finished_at: at() + chrono::Duration::milliseconds(1_500) },
            bot_attempts: 1,
            trace: Default::default(),
        }
    }

    #[test]
    fn a_turn_is_one_line_with_a_directive_per_dimension_set() {
        let (emf, captured) = Emf::capture();
        let data = metrics::turn(&escalated_turn());
        emf.emit(&data, at(), &[("dialog", json!("chat5"))]);
        let lines = captured.lines();
        assert_eq!(lines.len(), 1, "{lines:?}");
        let doc: Value = serde_json::from_str(&lines[0]).expect("json");
        assert_eq!(doc["_aws"]["Timestamp"], json!(1_711_455_834_123_i64));
        let sets: Vec<&Value> = doc["_aws"]["CloudWatchMetrics"].as_array().expect("list").iter().map(|d| &d["Dimensions"]).collect();
        assert_eq!(sets, [&json!([["Outcome"]]), &json!([[]]), &json!([["Reason"]])]);
        assert_eq!((doc["Outcome"].as_str(), doc["Reason"].as_str(), doc["dialog"].as_str()), (Some("handed_off"), Some("bot_handoff"), Some("chat5")));

        let readings = read(&lines[0]).expect("EMF");
        assert_eq!(readings.len(), data.len());
        for (r, d) in readings.iter().zip(&data) {
            let def = d.metric.def();
            assert_eq!((r.namespace.as_str(), r.name.as_str(), r.unit.as_str(), r.value), (NAMESPACE, def.name, def.unit.as_str(), d.value));
        }
        let overhead = readings.iter().find(|r| r.name == "BridgeOverhead").expect("overhead");
        assert_eq!((overhead.value, overhead.dimensions.len()), (300.0, 0));
    }

    #[test]
    fn values_that_cannot_share_a_document_get_their_own() {
        // Two records of a batch: WorkerRecords twice, with different Results.
        let data = [metrics::record(RecordResult::Done), metrics::record(RecordResult::Retry), metrics::record(RecordResult::Done)];
        let docs = documents(&data, at(), &[]);
        assert_eq!(docs.len(), 3);
        let results: Vec<&str> = docs.iter().map(|d| d["Result"].as_str().expect("result")).collect();
        assert_eq!(results, ["done", "retry", "done"]);
        // A dimension value never leaks into a document of another value.
        assert!(docs.iter().all(|d| d["WorkerRecords"] == json!(1.0)));
    }

    #[test]
    fn properties_never_overwrite_metrics_or_dimensions() {
        let data = [metrics::record(RecordResult::Poison)];
        let doc = &documents(&data, at(), &[("Result", json!("forged")), ("WorkerRecords", json!(99))])[0];
        assert_eq!((doc["Result"].as_str(), doc["WorkerRecords"].as_f64()), (Some("poison"), Some(1.0)));
    }

    #[test]
    fn nothing_to_say_writes_nothing() {
        let (emf, captured) = Emf::capture();
        emf.emit(&[], at(), &[]);
        assert!(captured.lines().is_empty());
    }

    #[test]
    fn the_reader_rejects_what_cloudwatch_would_not_extract() {
        for bad in [
            r#"{"Turns": 1}"#,
            r#"{"_aws": {"Timestamp": "now", "CloudWatchMetrics": []}}"#,
            r#"{"_aws": {"Timestamp": 1, "CloudWatchMetrics": [{"Namespace": "Olbridge", "Dimensions": [["Outcome"]], "Metrics": [{"Name": "Turns"}]}]}, "Turns": 1}"#,
            r#"{"_aws": {"Timestamp": 1, "CloudWatchMetrics": [{"Namespace": "Olbridge", "Dimensions": [[]], "Metrics": [{"Name": "Turns"}]}]}, "Turns": "1"}"#,
            "turn finished",
        ] {
            assert!(read(bad).is_err(), "{bad}");
        }
        assert!(Metric::ALL.iter().all(|m| !m.def().name.is_empty()));
    }
}
