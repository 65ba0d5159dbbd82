//! Control endpoints for the portal's limits and failure modes: injected faults, the leaky bucket, operating-time
//! accounting and the portal clock.

use super::{S, bad_json, body, err, ok};
use crate::config::RateLimit;
use crate::faults::{DeliveryOutage, FaultSpec, OutageFailure};
use crate::rest::errors::ApiError;
use crate::shared::Shared;
use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post, put};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(super) fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/_emulator/faults", post(add_fault).delete(clear_faults))
        .route("/_emulator/rate-limit", put(set_rate).get(get_rate))
        .route("/_emulator/operating", get(get_operating).put(set_operating).delete(reset_operating))
        .route("/_emulator/clock/advance", post(advance_clock))
        .route("/_emulator/deliveries/outage", post(start_outage).delete(end_outage))
        .route("/_emulator/deliveries/drop-every", post(drop_every).delete(stop_dropping))
}

async fn add_fault(State(s): S, raw: String) -> Response {
    let spec: FaultSpec = match body(&raw) {
        Ok(b) => b,
        Err(e) => return bad_json(e),
    };
    match spec.into_fault() {
        Ok(f) => {
            s.faults.add(f);
            ok(json!({"ok": true}))
        }
        Err(e) => bad_json(e),
    }
}

async fn clear_faults(State(s): S) -> Response {
    s.faults.clear();
    ok(json!({"ok": true}))
}

#[derive(Deserialize)]
struct RateIn {
    per_sec: f64,
    burst: f64,
}

async fn set_rate(State(s): S, raw: String) -> Response {
    let b: RateIn = match body(&raw) {
        Ok(b) => b,
        Err(e) => return bad_json(e),
    };
    if !(b.per_sec >= 0.0 && b.burst >= 0.0) {
        return err(ApiError::bad("INVALID_REQUEST", "per_sec and burst must be non-negative numbers"));
    }
    s.bucket().set_rate(RateLimit { per_sec: b.per_sec, burst: b.burst }, Instant::now());
    ok(json!({"per_sec": b.per_sec, "burst": b.burst}))
}

async fn get_rate(State(s): S) -> Response {
    let mut bucket = s.bucket();
    let rate = bucket.rate();
    ok(json!({"per_sec": rate.per_sec, "burst": rate.burst, "level": bucket.level(Instant::now())}))
}

fn operating_json(s: &Shared) -> Value {
    let op = s.operating();
    let l = op.limit();
    let costs: serde_json::Map<String, Value> = l.costs.iter().map(|(m, d)| (m.clone(), json!(d.as_secs_f64()))).collect();
    json!({
        "enabled": l.enabled, "limit_secs": l.limit.as_secs_f64(), "bucket_secs": l.bucket.as_secs_f64(),
        "buckets": l.buckets, "min_counted_secs": l.min_counted.as_secs_f64(), "costs": costs,
        "usage": op.usage(s.clock.secs()),
    })
}

async fn get_operating(State(s): S) -> Response {
    ok(operating_json(&s))
}

#[derive(Deserialize)]
struct OperatingIn {
    enabled: Option<bool>,
    limit_secs: Option<f64>,
    min_counted_secs: Option<f64>,
    #[serde(default)]
    costs: HashMap<String, f64>,
}

fn secs(v: f64) -> Result<Duration, ApiError> {
    Duration::try_from_secs_f64(v).map_err(|_| ApiError::bad("INVALID_REQUEST", "seconds must be non-negative numbers"))
}

/// Changes the accounting: any of `enabled`, `limit_secs`, `min_counted_secs`, and per-method `costs` (seconds).
async fn set_operating(State(s): S, raw: String) -> Response {
    let b: OperatingIn = match body(&raw) {
        Ok(b) => b,
        Err(e) => return bad_json(e),
    };
    let apply = || -> Result<(), ApiError> {
        let mut op = s.operating();
        let mut l = op.limit().clone();
        if let Some(e) = b.enabled {
            l.enabled = e;
        }
        if let Some(v) = b.limit_secs {
            l.limit = secs(v)?;
        }
        if let Some(v) = b.min_counted_secs {
            l.min_counted = secs(v)?;
        }
        for (m, v) in &b.costs {
            l.costs.insert(m.to_ascii_lowercase(), secs(*v)?);
        }
        op.set_limit(l);
        Ok(())
    };
    match apply() {
        Ok(()) => ok(operating_json(&s)),
        Err(e) => err(e),
    }
}

async fn reset_operating(State(s): S) -> Response {
    s.operating().clear();
    ok(json!({"ok": true}))
}

#[derive(Deserialize)]
struct AdvanceIn {
    seconds: f64,
}

async fn advance_clock(State(s): S, raw: String) -> Response {
    let b: AdvanceIn = match body(&raw) {
        Ok(b) => b,
        Err(e) => return bad_json(e),
    };
    match secs(b.seconds) {
        Ok(d) => {
            s.clock.advance(d);
            ok(json!({"now": s.clock.secs()}))
        }
        Err(e) => err(e),
    }
}

#[derive(Deserialize)]
struct OutageIn {
    /// `refused` (default) or `status`.
    #[serde(default)]
    failure: Option<String>,
    #[serde(default = "s503")]
    status: u16,
    duration_ms: Option<u64>,
    url_prefix: Option<String>,
}

fn s503() -> u16 {
    503
}

/// `{"failure": "refused" | "status", "status": 503, "duration_ms": 5000, "url_prefix": "http://..."}`.
async fn start_outage(State(s): S, raw: String) -> Response {
    let b: OutageIn = match body(&raw) {
        Ok(b) => b,
        Err(e) => return bad_json(e),
    };
    let failure = match b.failure.as_deref() {
        None | Some("refused") => OutageFailure::ConnectionRefused,
        Some("status") => OutageFailure::Status(b.status),
        Some(_) => return err(ApiError::bad("INVALID_REQUEST", "failure must be refused or status")),
    };
    let outage = DeliveryOutage { failure, duration: b.duration_ms.map(Duration::from_millis), url_prefix: b.url_prefix };
    s.faults.set_outage(outage, s.clock.secs());
    ok(json!({"ok": true}))
}

async fn end_outage(State(s): S) -> Response {
    s.faults.clear_outage();
    ok(json!({"ok": true}))
}

#[derive(Deserialize)]
struct DropEveryIn {
    n: u32,
    #[serde(default = "star")]
    event: String,
}

fn star() -> String {
    "*".to_owned()
}

/// `{"n": 3, "event": "ONIMBOTMESSAGEADD"}`: drops the 3rd, 6th, ... delivery from now on.
async fn drop_every(State(s): S, raw: String) -> Response {
    let b: DropEveryIn = match body(&raw) {
        Ok(b) => b,
        Err(e) => return bad_json(e),
    };
    s.faults.set_drop_every(b.n, &b.event);
    ok(json!({"ok": true}))
}

async fn stop_dropping(State(s): S) -> Response {
    s.faults.set_drop_every(0, "*");
    ok(json!({"ok": true}))
}
