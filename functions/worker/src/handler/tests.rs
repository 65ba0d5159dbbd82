//! The handler on the SQS fixtures in `events/`, over core's memory store and fakes of the portal
//! and the bot: the FIFO rules, the job policy's decisions, the metrics. The same handler against
//! the portal emulator and a real HTTP bot is in `tests/lambda`.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use async_trait::async_trait;
use aws_lambda_events::sqs::SqsEvent;
use chrono::TimeZone;
use lambda_runtime::LambdaEvent;
use olbridge_aws::emf::Captured;
use olbridge_core::config::{Config, DEFAULT_FALLBACK_MESSAGE};
use olbridge_core::domain::ids::{ChatId, DedupKey, DialogId, MemberId, MessageId, PortalDomain};
use olbridge_core::domain::secret::Secret;
use olbridge_core::memory::MemoryStore;
use olbridge_core::ports::{Bot, BotAnswer, BotError, BotRequest, ManualClock, Portal, PortalError, PortalErrorKind, PortalMessage, Transfer, WorkQueue};
use olbridge_core::retry::RetryPolicy;
use olbridge_core::testing::{FakeBot, FakePortal};
use olbridge_core::usecase::process::ProcessSettings;
use olbridge_core::usecase::receive::{InboundRequest, MemberPin, ReceiveSettings, Receiver};
use serde_json::Value;

use super::*;

mod redaction;
use crate::visibility::VisibilityError;

const ONE_JOB: &str = include_str!("../../../../events/sqs-one-job.json");
const TWO_GROUPS: &str = include_str!("../../../../events/sqs-two-groups.json");
const POISON: &str = include_str!("../../../../events/sqs-poison.json");
const MEMBER: &str = "869e4953d7e841e02de675524e65f51a";

fn now() -> DateTime<Utc> {
    Utc.timestamp_millis_opt(1_711_455_835_000).single().expect("valid")
}

/// Records the visibility changes asked for.
#[derive(Debug, Default)]
struct FakeVisibility(Mutex<Vec<(String, Duration)>>);

#[async_trait]
impl Visibility for FakeVisibility {
    async fn change(&self, receipt_handle: &str, after: Duration) -> Result<(), VisibilityError> {
        self.0.lock().expect("lock").push((receipt_handle.to_owned(), after));
        Ok(())
    }
}

/// The fake portal, with posts to one dialog failing a number of times (the fake's own failure
/// script is per method, and groups run concurrently, so it cannot aim at one chat).
#[derive(Debug)]
struct Portal5 {
    inner: FakePortal,
    failing: DialogId,
    failures: AtomicU32,
}

#[async_trait]
impl Portal for Portal5 {
    async fn post_reply(&self, dialog: DialogId, text: &str) -> Result<MessageId, PortalError> {
        if dialog == self.failing && self.failures.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
            return Err(PortalError {
                kind: PortalErrorKind::Retryable,
                method: "imbot.message.add".into(),
                code: "INTERNAL".into(),
                description: "503".into(),
            });
        }
        self.inner.post_reply(dialog, text).await
    }
    async fn typing(&self, dialog: DialogId) -> Result<bool, PortalError> {
        self.inner.typing(dialog).await
    }
    async fn transfer_to_operator(&self, chat: ChatId) -> Result<Transfer, PortalError> {
        self.inner.transfer_to_operator(chat).await
    }
    async fn messages_after(&self, dialog: DialogId, after: MessageId) -> Result<Vec<PortalMessage>, PortalError> {
        self.inner.messages_after(dialog, after).await
    }
    fn author_id(&self) -> u64 {
        self.inner.author_id()
    }
}

/// The fake bot, panicking when asked a text containing `panic_on`.
#[derive(Debug, Default)]
struct PanickyBot {
    echo: FakeBot,
    panic_on: Option<&'static str>,
}

#[async_trait]
impl Bot for PanickyBot {
    async fn ask(&self, request: &BotRequest, key: &DedupKey, timeout: Duration) -> Result<BotAnswer, BotError> {
        if let Some(word) = self.panic_on {
            assert!(!request.text.contains(word), "the bot adapter blew up");
        }
        self.echo.ask(request, key, timeout).await
    }
}

struct Setup {
    deps: WorkerDeps,
    portal: Arc<Portal5>,
    visibility: Arc<FakeVisibility>,
    captured: Captured,
}

fn policy() -> JobPolicy {
    JobPolicy {
        max_failures: 5,
        max_interruptions: 30,
        patience: Duration::from_secs(3600),
        backoff: RetryPolicy::exponential(6, Duration::from_millis(500), Duration::from_secs(8)).with_jitter(0.0),
    }
}

/// Posts to chat 5 fail `chat5_failures` times.
fn setup(chat5_failures: u32) -> Setup {
    setup_with(chat5_failures, None)
}

