//! The source allow-list (`OLBRIDGE_ALLOWED_CIDRS`): an event from a peer outside it is refused
//! with 403 before its body is read, and nothing is enqueued; `/health` stays open. Behind a
//! trusted proxy (`OLBRIDGE_TRUSTED_PROXIES`), the right-most untrusted `X-Forwarded-For` address
//! is the one checked. The emulator and the tests reach the bridge from 127.0.0.1.

use olbridge_tests::{AppOptions, PHONE, TestApp};

use crate::REPLY_TIMEOUT;

fn with_env(pairs: &[(&str, &str)]) -> AppOptions {
    // Reconciliation would recover a refused message later: off, so "nothing enqueued" is exact.
    let mut extra_env = vec![("OLBRIDGE_RECONCILE_SEC".to_owned(), "0".to_owned())];
    extra_env.extend(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    AppOptions { extra_env, ..AppOptions::default() }
}

async fn post_from(app: &TestApp, forwarded_for: Option<&str>, body: String) -> u16 {
    let mut request = reqwest::Client::new().post(&app.events_url).header("content-type", "application/x-www-form-urlencoded").body(body);
    if let Some(xff) = forwarded_for {
        request = request.header("x-forwarded-for", xff);
    }
    request.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn a_loopback_peer_outside_the_list_is_refused_and_nothing_is_enqueued() {
    let app = TestApp::spawn(with_env(&[("OLBRIDGE_ALLOWED_CIDRS", "10.0.0.0/8,2001:db8::/32")])).await.unwrap();
    app.customer_writes(PHONE, "hello").await.unwrap();
    let deliveries = app.emulator.wait_for_deliveries(Some("ONIMBOTMESSAGEADD"), 1, REPLY_TIMEOUT).await;
    let d = deliveries.last().expect("the portal delivered the event");
    assert_eq!(d.status, Some(403), "{d:?}");
    // Not even parsed: a body that is not a form gets the same 403, not a 400.
    let (status, text) = app.post_event("\u{0}garbage%%%[[[".to_owned()).await.unwrap();
    assert_eq!((status, text.as_str()), (403, r#"{"error":"not_allowed"}"#));
    let health = app.health().await.unwrap();
    assert_eq!(health["status"], "ok", "GET /health stays open: {health}");
    assert_eq!((health["queue"]["ready"].as_u64(), health["queue"]["in_flight"].as_u64()), (Some(0), Some(0)), "nothing enqueued: {health}");
    assert!(app.bot.received().is_empty());
    assert!(app.turns().await.is_empty());
    app.shutdown().await;
}

#[tokio::test]
async fn a_peer_inside_the_list_is_answered() {
    let app = TestApp::spawn(with_env(&[("OLBRIDGE_ALLOWED_CIDRS", "10.0.0.0/8, 127.0.0.0/8, ::1/128")])).await.unwrap();
    app.customer_writes(PHONE, "hello").await.unwrap();
    app.wait_inbox(PHONE, 1, REPLY_TIMEOUT).await;
    assert_eq!(app.bot_messages(PHONE), ["echo: hello"]);
    app.shutdown().await;
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_client_address_is_checked() {
    let app = TestApp::spawn(with_env(&[("OLBRIDGE_ALLOWED_CIDRS", "203.0.113.0/24"), ("OLBRIDGE_TRUSTED_PROXIES", "127.0.0.0/8")])).await.unwrap();
    let garbage = || "\u{0}garbage".to_owned();
    // The loopback peer is the proxy: without a header it is itself the client, outside the list.
    assert_eq!(post_from(&app, None, garbage()).await, 403);
    // A forged left-most entry does not help: the proxy appended the real client on the right.
    assert_eq!(post_from(&app, Some("203.0.113.9, 198.51.100.4"), garbage()).await, 403);
    // The client the proxy vouches for is inside: the request goes on to be parsed (400 here).
    assert_eq!(post_from(&app, Some("198.51.100.4, 203.0.113.9"), garbage()).await, 400);
    app.shutdown().await;
}
