//! Fault injection: make the next N calls of a method fail or slow down, drop the next N event deliveries, take
//! the event handler "offline" for a while, or drop every Nth delivery.
//!
//! Offline and dropped deliveries are recorded as failed attempts and never retried, as Bitrix24's queue server
//! does with a handler that is down (contract §3.3): that is what recovery tests need to provoke.
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

/// How deliveries fail while the handler is offline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutageFailure {
    /// As if nothing listened: recorded as a transport error, no status.
    ConnectionRefused,
    /// As if a proxy in front of the handler answered with this status (e.g. 502, 503).
    Status(u16),
}

/// The bridge's event handler is down: deliveries to it fail without reaching it.
#[derive(Clone, Debug, PartialEq)]
pub struct DeliveryOutage {
    /// How each delivery fails.
    pub failure: OutageFailure,
    /// How long, on the portal clock ([`crate::Emulator::advance_clock`] shortens it); `None` until cleared.
    pub duration: Option<Duration>,
    /// Only handlers whose URL starts with this; `None` for every handler.
    pub url_prefix: Option<String>,
}

#[derive(Debug)]
struct ActiveOutage {
    outage: DeliveryOutage,
    until: Option<f64>,
}

#[derive(Debug)]
struct DropEvery {
    n: u32,
    event: String,
    seen: u32,
}

/// Pending faults.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    pending: Mutex<Vec<Fault>>,
    outage: Mutex<Option<ActiveOutage>>,
    drop_every: Mutex<Option<DropEvery>>,
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

    /// Starts an outage at `now` (portal clock, Unix seconds), replacing any other.
    pub(crate) fn set_outage(&self, outage: DeliveryOutage, now: f64) {
        let until = outage.duration.map(|d| now + d.as_secs_f64());
        *self.outage.lock().unwrap_or_else(|e| e.into_inner()) = Some(ActiveOutage { outage, until });
    }

    pub(crate) fn clear_outage(&self) {
        *self.outage.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// How a delivery to `url` fails now, if the handler is offline.
    pub(crate) fn outage_for(&self, url: &str, now: f64) -> Option<OutageFailure> {
        let mut slot = self.outage.lock().unwrap_or_else(|e| e.into_inner());
        if slot.as_ref().is_some_and(|a| a.until.is_some_and(|u| now >= u)) {
            *slot = None;
        }
        let a = slot.as_ref()?;
        a.outage.url_prefix.as_deref().is_none_or(|p| url.starts_with(p)).then_some(a.outage.failure)
    }

    /// Drops every `n`th delivery of `event` (`*` for all) from now on; `n == 0` stops.
    pub(crate) fn set_drop_every(&self, n: u32, event: &str) {
        let v = (n > 0).then(|| DropEvery { n, event: event.to_owned(), seen: 0 });
        *self.drop_every.lock().unwrap_or_else(|e| e.into_inner()) = v;
    }

    /// Counts a delivery of `event`; `Some(n)` when it is an `n`th one to drop.
    pub(crate) fn nth_drop(&self, event: &str) -> Option<u32> {
        let mut slot = self.drop_every.lock().unwrap_or_else(|e| e.into_inner());
        let d = slot.as_mut().filter(|d| matches(&d.event, event))?;
        d.seen += 1;
        (d.seen % d.n == 0).then_some(d.n)
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

    #[test]
    fn every_third_delivery_is_dropped_and_outages_end() {
        let f = Faults::default();
        f.set_drop_every(3, "*");
        let dropped: Vec<bool> = (0..7).map(|_| f.nth_drop("ONIMBOTMESSAGEADD").is_some()).collect();
        assert_eq!(dropped, [false, false, true, false, false, true, false]);
        let outage = DeliveryOutage { failure: OutageFailure::Status(503), duration: Some(Duration::from_secs(10)), url_prefix: None };
        f.set_outage(outage, 100.0);
        assert_eq!(f.outage_for("http://x/", 105.0), Some(OutageFailure::Status(503)));
        assert_eq!(f.outage_for("http://x/", 110.0), None);
    }
}