fn setup_with(chat5_failures: u32, panic_on: Option<&'static str>) -> Setup {
    let store = Arc::new(MemoryStore::new());
    let portal = Arc::new(Portal5 { inner: FakePortal::new(77), failing: DialogId::parse("chat5").expect("dialog"), failures: AtomicU32::new(chat5_failures) });
    let config = Config::from_map(&HashMap::new()).expect("defaults");
    let process = process::Deps {
        idempotency: store.clone(),
        chats: store.clone(),
        profiles: store.clone(),
        log: store.clone(),
        cache: store.clone(),
        usage: store.clone(),
        portal: portal.clone(),
        bot: Arc::new(PanickyBot { echo: FakeBot::new(), panic_on }),
        clock: Arc::new(ManualClock::new(now())),
        settings: ProcessSettings::from_config(&config),
        crm: None,
        csat: None,
    };
    let visibility = Arc::new(FakeVisibility::default());
    let (emf, captured) = Emf::capture();
    Setup { deps: WorkerDeps::new(process, policy(), visibility.clone(), emf), portal, visibility, captured }
}

fn event(fixture: &str, edit: impl FnOnce(&mut Value)) -> LambdaEvent<SqsEvent> {
    let mut v: Value = serde_json::from_str(fixture).expect("json");
    edit(&mut v);
    let mut context = Context::default();
    context.request_id = "7c1f0d2e-invocation".into();
    context.deadline = u64::try_from((now() + chrono::Duration::minutes(3)).timestamp_millis()).expect("positive");
    LambdaEvent::new(serde_json::from_value(v).expect("an SQS event"), context)
}

async fn run(s: &Setup, event: LambdaEvent<SqsEvent>) -> Vec<String> {
    let invocation = Invocation::from_context(&event.context);
    let response = handle(&s.deps, event.payload, &invocation).await;
    response.batch_item_failures.into_iter().map(|f| f.item_identifier).collect()
}

fn record_id(n: u8) -> String {
    format!("0f6e3c1a-5b7d-4e0b-9c1e-00000000000{n}")
}

/// (metric, dimension value) of every value written, in order.
fn written(captured: &Captured) -> Vec<(String, String)> {
    captured.readings().into_iter().map(|r| (r.name, r.dimensions.into_iter().map(|(_, v)| v).collect::<Vec<_>>().join(","))).collect()
}

fn count(captured: &Captured, name: &str, value: &str) -> usize {
    written(captured).iter().filter(|(n, v)| n == name && v == value).count()
}

