//! The HTTP bot adapter against a real HTTP server on 127.0.0.1:0: the headers and body it sends,
//! every answer shape it accepts, and how each failure is classified.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test helpers fail loudly by design

mod b24_support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::{DateTime, Utc};
use olbridge_core::bot::http::HttpBot;
use olbridge_core::bot::sign::verify;
use olbridge_core::domain::ids::{BotId, ChatId, DedupKey, DialogId, LineId, MemberId, MessageId, Phone, PortalDomain, SessionId, UserId};
use olbridge_core::domain::message::{Author, AuthorKind, CrmBinding, InboundMessage, LinesContext, PortalRef, Source};
use olbridge_core::domain::secret::Secret;
use olbridge_core::ports::{Bot, HistoryTurn};
use olbridge_core::ports::{BotAnswer, BotError, BotRequest};
use serde_json::{Value, json};
use tracing::instrument::WithSubscriber;

type Seen = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

async fn answer(Path(case): Path<String>, State(seen): State<Seen>, headers: HeaderMap, body: Bytes) -> Response {
    if let Ok(mut s) = seen.lock() {
        s.push((headers, body));
    }
    let json = |v: &str| ([(header::CONTENT_TYPE, "application/json")], v.to_owned()).into_response();
    match case.as_str() {
        "reply_text" => json(r#"{"reply_text": "Hello!"}"#),
        "replies" => json(r#"{"replies": ["Hello!", "How can I help?"], "handoff": true, "profile": {"name": "Ana"}}"#),
        "text" => json(r#"{"text": "Hello!"}"#),
        "messages" => json(r#"{"messages": ["Hello!"]}"#),
        "response" => json(r#"{"response": "Hello!"}"#),
        "plain" => ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "Hello as text\n").into_response(),
        "empty" => StatusCode::NO_CONTENT.into_response(),
        "invalid" => json("{not json"),
        "null" => json("null"),
        "big" => json(&format!(r#"{{"text": "{}"}}"#, "a".repeat(2 * 1024 * 1024))),
        "e500" => (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response(),
        "e404" => StatusCode::NOT_FOUND.into_response(),
        "e429" => StatusCode::TOO_MANY_REQUESTS.into_response(),
        "slow" => std::future::pending().await,
        _ => StatusCode::BAD_REQUEST.into_response(),
    }
}

async fn server() -> (SocketAddr, Seen) {
    let seen: Seen = Arc::default();
    let app = Router::new().route("/bot/{case}", post(answer)).with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, seen)
}

fn bot(addr: SocketAddr, case: &str, timeout: Duration) -> HttpBot {
    let url = url::Url::parse(&format!("http://{addr}/bot/{case}")).expect("url");
    HttpBot::with_builder(reqwest::Client::builder(), url, Some(Secret::new("Bearer t0k")), Some(Secret::new("hmac-key")), timeout).expect("bot")
}

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).expect("time")
}

fn inbound(id: &str, text: &str) -> InboundMessage {
    InboundMessage {
        source: Source::BotPushV1,
        portal: PortalRef { member_id: MemberId::parse("abc123").expect("member"), domain: PortalDomain::parse("x.bitrix24.com").expect("domain") },
        message_id: MessageId::parse(id).expect("id"),
        chat_id: ChatId::parse("97669").expect("chat"),
        dialog_id: DialogId::parse("chat97669").expect("dialog"),
        author: Author { id: UserId::new(39771).ok(), name: "Ravi".into(), kind: AuthorKind::Customer },
        text: text.into(),
        system: false,
        lines: LinesContext {
            line_id: LineId::new(3).ok(),
            connector: Some("whatsappbyedna".into()),
            user_code: Some("whatsappbyedna|3|917704090366@s|39771".into()),
            session_id: SessionId::new(12).ok(),
            crm: Some(CrmBinding { entity_type: "lead".into(), entity_id: 42 }),
            phone: Phone::parse("+917704090366").ok(),
            window: None,
        },
        bot_id: BotId::new(11).ok(),
        language: Some("en".into()),
        sent_at: at(1_772_093_963),
    }
}

fn request() -> BotRequest {
    let history = vec![HistoryTurn { role: "bot".into(), text: "Hi!".into(), at: at(1_772_093_000) }];
    let burst = [inbound("55018226", "hello"), inbound("55018227", "  "), inbound("55018228", "are you there?")];
    BotRequest::for_turn(&burst, json!({"name": "Ravi"}), history, Some("+971501754133")).expect("request")
}

fn key() -> DedupKey {
    DedupKey::message(&MemberId::parse("abc123").expect("member"), MessageId::parse("55018226").expect("id"))
}

#[tokio::test]
async fn sends_the_contract_headers_and_a_verifiable_signature() {
    let (addr, seen) = server().await;
    let answer = bot(addr, "reply_text", Duration::from_secs(5)).ask(&request(), &key(), Duration::from_secs(120)).await;
    assert_eq!(answer, Ok(BotAnswer { replies: vec!["Hello!".into()], ..BotAnswer::default() }));
    let (headers, body) = seen.lock().expect("lock").pop().expect("one request");
    let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert_eq!(h("content-type"), "application/json");
    assert_eq!(h("authorization"), "Bearer t0k");
    assert_eq!(h("idempotency-key"), "abc123:msg:55018226");
    let signature = h("x-olbridge-signature");
    let now = Utc::now().timestamp();
    assert!(verify(&Secret::new("hmac-key"), &signature, &body, now, 60), "{signature}");
    assert!(!verify(&Secret::new("other"), &signature, &body, now, 60));

    let sent: Value = serde_json::from_slice(&body).expect("JSON body");
    let expected = json!({
        "platform": "bitrix24", "direction": "inbound", "dialog_id": "chat97669", "chat_id": 97669,
        "message_id": 55018228, "text": "hello\nare you there?", "message": "hello\nare you there?",
        "phone": "+917704090366", "customer_phone": "+917704090366", "business_phone": "+971501754133",
        "author_id": 39771, "customer_name": "Ravi", "line_id": 3, "connector": "whatsappbyedna", "session_id": 12,
        "crm": {"entity_type": "lead", "entity_id": 42}, "profile": {"name": "Ravi"}, "consent": null,
        "history": [{"role": "bot", "text": "Hi!", "at": "2026-02-26T08:03:20Z"}],
        "event_id": "abc123:msg:55018226"
    });
    assert_eq!(sent, expected);
}

#[tokio::test]
async fn every_answer_shape_is_read() {
    let (addr, _) = server().await;
    let replies = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    for (case, expected) in [
        ("reply_text", replies(&["Hello!"])),
        ("text", replies(&["Hello!"])),
        ("messages", replies(&["Hello!"])),
        ("response", replies(&["Hello!"])),
        ("plain", replies(&["Hello as text"])),
        ("empty", replies(&[])),
    ] {
        let answer = bot(addr, case, Duration::from_secs(5)).ask(&request(), &key(), Duration::from_secs(120)).await;
        assert_eq!(answer.map(|a| a.replies), Ok(expected), "{case}");
    }
    let full = bot(addr, "replies", Duration::from_secs(5)).ask(&request(), &key(), Duration::from_secs(120)).await.expect("answer");
    assert_eq!(full.replies, replies(&["Hello!", "How can I help?"]));
    assert!(full.handoff);
    assert_eq!(full.profile, Some(json!({"name": "Ana"})));
}

#[tokio::test]
async fn failures_are_classified() {
    let (addr, _) = server().await;
    let ask = |case: &'static str, timeout: Duration| async move { bot(addr, case, timeout).ask(&request(), &key(), Duration::from_secs(120)).await };
    let t = Duration::from_secs(5);
    let e500 = ask("e500", t).await;
    assert_eq!(e500, Err(BotError::Status(500)));
    assert!(e500.err().is_some_and(|e| e.is_retryable()));
    let e404 = ask("e404", t).await;
    assert_eq!(e404, Err(BotError::Status(404)));
    assert!(e404.err().is_some_and(|e| !e.is_retryable()));
    assert!(ask("e429", t).await.err().is_some_and(|e| e.is_retryable()));
    for case in ["invalid", "null", "big"] {
        let e = ask(case, t).await;
        assert!(matches!(e, Err(BotError::InvalidAnswer(_))), "{case}: {e:?}");
        assert!(e.err().is_some_and(|e| !e.is_retryable()));
    }
    let slow = ask("slow", Duration::from_millis(300)).await;
    assert_eq!(slow, Err(BotError::Timeout(1)), "sub-second timeouts round up");
    assert!(slow.err().is_some_and(|e| e.is_retryable()));
}

#[tokio::test]
async fn connection_failures_are_transport_errors_without_the_url() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let url = url::Url::parse(&format!("http://user:pa55word@{addr}/hook?token=s3cr3t")).expect("url");
    let bot = HttpBot::new(url, None, None, Duration::from_secs(5)).expect("bot");
    match bot.ask(&request(), &key(), Duration::from_secs(120)).await {
        Err(e @ BotError::Transport(_)) => {
            assert!(e.is_retryable());
            let text = e.to_string();
            for secret in ["s3cr3t", "pa55word", "/hook"] {
                assert!(!text.contains(secret), "{secret} leaked in {text:?}");
            }
        }
        other => panic!("expected a transport error, got {other:?}"),
    }
}

#[test]
fn an_empty_turn_has_no_request() {
    assert!(BotRequest::for_turn(&[], json!({}), vec![], None).is_none());
    let single = BotRequest::for_turn(&[inbound("7", "hi")], Value::Null, vec![], Some("  ")).expect("request");
    assert_eq!((single.profile, single.business_phone, single.message_id), (json!({}), None, 7));
}

#[test]
fn consent_comes_from_the_profile_and_is_null_when_unknown() {
    let consent = |profile: Value| BotRequest::for_turn(&[inbound("7", "hi")], profile, vec![], None).expect("request").consent;
    assert_eq!(consent(json!({"consent": true})), Some(true));
    assert_eq!(consent(json!({"consent": false})), Some(false));
    assert_eq!(consent(json!({"name": "Ravi"})), None);
    let sent = serde_json::to_value(BotRequest::for_turn(&[inbound("7", "hi")], json!({}), vec![], None).expect("request")).expect("json");
    assert_eq!(sent.get("consent"), Some(&Value::Null), "always sent, null when unknown");
}

/// A server that records every request it gets: the redirect target, which must never get one.
async fn recording_server() -> (SocketAddr, Seen) {
    let seen: Seen = Arc::default();
    let record = |State(seen): State<Seen>, headers: HeaderMap, body: Bytes| async move {
        if let Ok(mut s) = seen.lock() {
            s.push((headers, body));
        }
        ([(header::CONTENT_TYPE, "application/json")], r#"{"reply_text": "the other host's answer"}"#)
    };
    let app = Router::new().fallback(record).with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, seen)
}

/// A bot that answers every POST with `status` and `Location: location`.
async fn redirecting_bot(status: StatusCode, location: String) -> (SocketAddr, Seen) {
    let seen: Seen = Arc::default();
    let redirect = move |State(seen): State<Seen>, headers: HeaderMap, body: Bytes| async move {
        if let Ok(mut s) = seen.lock() {
            s.push((headers, body));
        }
        (status, [(header::LOCATION, location)]).into_response()
    };
    let app = Router::new().fallback(redirect).with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, seen)
}

#[tokio::test]
async fn redirects_are_refused_not_followed_and_leak_no_secret() {
    const SECRET: &str = "q-s3cr3t-token";
    let (target, target_seen) = recording_server().await;
    for status in [StatusCode::MOVED_PERMANENTLY, StatusCode::FOUND, StatusCode::SEE_OTHER, StatusCode::TEMPORARY_REDIRECT, StatusCode::PERMANENT_REDIRECT] {
        let (bot_addr, bot_seen) = redirecting_bot(status, format!("http://{target}/steal?same={SECRET}")).await;
        let url = url::Url::parse(&format!("http://{bot_addr}/hook/path-s3cr3t?token={SECRET}")).expect("url");
        let bot = HttpBot::with_builder(reqwest::Client::builder(), url, None, None, Duration::from_secs(5)).expect("bot");
        let capture = b24_support::Capture::default();
        let result = bot.ask(&request(), &key(), Duration::from_secs(120)).with_subscriber(capture.clone()).await;

        let code = status.as_u16();
        assert_eq!(result, Err(BotError::Redirect(code)), "{code}");
        let error = result.expect_err("a redirect is a failure");
        assert!(!error.is_retryable(), "{code}: the same request gets the same redirect");
        let text = format!("{error} {error:?}");
        assert!(text.contains("the bot answered a redirect to another location; olbridge does not follow redirects, fix BOT_HTTP_URL"), "{text}");
        let logged = capture.text();
        assert!(logged.contains("redirect") && logged.contains(&format!("http://{target}")), "{logged}");
        for leaked in [SECRET, "path-s3cr3t", "/steal"] {
            assert!(!text.contains(leaked), "{leaked} in the error: {text}");
            assert!(!logged.contains(leaked), "{leaked} in the log: {logged}");
            assert!(!format!("{bot:?}").contains(leaked));
        }
        let first = bot_seen.lock().expect("lock");
        assert_eq!(first.len(), 1, "{code}: one call, no retry");
        assert!(first[0].0.get(header::REFERER).is_none(), "{code}: no Referer");
    }
    assert!(target_seen.lock().expect("lock").is_empty(), "the redirect target must never get the customer's data");
}

#[tokio::test]
async fn a_redirect_is_refused_even_without_a_location() {
    let (bot_addr, _) = redirecting_bot(StatusCode::TEMPORARY_REDIRECT, String::new()).await;
    let url = url::Url::parse(&format!("http://{bot_addr}/hook")).expect("url");
    let bot = HttpBot::new(url, None, None, Duration::from_secs(5)).expect("bot");
    assert_eq!(bot.ask(&request(), &key(), Duration::from_secs(120)).await, Err(BotError::Redirect(307)));
}

#[tokio::test]
async fn a_bot_streaming_50_mb_is_cut_off_at_the_default_cap_while_streaming() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    const CHUNK: usize = 64 * 1024;
    const TOTAL: usize = 50 * 1024 * 1024;
    let produced = Arc::new(AtomicUsize::new(0));
    let counter = produced.clone();
    let stream_answer = move || {
        let counter = counter.clone();
        async move {
            // No Content-Length: the body is chunked, so only the streaming check can stop it.
            let chunks = futures::stream::iter((0..TOTAL / CHUNK).map(move |_| {
                counter.fetch_add(CHUNK, Ordering::Relaxed);
                Ok::<_, std::io::Error>(Bytes::from(vec![b'a'; CHUNK]))
            }));
            ([(header::CONTENT_TYPE, "text/plain")], axum::body::Body::from_stream(chunks))
        }
    };
    let app = Router::new().route("/bot", post(stream_answer));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });

    let url = url::Url::parse(&format!("http://{addr}/bot")).expect("url");
    let bot = HttpBot::new(url, None, None, Duration::from_secs(30)).expect("bot");
    let result = bot.ask(&request(), &key(), Duration::from_secs(120)).await;
    assert_eq!(result, Err(BotError::InvalidAnswer("the answer is larger than 1048576 bytes".into())));
    // The server is stopped by the closed connection long before 50 MB: at most the cap plus
    // what the socket buffers held.
    tokio::task::yield_now().await;
    let sent = produced.load(Ordering::Relaxed);
    assert!(sent < 16 * 1024 * 1024, "the client read on: {sent} bytes produced");
}
