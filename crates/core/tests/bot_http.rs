//! The HTTP bot adapter against a real HTTP server on 127.0.0.1:0: the headers and body it sends,
//! every answer shape it accepts, and how each failure is classified.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test helpers fail loudly by design

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
    HttpBot::with_client(reqwest::Client::new(), url, Some(Secret::new("Bearer t0k")), Some(Secret::new("hmac-key")), timeout).expect("bot")
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
        "crm": {"entity_type": "lead", "entity_id": 42}, "profile": {"name": "Ravi"},
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
