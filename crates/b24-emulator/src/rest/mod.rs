//! The REST surface: `/rest/<user_id>/<webhook_code>/<method>[.json]`, GET or POST.
//!
//! One request goes: rate limit (per portal; refused requests are recorded too) → webhook authentication →
//! parameter decoding (query string merged with a JSON, form or multipart body) → injected delay → method
//! (scope check, operating-time check, injected error, handler, operating-time charge) → envelope → recording. Submodules: [`params`] (the PHP-array parser),
//! [`multipart`], [`errors`], [`envelope`], [`ratelimit`], [`operating`], [`dispatch`] (method table and the synchronous core),
//! [`batch`].

pub(crate) mod batch;
pub(crate) mod dispatch;
pub(crate) mod envelope;
pub(crate) mod errors;
pub(crate) mod multipart;
pub(crate) mod operating;
pub(crate) mod params;
pub(crate) mod php_query;
pub(crate) mod ratelimit;

use crate::record::RecordedCall;
use crate::shared::Shared;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use chrono::Utc;
use dispatch::{Auth, Ctx, Output};
use envelope::{Timing, error_body, success_body, time_object};
use errors::ApiError;
use operating::{Figures, Hit};
use params::{DEFAULT_LIMITS, Param};
use std::cell::Cell;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) fn router() -> Router<Arc<Shared>> {
    Router::new().route("/rest", any(entry)).route("/rest/", any(entry)).route("/rest/{*path}", any(entry))
}

/// Writes a JSON body with Bitrix's content type.
pub(crate) fn json_response(status: u16, body: &serde_json::Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [(header::CONTENT_TYPE, "application/json; charset=utf-8")], body.to_string()).into_response()
}

fn method_from_path(path: &str) -> (Vec<String>, String) {
    let segs: Vec<String> = path.trim_start_matches("/rest").split('/').filter(|s| !s.is_empty()).map(params::url_decode).collect();
    let last = segs.last().cloned().unwrap_or_default();
    let lower = last.to_ascii_lowercase();
    let method = if lower.ends_with(".json") || lower.ends_with(".xml") { last.rsplit_once('.').map_or(last.clone(), |(m, _)| m.to_owned()) } else { last };
    (segs, method)
}

async fn entry(State(shared): State<Arc<Shared>>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let started = Instant::now();
    let at = Utc::now();
    let (segs, method) = method_from_path(uri.path());
    let mut rec = RecordedCall {
        method: method.clone(),
        params: serde_json::Value::Null,
        status: 0,
        error: None,
        at,
        latency: Duration::ZERO,
        in_batch: false,
        user_id: None,
    };
    let outcome = handle(&shared, &segs, &method, &uri, &headers, &body, &mut rec).await;
    let (status, json) = match outcome {
        Ok((o, operating)) => {
            let tz = shared.portal().ident.tz;
            let time = time_object(Timing { start: at, elapsed: started.elapsed() }, tz, Some(operating));
            (200, success_body(o.result, o.total, o.next, time))
        }
        Err(e) => {
            rec.error = Some(e.code.clone());
            (e.status, error_body(&e))
        }
    };
    rec.status = status;
    rec.latency = started.elapsed();
    tracing::debug!(method = %rec.method, status, error = ?rec.error, "rest call");
    shared.recorder.call(rec);
    json_response(status, &json)
}

async fn handle(
    shared: &Shared,
    segs: &[String],
    method: &str,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
    rec: &mut RecordedCall,
) -> Result<(Output, Figures), ApiError> {
    if !shared.bucket().try_acquire(Instant::now()) {
        return Err(ApiError::query_limit());
    }
    let auth = authenticate(shared, segs)?;
    rec.user_id = Some(auth.user_id);
    let params = read_params(uri, headers, body)?;
    rec.params = params.to_json();
    let canonical = dispatch::find(method).map_or(method, |d| d.name);
    if let Some(d) = shared.faults.take_delay(canonical) {
        tokio::time::sleep(d).await;
    }
    let (name, result, extra) = {
        let hit = Hit::new(shared.clock.secs());
        let ctx = Ctx { shared, auth: &auth, in_batch: false, extra_delay: Cell::new(Duration::ZERO), hit: &hit };
        let (name, result) = dispatch::execute(&ctx, method, params);
        let result = result.map(|o| (o, dispatch::figures(&ctx, &name)));
        shared.operating().finalize(&auth.webhook, &hit, shared.clock.secs());
        (name, result, ctx.extra_delay.get())
    };
    let extra = extra + shared.faults.take_response_delay(canonical).unwrap_or_default();
    rec.method = name;
    if !extra.is_zero() {
        tokio::time::sleep(extra).await;
    }
    result
}

fn authenticate(shared: &Shared, segs: &[String]) -> Result<Auth, ApiError> {
    let [user, code, _method] = segs else { return Err(ApiError::no_auth()) };
    let user_id: u64 = user.parse().map_err(|_| ApiError::no_auth())?;
    let portal = shared.portal();
    let hook = portal.webhooks.get(&(user_id, code.clone())).ok_or_else(ApiError::no_auth)?;
    if !portal.user(user_id).is_some_and(|u| u.active) {
        return Err(ApiError::no_auth());
    }
    Ok(Auth { user_id, scopes: hook.scopes.clone(), webhook: format!("{user_id}/{code}") })
}

/// Query string merged with the body (body keys win, as PHP's `array_merge($_GET, $_POST)`).
pub(crate) fn read_params(uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Result<Param, ApiError> {
    let query = match uri.query() {
        Some(q) => params::parse_query(q, DEFAULT_LIMITS)?,
        None => Param::empty(),
    };
    if body.is_empty() {
        return Ok(query);
    }
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    let from_body = if ct.starts_with("application/json") {
        params::parse_json(body)?
    } else if ct.starts_with("application/x-www-form-urlencoded") {
        params::parse_query(&String::from_utf8_lossy(body), DEFAULT_LIMITS)?
    } else if ct.starts_with("multipart/form-data") {
        multipart::parse(body, &ct, DEFAULT_LIMITS)?
    } else {
        match body.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{') | Some(b'[') => params::parse_json(body)?,
            _ => params::parse_query(&String::from_utf8_lossy(body), DEFAULT_LIMITS)?,
        }
    };
    Ok(query.merge(from_body))
}
