//! The handler on the fixtures in `events/`, over core's memory store: what Bitrix24 and API
//! Gateway would see.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use olbridge_aws::emf::{Captured, Emf};
use olbridge_core::domain::event::Job;
use olbridge_core::domain::ids::{MemberId, PortalDomain};
use olbridge_core::domain::secret::Secret;
use olbridge_core::memory::MemoryStore;
use olbridge_core::ports::{JobSink, ManualClock, StoreError, StoreResult, WorkQueue};
use olbridge_core::usecase::receive::{MemberPin, ReceiveSettings, Receiver};

use super::*;

mod redaction;

const MESSAGEADD: &str = include_str!("../../../../events/apigw-v2-messageadd.json");
const MESSAGEADD_BASE64: &str = include_str!("../../../../events/apigw-v2-messageadd-base64.json");
const FORGED: &str = include_str!("../../../../events/apigw-v2-forged.json");
const HEALTH: &str = include_str!("../../../../events/apigw-v2-health.json");

/// When the capture was sent (`ts`), plus the 412 ms the fixture says it took to arrive.
fn arrival() -> DateTime<Utc> {
    Utc.timestamp_millis_opt(1_711_455_834_412).single().expect("valid")
}

fn settings() -> ReceiveSettings {
    ReceiveSettings {
        application_token: None,
        previous_tokens: Vec::new(),
        bot_client_id: Some(Secret::new("192735")),
        member_id: Some(MemberId::parse("869e4953d7e841e02de675524e65f51a").expect("member")),
        domain: Some(PortalDomain::parse("b24-1x2ywp.bitrix24.ru").expect("domain")),
        bot_id: None,
        ts_window: Duration::from_secs(300),
        max_body_bytes: 64 * 1024,
        sources: Default::default(),
    }
}

fn deps_with(store: &Arc<MemoryStore>, sink: Arc<dyn JobSink>, at: DateTime<Utc>) -> (ReceiverDeps, Captured) {
    let settings = settings();
    let receiver =
        Receiver { pin: MemberPin::new(settings.member_id.clone(), store.clone()), settings, idempotency: store.clone(), sink, chats: store.clone() };
    let (emf, captured) = Emf::capture();
    (ReceiverDeps::new(receiver, Arc::new(ManualClock::new(at)), emf), captured)
}

fn fresh(store: &Arc<MemoryStore>) -> (ReceiverDeps, Captured) {
    deps_with(store, store.clone(), arrival())
}

fn request(fixture: &str) -> Request {
    lambda_http::request::from_str(fixture).expect("an API Gateway v2 request")
}

/// A fixture with some of its fields changed.
fn edited(fixture: &str, edit: impl FnOnce(&mut Value)) -> Request {
    let mut v: Value = serde_json::from_str(fixture).expect("json");
    edit(&mut v);
    request(&v.to_string())
}

async fn call(deps: &ReceiverDeps, request: Request) -> (u16, Value) {
    let response = handle(deps, request).await;
    assert_eq!(response.headers().get("content-type").map(|v| v.as_bytes()), Some(&b"application/json"[..]));
    let body: Value = serde_json::from_slice(response.body().as_ref()).expect("a JSON body");
    (response.status().as_u16(), body)
}

async fn queued(store: &MemoryStore) -> Vec<Job> {
    store.receive(100, arrival(), Duration::from_secs(30)).await.expect("queue").into_iter().map(|d| d.job).collect()
}

fn event_results(captured: &Captured) -> Vec<String> {
    captured
        .readings()
        .into_iter()
        .inspect(|r| assert_eq!((r.namespace.as_str(), r.name.as_str(), r.unit.as_str()), ("Olbridge", "Events", "Count")))
        .flat_map(|r| r.dimensions.into_iter().filter(|(k, _)| k == "Result").map(|(_, v)| v))
        .collect()
}

#[tokio::test]
async fn a_real_event_is_queued_once_and_its_replay_is_a_duplicate() {
    let store = Arc::new(MemoryStore::new());
    let (deps, captured) = fresh(&store);
    assert_eq!(call(&deps, request(MESSAGEADD)).await, (200, json!({"status": "ok"})));
    assert_eq!(call(&deps, request(MESSAGEADD)).await, (200, json!({"status": "ok"})));
    let jobs = queued(&store).await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].key.as_str(), "869e4953d7e841e02de675524e65f51a:msg:17");
    assert_eq!(event_results(&captured), ["enqueued", "duplicate"]);
    assert_eq!(captured.lines().len(), 2, "one EMF line per event");
}

