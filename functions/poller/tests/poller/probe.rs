//! The direct invocations: `{"olbridge":"health"}` and `{"olbridge":"canary"}` (the fixtures in
//! `events/`), through [`olbridge_poller::dispatch`] as `main` calls it, on moto and the emulator.
//! No bridge runs here: a canary nobody answers is a canary whose bot (or bridge) is down, and
//! the test answers as the bot (what the worker does) for the other cases.

use olbridge_core::config::DEFAULT_FALLBACK_MESSAGE;
use serde_json::Value;

use crate::support::{World, scheduled_event};

fn fixture(name: &str) -> Value {
    let path = format!("{}/../../events/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture")).expect("JSON")
}

fn invocation(request_id: &str, secs: i64) -> olbridge_poller::Invocation {
    olbridge_poller::Invocation { request_id: request_id.to_owned(), deadline: Some(chrono::Utc::now() + chrono::Duration::seconds(secs)) }
}

#[test]
fn the_payloads_are_told_apart() {
    use olbridge_poller::probe::Request;
    assert!(matches!(Request::parse(fixture("poller-health.json")), Ok(Request::Health)));
    assert!(matches!(Request::parse(fixture("poller-canary.json")), Ok(Request::Canary)));
    assert!(matches!(Request::parse(serde_json::to_value(scheduled_event()).expect("json")), Ok(Request::Scheduled(_))));
    assert!(Request::parse(serde_json::json!({"olbridge": "reboot"})).is_err());
    assert!(Request::parse(serde_json::json!({"hello": 1})).is_err());
}

#[tokio::test]
async fn a_health_invocation_returns_the_report_and_fails_on_a_missing_bot() {
    let w = World::start().await;
    let poller = w.instance(&[]);
    let (probes, _) = w.probes(&[]);
    let out = olbridge_poller::dispatch(&poller.deps, &probes, fixture("poller-health.json"), &invocation("req-h", 10)).await.expect("invoke");
    let status = |name: &str| out["checks"].as_array().expect("checks").iter().find(|c| c["name"] == name).map(|c| c["status"].clone());
    assert_eq!(status("portal"), Some("ok".into()), "{out}");
    assert_eq!(status("store"), Some("ok".into()), "DynamoDB on moto: {out}");
    assert_eq!(status("queue"), Some("ok".into()), "SQS on moto: {out}");
    assert_eq!(status("bot"), Some("fail".into()), "BOT_HTTP_URL is not set: {out}");
    assert_eq!(out["status"], "fail");
    assert_eq!(poller.metric("PollerFailed"), 0.0, "no poll run: {:?}", poller.metrics.lines());
}

#[tokio::test]
async fn a_canary_with_nobody_answering_writes_canary_failed_1() {
    let w = World::start().await;
    let bot = w.register_bot().await.to_string();
    let poller = w.instance(&[]);
    let (probes, metrics) = w.probes(&[("B24_BOT_ID", &bot), ("OLBRIDGE_CANARY_TIMEOUT_SEC", "2")]);
    let out = olbridge_poller::dispatch(&poller.deps, &probes, fixture("poller-canary.json"), &invocation("req-c", 30)).await.expect("invoke");
    assert_eq!(out["result"], "failed", "{out}");
    assert!(out["reason"].as_str().unwrap_or_default().starts_with("no reply in dialog"), "{out}");
    let failed: Vec<f64> = metrics.readings().iter().filter(|r| r.name == "CanaryFailed").map(|r| r.value).collect();
    assert_eq!(failed, [1.0], "{:?}", metrics.lines());
    assert!(metrics.readings().iter().all(|r| r.name != "CanaryLatency"));
}

#[tokio::test]
async fn a_canary_answered_by_the_bot_passes_and_one_answered_with_the_fallback_fails() {
    let w = World::start().await;
    let bot_id = w.register_bot().await;
    let bot = bot_id.to_string();
    let poller = w.instance(&[]);
    let (probes, metrics) = w.probes(&[("B24_BOT_ID", &bot), ("OLBRIDGE_CANARY_TIMEOUT_SEC", "20")]);

    let first = invocation("req-1", 30);
    let (out, ()) = tokio::join!(
        olbridge_poller::dispatch(&poller.deps, &probes, fixture("poller-canary.json"), &first),
        w.answer_canary_as_bot(bot_id, 1, "We are open 9 to 5."),
    );
    let out = out.expect("invoke");
    assert_eq!(out["result"], "passed", "{out}");
    let read = |name: &str| metrics.readings().iter().filter(|r| r.name == name).map(|r| r.value).collect::<Vec<_>>();
    assert_eq!(read("CanaryFailed"), [0.0]);
    assert_eq!(read("CanaryLatency").len(), 1);

    let second = invocation("req-2", 30);
    let (out, ()) = tokio::join!(
        olbridge_poller::dispatch(&poller.deps, &probes, fixture("poller-canary.json"), &second),
        w.answer_canary_as_bot(bot_id, 2, DEFAULT_FALLBACK_MESSAGE),
    );
    let out = out.expect("invoke");
    assert_eq!(out["result"], "failed", "{out}");
    assert!(out["reason"].as_str().unwrap_or_default().contains("fallback"), "{out}");
    assert_eq!(read("CanaryFailed"), [0.0, 1.0]);
}
