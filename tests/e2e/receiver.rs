//! The receiver refuses what is not a genuine, fresh event of our portal — with a status that says
//! why, nothing enqueued, and the process serving on — and turns a replayed event into nothing.

use b24_emulator::Fault;
use olbridge_tests::{AppOptions, PHONE, TestApp};

use crate::REPLY_TIMEOUT;

/// Makes the portal's next ONIMBOTMESSAGEADD get lost in transit, lets the customer write, and
/// returns the raw body the portal tried to POST: a genuine event nobody has seen.
async fn genuine_undelivered_event(app: &TestApp, text: &str) -> String {
    app.emulator.inject_fault(Fault::drop_delivery("ONIMBOTMESSAGEADD", 1));
    app.customer_writes(PHONE, text).await.unwrap();
    let deliveries = app.emulator.wait_for_deliveries(Some("ONIMBOTMESSAGEADD"), 1, REPLY_TIMEOUT).await;
    let d = deliveries.last().expect("the portal tried to deliver the event");
    assert!(!d.delivered(), "the fault dropped it");
    d.body.clone()
}

/// Rewrites one field of a form body (`key` as it appears decoded, e.g. `auth[application_token]`).
fn with_field(body: &str, key: &str, value: Option<&str>) -> String {
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    let mut seen = false;
    for (k, v) in url::form_urlencoded::parse(body.as_bytes()) {
        if k == key {
            seen = true;
            if let Some(value) = value {
                out.append_pair(&k, value);
            }
        } else {
            out.append_pair(&k, &v);
        }
    }
    assert!(seen, "{key} is not in the body");
    out.finish()
}

async fn queue_depth(app: &TestApp) -> serde_json::Value {
    let url = app.events_url.replace("/bitrix/events", "/health");
    let health: serde_json::Value = reqwest::get(url).await.unwrap().json().await.unwrap();
    health["queue"].clone()
}

#[tokio::test]
async fn forged_stale_foreign_malformed_and_oversized_events_are_refused_and_nothing_is_enqueued() {
    let app = TestApp::spawn(AppOptions::default()).await.unwrap();
    let genuine = genuine_undelivered_event(&app, "hello").await;
    let stale_ts = (chrono::Utc::now().timestamp() - 3600).to_string();
    let future_ts = (chrono::Utc::now().timestamp() + 3600).to_string();

    let cases: Vec<(&str, String, u16)> = vec![
        ("forged token", with_field(&genuine, "auth[application_token]", Some("guessed-token")), 401),
        ("missing token", with_field(&genuine, "auth[application_token]", None), 401),
        ("stale ts", with_field(&genuine, "ts", Some(&stale_ts)), 401),
        ("ts from the future", with_field(&genuine, "ts", Some(&future_ts)), 401),
        ("another portal's domain", with_field(&genuine, "auth[domain]", Some("evil.bitrix24.com")), 403),
        ("no message id", with_field(&genuine, "data[PARAMS][MESSAGE_ID]", None), 400),
        ("a message id that is not a number", with_field(&genuine, "data[PARAMS][MESSAGE_ID]", Some("12abc")), 400),
        ("no ts", with_field(&genuine, "ts", None), 400),
        ("oversized", format!("{genuine}&pad={}", "x".repeat(300 * 1024)), 413),
        ("not a form at all", "\u{0}\u{1}garbage%%%[[[".to_owned(), 400),
    ];
    for (name, body, status) in cases {
        let (got, text) = app.post_event(body).await.unwrap();
        assert_eq!(got, status, "{name}: {text}");
        assert!(!text.contains("Error") && !text.contains("error:"), "{name}: no internal error text in the body: {text}");
    }
    let depth = queue_depth(&app).await;
    assert_eq!(depth["ready"], 0, "nothing was enqueued: {depth}");
    assert_eq!(depth["in_flight"], 0, "nothing was enqueued: {depth}");
    assert!(app.bot.received().is_empty());

    // The process keeps serving: the genuine event is accepted and answered.
    let (status, _) = app.post_event(genuine).await.unwrap();
    assert_eq!(status, 200);
    app.wait_inbox(PHONE, 1, REPLY_TIMEOUT).await;
    assert_eq!(app.bot_messages(PHONE), ["echo: hello"]);
    app.shutdown().await;
}

#[tokio::test]
async fn events_from_another_member_id_are_refused_when_one_is_configured() {
    let probe = TestApp::spawn(AppOptions::default()).await.unwrap();
    let member = probe.emulator.member_id();
    probe.shutdown().await;
    // Configure a member id that is not the emulator's: every genuine event is then foreign.
    let other = if member.starts_with('a') { "b".repeat(32) } else { "a".repeat(32) };
    let app = TestApp::spawn(AppOptions { extra_env: vec![("B24_MEMBER_ID".into(), other)], ..AppOptions::default() }).await.unwrap();
    let genuine = genuine_undelivered_event(&app, "hello").await;
    let (status, _) = app.post_event(genuine).await.unwrap();
    assert_eq!(status, 403);
    assert!(app.bot.received().is_empty());
    app.shutdown().await;
}

#[tokio::test]
async fn the_same_event_posted_twice_at_once_gives_one_reply() {
    let app = TestApp::spawn(AppOptions::default()).await.unwrap();
    let genuine = genuine_undelivered_event(&app, "only once please").await;
    let (a, b) = tokio::join!(app.post_event(genuine.clone()), app.post_event(genuine.clone()));
    assert_eq!(a.unwrap().0, 200);
    assert_eq!(b.unwrap().0, 200);
    // And once more later, as a replay would.
    app.wait_inbox(PHONE, 1, REPLY_TIMEOUT).await;
    let (c, _) = app.post_event(genuine).await.unwrap();
    assert_eq!(c, 200);
    let turns = app.wait_turns(1, REPLY_TIMEOUT).await;
    assert_eq!(turns.len(), 1);
    assert_eq!(app.bot_messages(PHONE), ["echo: only once please"]);
    assert_eq!(app.bot.received().len(), 1);
    let depth = queue_depth(&app).await;
    assert_eq!(depth["ready"], 0, "{depth}");
    app.shutdown().await;
}