#[tokio::test]
async fn a_base64_encoded_body_is_decoded_before_it_is_verified() {
    let store = Arc::new(MemoryStore::new());
    let (deps, captured) = fresh(&store);
    assert_eq!(call(&deps, request(MESSAGEADD_BASE64)).await, (200, json!({"status": "ok"})));
    let jobs = queued(&store).await;
    assert_eq!(jobs.len(), 1);
    let plain = Arc::new(MemoryStore::new());
    let (plain_deps, _) = fresh(&plain);
    call(&plain_deps, request(MESSAGEADD)).await;
    assert_eq!(jobs, queued(&plain).await, "the same job as from the plain body");
    assert_eq!(event_results(&captured), ["enqueued"]);
}

#[tokio::test]
async fn refusals_carry_the_local_receivers_status_and_code_and_queue_nothing() {
    let store = Arc::new(MemoryStore::new());
    let (deps, captured) = fresh(&store);
    assert_eq!(call(&deps, request(FORGED)).await, (401, json!({"error": "unauthorized"})));
    let wrong_client = edited(MESSAGEADD, |v| v["rawQueryString"] = json!("CLIENT_ID=999"));
    assert_eq!(call(&deps, wrong_client).await, (401, json!({"error": "unauthorized"})));
    let not_a_form = edited(MESSAGEADD, |v| v["body"] = json!("{\"event\": \"ONIMBOTMESSAGEADD\"}"));
    assert_eq!(call(&deps, not_a_form).await, (400, json!({"error": "malformed"})));
    let huge = edited(MESSAGEADD, |v| v["body"] = json!("x".repeat(70 * 1024)));
    assert_eq!(call(&deps, huge).await, (413, json!({"error": "too_large"})));
    let (late, late_captured) = deps_with(&store, store.clone(), arrival() + chrono::Duration::minutes(6));
    assert_eq!(call(&late, request(MESSAGEADD)).await, (401, json!({"error": "stale"})));
    assert!(queued(&store).await.is_empty());
    assert_eq!(event_results(&captured), ["unauthorized", "unauthorized", "malformed", "too_large"]);
    assert_eq!(event_results(&late_captured), ["stale"]);
}

fn allowing(store: &Arc<MemoryStore>, cidrs: &str) -> (ReceiverDeps, Captured) {
    let (deps, captured) = fresh(store);
    deps.receiver.write().unwrap().settings.sources.allowed = Some(olbridge_core::domain::allowlist::CidrList::parse(cidrs).unwrap());
    (deps, captured)
}

#[tokio::test]
async fn a_source_outside_the_allow_list_is_refused_before_the_body_is_read() {
    let store = Arc::new(MemoryStore::new());
    let source = request(MESSAGEADD).request_context_ref().and_then(|c| match c {
        RequestContext::ApiGatewayV2(c) => c.http.source_ip.clone(),
        _ => None,
    });
    assert!(source.is_some(), "the fixture carries requestContext.http.sourceIp");
    let (closed, captured) = allowing(&store, "198.51.100.0/24,2001:db8::/32");
    // A body that would be 400 if it were parsed: the refusal comes first.
    let garbage = edited(MESSAGEADD, |v| v["body"] = json!("not a form"));
    assert_eq!(call(&closed, garbage).await, (403, json!({"error": "not_allowed"})));
    assert_eq!(call(&closed, request(MESSAGEADD)).await, (403, json!({"error": "not_allowed"})));
    let no_source = edited(MESSAGEADD, |v| v["requestContext"]["http"]["sourceIp"] = json!(null));
    assert_eq!(call(&closed, no_source).await, (403, json!({"error": "not_allowed"})), "an unplaceable request is refused");
    assert_eq!(call(&closed, request(HEALTH)).await.0, 200, "/health stays open");
    assert!(queued(&store).await.is_empty());
    assert_eq!(event_results(&captured), ["not_allowed", "not_allowed", "not_allowed"]);

    let inside = edited(MESSAGEADD, |v| v["requestContext"]["http"]["sourceIp"] = json!("198.51.100.77"));
    assert_eq!(call(&closed, inside).await, (200, json!({"status": "ok"})));
    assert_eq!(queued(&store).await.len(), 1);
    let (listed, _) = allowing(&Arc::new(MemoryStore::new()), &format!("{}/32", source.unwrap()));
    assert_eq!(call(&listed, request(MESSAGEADD)).await, (200, json!({"status": "ok"})), "the fixture's own address, listed");
}

/// A queue that is down, with an error text that must never reach the caller.
#[derive(Debug)]
struct BrokenSink;

