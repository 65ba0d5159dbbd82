//! The JSON control API drives the same portal as the Rust API.

use crate::common::*;
use serde_json::{Value, json};

async fn j(p: &Portal, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = p.http.request(method, format!("{}/_emulator/{path}", p.emu.base_url()));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("request");
    let s = resp.status().as_u16();
    (s, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn customer_flow_over_http() {
    let p = start().await;
    let (s, m) = j(&p, reqwest::Method::POST, "customers/+491707770000/messages", Some(json!({"line_id": 3, "text": "hello"}))).await;
    assert_eq!(s, 200, "{m}");
    let chat = m["chat_id"].as_u64().expect("chat");
    let (s, r) =
        j(&p, reqwest::Method::POST, &format!("chats/{chat}/operator-messages"), Some(json!({"user_id": p.demo.operator_id, "text": "Hi, Olga here"}))).await;
    assert_eq!(s, 200, "{r}");
    let (_, inbox) = j(&p, reqwest::Method::GET, "customers/+491707770000/inbox", None).await;
    assert_eq!(inbox[0]["text"], "Hi, Olga here");
    let (_, snap) = j(&p, reqwest::Method::GET, &format!("chats/{chat}"), None).await;
    assert_eq!(snap["session_open"], json!(true));
    let (s, _) = j(&p, reqwest::Method::POST, &format!("chats/{chat}/finish"), None).await;
    assert_eq!(s, 200);
    let (s, e) = j(&p, reqwest::Method::POST, &format!("chats/{chat}/finish"), None).await;
    assert_eq!((s, e["error"].as_str()), (400, Some("SESSION_CLOSED")));
    let (s, _) = j(&p, reqwest::Method::POST, "faults", Some(json!({"method": "scope", "count": 1, "error": {"code": "X", "status": 500}}))).await;
    assert_eq!(s, 200);
    assert_eq!(p.call("scope", json!({})).await.0, 500);
    let (_, calls) = j(&p, reqwest::Method::GET, "calls", None).await;
    assert_eq!(calls[0]["error"], "X");
    j(&p, reqwest::Method::DELETE, "calls", None).await;
    assert_eq!(j(&p, reqwest::Method::GET, "calls", None).await.1, json!([]));
    let (s, e) = j(&p, reqwest::Method::POST, "customers/+49/messages", Some(json!({"text": "no line"}))).await;
    assert_eq!((s, e["error"].as_str()), (400, Some("INVALID_REQUEST")));
}

#[tokio::test]
async fn bots_can_be_seeded_over_http() {
    let p = start().await;
    let rx = receiver().await;
    let body = json!({"code": "seeded", "client_id": "s1", "event_handler": rx.url, "welcome_line_id": 3});
    let (s, r) = j(&p, reqwest::Method::POST, "bots", Some(body)).await;
    assert_eq!(s, 200, "{r}");
    let bot = r["bot_id"].as_u64().expect("bot id");
    let (s, _) = j(&p, reqwest::Method::PUT, &format!("bots/{bot}/application-token"), Some(json!({"token": "app-secret"}))).await;
    assert_eq!(s, 200);
    p.emu.customer_writes(3, "+491707770001", "hi").await.expect("write");
    let (_, idle) = j(&p, reqwest::Method::GET, "idle?timeout_ms=5000", None).await;
    assert_eq!(idle["idle"], json!(true));
    let ev = rx.events("ONIMBOTMESSAGEADD").pop().expect("event");
    assert_eq!(ev["auth"]["application_token"], "app-secret");
    let (_, deliveries) = j(&p, reqwest::Method::GET, "deliveries", None).await;
    assert_eq!(deliveries.as_array().map(Vec::len), Some(2));
    assert_eq!(deliveries[1]["status"], json!(200));
    let (s, e) = j(&p, reqwest::Method::POST, "bots", Some(json!({"code": "seeded", "client_id": "s1", "event_handler": rx.url}))).await;
    assert_eq!((s, e["error"].as_str()), (400, Some("WRONG_REQUEST")));
}
