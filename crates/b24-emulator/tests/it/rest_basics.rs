//! Envelopes, auth, scopes, routing and parameter encodings.

use crate::common::*;
use serde_json::json;

#[tokio::test]
async fn success_envelope_and_time() {
    let p = start().await;
    let (status, body) = p.call("scope", json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(body["result"], json!(["crm", "im", "imbot", "imopenlines"]));
    let time = &body["time"];
    for k in ["start", "finish", "duration", "processing"] {
        assert!(time[k].is_f64() || time[k].is_u64(), "time.{k} numeric: {time}");
    }
    for k in ["date_start", "date_finish"] {
        let d = time[k].as_str().expect("date string");
        assert!(chrono::DateTime::parse_from_rfc3339(d).is_ok(), "{d}");
        assert!(d.ends_with("+03:00"), "{d}");
    }
}

#[tokio::test]
async fn auth_errors() {
    let p = start().await;
    let base = p.emu.base_url();
    for url in [format!("{base}/rest/38005/wrongcode/"), format!("{base}/rest/999/x/"), format!("{base}/rest/abc/x/")] {
        let (status, body) = p.call_at(&url, "scope", json!({})).await;
        assert_eq!(status, 401);
        assert_eq!(body, json!({"error": "NO_AUTH_FOUND", "error_description": "Wrong authorization data"}));
    }
    let (status, body) = p.call("no.such.method", json!({})).await;
    assert_eq!((status, body["error"].as_str()), (404, Some("ERROR_METHOD_NOT_FOUND")));
    let limited = p.emu.add_webhook(p.demo.service_user_id, &["im"]);
    let (status, body) = p.call_at(&limited, "imbot.bot.list", json!({})).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("insufficient_scope")));
    let (status, body) = p.call("event.bind", json!({"event": "ONCRMLEADADD", "handler": "http://x.y/"})).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("WRONG_AUTH_TYPE")));
}

#[tokio::test]
async fn json_suffix_get_query_and_form_bodies_are_equivalent() {
    let p = start().await;
    let url = format!("{}im.user.get.json?ID={}", p.demo.webhook_url, p.demo.operator_id);
    let body: serde_json::Value = p.http.get(url).send().await.expect("get").json().await.expect("json");
    assert_eq!(body["result"]["id"], json!(p.demo.operator_id));
    let (s, body) = p.raw("im.user.get", "application/x-www-form-urlencoded", &format!("id={}", p.demo.operator_id)).await;
    assert_eq!((s, &body["result"]["id"]), (200, &json!(p.demo.operator_id)), "lowercase key is upper-cased for im.*");
    let (s, body) =
        p.raw("crm.lead.add", "application/x-www-form-urlencoded", "fields[TITLE]=T&fields[PHONE][0][VALUE]=%2B491701&fields[PHONE][0][VALUE_TYPE]=WORK").await;
    assert_eq!(s, 200, "{body}");
    let id = body["result"].as_u64().expect("int id");
    let lead = p.ok("crm.lead.get", json!({"id": id})).await;
    assert_eq!(lead["PHONE"][0]["VALUE"], "+491701");
    assert_eq!(lead["ID"], json!(id.to_string()));
}

#[tokio::test]
async fn malformed_requests_get_bitrix_errors() {
    let p = start().await;
    let (s, b) = p.raw("scope", "application/json", "{not json").await;
    assert_eq!((s, b["error"].as_str()), (400, Some("INVALID_REQUEST")));
    let (s, b) = p.raw("scope", "application/x-www-form-urlencoded", "a[b=1").await;
    assert_eq!((s, b["error"].as_str()), (400, Some("INVALID_REQUEST")));
    let (s, b) = p.call("imbot.message.add", json!({"BOT_ID": 1})).await;
    assert_eq!((s, b["error"].as_str()), (403, Some("ACCESS_DENIED")));
    assert_eq!(b["error_description"], "Access denied! Client ID not specified");
    let (s, b) = p.call("im.dialog.messages.get", json!({})).await;
    assert_eq!((s, b["error"].as_str()), (400, Some("DIALOG_ID_EMPTY")));
    let (s, b) = p.call("imopenlines.bot.session.operator", json!({})).await;
    assert_eq!((s, b["error"].as_str()), (400, Some("CHAT_ID_EMPTY")));
}
