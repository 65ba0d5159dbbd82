//! Fault injection, the leaky bucket, and delivery failures.

use crate::common::*;
use b24_emulator::{Fault, RateLimit};
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test]
async fn error_faults_hit_the_next_n_calls() {
    let p = start().await;
    p.emu.inject_fault(Fault::error("scope", 2, "OPERATION_TIME_LIMIT", "Method is blocked due to operation time limit.", 429));
    for _ in 0..2 {
        let (s, b) = p.call("scope", json!({})).await;
        assert_eq!((s, b["error"].as_str()), (429, Some("OPERATION_TIME_LIMIT")));
    }
    assert_eq!(p.call("scope", json!({})).await.0, 200);
    let rec: Vec<(u16, Option<String>)> = p.emu.calls().into_iter().map(|c| (c.status, c.error)).collect();
    assert_eq!(rec[0], (429, Some("OPERATION_TIME_LIMIT".to_owned())));
    assert_eq!(rec[2], (200, None));
    // Inside a batch the fault lands in result_error.
    p.emu.inject_fault(Fault::error("scope", 1, "expired_token", "The access token provided has expired", 401));
    let res = p.ok("batch", json!({"cmd": {"a": "scope"}})).await;
    assert_eq!(res["result_error"]["a"]["error"], "expired_token");
}

#[tokio::test]
async fn delay_faults_slow_the_call() {
    let p = start().await;
    p.emu.inject_fault(Fault::delay("*", 1, Duration::from_millis(300)));
    let t = Instant::now();
    assert_eq!(p.call("scope", json!({})).await.0, 200);
    assert!(t.elapsed() >= Duration::from_millis(300));
    assert!(p.emu.calls()[0].latency >= Duration::from_millis(300));
}

#[tokio::test]
async fn dropped_and_failed_deliveries_are_recorded_and_never_retried() {
    let p = start().await;
    let rx = receiver().await;
    p.register_bot(&rx.url, "f1").await;
    p.emu.inject_fault(Fault::drop_delivery("ONIMBOTMESSAGEADD", 1));
    p.emu.customer_writes(3, "+491702220000", "lost").await.expect("write");
    p.emu.customer_writes(3, "+491702220000", "kept").await.expect("write");
    assert!(p.emu.wait_idle(WAIT).await);
    let msgs: Vec<String> = rx.events("ONIMBOTMESSAGEADD").iter().map(|e| e["data"]["PARAMS"]["MESSAGE"].as_str().unwrap_or("").to_owned()).collect();
    assert_eq!(msgs, ["kept"]);
    let d = p.emu.deliveries();
    let dropped = d.iter().find(|x| x.error.as_deref() == Some("dropped by fault injection")).expect("recorded");
    assert_eq!(dropped.field(&["data", "PARAMS", "MESSAGE"]).as_deref(), Some("lost"));
    // A handler that is down: one failed attempt, no retry.
    let dead = "http://127.0.0.1:9/never";
    let bot = p.ok("imbot.register", json!({"CODE": "dead", "TYPE": "O", "EVENT_HANDLER": dead, "PROPERTIES": {"NAME": "Dead"}, "CLIENT_ID": "dead"})).await;
    p.emu.attach_welcome_bot(1, bot.as_u64().expect("id")).expect("attach");
    p.emu.customer_writes(1, "+491702220001", "anyone?").await.expect("write");
    assert!(p.emu.wait_idle(WAIT).await);
    let failed: Vec<_> = p.emu.deliveries().into_iter().filter(|x| x.url.starts_with(dead)).collect();
    assert_eq!(failed.len(), 2, "join + message, one attempt each");
    assert!(failed.iter().all(|x| x.status.is_none() && x.error.is_some()));
}

#[tokio::test]
async fn leaky_bucket_refuses_with_503_and_drains() {
    let p = start_with(b24_emulator::EmulatorConfig { rate: RateLimit { per_sec: 2.0, burst: 5.0 }, ..Default::default() }).await;
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(p.call("scope", json!({})).await);
    }
    let refused: Vec<_> = statuses.iter().filter(|(s, _)| *s == 503).collect();
    assert!(!refused.is_empty(), "burst of 5 exceeded: {:?}", statuses.iter().map(|s| s.0).collect::<Vec<_>>());
    assert_eq!(refused[0].1, json!({"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"}));
    assert!(p.emu.calls().iter().any(|c| c.status == 503), "refused requests are recorded");
    // Drains at 2/s: a retry loop (the probe) gets through within about half a second.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if p.call("scope", json!({})).await.0 == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "bucket never drained");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Control API changes the limit at runtime.
    let r = p.http.put(format!("{}/_emulator/rate-limit", p.emu.base_url())).json(&json!({"per_sec": 0, "burst": 0})).send().await.expect("put");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(p.call("scope", json!({})).await.0, 503);
}

