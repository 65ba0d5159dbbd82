//! The receiver's routes, as one plain async function: `handle(deps, request) -> Response`.
//!
//! - `POST /bitrix/events` → core's `Receiver::receive`; 200 `{"status":"ok"}` for an event queued,
//!   a duplicate or one we ignore; a refusal's status (`ReceiveError::status`) with
//!   `{"error":"<code>"}` (`ReceiveError::code`) otherwise. API Gateway may hand the form body over
//!   base64-encoded (`isBase64Encoded`); `lambda_http` decodes it before it reaches us.
//! - `GET /health` → 200 at once: liveness of the function, nothing else (the stores have their own
//!   CloudWatch metrics; a health check that calls DynamoDB would be billed per probe).
//! - anything else → 404 `{"error":"not_found"}`.
//!
//! A named API Gateway stage (`/prod/bitrix/events`) is routed like the `$default` stage.
//!
//! The source allow-list (`OLBRIDGE_ALLOWED_CIDRS`) is checked on `requestContext.http.sourceIp`
//! (payload 2.0; `identity.sourceIp` for 1.0) before the body is looked at: 403 `not_allowed`,
//! counted in `Events` like every refusal. API Gateway sets `sourceIp` from the TCP connection it
//! accepted, not from a header, so `OLBRIDGE_TRUSTED_PROXIES` plays no part here. A request with no
//! `sourceIp` cannot be placed and is refused while the list is on.
//!
//! Logging: refusals at DEBUG only (anyone on the internet can POST a forged event; a line each
//! would let them bury the lines that matter, and the `Events` metric counts them per code); a
//! store failure (503) is ours, so it is a WARN with its error. One EMF line per event.

use std::net::IpAddr;
use std::sync::Arc;

use lambda_http::http::{HeaderValue, Method, StatusCode, header};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use olbridge_aws::emf::Emf;
use olbridge_core::domain::secret::Secret;
use olbridge_core::metrics;
use olbridge_core::ports::Clock;
use olbridge_core::usecase::receive::{InboundRequest, ReceiveError, Received, Receiver};
use serde_json::{Value, json};
use tracing::{debug, warn};

/// Where Bitrix24 POSTs events.
pub const EVENTS_PATH: &str = "/bitrix/events";
/// The liveness probe.
pub const HEALTH_PATH: &str = "/health";

/// How long a token refresh waits before reading the secret again: a burst of forged events must
/// not turn every request into a Secrets Manager call.
pub const TOKEN_REFRESH_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

/// Re-reads the application tokens when an event's token matches none: a warm instance started
/// before a webhook rotation must learn the new token, or every event of the new webhook would be
/// refused until the instance is recycled.
#[async_trait::async_trait]
pub trait TokenRefresh: Send + Sync {
    /// The current token and the others accepted now (AWSPENDING, AWSPREVIOUS), read no more often
    /// than [`TOKEN_REFRESH_AFTER`]; `None` when they cannot be read.
    async fn tokens(&self) -> Option<(Option<Secret>, Vec<Secret>)>;
}

/// What the handler needs, built once per Lambda instance.
#[derive(Clone)]
pub struct ReceiverDeps {
    /// Core's receive use case over its stores and the queue; replaced when the tokens change.
    pub receiver: Arc<std::sync::RwLock<Receiver>>,
    /// Where new tokens come from, when the deployment rotates them.
    pub tokens: Option<Arc<dyn TokenRefresh>>,
    /// Time (the events' freshness window, the metrics' timestamps).
    pub clock: Arc<dyn Clock>,
    /// Where metrics go.
    pub emf: Emf,
}

impl std::fmt::Debug for ReceiverDeps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceiverDeps").field("receiver", &self.receiver).finish_non_exhaustive()
    }
}