#[async_trait]
impl JobSink for BrokenSink {
    async fn send(&self, _job: &Job, _now: DateTime<Utc>) -> StoreResult<()> {
        Err(StoreError::Backend("sqs: internal endpoint https://sqs.internal.example timed out".into()))
    }
}

#[tokio::test]
async fn a_store_failure_is_503_without_internal_text_and_the_event_can_come_again() {
    let store = Arc::new(MemoryStore::new());
    let (broken, captured) = deps_with(&store, Arc::new(BrokenSink), arrival());
    let response = handle(&broken, request(MESSAGEADD)).await;
    assert_eq!(response.status().as_u16(), 503);
    let body = String::from_utf8_lossy(response.body().as_ref()).into_owned();
    assert_eq!(body, r#"{"error":"unavailable"}"#);
    assert_eq!(event_results(&captured), ["unavailable"]);
    // Nothing was admitted for good: once the queue is back, the same event is queued.
    let (working, _) = fresh(&store);
    assert_eq!(call(&working, request(MESSAGEADD)).await.0, 200);
    assert_eq!(queued(&store).await.len(), 1);
}

#[tokio::test]
async fn health_answers_at_once_and_other_routes_are_404() {
    let store = Arc::new(MemoryStore::new());
    let (deps, captured) = fresh(&store);
    let (status, body) = call(&deps, request(HEALTH)).await;
    assert_eq!((status, &body["status"]), (200, &json!("ok")));
    let get_events = edited(MESSAGEADD, |v| v["requestContext"]["http"]["method"] = json!("GET"));
    assert_eq!(call(&deps, get_events).await, (404, json!({"error": "not_found"})));
    let post_health = edited(HEALTH, |v| v["requestContext"]["http"]["method"] = json!("POST"));
    assert_eq!(call(&deps, post_health).await, (404, json!({"error": "not_found"})));
    let elsewhere = edited(MESSAGEADD, |v| v["rawPath"] = json!("/bitrix/webhook"));
    assert_eq!(call(&deps, elsewhere).await, (404, json!({"error": "not_found"})));
    assert!(queued(&store).await.is_empty());
    assert!(captured.lines().is_empty(), "only events are counted");
}

#[tokio::test]
async fn a_named_stage_is_routed_like_the_default_one() {
    let store = Arc::new(MemoryStore::new());
    let (deps, _) = fresh(&store);
    let staged = edited(MESSAGEADD, |v| {
        v["rawPath"] = json!("/prod/bitrix/events");
        v["requestContext"]["stage"] = json!("prod");
    });
    assert_eq!(call(&deps, staged).await, (200, json!({"status": "ok"})));
    let staged_health = edited(HEALTH, |v| v["requestContext"]["stage"] = json!("prod"));
    assert_eq!(call(&deps, staged_health).await.0, 200);
    assert_eq!(queued(&store).await.len(), 1);
}

/// The tokens a rotation put in the secret, as the secret would give them.
struct Rotated(Secret, Vec<Secret>);

#[async_trait]
impl TokenRefresh for Rotated {
    async fn tokens(&self) -> Option<(Option<Secret>, Vec<Secret>)> {
        Some((Some(self.0.clone()), self.1.clone()))
    }
}

#[tokio::test]
async fn during_a_rotation_the_previous_and_the_new_token_are_accepted() {
    // The capture's token is "192735" (the CLIENT_ID). The instance started knowing only an older
    // token; the secret now has a new current one and keeps the capture's as AWSPREVIOUS.
    let store = Arc::new(MemoryStore::new());
    let (mut deps, _) = fresh(&store);
    {
        let mut r = deps.receiver.write().unwrap();
        r.settings.bot_client_id = None;
        r.settings.application_token = Some(Secret::new("an-old-token"));
    }
    assert_eq!(handle(&deps, request(MESSAGEADD)).await.status(), StatusCode::UNAUTHORIZED, "without a refresh the warm instance refuses");
    deps.tokens = Some(Arc::new(Rotated(Secret::new("the-new-token"), vec![Secret::new("192735")])));
    assert_eq!(handle(&deps, request(MESSAGEADD)).await.status(), StatusCode::OK, "the previous token is accepted after the refresh");
    assert_eq!(deps.receiver.read().unwrap().settings.application_token.as_ref().map(Secret::expose), Some("the-new-token"));
    // A forged token stays forged, however often the secret is asked.
    assert_eq!(handle(&deps, request(FORGED)).await.status(), StatusCode::UNAUTHORIZED);
}
