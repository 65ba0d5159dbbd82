//! The HTTP server: the REST surface and the control API on one listener.

use crate::shared::Shared;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use std::sync::Arc;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let limit = shared.config.max_body_bytes;
    crate::rest::router()
        .merge(crate::control::router())
        .fallback(|| async { crate::rest::json_response(404, &serde_json::json!({"error": "NOT_FOUND", "error_description": "Not found"})) })
        .layer(DefaultBodyLimit::max(limit))
        .with_state(shared)
}