/// Answers one request.
pub async fn handle(deps: &ReceiverDeps, request: Request) -> Response<Body> {
    match (request.method(), route(&request)) {
        (&Method::POST, EVENTS_PATH) => event(deps, &request).await,
        (&Method::GET, HEALTH_PATH) => respond(StatusCode::OK, &json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")})),
        _ => respond(StatusCode::NOT_FOUND, &json!({"error": "not_found"})),
    }
}

impl ReceiverDeps {
    /// Dependencies around `receiver`, with no token refresh.
    pub fn new(receiver: Receiver, clock: Arc<dyn Clock>, emf: Emf) -> Self {
        Self { receiver: Arc::new(std::sync::RwLock::new(receiver)), tokens: None, clock, emf }
    }

    fn receiver(&self) -> Receiver {
        self.receiver.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// After a token matched nothing: the receiver with the tokens read now, if they changed.
    async fn refreshed(&self) -> Option<Receiver> {
        let (current, others) = self.tokens.as_ref()?.tokens().await?;
        let mut guard = self.receiver.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let settings = &guard.settings;
        let same = settings.application_token.as_ref().map(Secret::expose) == current.as_ref().map(Secret::expose)
            && settings.previous_tokens.iter().map(Secret::expose).eq(others.iter().map(Secret::expose));
        if same {
            return None;
        }
        if current.is_some() {
            guard.settings.application_token = current;
        }
        guard.settings.previous_tokens = others;
        tracing::info!("the application tokens changed (a webhook rotation): using the new ones");
        Some(guard.clone())
    }
}

async fn event(deps: &ReceiverDeps, request: &Request) -> Response<Body> {
    let policy = deps.receiver().settings.sources;
    if !policy.is_open() && !policy.allows(source_ip(request)) {
        let result = Err(ReceiveError::NotAllowed);
        deps.emf.emit(&[metrics::event(&result)], deps.clock.now(), &[]);
        debug!(source_ip = ?source_ip(request), "event refused: source outside OLBRIDGE_ALLOWED_CIDRS");
        return respond(StatusCode::FORBIDDEN, &json!({"error": ReceiveError::NotAllowed.code()}));
    }
    let inbound = InboundRequest { body: request.body().as_ref(), query: request.uri().query() };
    let now = deps.clock.now();
    let mut result = deps.receiver().receive(inbound, now).await;
    if matches!(result, Err(ReceiveError::Forged))
        && let Some(receiver) = deps.refreshed().await
    {
        result = receiver.receive(inbound, now).await;
    }
    deps.emf.emit(&[metrics::event(&result)], now, &[]);
    match result {
        Ok(received) => {
            match &received {
                Received::Enqueued(key) => debug!(key = %key, "event enqueued"),
                Received::Duplicate(key) => debug!(key = %key, "duplicate event dropped"),
                Received::Ignored(why) => debug!(reason = %why, "event ignored"),
            }
            respond(StatusCode::OK, &json!({"status": "ok"}))
        }
        Err(e) => {
            if let ReceiveError::Store(cause) = &e {
                warn!(error = %cause, "could not store an event; refused with 503 (Bitrix24 does not retry: the reconciliation poller will find it)");
            } else {
                debug!(code = e.code(), status = e.status(), error = %e, "event refused");
            }
            respond(StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST), &json!({"error": e.code()}))
        }
    }
}

/// The address API Gateway accepted the request from.
fn source_ip(request: &Request) -> Option<IpAddr> {
    let ip = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(c)) => c.http.source_ip.as_deref(),
        Some(RequestContext::ApiGatewayV1(c)) => c.identity.source_ip.as_deref(),
        _ => None,
    };
    ip.and_then(|ip| ip.trim().parse().ok())
}

/// The request's path without a named API Gateway stage (`$default` has none).
fn route(request: &Request) -> &str {
    let path = request.uri().path();
    let stage = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(c)) => c.stage.as_deref(),
        Some(RequestContext::ApiGatewayV1(c)) => c.stage.as_deref(),
        _ => None,
    };
    match stage {
        Some(stage) if stage != "$default" => path.strip_prefix('/').and_then(|p| p.strip_prefix(stage)).filter(|p| p.starts_with('/')).unwrap_or(path),
        _ => path,
    }
}

fn respond(status: StatusCode, body: &Value) -> Response<Body> {
    let mut response = Response::new(Body::Text(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

#[cfg(test)]
mod tests;
