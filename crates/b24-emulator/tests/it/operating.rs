//! Per-method operating time: `time.operating`, `operating_reset_at`, 429 `OPERATION_TIME_LIMIT`.

use crate::common::*;
use b24_emulator::{EmulatorConfig, OperatingLimit, RateLimit};
use serde_json::{Value, json};
use std::time::Duration;

fn operating(b: &Value) -> f64 {
    b["time"]["operating"].as_f64().expect("time.operating")
}

#[tokio::test]
async fn operating_time_accumulates_per_webhook_and_method_and_blocks_over_the_limit() {
    let limit = OperatingLimit { limit: Duration::from_secs(10), ..OperatingLimit::default() };
    let p = start_with(EmulatorConfig { rate: RateLimit::UNLIMITED, operating: limit, ..EmulatorConfig::default() }).await;
    p.emu.set_method_cost("crm.lead.list", Duration::from_secs(3));
    let mut seen = Vec::new();
    for _ in 0..4 {
        let (s, b) = p.call("crm.lead.list", json!({})).await;
        assert_eq!(s, 200, "{b}");
        seen.push(operating(&b));
    }
    assert_eq!(seen, [3.0, 6.0, 9.0, 12.0], "the call that crosses the limit still runs");
    let (s, b) = p.call("crm.lead.list", json!({})).await;
    assert_eq!((s, b), (429, json!({"error": "OPERATION_TIME_LIMIT", "error_description": "Method is blocked due to operation time limit."})));
    // Other methods of the same webhook, and the same method through another webhook, keep working.
    let (s, b) = p.call("crm.deal.list", json!({})).await;
    assert_eq!((s, operating(&b)), (200, 0.2));
    let other = p.emu.add_webhook(p.demo.service_user_id, &["crm"]);
    assert_eq!(p.call_at(&other, "crm.lead.list", json!({})).await.0, 200);
    // Inside a batch the blocked method fails in result_error; batch itself is never counted.
    let res = p.ok("batch", json!({"cmd": {"a": "crm.lead.list", "b": "scope"}})).await;
    assert_eq!(res["result_error"]["a"]["error"], "OPERATION_TIME_LIMIT");
    assert_eq!(res["result_time"]["b"]["operating"], json!(0));
    let (_, b) = p.call("batch", json!({"cmd": ["scope"]})).await;
    assert_eq!(b["time"]["operating"], json!(0));
    // Availability returns when the oldest bucket expires: operating_reset_at, ten minutes after it filled.
    let usage = p.emu.operating_usage();
    let hook = p.demo.webhook_url.split("/rest/").nth(1).unwrap_or("").trim_end_matches('/').to_owned();
    let row = usage.iter().find(|u| u.method == "crm.lead.list" && u.webhook == hook).expect("usage");
    assert!((row.operating - 12.0).abs() < 1e-9);
    p.emu.advance_clock(Duration::from_secs(601));
    let (s, b) = p.call("crm.lead.list", json!({})).await;
    assert_eq!((s, operating(&b)), (200, 3.0));
}

#[tokio::test]
async fn cheap_calls_are_not_charged_alone_but_fifty_in_a_batch_are() {
    let p = start().await;
    // The defaults: 10 ms for scope, below SRC's 0.1 s floor; 200 ms for a CRM list, above it.
    let (_, b) = p.call("scope", json!({})).await;
    assert_eq!(b["time"]["operating"], json!(0));
    let reset = b["time"]["operating_reset_at"].as_i64().expect("reset_at");
    let start = b["time"]["start"].as_f64().expect("start") as i64;
    assert!((reset - start - 600).abs() <= 1, "nothing stored: this request's start + 600 ({reset} vs {start})");
    let (_, b) = p.call("crm.lead.list", json!({})).await;
    assert!((operating(&b) - 0.2).abs() < 1e-9, "{b}");
    let cmds: Vec<Value> = (0..50).map(|_| json!("scope")).collect();
    let res = p.ok("batch", json!({"cmd": cmds})).await;
    assert_eq!(res["result_time"][49]["operating"], json!(0), "each command alone is under the floor");
    let (_, b) = p.call("scope", json!({})).await;
    assert!((operating(&b) - 0.5).abs() < 1e-9, "the request's sum (50 × 10 ms) was stored: {b}");
}

#[tokio::test]
async fn the_control_api_changes_costs_and_the_limit() {
    let p = start().await;
    let url = format!("{}/_emulator/operating", p.emu.base_url());
    let r = p.http.put(&url).json(&json!({"limit_secs": 1, "costs": {"im.recent.list": 0.6}})).send().await.expect("put");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(p.call("im.recent.list", json!({})).await.0, 200);
    assert_eq!(p.call("im.recent.list", json!({})).await.0, 200);
    assert_eq!(p.call("im.recent.list", json!({})).await.0, 429);
    let state: Value = p.http.get(&url).send().await.expect("get").json().await.expect("json");
    assert_eq!(state["limit_secs"], json!(1.0));
    assert_eq!(state["usage"][0]["method"], "im.recent.list");
    let r = p.http.post(format!("{}/_emulator/clock/advance", p.emu.base_url())).json(&json!({"seconds": 700})).send().await.expect("post");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(p.call("im.recent.list", json!({})).await.0, 200);
    p.http.delete(&url).send().await.expect("delete");
    assert!(p.emu.operating_usage().is_empty());
    p.emu.set_operating_limit(OperatingLimit { enabled: false, ..OperatingLimit::default() });
    let (_, b) = p.call("crm.lead.list", json!({})).await;
    assert_eq!(b["time"]["operating"], json!(0));
}
