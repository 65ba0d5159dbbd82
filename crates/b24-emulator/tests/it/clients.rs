//! The emulator driven the way Bitrix24's official Python SDK (b24pysdk 1.3) and batching clients drive a
//! portal: `as_list` (first page, then a batch of `start` pages up to `total`), `as_list_fast` (`start=-1` with a
//! moving `>ID` window), a batch of 60 whose overflow is retried, and throttling on `time.operating`.

use crate::common::*;
use b24_emulator::{EmulatorConfig, OperatingLimit, RateLimit};
use serde_json::{Value, json};
use std::time::Duration;

fn ids(v: &Value) -> Vec<u64> {
    v.as_array().map(|a| a.iter().filter_map(|l| l["ID"].as_str().and_then(|s| s.parse().ok())).collect()).unwrap_or_default()
}

#[tokio::test]
async fn sdk_style_paging_batching_and_throttling() {
    let limit = OperatingLimit { limit: Duration::from_secs(30), ..OperatingLimit::default() };
    let p = start_with(EmulatorConfig { rate: RateLimit::UNLIMITED, operating: limit, ..EmulatorConfig::default() }).await;
    let adds: Vec<Value> = (0..120).map(|i| json!(format!("crm.lead.add?fields[TITLE]=L{i}"))).collect();
    for chunk in adds.chunks(50) {
        p.ok("batch", json!({"cmd": chunk})).await;
    }
    // as_list: the first response gives total and next; the rest comes as one batch of start pages.
    let (_, first) = p.call("crm.lead.list", json!({"select": ["ID"]})).await;
    let (total, next) = (first["total"].as_u64().expect("total"), first["next"].as_u64().expect("next"));
    let pages: Vec<Value> = (next..total).step_by(50).map(|s| json!(format!("crm.lead.list?select[]=ID&start={s}"))).collect();
    let rest = p.ok("batch", json!({"cmd": pages})).await;
    let mut all = ids(&first["result"]);
    for page in rest["result"].as_array().expect("page results") {
        all.extend(ids(page));
    }
    assert_eq!(all.len(), 120);
    // as_list_fast: start=-1 (no count), ordered by ID, filter >last ID, until a short page.
    let (mut fast, mut last): (Vec<u64>, u64) = (Vec::new(), 0);
    loop {
        let (_, page) = p.call("crm.lead.list", json!({"select": ["ID"], "order": {"ID": "ASC"}, "filter": {">ID": last}, "start": -1})).await;
        assert_eq!((page["total"].clone(), page.get("next")), (json!(0), None));
        let got = ids(&page["result"]);
        fast.extend(&got);
        match got.last() {
            Some(l) if got.len() == 50 => last = *l,
            _ => break,
        }
    }
    assert_eq!(fast, all);
    // A batching client sends 60 commands at once and retries what came back ERROR_BATCH_LENGTH_EXCEEDED.
    let gets: serde_json::Map<String, Value> = all.iter().take(60).map(|id| (format!("g{id}"), json!(format!("crm.lead.get?id={id}")))).collect();
    let (status, body) = p.call("batch", json!({"cmd": gets.clone()})).await;
    assert_eq!(status, 200);
    let over: Vec<String> = body["result"]["result_error"]
        .as_object()
        .map(|o| o.iter().filter(|(_, e)| e["error"] == "ERROR_BATCH_LENGTH_EXCEEDED").map(|(k, _)| k.clone()).collect())
        .unwrap_or_default();
    assert_eq!((body["result"]["result"].as_object().map(|o| o.len()), over.len()), (Some(50), 10));
    let retry: serde_json::Map<String, Value> = over.iter().map(|k| (k.clone(), gets[k].clone())).collect();
    let again = p.ok("batch", json!({"cmd": retry})).await;
    assert_eq!(again["result"].as_object().map(|o| o.len()), Some(10));
    // Throttling on time.operating: a client that stops at 80 % of the limit never sees OPERATION_TIME_LIMIT; one
    // that ignores the figure does, and the reset time tells it how long to wait.
    let mut last_operating = 0.0;
    for _ in 0..200 {
        let (s, b) = p.call("crm.lead.list", json!({"start": -1})).await;
        assert_eq!(s, 200, "a throttling client is never refused: {b}");
        last_operating = b["time"]["operating"].as_f64().expect("operating");
        if last_operating >= 24.0 {
            break;
        }
    }
    assert!(last_operating >= 24.0, "time.operating grows with the calls ({last_operating})");
    let mut refused = None;
    for _ in 0..100 {
        let (s, b) = p.call("crm.lead.list", json!({"start": -1})).await;
        if s == 429 {
            refused = Some(b);
            break;
        }
    }
    assert_eq!(refused.expect("an unthrottled client is refused")["error"], "OPERATION_TIME_LIMIT");
    let (_, other) = p.call("crm.deal.list", json!({})).await;
    let reset = other["time"]["operating_reset_at"].as_i64().expect("reset");
    assert!(reset > other["time"]["start"].as_f64().unwrap_or(0.0) as i64);
    p.emu.advance_clock(Duration::from_secs(600));
    assert_eq!(p.call("crm.lead.list", json!({"start": -1})).await.0, 200, "available again once the window has passed");
}
