//! The JSON control API under `/_emulator/`, for tests in other processes, the demo and manual use (curl).
//!
//! It mirrors the Rust API of [`crate::Emulator`]. Errors come back as `{"error": CODE, "error_description":
//! TEXT}` with a 4xx status. None of this exists on a real portal, so it lives under a prefix Bitrix24 never uses.

mod limits;

use crate::api::NewLine;
use crate::rest::envelope::error_body;
use crate::rest::errors::ApiError;
use crate::rest::json_response;
use crate::shared::Shared;
use crate::state::views;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post, put};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

pub(super) type S = State<Arc<Shared>>;

pub(crate) fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/_emulator/health", get(health))
        .route("/_emulator/seed-demo", post(seed_demo))
        .route("/_emulator/employees", post(add_employee))
        .route("/_emulator/webhooks", post(add_webhook))
        .route("/_emulator/lines", post(add_line).get(lines))
        .route("/_emulator/lines/{id}/welcome-bot", post(welcome_bot))
        .route("/_emulator/bots", get(bots).post(register_bot))
        .route("/_emulator/bots/{id}/application-token", put(app_token))
        .route("/_emulator/customers/{phone}/messages", post(customer_message))
        .route("/_emulator/customers/{phone}/inbox", get(inbox))
        .route("/_emulator/chats/{id}", get(chat))
        .route("/_emulator/chats/{id}/operator-messages", post(operator_message))
        .route("/_emulator/chats/{id}/finish", post(finish))
        .route("/_emulator/chats/{id}/commands", post(press))
        .route("/_emulator/calls", get(calls).delete(clear_calls))
        .route("/_emulator/deliveries", get(deliveries))
        .route("/_emulator/idle", get(idle))
        .merge(limits::router())
}

pub(super) fn ok(v: Value) -> Response {
    json_response(200, &v)
}

pub(super) fn err(e: ApiError) -> Response {
    json_response(e.status, &error_body(&e))
}

pub(super) fn reply(r: Result<Value, ApiError>) -> Response {
    r.map_or_else(err, ok)
}

pub(super) fn bad_json(e: impl std::fmt::Display) -> Response {
    err(ApiError::bad("INVALID_REQUEST", &e.to_string()))
}

/// Parses a JSON body, answering 400 (not axum's plain-text rejection) when it does not fit.
pub(super) fn body<T: for<'de> Deserialize<'de>>(raw: &str) -> Result<T, String> {
    serde_json::from_str(if raw.trim().is_empty() { "{}" } else { raw }).map_err(|e| e.to_string())
}

async fn health(State(s): S) -> Response {
    ok(json!({"ok": true, "base_url": s.base_url, "member_id": s.portal().ident.member_id}))
}

async fn seed_demo(State(s): S) -> Response {
    let (code, operator) = s.portal().seed_demo();
    let service = crate::state::seed::SERVICE_USER;
    ok(json!({
        "webhook_url": format!("{}/rest/{service}/{code}/", s.base_url), "service_user_id": service,
        "operator_id": operator, "whatsapp_line_id": 3, "other_line_ids": [1, 5],
        "control_url": format!("{}/_emulator/", s.base_url),
    }))
}

#[derive(Deserialize)]
struct EmployeeIn {
    id: Option<u64>,
    first_name: String,
    #[serde(default)]
    last_name: String,
}

async fn add_employee(State(s): S, raw: String) -> Response {
    let b: EmployeeIn = match body(&raw) {
        Ok(b) => b,
        Err(e) => return bad_json(e),
    };
    ok(json!({"id": s.portal().add_employee(b.id, &b.first_name, &b.last_name)}))
}

#[derive(Deserialize)]
struct WebhookIn {
    user_id: u64,
    scopes: Vec<String>,
}

async fn add_webhook(State(s): S, raw: String) -> Response {
    let b: WebhookIn = match body(&raw) {
        Ok(b) => b,
        Err(e) => return bad_json(e),
    };
    let scopes: Vec<&str> = b.scopes.iter().map(String::as_str).collect();
    let r = s.portal().add_webhook(b.user_id, &scopes);
    reply(r.map(|code| json!({"url": format!("{}/rest/{}/{code}/", s.base_url, b.user_id)})))
}

