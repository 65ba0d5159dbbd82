//! The receiver refuses what is not a genuine, fresh event of our portal — with a status that says
//! why, nothing enqueued, and the process serving on — and turns a replayed event into nothing.
//! Clients that hold connections without finishing a request (slow-loris) are closed after the
//! configured timeouts and cannot keep genuine events or `/health` from being answered.

use std::time::Duration;

use b24_emulator::Fault;
use olbridge_tests::attack::{Kind, SlowLoris, hold};
use olbridge_tests::{AppOptions, PHONE, TestApp, poll_until};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

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

/// How long the attack tests wait for something that should happen within the configured timeouts.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// Starts `n` slow-loris attackers on the app's receiver and waits (a while) until they are all
/// connected; a receiver that accepts nothing more leaves some in the kernel's SYN retries.
async fn attack(app: &TestApp, n: usize) -> SlowLoris {
    let attack = SlowLoris::start(app.addr, n, Duration::from_secs(1));
    poll_until(Duration::from_secs(5), || async { attack.connected() }, |c| *c >= n).await;
    attack
}

/// How the portal's event deliveries went: status, error and when.
fn deliveries(app: &TestApp) -> Vec<(Option<u16>, Option<String>, String)> {
    app.emulator.deliveries().into_iter().map(|d| (d.status, d.error, d.at.format("%T%.3f").to_string())).collect()
}

/// The customer writes; the bot's reply reaches their WhatsApp, and `/health` answers — all while
/// the attack runs.
async fn genuine_traffic_is_answered(app: &TestApp, text: &str) {
    app.customer_writes(PHONE, text).await.unwrap();
    app.wait_inbox(PHONE, 1, REPLY_TIMEOUT).await;
    assert_eq!(app.bot_messages(PHONE), [format!("echo: {text}")], "deliveries: {:?}\nbridge log:\n{}", deliveries(app), app.serve_log());
    let health = reqwest::Client::builder().timeout(CLOSE_TIMEOUT).build().unwrap().get(app.health_url()).send().await;
    assert_eq!(health.as_ref().map(|r| r.status().as_u16()).ok(), Some(200), "/health answers during the attack: {health:?}\nbridge log:\n{}", app.serve_log());
}

#[tokio::test]
async fn the_receiver_answers_genuine_events_and_health_while_200_slow_loris_connections_are_held() {
    // A cap below the attack's size, so the attack reaches it; the timeouts are the defaults.
    let opts = AppOptions { extra_env: vec![("OLBRIDGE_MAX_CONNECTIONS".into(), "64".into())], ..AppOptions::default() };
    let app = TestApp::spawn(opts).await.unwrap();
    let attack = attack(&app, 200).await;
    genuine_traffic_is_answered(&app, "hello under attack").await;
    assert!(attack.connected() >= 200, "the attack was at full strength: {} connections", attack.connected());
    // And it stops while the attack goes on: connections waiting on their clients are closed, so
    // the shutdown does not run into the grace period (after which it would abort running turns).
    let stopping = Instant::now();
    app.shutdown().await;
    assert!(stopping.elapsed() < olbridge::runner::SHUTDOWN_GRACE, "the attack held the shutdown for {:?}", stopping.elapsed());
    attack.stop().await;
}

#[tokio::test]
async fn under_a_64_descriptor_limit_the_bridge_process_keeps_answering_through_a_slow_loris_attack() {
    // The finding's setting: the real `olbridge serve`, 64 descriptors, more attackers than that
    // (before the fix, the attackers took every descriptor and the event's delivery timed out).
    let app = TestApp::spawn_process(AppOptions { fd_limit: Some(64), ..AppOptions::default() }).await.unwrap();
    let attack = attack(&app, 200).await;
    genuine_traffic_is_answered(&app, "hello with few descriptors").await;
    assert!(attack.connected() >= 200, "the attack was at full strength: {} connections", attack.connected());
    attack.stop().await;
    app.shutdown().await;
}

#[tokio::test]
async fn slow_heads_slow_bodies_and_idle_connections_are_closed_after_their_timeouts() {
    let (idle, header, body) = (Duration::from_millis(300), Duration::from_millis(700), Duration::from_millis(700));
    let env = [("OLBRIDGE_HTTP_IDLE_TIMEOUT_MS", idle), ("OLBRIDGE_HTTP_HEADER_TIMEOUT_MS", header), ("OLBRIDGE_HTTP_BODY_TIMEOUT_MS", body)];
    let opts = AppOptions { extra_env: env.iter().map(|(k, v)| ((*k).to_owned(), v.as_millis().to_string())).collect(), ..AppOptions::default() };
    let app = TestApp::spawn(opts).await.unwrap();
    let drip = Duration::from_millis(50);

    // Each returns how long the connection was held (from connecting, or from the keep-alive
    // response) and what the receiver sent.
    let held = |kind: Kind| async move {
        let stream = TcpStream::connect(app.addr).await.unwrap();
        let start = Instant::now();
        let received = tokio::time::timeout(CLOSE_TIMEOUT, hold(stream, kind, drip)).await.expect("the receiver closes the connection");
        (start.elapsed(), String::from_utf8_lossy(&received).into_owned())
    };
    let kept_alive = async {
        let mut stream = TcpStream::connect(app.addr).await.unwrap();
        // Measured from before the request: the receiver starts its idle clock when it has written
        // the response, which this side only sees a little later.
        let start = Instant::now();
        stream.write_all(b"GET /health HTTP/1.1\r\nHost: olbridge\r\n\r\n").await.unwrap();
        let mut buf = vec![0u8; 4096];
        let n = stream.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buf[..n]));
        let rest = tokio::time::timeout(CLOSE_TIMEOUT, stream.read(&mut buf)).await.expect("the receiver closes the idle connection");
        assert!(matches!(rest, Ok(0) | Err(_)), "nothing more is sent: {rest:?}");
        start.elapsed()
    };
    let ((silent, _), (slow_head, _), (slow_body, answer), idle_after_response) =
        tokio::join!(held(Kind::Silent), held(Kind::SlowHead), held(Kind::SlowBody), kept_alive);

    // Lower bounds only: a connection is never closed before its timeout; the upper bound is
    // CLOSE_TIMEOUT, generous on purpose.
    assert!(silent >= idle, "silent connection closed after {silent:?}");
    assert!(slow_head >= header, "a head sent byte by byte is bounded by the header timeout, not reset by each byte ({slow_head:?})");
    assert!(slow_body >= body, "slow body closed after {slow_body:?}");
    assert!(answer.starts_with("HTTP/1.1 408"), "a slow body gets a 408 before the close: {answer:?}");
    assert!(idle_after_response >= idle, "kept-alive connection closed after {idle_after_response:?}");

    // The receiver serves on.
    genuine_traffic_is_answered(&app, "still here").await;
    app.shutdown().await;
}