#[tokio::test]
async fn an_offline_handler_gets_nothing_until_it_is_back_and_nothing_is_retried() {
    use b24_emulator::{DeliveryOutage, OutageFailure};
    let p = start().await;
    let rx = receiver().await;
    p.register_bot(&rx.url, "off1").await;
    p.emu.customer_writes(3, "+491702220010", "before").await.expect("write");
    assert!(p.emu.wait_idle(WAIT).await);
    p.emu.take_handler_offline(DeliveryOutage { failure: OutageFailure::ConnectionRefused, duration: Some(Duration::from_secs(60)), url_prefix: None });
    p.emu.customer_writes(3, "+491702220010", "while down").await.expect("write");
    assert!(p.emu.wait_idle(WAIT).await);
    let failed = p.emu.deliveries().into_iter().filter(|d| d.field(&["data", "PARAMS", "MESSAGE"]).as_deref() == Some("while down")).collect::<Vec<_>>();
    assert_eq!(failed.len(), 1, "one attempt, no retry");
    assert_eq!((failed[0].status, failed[0].error.as_deref()), (None, Some("transport error: connection refused (handler offline)")));
    // A 5xx outage until cleared, over the control API.
    let url = format!("{}/_emulator/deliveries/outage", p.emu.base_url());
    let r = p.http.post(&url).json(&json!({"failure": "status", "status": 503})).send().await.expect("post");
    assert_eq!(r.status().as_u16(), 200);
    p.emu.customer_writes(3, "+491702220010", "still down").await.expect("write");
    assert!(p.emu.wait_idle(WAIT).await);
    let d = p.emu.deliveries().into_iter().last().expect("delivery");
    assert_eq!((d.status, d.delivered()), (Some(503), false));
    p.http.delete(&url).send().await.expect("delete");
    p.emu.customer_writes(3, "+491702220010", "back").await.expect("write");
    assert!(p.emu.wait_idle(WAIT).await);
    let msgs: Vec<String> = rx.events("ONIMBOTMESSAGEADD").iter().map(|e| e["data"]["PARAMS"]["MESSAGE"].as_str().unwrap_or("").to_owned()).collect();
    assert_eq!(msgs, ["before", "back"]);
    // A timed outage ends by itself: advancing the portal clock past it brings the handler back.
    p.emu.take_handler_offline(DeliveryOutage {
        failure: OutageFailure::Status(502),
        duration: Some(Duration::from_secs(30)),
        url_prefix: Some(rx.url.clone()),
    });
    p.emu.advance_clock(Duration::from_secs(31));
    p.emu.customer_writes(3, "+491702220010", "later").await.expect("write");
    assert!(p.emu.wait_idle(WAIT).await);
    assert_eq!(rx.events("ONIMBOTMESSAGEADD").len(), 3);
}

#[tokio::test]
async fn every_third_delivery_is_dropped_deterministically() {
    let p = start().await;
    let rx = receiver().await;
    p.register_bot(&rx.url, "nth").await;
    p.emu.customer_writes(3, "+491702220020", "m0").await.expect("write");
    assert!(p.emu.wait_idle(WAIT).await);
    let r = p
        .http
        .post(format!("{}/_emulator/deliveries/drop-every", p.emu.base_url()))
        .json(&json!({"n": 3, "event": "ONIMBOTMESSAGEADD"}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 200);
    for i in 1..=7 {
        p.emu.customer_writes(3, "+491702220020", &format!("m{i}")).await.expect("write");
    }
    assert!(p.emu.wait_idle(WAIT).await);
    let msgs: Vec<String> = rx.events("ONIMBOTMESSAGEADD").iter().map(|e| e["data"]["PARAMS"]["MESSAGE"].as_str().unwrap_or("").to_owned()).collect();
    assert_eq!(msgs, ["m0", "m1", "m2", "m4", "m5", "m7"]);
    let dropped = p.emu.deliveries().into_iter().filter(|d| d.error.as_deref().is_some_and(|e| e.contains("one in every 3"))).count();
    assert_eq!(dropped, 2);
    p.emu.drop_every_nth_delivery(0, None);
    p.emu.customer_writes(3, "+491702220020", "m8").await.expect("write");
    assert!(p.emu.wait_idle(WAIT).await);
    assert_eq!(rx.events("ONIMBOTMESSAGEADD").len(), 7);
}