async fn add_line(State(s): S, raw: String) -> Response {
    let b: NewLine = match body(&raw) {
        Ok(b) => b,
        Err(e) => return bad_json(e),
    };
    ok(json!({"id": s.portal().add_line(b)}))
}

async fn lines(State(s): S) -> Response {
    let p = s.portal();
    let all: Vec<Value> = p
        .lines
        .values()
        .map(|l| {
            let mut v = views::line_config(&p, l, true, false);
            if let Some(o) = v.as_object_mut() {
                o.insert("CONNECTOR_ID".into(), json!(l.connector_id));
            }
            v
        })
        .collect();
    ok(Value::Array(all))
}

#[derive(Deserialize)]
struct BotIn {
    bot_id: u64,
}

async fn welcome_bot(State(s): S, Path(id): Path<u64>, raw: String) -> Response {
    let b: BotIn = match body(&raw) {
        Ok(b) => b,
        Err(e) => return bad_json(e),
    };
    reply(s.portal().attach_welcome_bot(id, b.bot_id).map(|()| json!({"ok": true})))
}

async fn bots(State(s): S) -> Response {
    let p = s.portal();
    let all: Vec<Value> = p
        .bots
        .values()
        .map(|b| {
            let app = p.apps.get(&b.app_id);
            let url = |h: Option<&crate::state::model::HandlerUrl>| h.map(|h| h.url.clone());
            let commands: Vec<Value> = p
                .commands
                .values()
                .filter(|c| c.bot_id == b.id)
                .map(|c| json!({"id": c.id, "command": c.command, "common": c.common, "hidden": c.hidden, "extranet_support": c.extranet_support}))
                .collect();
            json!({"id": b.id, "code": b.code, "app_id": b.app_id, "type": b.bot_type, "openline": b.serves_openlines(),
                   "owner_id": b.owner_id, "v2": b.v2.is_some(), "event_mode": b.v2.as_ref().map(|v| v.event_mode.as_str()),
                   "client_id": app.map(|a| a.client_id.clone()),
                   "handlers": app.map(|a| json!({
                       "message_add": url(a.message_add.as_ref()), "message_update": url(a.message_update.as_ref()),
                       "message_delete": url(a.message_delete.as_ref()), "welcome": url(a.welcome.as_ref()),
                       "bot_delete": url(a.bot_delete.as_ref()), "command_add": url(a.command_add.as_ref())})),
                   "webhook_url": b.v2.as_ref().map(|v| v.webhook_url.clone()), "commands": commands})
        })
        .collect();
    ok(Value::Array(all))
}

#[derive(Deserialize)]
struct RegisterIn {
    #[serde(default = "service_user")]
    user_id: u64,
    code: String,
    #[serde(default = "default_bot_name")]
    name: String,
    client_id: String,
    event_handler: String,
    #[serde(default = "type_o")]
    r#type: String,
    welcome_line_id: Option<u64>,
}

fn service_user() -> u64 {
    crate::state::seed::SERVICE_USER
}
fn default_bot_name() -> String {
    "AI assistant bot".to_owned()
}
fn type_o() -> String {
    "O".to_owned()
}

/// Registers a v1 bot exactly as `imbot.register` through `user_id`'s webhook would (same validation), and
/// optionally makes it a line's welcome bot.
async fn register_bot(State(s): S, raw: String) -> Response {
    let b: RegisterIn = match body(&raw) {
        Ok(b) => b,
        Err(e) => return bad_json(e),
    };
    let params = crate::rest::params::Param::from_json(&json!({
        "CODE": b.code, "TYPE": b.r#type, "EVENT_HANDLER": b.event_handler, "CLIENT_ID": b.client_id,
        "PROPERTIES": {"NAME": b.name},
    }));
    let auth = crate::rest::dispatch::Auth { user_id: b.user_id, scopes: ["imbot".to_owned()].into_iter().collect(), webhook: String::new() };
    let hit = crate::rest::operating::Hit::new(s.clock.secs());
    let ctx = crate::rest::dispatch::Ctx { shared: &s, auth: &auth, in_batch: false, extra_delay: Default::default(), hit: &hit };
    let (_, out) = crate::rest::dispatch::execute(&ctx, "imbot.register", params);
    let id = match out {
        Ok(o) => o.result.as_u64().unwrap_or(0),
        Err(e) => return err(e),
    };
    if let Some(line) = b.welcome_line_id
        && let Err(e) = s.portal().attach_welcome_bot(line, id)
    {
        return err(e);
    }
    ok(json!({"bot_id": id}))
}

