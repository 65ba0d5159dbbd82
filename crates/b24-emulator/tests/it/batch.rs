//! `batch`: limits, halt, references, nesting, recording.

use crate::common::*;
use serde_json::{Value, json};

#[tokio::test]
async fn references_and_ordering() {
    let p = start().await;
    // Written by hand: serde_json would sort the keys, and order is the point here.
    let body = r#"{"cmd": {
        "z_lead": "crm.lead.add?fields[TITLE]=From%20batch&fields[PHONE][0][VALUE]=%2B4911",
        "a_get": "crm.lead.get?id=$result[z_lead]",
        "list": "crm.lead.list?filter[TITLE]=$result[a_get][TITLE]&select[]=ID&select[]=PHONE"}}"#;
    let (status, body) = p.raw("batch", "application/json", body).await;
    assert_eq!(status, 200);
    let res = &body["result"];
    let id = res["result"]["z_lead"].as_u64().expect("lead id");
    assert_eq!(res["result"]["a_get"]["ID"], id.to_string(), "commands run in the given order, not sorted");
    assert_eq!(res["result"]["list"][0]["PHONE"][0]["VALUE"], "+4911");
    assert_eq!(res["result_total"]["list"], json!(1));
    assert_eq!(res["result_error"], json!([]));
    assert_eq!(res["result_next"], json!([]));
    assert!(res["result_time"]["a_get"]["duration"].is_number());
    let batched: Vec<String> = p.emu.calls().into_iter().filter(|c| c.in_batch).map(|c| c.method).collect();
    assert_eq!(batched, ["crm.lead.add", "crm.lead.get", "crm.lead.list"]);
}

#[tokio::test]
async fn array_cmd_form_encoding_and_halt() {
    let p = start().await;
    let body = "halt=1&cmd[]=scope&cmd[]=crm.lead.get%3Fid%3D999999&cmd[]=scope";
    let (status, body) = p.raw("batch", "application/x-www-form-urlencoded", body).await;
    assert_eq!(status, 200, "batch answers 200 even when commands fail");
    let r = &body["result"];
    // PHP json_encode: result keys 0.. in order make a list.
    assert_eq!(r["result"][0], json!(["crm", "im", "imbot", "imopenlines"]));
    assert_eq!(r["result_error"]["1"], json!({"error": "", "error_description": "Not found"}));
    assert!(r["result"].get("2").is_none(), "halt stops at the first error: {r}");
    let (_, body) = p.call("batch", json!({"halt": false, "cmd": ["crm.lead.get?id=999999", "scope"]})).await;
    assert!(body["result"]["result"].get("1").is_some(), "without halt the rest runs");
}

#[tokio::test]
async fn limits_and_nesting() {
    let p = start().await;
    let fifty: Value = (0..50).map(|i| (format!("c{i}"), json!("scope"))).collect::<serde_json::Map<_, _>>().into();
    assert_eq!(p.call("batch", json!({"cmd": fifty})).await.0, 200);
    let res = p.ok("batch", json!({"cmd": {"inner": "batch?cmd[a]=scope", "bad": "no.such.method"}})).await;
    assert_eq!(res["result_error"]["inner"]["error"], "ERROR_BATCH_METHOD_NOT_ALLOWED");
    assert_eq!(res["result_error"]["bad"]["error"], "ERROR_METHOD_NOT_FOUND");
    assert_eq!(res["result"], json!([]));
}

#[tokio::test]
async fn a_batch_is_one_request_for_the_rate_limit() {
    let p = start().await;
    p.emu.set_rate_limit(b24_emulator::RateLimit { per_sec: 0.0, burst: 2.0 });
    let cmds: Value = (0..10).map(|i| (format!("c{i}"), json!("scope"))).collect::<serde_json::Map<_, _>>().into();
    assert_eq!(p.call("batch", json!({"cmd": cmds})).await.0, 200);
    assert_eq!(p.call("scope", json!({})).await.0, 200);
    assert_eq!(p.call("scope", json!({})).await.0, 503);
}

#[tokio::test]
async fn more_than_fifty_runs_fifty_and_reports_the_rest() {
    let p = start().await;
    // SRC CRestProvider::methodsBatch: HTTP 200, commands 51.. get ERROR_BATCH_LENGTH_EXCEEDED in result_error.
    let cmds: Vec<Value> = (0..60).map(|i| json!(format!("crm.lead.add?fields[TITLE]=L{i}"))).collect();
    let (status, body) = p.call("batch", json!({"cmd": cmds})).await;
    assert_eq!(status, 200, "{body}");
    let r = &body["result"];
    assert_eq!(r["result"].as_array().map(Vec::len), Some(50), "keys 0..49: a JSON list, as PHP encodes it");
    let errors = r["result_error"].as_object().cloned().unwrap_or_default();
    assert_eq!(errors.keys().cloned().collect::<Vec<_>>(), (50..60).map(|i| i.to_string()).collect::<Vec<_>>());
    assert!(errors.values().all(|e| *e == json!({"error": "ERROR_BATCH_LENGTH_EXCEEDED", "error_description": "Max batch length exceeded"})));
    assert_eq!(p.emu.calls().iter().filter(|c| c.in_batch).count(), 50, "the extra commands never run");
    let (_, leads) = p.call("crm.lead.list", json!({})).await;
    assert_eq!(leads["total"], json!(50));
    // With halt the first extra command stops the batch (its error is still reported).
    let scopes: Vec<Value> = (0..55).map(|_| json!("scope")).collect();
    let (status, body) = p.call("batch", json!({"halt": 1, "cmd": scopes})).await;
    assert_eq!(status, 200);
    assert_eq!(body["result"]["result"].as_array().map(Vec::len), Some(50));
    assert_eq!(body["result"]["result_error"].as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()), Some(vec!["50".to_owned()]));
}
