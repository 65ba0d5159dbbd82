//! The receiver's HTTP surface: `POST /bitrix/events` and `GET /health` (the queue's gauges and
//! the poller's last successful pass).
//!
//! Refusals carry only a stable error code in the body, never internal error text, and are logged
//! through `refusals` (DEBUG each, a summary a minute). Connections, limits and timeouts: `listener`.
//!
//! The source allow-list (`OLBRIDGE_ALLOWED_CIDRS`, see `SourcePolicy`) is a layer on the events
//! route alone: it answers 403 `not_allowed` from the peer address and the headers, before the body
//! is read, so a refused source costs no parsing; `GET /health` stays open to every source.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;

use axum::extract::{ConnectInfo, DefaultBodyLimit, RawQuery, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use olbridge_core::config::ReceiverLimits;
use olbridge_core::usecase::receive::{InboundRequest, ReceiveError, Received};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::debug;

use super::Shared;
use super::refusals::{self, Refusals};

pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>, limits: ReceiverLimits, stop: watch::Receiver<bool>) {
    let limit = shared.receiver.settings.max_body_bytes;
    let refusals = Arc::clone(&shared.refusals);
    let events = post(events).layer(middleware::from_fn_with_state(Arc::clone(&shared), admit));
    let app = Router::new().route("/bitrix/events", events).route("/health", get(health)).layer(DefaultBodyLimit::max(limit)).with_state(shared);
    tokio::join!(
        super::listener::serve(listener, app, limits, Arc::clone(&refusals), stop.clone()),
        refusals::report(&refusals, refusals::SUMMARY_EVERY, stop),
    );
}

/// Refuses a request from outside the allow-list before its body is touched.
async fn admit(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let policy = &shared.receiver.settings.sources;
    if policy.is_open() {
        return next.run(request).await;
    }
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let forwarded = request.headers().get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok());
    let client = peer.and_then(|peer| policy.client(peer, forwarded));
    if policy.allows(client) {
        next.run(request).await
    } else {
        debug!(client = ?client, "event refused: source outside OLBRIDGE_ALLOWED_CIDRS");
        refuse(&shared.refusals, &ReceiveError::NotAllowed)
    }
}

async fn events(State(shared): State<Arc<Shared>>, RawQuery(query): RawQuery, body: Bytes) -> Response {
    let request = InboundRequest { body: &body, query: query.as_deref() };
    let now = shared.deps.clock.now();
    match shared.receiver.receive(request, now).await {
        Ok(Received::Enqueued(key)) => {
            debug!(key = %key, "event enqueued");
            shared.wake.notify_one();
            ok()
        }
        Ok(Received::Duplicate(key)) => {
            debug!(key = %key, "duplicate event dropped");
            ok()
        }
        Ok(Received::Ignored(why)) => {
            debug!(reason = %why, "event ignored");
            ok()
        }
        Err(e) => refuse(&shared.refusals, &e),
    }
}

fn ok() -> Response {
    (StatusCode::OK, axum::Json(json!({"status": "ok"}))).into_response()
}

fn refuse(refusals: &Refusals, e: &ReceiveError) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let code = refusals.event(status.as_u16(), e);
    (status, axum::Json(json!({"error": code}))).into_response()
}

async fn health(State(shared): State<Arc<Shared>>) -> Response {
    match shared.queue.depth(shared.deps.clock.now()).await {
        Ok(depth) => (
            StatusCode::OK,
            axum::Json(json!({
                "status": "ok",
                "version": env!("CARGO_PKG_VERSION"),
                "queue": {"ready": depth.ready, "in_flight": depth.in_flight, "dead": depth.dead},
                "poller": shared.poll_status.as_ref().map(|p| p.to_json()),
            })),
        )
            .into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({"status": "store_unavailable"}))).into_response(),
    }
}