#[tokio::test]
async fn the_one_job_fixture_is_answered_and_measured() {
    let s = setup(0);
    assert_eq!(run(&s, event(ONE_JOB, |_| {})).await, Vec::<String>::new());
    assert_eq!(s.portal.inner.posts(), ["echo: hahahahaha"]);
    assert_eq!(count(&s.captured, "Turns", "answered"), 1);
    assert_eq!(count(&s.captured, "WorkerRecords", "done"), 1);
    let latency = s.captured.readings().into_iter().find(|r| r.name == "EndToEndLatency").expect("latency");
    assert_eq!(latency.value, 588.0, "received 12:23:54.412, finished at the test clock's 12:23:55.000");
    assert!(s.visibility.0.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn each_group_is_answered_and_a_groups_records_fold_into_one_turn() {
    let s = setup(0);
    assert_eq!(run(&s, event(TWO_GROUPS, |_| {})).await, Vec::<String>::new());
    let mut posts = s.portal.inner.posts();
    posts.sort();
    assert_eq!(
        posts,
        ["echo: hahahahaha\nand to Potsdam?", "echo: hello, do you deliver on Sundays?"],
        "one answer per chat: chat 5's follow-up was folded into its turn"
    );
    assert_eq!(count(&s.captured, "Turns", "answered"), 2);
    assert_eq!(count(&s.captured, "WorkerRecords", "done"), 3);
}

#[tokio::test]
async fn a_failure_reports_its_record_and_the_later_ones_of_its_chat_only() {
    let s = setup(1);
    let failed = run(&s, event(TWO_GROUPS, |_| {})).await;
    assert_eq!(failed, [record_id(1), record_id(3)], "chat 5's records (1 and 3), not chat 7's (2)");
    assert_eq!(s.portal.inner.posts(), ["echo: hello, do you deliver on Sundays?"]);
    // Both come back together after the policy's first delay.
    let changes = s.visibility.0.lock().expect("lock").clone();
    assert_eq!(changes, [("AQEB-receipt-handle-1".into(), Duration::from_millis(500)), ("AQEB-receipt-handle-3".into(), Duration::from_millis(500))]);
    assert_eq!((count(&s.captured, "WorkerRecords", "retry"), count(&s.captured, "WorkerRecords", "deferred")), (1, 1));

    // Redelivered (the fault is gone): answered once, chat 7 not again.
    let again = run(
        &s,
        event(TWO_GROUPS, |v| {
            let records = v["Records"].as_array_mut().expect("records");
            records.remove(1);
            for r in records {
                r["attributes"]["ApproximateReceiveCount"] = "2".into();
            }
        }),
    )
    .await;
    assert_eq!(again, Vec::<String>::new());
    assert_eq!(s.portal.inner.posts().len(), 2);
}

#[tokio::test]
async fn on_the_last_delivery_the_turn_is_given_up_in_the_same_invocation() {
    let s = setup(1);
    let last = |v: &mut Value| v["Records"][0]["attributes"]["ApproximateReceiveCount"] = QUEUE_MAX_RECEIVES.to_string().into();
    assert_eq!(run(&s, event(ONE_JOB, last)).await, Vec::<String>::new(), "given up, so acknowledged");
    assert_eq!(s.portal.inner.posts(), [DEFAULT_FALLBACK_MESSAGE]);
    assert_eq!(s.portal.inner.transfers(), [ChatId::new(5).expect("chat")]);
    assert_eq!(count(&s.captured, "Turns", "gave_up"), 1);
    assert_eq!(count(&s.captured, "Escalations", "gave_up"), 1);
    assert_eq!(count(&s.captured, "WorkerRecords", "given_up"), 1);
    assert!(s.visibility.0.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn poison_is_acknowledged_and_a_newer_job_waits_for_a_newer_worker() {
    let s = setup(0);
    assert_eq!(run(&s, event(POISON, |_| {})).await, [record_id(3)]);
    assert_eq!(s.portal.inner.posts(), ["echo: hahahahaha"]);
    assert_eq!(["poison", "done", "unsupported"].map(|r| count(&s.captured, "WorkerRecords", r)), [1, 1, 1], "{:?}", written(&s.captured));
}

#[tokio::test]
async fn a_panicking_turn_fails_its_own_chat_only() {
    let s = setup_with(0, Some("Sundays"));
    assert_eq!(run(&s, event(TWO_GROUPS, |_| {})).await, [record_id(2)], "chat 7's bot call panicked");
    assert_eq!(s.portal.inner.posts(), ["echo: hahahahaha\nand to Potsdam?"]);
    assert_eq!(count(&s.captured, "WorkerRecords", "retry"), 1);
}

#[test]
fn the_redrive_limit_is_the_one_the_queue_is_created_with() {
    let resources: Value = serde_json::from_str(include_str!("../../../../infra/resources.json")).expect("json");
    assert_eq!(resources["queue"]["maxReceiveCount"].as_u64(), Some(u64::from(QUEUE_MAX_RECEIVES)));
}

#[test]
fn the_invocation_comes_from_the_context() {
    assert_eq!(Invocation::from_context(&Context::default()), Invocation { request_id: String::new(), deadline: None });
    let e = event(ONE_JOB, |_| {});
    let inv = Invocation::from_context(&e.context);
    assert_eq!((inv.request_id.as_str(), inv.deadline), ("7c1f0d2e-invocation", Some(now() + chrono::Duration::minutes(3))));
}

/// The fixture's job is what the receiver queues for the capture it names (events/README.md).
#[tokio::test]
async fn the_one_job_fixture_is_what_the_receiver_queues_for_the_capture() {
    let store = Arc::new(MemoryStore::new());
    let settings = ReceiveSettings {
        application_token: None,
        previous_tokens: Vec::new(),
        bot_client_id: Some(Secret::new("192735")),
        member_id: Some(MemberId::parse(MEMBER).expect("member")),
        domain: Some(PortalDomain::parse("b24-1x2ywp.bitrix24.ru").expect("domain")),
        bot_id: None,
        ts_window: Duration::from_secs(300),
        max_body_bytes: 64 * 1024,
        sources: Default::default(),
    };
    let receiver = Receiver {
        pin: MemberPin::new(settings.member_id.clone(), store.clone()),
        settings,
        idempotency: store.clone(),
        sink: store.clone(),
        chats: store.clone(),
    };
    let capture = include_str!("../../../../crates/core/tests/fixtures/obs_a_v1_messageadd_lines.form").trim();
    let arrival = Utc.timestamp_millis_opt(1_711_455_834_412).single().expect("valid");
    receiver.receive(InboundRequest { body: capture.as_bytes(), query: None }, arrival).await.expect("accepted");
    let queued = store.receive(1, arrival, Duration::from_secs(30)).await.expect("queue").remove(0).job;
    let fixture: SqsEvent = serde_json::from_str(ONE_JOB).expect("event");
    let body: Job = serde_json::from_str(fixture.records[0].body.as_deref().expect("body")).expect("a job");
    assert_eq!(body, queued);
    assert_eq!(fixture.records[0].attributes.get("MessageGroupId").map(String::as_str), Some(queued.group.as_str()));
}
