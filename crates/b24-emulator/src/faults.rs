//! Fault injection: make the next N calls of a method fail or slow down, or drop the next N event deliveries.
//!
//! The bridge's retry, backoff and reconciliation paths are only trustworthy if tests can provoke the failures
//! Bitrix24 really produces (`QUERY_LIMIT_EXCEEDED`, `OPERATION_TIME_LIMIT`, `expired_token`, lost events...).
//! Faults are consumed in the order they were injected; method names match case-insensitively, `*` matches any.

use serde::Deserialize;
use std::sync::Mutex;
use std::time::Duration;

/// One injected fault.
#[derive(Clone, Debug)]
pub struct Fault {
    /// REST method (e.g. `imbot.message.add`) or, for [`FaultKind::DropDelivery`], event name
    /// (e.g. `ONIMBOTMESSAGEADD`); `*` matches everything.
    pub method: String,
    /// How many calls/deliveries it affects.
    pub count: u32,
    /// What happens to them.
    pub kind: FaultKind,
}

/// What an injected fault does.
#[derive(Clone, Debug)]
pub enum FaultKind {
    /// Answer with this error instead of running the method.
    Error {
        /// `error` code.
        code: String,
        /// `error_description`.
        description: String,
        /// HTTP status.
        status: u16,
    },
    /// Wait this long before running the method (a slow portal; a client that gives up meanwhile
    /// leaves nothing behind).
    Delay(Duration),
    /// Run the method at once, then wait this long before answering: the change is made but the
    /// caller learns it late, or never if it gives up or dies meanwhile — what an interrupted
    /// connection looks like from the caller's side.
    DelayResponse(Duration),
    /// Do not deliver the event (recorded with an error, as a lost event would be).
    DropDelivery,
}

impl Fault {
    /// Shorthand for an error fault.
    pub fn error(method: &str, count: u32, code: &str, description: &str, status: u16) -> Fault {
        Fault { method: method.to_owned(), count, kind: FaultKind::Error { code: code.to_owned(), description: description.to_owned(), status } }
    }
    /// Shorthand for a delay fault.
    pub fn delay(method: &str, count: u32, delay: Duration) -> Fault {
        Fault { method: method.to_owned(), count, kind: FaultKind::Delay(delay) }
    }
    /// Shorthand for a delayed-response fault.
    pub fn delay_response(method: &str, count: u32, delay: Duration) -> Fault {
        Fault { method: method.to_owned(), count, kind: FaultKind::DelayResponse(delay) }
    }
    /// Shorthand for dropping deliveries of an event.
    pub fn drop_delivery(event: &str, count: u32) -> Fault {
        Fault { method: event.to_owned(), count, kind: FaultKind::DropDelivery }
    }
}

/// The control API's JSON form of a fault:
/// `{"method": "...", "count": 1, "error": {"code": "...", "description": "...", "status": 503}}`,
/// `{"method": "...", "delay_ms": 500}`, `{"method": "...", "delay_response_ms": 500}` or
/// `{"method": "ONIMBOTMESSAGEADD", "drop_delivery": true}`.
#[derive(Debug, Deserialize)]
pub(crate) struct FaultSpec {
    pub method: String,
    #[serde(default = "one")]
    pub count: u32,
    pub error: Option<ErrorSpec>,
    pub delay_ms: Option<u64>,
    pub delay_response_ms: Option<u64>,
    #[serde(default)]
    pub drop_delivery: bool,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ErrorSpec {
    pub code: String,
    #[serde(default)]
    pub description: String,
    #[serde(default = "s400")]
    pub status: u16,
}

fn one() -> u32 {
    1
}
fn s400() -> u16 {
    400
}

impl FaultSpec {
    pub(crate) fn into_fault(self) -> Result<Fault, String> {
        let kind = match (self.error, self.delay_ms, self.delay_response_ms, self.drop_delivery) {
            (Some(e), None, None, false) => FaultKind::Error { code: e.code, description: e.description, status: e.status },
            (None, Some(ms), None, false) => FaultKind::Delay(Duration::from_millis(ms)),
            (None, None, Some(ms), false) => FaultKind::DelayResponse(Duration::from_millis(ms)),
            (None, None, None, true) => FaultKind::DropDelivery,
            _ => return Err("give exactly one of error, delay_ms, delay_response_ms, drop_delivery".to_owned()),
        };
        Ok(Fault { method: self.method, count: self.count, kind })
    }
}

/// Pending faults.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    pending: Mutex<Vec<Fault>>,
}

fn matches(pattern: &str, name: &str) -> bool {
    pattern == "*" || pattern.eq_ignore_ascii_case(name)
}

impl Faults {
    pub(crate) fn add(&self, f: Fault) {
        if f.count > 0 {
            self.pending.lock().unwrap_or_else(|e| e.into_inner()).push(f);
        }
    }

    pub(crate) fn clear(&self) {
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    fn take(&self, name: &str, want: fn(&FaultKind) -> bool) -> Option<FaultKind> {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let idx = p.iter().position(|f| want(&f.kind) && matches(&f.method, name))?;
        let f = p.get_mut(idx)?;
        f.count = f.count.saturating_sub(1);
        let kind = f.kind.clone();
        if f.count == 0 {
            p.remove(idx);
        }
        Some(kind)
    }

    /// Consumes an error fault for `method`.
    pub(crate) fn take_error(&self, method: &str) -> Option<(String, String, u16)> {
        match self.take(method, |k| matches!(k, FaultKind::Error { .. }))? {
            FaultKind::Error { code, description, status } => Some((code, description, status)),
            _ => None,
        }
    }

    /// Consumes a delay fault for `method`.
    pub(crate) fn take_delay(&self, method: &str) -> Option<Duration> {
        match self.take(method, |k| matches!(k, FaultKind::Delay(_)))? {
            FaultKind::Delay(d) => Some(d),
            _ => None,
        }
    }

    /// Consumes a delayed-response fault for `method`.
    pub(crate) fn take_response_delay(&self, method: &str) -> Option<Duration> {
        match self.take(method, |k| matches!(k, FaultKind::DelayResponse(_)))? {
            FaultKind::DelayResponse(d) => Some(d),
            _ => None,
        }
    }

    /// Consumes a drop fault for `event`.
    pub(crate) fn take_drop(&self, event: &str) -> bool {
        self.take(event, |k| matches!(k, FaultKind::DropDelivery)).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_are_counted_and_matched() {
        let f = Faults::default();
        f.add(Fault::error("imbot.message.add", 2, "X", "x", 500));
        f.add(Fault::drop_delivery("*", 1));
        assert!(f.take_error("im.message.add").is_none());
        assert!(f.take_error("IMBOT.MESSAGE.ADD").is_some());
        assert!(f.take_error("imbot.message.add").is_some());
        assert!(f.take_error("imbot.message.add").is_none());
        assert!(f.take_drop("ONIMBOTJOINCHAT"));
        assert!(!f.take_drop("ONIMBOTJOINCHAT"));
    }
}
