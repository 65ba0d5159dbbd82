//! The `receive` use case called directly, as a Lambda handler or the local runner calls it, with
//! a real Bitrix24 payload (the contract's OBS capture (a): a webhook-registered bot in an Open
//! Line, `auth[application_token]` = the bot's `CLIENT_ID` `192735`, `ts` 1711455834).
#![allow(clippy::expect_used)] // fixtures are known-good; a failure should fail the test

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use olbridge_core::domain::ids::{ChatId, MemberId, PortalDomain, SessionId};
use olbridge_core::domain::secret::Secret;
use olbridge_core::memory::MemoryStore;
use olbridge_core::ports::{ChatMode, ChatStore, MetaStore, WorkQueue};
use olbridge_core::usecase::receive::{InboundRequest, MemberPin, ReceiveError, ReceiveSettings, Received, Receiver};

const CAPTURE: &str = include_str!("fixtures/obs_a_v1_messageadd_lines.form");
const MEMBER: &str = "869e4953d7e841e02de675524e65f51a";

fn at_ts() -> DateTime<Utc> {
    Utc.timestamp_opt(1_711_455_834, 0).single().expect("valid")
}

fn settings() -> ReceiveSettings {
    ReceiveSettings {
        application_token: None,
        previous_tokens: Vec::new(),
        bot_client_id: Some(Secret::new("192735")),
        member_id: Some(MemberId::parse(MEMBER).expect("member")),
        domain: Some(PortalDomain::parse("b24-1x2ywp.bitrix24.ru").expect("domain")),
        bot_id: None,
        ts_window: Duration::from_secs(300),
        max_body_bytes: 64 * 1024,
        sources: Default::default(),
    }
}

fn replace(body: &str, key: &str, value: &str) -> String {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(body.as_bytes())
        .map(|(k, v)| if k == key { (k.into_owned(), value.to_owned()) } else { (k.into_owned(), v.into_owned()) })
        .collect();
    url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish()
}

fn receiver(store: &Arc<MemoryStore>, settings: ReceiveSettings) -> Receiver {
    Receiver { pin: MemberPin::new(settings.member_id.clone(), store.clone()), settings, idempotency: store.clone(), sink: store.clone(), chats: store.clone() }
}

async fn call(store: &Arc<MemoryStore>, body: &str, query: Option<&str>, now: DateTime<Utc>) -> Result<Received, ReceiveError> {
    receiver(store, settings()).receive(InboundRequest { body: body.trim().as_bytes(), query }, now).await
}

#[tokio::test]
async fn a_real_capture_is_enqueued_once() {
    let store = Arc::new(MemoryStore::new());
    let first = call(&store, CAPTURE, Some("CLIENT_ID=192735"), at_ts()).await.expect("accepted");
    let Received::Enqueued(key) = first else { panic!("expected Enqueued, got {first:?}") };
    assert_eq!(key.as_str(), "869e4953d7e841e02de675524e65f51a:msg:17");
    let again = call(&store, CAPTURE, None, at_ts() + chrono::Duration::seconds(5)).await.expect("accepted");
    assert_eq!(again, Received::Duplicate(key));
    let depth = store.depth(at_ts()).await.expect("depth");
    assert_eq!(depth.ready, 1);
}

#[tokio::test]
async fn each_refusal_has_its_own_status_and_enqueues_nothing() {
    let store = Arc::new(MemoryStore::new());
    let cases = [
        (replace(CAPTURE, "auth[application_token]", "192736"), None, at_ts(), 401),
        (CAPTURE.to_owned(), Some("CLIENT_ID=999"), at_ts(), 401),
        (CAPTURE.to_owned(), None, at_ts() + chrono::Duration::seconds(301), 401),
        (replace(CAPTURE, "auth[member_id]", "0000"), None, at_ts(), 403),
        (replace(CAPTURE, "auth[domain]", "other.bitrix24.ru"), None, at_ts(), 403),
        (replace(CAPTURE, "data[PARAMS][MESSAGE_ID]", "x"), None, at_ts(), 400),
        ("x".repeat(70 * 1024), None, at_ts(), 413),
    ];
    for (body, query, now, status) in cases {
        let err = call(&store, &body, query, now).await.expect_err("refused");
        assert_eq!(err.status(), status, "{err}");
    }
    assert_eq!(store.depth(at_ts()).await.expect("depth").ready, 0);
}

#[tokio::test]
async fn an_operators_message_silences_the_bot_before_it_is_even_queued() {
    let store = Arc::new(MemoryStore::new());
    let body = replace(&replace(CAPTURE, "data[USER][IS_CONNECTOR]", "N"), "data[USER][IS_EXTRANET]", "N");
    let body = replace(&body, "data[PARAMS][AUTHOR_ID]", "7");
    let body = replace(&body, "data[PARAMS][FROM_USER_ID]", "7");
    let body = replace(&body, "data[USER][ID]", "7");
    call(&store, &body, None, at_ts()).await.expect("accepted");
    let chat = ChatId::new(5).expect("chat");
    let session = SessionId::new(1).ok();
    assert!(matches!(store.mode(chat, session).await.expect("mode"), ChatMode::Human { rule, .. } if rule == "operator_wrote"));
}

