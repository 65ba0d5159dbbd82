//! Recordings of every REST call and every event delivery, for tests and the control API.
//!
//! Tests assert on what the bridge *did* (which methods, with which parameters, in which order) rather than on
//! its logs; rejected and failed calls are recorded too. Recordings are capped so a long demo run stays small.

use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

const CAP: usize = 100_000;

/// One REST call as the emulator saw it.
#[derive(Clone, Debug, Serialize)]
pub struct RecordedCall {
    /// Method name (canonical spelling when known, else as requested).
    pub method: String,
    /// Parameters after decoding (JSON body, form or query), as JSON.
    pub params: serde_json::Value,
    /// HTTP status returned (for commands inside a batch: the status the command would have had).
    pub status: u16,
    /// The `error` code, if the call failed.
    pub error: Option<String>,
    /// When the call arrived.
    pub at: DateTime<Utc>,
    /// Time to answer, including injected delays.
    #[serde(serialize_with = "ser_ms")]
    pub latency: Duration,
    /// Whether this was a command inside a `batch` (the batch itself is recorded separately).
    pub in_batch: bool,
    /// The webhook user, when authentication succeeded.
    pub user_id: Option<u64>,
}

/// One event POST (or a dropped one).
#[derive(Clone, Debug, Serialize)]
pub struct EventDelivery {
    /// Event name, e.g. `ONIMBOTMESSAGEADD`.
    pub event: String,
    /// Handler URL it was sent to.
    pub url: String,
    /// The raw `application/x-www-form-urlencoded` body.
    pub body: String,
    /// HTTP status of the handler's answer, if it answered.
    pub status: Option<u16>,
    /// Transport error, timeout, or `dropped by fault injection`.
    pub error: Option<String>,
    /// When the POST was attempted.
    pub at: DateTime<Utc>,
    /// The bot the event was for.
    pub bot_id: u64,
}

impl EventDelivery {
    /// The body decoded as PHP would (`data[PARAMS][MESSAGE]` → nested JSON), for assertions.
    pub fn decoded(&self) -> serde_json::Value {
        crate::rest::params::parse_query(&self.body, crate::rest::params::DEFAULT_LIMITS).map(|p| p.to_json()).unwrap_or(serde_json::Value::Null)
    }

    /// A decoded field by path, e.g. `["data", "PARAMS", "MESSAGE"]`.
    pub fn field(&self, path: &[&str]) -> Option<String> {
        let mut v = self.decoded();
        for p in path {
            v = v.get(*p)?.clone();
        }
        v.as_str().map(str::to_owned)
    }

    /// Whether the handler answered 2xx.
    pub fn delivered(&self) -> bool {
        matches!(self.status, Some(s) if (200..300).contains(&s))
    }
}

fn ser_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1000.0)
}

/// The recorder shared by the REST layer and the event dispatcher.
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    calls: Mutex<VecDeque<RecordedCall>>,
    deliveries: Mutex<VecDeque<EventDelivery>>,
}

fn push<T>(q: &Mutex<VecDeque<T>>, v: T) {
    let mut q = q.lock().unwrap_or_else(|e| e.into_inner());
    if q.len() >= CAP {
        q.pop_front();
    }
    q.push_back(v);
}

impl Recorder {
    pub(crate) fn call(&self, c: RecordedCall) {
        push(&self.calls, c);
    }
    pub(crate) fn delivery(&self, d: EventDelivery) {
        push(&self.deliveries, d);
    }
    pub(crate) fn calls(&self) -> Vec<RecordedCall> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).iter().cloned().collect()
    }
    pub(crate) fn deliveries(&self) -> Vec<EventDelivery> {
        self.deliveries.lock().unwrap_or_else(|e| e.into_inner()).iter().cloned().collect()
    }
    pub(crate) fn clear(&self) {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.deliveries.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}