#[derive(Deserialize)]
struct TokenIn {
    token: String,
}

async fn app_token(State(s): S, Path(id): Path<u64>, raw: String) -> Response {
    let b: TokenIn = match body(&raw) {
        Ok(b) => b,
        Err(e) => return bad_json(e),
    };
    let mut p = s.portal();
    let Some(bot) = p.bots.get(&id).cloned() else { return err(ApiError::new(404, "BOT_NOT_FOUND", "Bot not found")) };
    if let Some(v2) = p.bots.get_mut(&id).and_then(|x| x.v2.as_mut()) {
        v2.application_token = b.token;
    } else if let Some(app) = p.apps.get_mut(&bot.app_id) {
        app.application_token = b.token;
    }
    ok(json!({"ok": true}))
}

#[derive(Deserialize)]
struct CustomerIn {
    line_id: u64,
    text: String,
}

async fn customer_message(State(s): S, Path(phone): Path<String>, raw: String) -> Response {
    let b: CustomerIn = match body(&raw) {
        Ok(b) => b,
        Err(e) => return bad_json(e),
    };
    let r = s.portal().customer_writes(b.line_id, &phone, &b.text);
    reply(r.map(|m| json!(m)))
}

async fn inbox(State(s): S, Path(phone): Path<String>) -> Response {
    ok(json!(s.portal().inbox(&phone)))
}

async fn chat(State(s): S, Path(id): Path<u64>) -> Response {
    let p = s.portal();
    match p.chats.get(&id) {
        Some(c) => ok(json!(views::snapshot(&p, c))),
        None => err(ApiError::new(404, "CHAT_NOT_FOUND", "Chat not found")),
    }
}

#[derive(Deserialize)]
struct OperatorIn {
    user_id: u64,
    text: String,
}

async fn operator_message(State(s): S, Path(id): Path<u64>, raw: String) -> Response {
    let b: OperatorIn = match body(&raw) {
        Ok(b) => b,
        Err(e) => return bad_json(e),
    };
    reply(crate::emulator::operator_writes(&s, id, b.user_id, &b.text).map(|m| json!({"message_id": m})))
}

async fn finish(State(s): S, Path(id): Path<u64>) -> Response {
    reply(s.portal().finish_session(id).map(|()| json!({"ok": true})))
}

#[derive(Deserialize)]
struct PressIn {
    bot_id: u64,
    command: String,
    #[serde(default)]
    params: String,
}

async fn press(State(s): S, Path(id): Path<u64>, raw: String) -> Response {
    let b: PressIn = match body(&raw) {
        Ok(b) => b,
        Err(e) => return bad_json(e),
    };
    reply(s.portal().customer_presses(id, b.bot_id, &b.command, &b.params).map(|()| json!({"ok": true})))
}

async fn calls(State(s): S) -> Response {
    ok(json!(s.recorder.calls()))
}

async fn clear_calls(State(s): S) -> Response {
    s.recorder.clear();
    ok(json!({"ok": true}))
}

async fn deliveries(State(s): S) -> Response {
    ok(json!(s.recorder.deliveries()))
}

async fn idle(State(s): S, Query(q): Query<HashMap<String, String>>) -> Response {
    let ms = q.get("timeout_ms").and_then(|t| t.parse().ok()).unwrap_or(5000u64);
    let done = tokio::time::timeout(Duration::from_millis(ms), s.idle.wait()).await.is_ok();
    ok(json!({"idle": done, "pending": s.idle.pending()}))
}