#[tokio::test]
async fn without_a_configured_member_id_the_first_verified_event_pins_it() {
    let store = Arc::new(MemoryStore::new());
    let r = receiver(&store, ReceiveSettings { member_id: None, ..settings() });
    let req = |body: &str| InboundRequest { body: body.trim().as_bytes(), query: None }.body.to_vec();
    // A forged token learns nothing: nothing is pinned.
    let forged = replace(&replace(CAPTURE, "auth[application_token]", "nope"), "auth[member_id]", "attacker");
    assert_eq!(r.receive(InboundRequest { body: &req(&forged), query: None }, at_ts()).await.expect_err("forged").status(), 401);
    assert_eq!(store.get_value(MemberPin::META_NAME).await.expect("meta"), None);

    let first = r.receive(InboundRequest { body: &req(CAPTURE), query: None }, at_ts()).await.expect("accepted");
    assert!(matches!(first, Received::Enqueued(ref k) if k.as_str() == format!("{MEMBER}:msg:17")));
    assert_eq!(store.get_value(MemberPin::META_NAME).await.expect("meta").map(|v| v.value), Some(MEMBER.to_owned()));

    // The same message under other member ids (with the right token): refused, never a new key.
    for other in ["aaaa", "bbbb", "cccc"] {
        let body = replace(CAPTURE, "auth[member_id]", other);
        let err = r.receive(InboundRequest { body: &req(&body), query: None }, at_ts()).await.expect_err("another portal");
        assert_eq!(err.status(), 403);
    }
    assert_eq!(store.depth(at_ts()).await.expect("depth").ready, 1, "answered once, not once per forged member id");

    // Another process (or Lambda instance) reads the pin instead of learning its own.
    let other_instance = receiver(&store, ReceiveSettings { member_id: None, ..settings() });
    let body = replace(CAPTURE, "auth[member_id]", "dddd");
    assert_eq!(other_instance.receive(InboundRequest { body: &req(&body), query: None }, at_ts()).await.expect_err("pinned").status(), 403);
}

#[tokio::test]
async fn a_store_that_cannot_take_the_job_refuses_with_503_and_undoes_the_admission() {
    use olbridge_core::domain::event::Job;
    use olbridge_core::ports::{JobSink, StoreError, StoreResult};

    #[derive(Debug)]
    struct DownQueue;
    #[async_trait::async_trait]
    impl JobSink for DownQueue {
        async fn send(&self, _job: &Job, _now: DateTime<Utc>) -> StoreResult<()> {
            Err(StoreError::Backend("queue unreachable".into()))
        }
    }
    let store = Arc::new(MemoryStore::new());
    let mut r = receiver(&store, settings());
    r.sink = Arc::new(DownQueue);
    let err = r.receive(InboundRequest { body: CAPTURE.trim().as_bytes(), query: None }, at_ts()).await.expect_err("503");
    assert_eq!((err.status(), err.code()), (503, "unavailable"));
    // Once the queue is back, the same event is accepted: the failed attempt left no duplicate mark.
    let accepted = call(&store, CAPTURE, None, at_ts()).await.expect("accepted");
    assert!(matches!(accepted, Received::Enqueued(_)));
}

/// A Chatbots 2.0 `ONIMBOTV2MESSAGEADD` as webhook mode POSTs it (contract §4.8: the bot's own
/// `auth` inside `data[bot]`, the portal's at the top level), from the customer of an Open Lines chat.
fn v2_event(top_token: &str, bot_token: &str) -> String {
    let pairs = [
        ("event", "ONIMBOTV2MESSAGEADD"),
        ("ts", "1711455834"),
        ("auth[domain]", "b24-1x2ywp.bitrix24.ru"),
        ("auth[application_token]", top_token),
        ("data[bot][id]", "456"),
        ("data[bot][code]", "olbridge"),
        ("data[bot][auth][application_token]", bot_token),
        ("data[message][id]", "789"),
        ("data[message][chatId]", "5"),
        ("data[message][authorId]", "13"),
        ("data[message][date]", "2024-03-26T15:23:54+03:00"),
        ("data[message][text]", "Hello bot!"),
        ("data[chat][id]", "5"),
        ("data[chat][dialogId]", "chat5"),
        ("data[chat][entityType]", "LINES"),
        ("data[chat][entityId]", "whatsappbyedna|3|4915112345678@olbridge|13"),
        ("data[user][id]", "13"),
        ("data[user][connector]", "Y"),
    ];
    url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish()
}

#[tokio::test]
async fn v2_events_are_verified_against_the_top_level_application_token_only() {
    let store = Arc::new(MemoryStore::new());
    // B24_APPLICATION_TOKEN set; B24_BOT_CLIENT_ID holds the v2 botToken.
    let v2 = ReceiveSettings { application_token: Some(Secret::new("portal-app-token")), bot_client_id: Some(Secret::new("bot-token")), ..settings() };
    let r = receiver(&store, v2.clone());
    let call = |body: String| {
        let r = r.clone();
        async move { r.receive(InboundRequest { body: body.as_bytes(), query: None }, at_ts()).await }
    };
    // The token inside data[bot][auth] does not count, nor does the botToken.
    assert_eq!(call(v2_event("wrong", "portal-app-token")).await.expect_err("inner token").status(), 401);
    assert_eq!(call(v2_event("bot-token", "bot-token")).await.expect_err("bot token").status(), 401);
    assert_eq!(store.depth(at_ts()).await.expect("depth").ready, 0);

    // The documented v2 envelope has no auth[member_id]: the configured one is used.
    let accepted = call(v2_event("portal-app-token", "whatever")).await.expect("accepted");
    assert!(matches!(accepted, Received::Enqueued(ref k) if k.as_str() == format!("{MEMBER}:msg:789")), "{accepted:?}");
    assert_eq!(store.depth(at_ts()).await.expect("depth").ready, 1);

    // Without B24_APPLICATION_TOKEN, a v2 event cannot be verified (v1 would fall back to the CLIENT_ID).
    let unverifiable = receiver(&store, ReceiveSettings { application_token: None, ..v2 });
    let body = v2_event("bot-token", "bot-token");
    let err = unverifiable.receive(InboundRequest { body: body.as_bytes(), query: None }, at_ts()).await.expect_err("no token");
    assert_eq!(err.status(), 401);
}
