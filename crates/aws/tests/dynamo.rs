//! `DynamoStore` against moto: every contract suite, each behaviour on a fresh table (the suites
//! assume an empty store; tables are cheap on moto), then what only this adapter promises: one
//! round trip per claim, TTL attributes, item sizes, the turn log across days, error mapping.
//!
//! Needs a moto server (`./scripts/test` starts one; see `olbridge_aws::testing`): without
//! `AWS_ENDPOINT_URL` these tests fail, they do not skip.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly by design

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use olbridge_aws::dynamo::{DynamoStore, Retention};
use olbridge_aws::testing::{config, fresh_table};
use olbridge_core::contract::{self, key, t, t_ms};
use olbridge_core::domain::ids::{ChatId, Phone};
use olbridge_core::domain::profile::Profile;
use olbridge_core::domain::turn::{SavedAnswer, TurnOutcome, TurnProgress, TurnRecord, TurnTimings};
use olbridge_core::ports::{ChatStore, Claim, HistoryTurn, IdempotencyStore, LogStats, MetaStore, ProfileStore, StoreError, TurnLog};

const LEASE: Duration = Duration::from_secs(30);
const DAY_MS: i64 = 86_400_000;

async fn fresh(cfg: &SdkConfig) -> DynamoStore {
    DynamoStore::from_config(cfg, fresh_table(cfg).await, Retention::default())
}

/// The moto configuration, sending one request at a time (see
/// [`olbridge_aws::testing::serialized_config`]).
async fn moto() -> SdkConfig {
    olbridge_aws::testing::serialized_config().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idempotency_contract() {
    let cfg = moto().await;
    contract::idempotency::run_all(|| fresh(&cfg)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chat_contract() {
    let cfg = moto().await;
    contract::chat::run_all(|| fresh(&cfg)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn profile_contract() {
    let cfg = moto().await;
    contract::profile::run_all(|| fresh(&cfg)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn log_contract() {
    let cfg = moto().await;
    contract::log::run_all(|| fresh(&cfg)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn meta_contract() {
    let cfg = moto().await;
    contract::meta::run_all(|| fresh(&cfg)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cost_contract() {
    let cfg = moto().await;
    contract::cost::run_all(|| fresh(&cfg)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn timeline_contract() {
    let cfg = moto().await;
    contract::timeline::run_all(|| fresh(&cfg)).await;
}

/// Records the DynamoDB operation of every request sent (retries included).
#[derive(Debug, Clone, Default)]
struct Requests(Arc<Mutex<Vec<String>>>);

impl Requests {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

impl Intercept for Requests {
    fn name(&self) -> &'static str {
        "Requests"
    }

    fn read_before_transmit(&self, ctx: &BeforeTransmitInterceptorContextRef<'_>, _: &RuntimeComponents, _: &mut ConfigBag) -> Result<(), BoxError> {
        let target = ctx.request().headers().get("x-amz-target").unwrap_or("?");
        self.0.lock().unwrap().push(target.rsplit('.').next().unwrap_or(target).to_owned());
        Ok(())
    }
}

/// A fresh store whose requests are recorded.
async fn recorded(cfg: &SdkConfig) -> (DynamoStore, Requests) {
    let requests = Requests::default();
    let client = Client::from_conf(aws_sdk_dynamodb::config::Builder::from(cfg).interceptor(requests.clone()).build());
    (DynamoStore::new(client, fresh_table(cfg).await, Retention::default()), requests)
}

/// Every claim answer is one `UpdateItem`: a failed condition answers `Done` or `InProgress` from the
/// `ALL_OLD` item that came back with it, without a read; a retried `complete` is one request too.
#[tokio::test]
async fn a_claim_is_one_round_trip_whatever_it_answers() {
    let cfg = config().await;
    let (s, requests) = recorded(&cfg).await;
    let (k, done) = (key("rt:live"), key("rt:done"));
    assert_eq!(s.claim(&k, "a", t(0), LEASE).await.unwrap(), Claim::New);
    assert_eq!(s.claim(&k, "b", t(1), LEASE).await.unwrap(), Claim::InProgress { until: t(30) });
    assert_eq!(s.claim(&k, "a", t(2), LEASE).await.unwrap(), Claim::Resumed(TurnProgress::default()));
    assert_eq!(s.claim(&k, "c", t(40), LEASE).await.unwrap(), Claim::Resumed(TurnProgress::default()));
    assert_eq!(requests.take(), ["UpdateItem"; 4]);

    s.claim(&done, "a", t(0), LEASE).await.unwrap();
    s.complete(&done, "a", &TurnOutcome::Silent, t(1)).await.unwrap();
    requests.take();
    assert_eq!(s.claim(&done, "b", t(2), LEASE).await.unwrap(), Claim::Done(TurnOutcome::Silent));
    s.complete(&done, "a", &TurnOutcome::Silent, t(3)).await.unwrap();
    assert!(matches!(s.complete(&done, "b", &TurnOutcome::Silent, t(3)).await, Err(StoreError::LeaseLost)));
    assert_eq!(requests.take(), ["UpdateItem"; 3]);
}

/// Every raw item of the table.
async fn items(cfg: &SdkConfig, table: &str) -> Vec<std::collections::HashMap<String, AttributeValue>> {
    Client::new(cfg).scan().table_name(table).send().await.unwrap().items.unwrap_or_default()
}

fn attr(item: &std::collections::HashMap<String, AttributeValue>, name: &str) -> Option<String> {
    item.get(name).map(|v| match v {
        AttributeValue::S(s) | AttributeValue::N(s) => s.clone(),
        other => format!("{other:?}"),
    })
}

/// `expires_at` (epoch seconds) of the item whose `pk` starts with `prefix`.
async fn ttl_of(cfg: &SdkConfig, s: &DynamoStore, prefix: &str) -> Option<i64> {
    let all = items(cfg, s.table()).await;
    let item = all.iter().find(|i| attr(i, "pk").is_some_and(|pk| pk.starts_with(prefix))).unwrap_or_else(|| panic!("no {prefix} item"));
    attr(item, "expires_at").map(|v| v.parse().unwrap())
}

fn secs(at: DateTime<Utc>, days: i64) -> i64 {
    at.timestamp() + days * 86_400
}

/// Queued and done claims, history, profiles, log records and log days carry `expires_at` from the
/// retention; leased claims, chat modes and meta values never expire.
#[tokio::test]
async fn items_carry_ttls_from_the_retention() {
    let cfg = config().await;
    let s = fresh(&cfg).await;
    let k = key("ttl:claim");
    s.admit(&k, t(10)).await.unwrap();
    assert_eq!(ttl_of(&cfg, &s, "key#").await, Some(secs(t(10), 14)), "queued");
    s.claim(&k, "a", t(20), LEASE).await.unwrap();
    assert_eq!(ttl_of(&cfg, &s, "key#").await, None, "leased: only purges and completion end a claim");
    s.complete(&k, "a", &TurnOutcome::Silent, t(30)).await.unwrap();
    assert_eq!(ttl_of(&cfg, &s, "key#").await, Some(secs(t(30), 14)), "done");
    s.reopen(&k).await.unwrap();
    assert_eq!(ttl_of(&cfg, &s, "key#").await, None, "reopened");

    let chat = ChatId::new(7).unwrap();
    s.append_history(chat, &HistoryTurn { role: "customer".into(), text: "oi".into(), at: t(40) }).await.unwrap();
    assert_eq!(ttl_of(&cfg, &s, "chat#").await, Some(secs(t(40), 30)), "history");
    s.set_human(chat, None, "phrase", t(41)).await.unwrap();
    let modes: Vec<_> = items(&cfg, s.table()).await.into_iter().filter(|i| attr(i, "sk").is_some_and(|sk| sk.starts_with("mode#"))).collect();
    assert_eq!(modes.len(), 1);
    assert_eq!(attr(&modes[0], "expires_at"), None, "a mode lasts until set_bot");

    let mut p = Profile::new(Phone::parse("+5511912345678").unwrap(), t(0));
    p.updated_at = t(50);
    assert!(s.put(&p).await.unwrap());
    assert_eq!(ttl_of(&cfg, &s, "phone#").await, Some(secs(t(50), 365)), "profile");

    s.record(&turn("ttl", 0, 60_000, 70_000)).await.unwrap();
    assert_eq!(ttl_of(&cfg, &s, "turns#2").await, Some(secs(t_ms(70_000), 90)), "log record");
    assert_eq!(ttl_of(&cfg, &s, "turns#days").await, Some(secs(t(86_400), 90)), "log day: its end + the retention");

    s.put_value("ttl", "v", None).await.unwrap();
    assert_eq!(ttl_of(&cfg, &s, "meta#").await, None, "meta");
}

/// A custom retention is what the TTLs are written with.
#[tokio::test]
async fn the_retention_is_a_constructor_parameter() {
    let cfg = config().await;
    let retention = Retention { keys: Duration::from_secs(60), ..Retention::default() };
    let s = DynamoStore::from_config(&cfg, fresh_table(&cfg).await, retention);
    assert_eq!(s.retention(), retention);
    s.admit(&key("ttl:custom"), t(0)).await.unwrap();
    assert_eq!(ttl_of(&cfg, &s, "key#").await, Some(t(60).timestamp()));
}

/// A checkpoint carrying a 200 KB answer (plus the rest of the record) stays under DynamoDB's
/// 400 KB item limit and comes back whole.
#[tokio::test]
async fn a_checkpoint_with_a_200_kb_answer_fits() {
    let cfg = config().await;
    let s = fresh(&cfg).await;
    let chunk = "Olá! Как дела? ".repeat(1_000); // ~20 KB
    let progress = TurnProgress {
        answer: Some(SavedAnswer { chunks: vec![chunk; 10], handoff: false, profile: Some(serde_json::json!({"name": "Ana"})) }),
        sending: true,
        ..TurnProgress::default()
    };
    assert!(serde_json::to_string(&progress).unwrap().len() > 200_000);
    let k = key("size:big");
    s.claim(&k, "a", t(0), LEASE).await.unwrap();
    s.checkpoint(&k, "a", &progress, t(1), LEASE).await.unwrap();
    assert_eq!(s.claim(&k, "b", t(31), LEASE).await.unwrap(), Claim::Resumed(progress));
    s.complete(&k, "b", &TurnOutcome::Silent, t(32)).await.unwrap();
}

/// A turn log record: received at `received_ms`, started 50 ms later, finished at `finished_ms`.
fn turn(name: &str, received_ms: i64, started_ms: i64, finished_ms: i64) -> TurnRecord {
    TurnRecord {
        keys: vec![key(&format!("days:{name}"))],
        dialog: "chat1".into(),
        session_id: None,
        outcome: TurnOutcome::Silent,
        timings: TurnTimings { received_at: t_ms(received_ms), started_at: t_ms(started_ms), bot_ms: Some(10), finished_at: t_ms(finished_ms) },
        bot_attempts: 1,
        trace: Default::default(),
    }
}

/// `recent` is exact across day buckets and long empty stretches; `stats` counts a turn that
/// started before midnight and finished after it by its start.
#[tokio::test]
async fn the_log_spans_days() {
    let cfg = config().await;
    let s = fresh(&cfg).await;
    let a = turn("a", 0, 50, 1_000);
    let overnight = turn("overnight", DAY_MS - 2_000, DAY_MS - 1_000, DAY_MS + 30_000); // started on day 0, finished on day 1
    let early = turn("early", DAY_MS + 1_000, DAY_MS + 1_050, DAY_MS + 2_000); // day 1, finished before `overnight`
    let later = turn("later", 150 * DAY_MS, 150 * DAY_MS + 50, 150 * DAY_MS + 900); // 148 empty days later
    let last = turn("last", 151 * DAY_MS, 151 * DAY_MS + 50, 151 * DAY_MS + 100);
    for r in [&later, &a, &last, &early, &overnight] {
        s.record(r).await.unwrap();
    }
    assert_eq!(s.recent(10).await.unwrap(), vec![last.clone(), later.clone(), overnight.clone(), early.clone(), a.clone()]);
    assert_eq!(s.recent(3).await.unwrap(), vec![last, later, overnight]);

    let count = |st: LogStats| st.turns;
    assert_eq!(count(s.stats(t_ms(0)).await.unwrap()), 5);
    assert_eq!(count(s.stats(t_ms(DAY_MS - 1_000)).await.unwrap()), 4, "overnight started exactly then");
    assert_eq!(count(s.stats(t_ms(DAY_MS - 999)).await.unwrap()), 3, "overnight started 1 ms before");
    assert_eq!(count(s.stats(t_ms(150 * DAY_MS)).await.unwrap()), 2);
    assert_eq!(s.stats(t_ms(152 * DAY_MS)).await.unwrap(), LogStats::default());

    // A second process (a fresh store on the same table) lists the days it writes too.
    let other = DynamoStore::from_config(&cfg, s.table(), Retention::default());
    let newest = turn("newest", 200 * DAY_MS, 200 * DAY_MS, 200 * DAY_MS + 1);
    other.record(&newest).await.unwrap();
    assert_eq!(s.recent(1).await.unwrap(), vec![newest]);
}

/// An item this code did not write is `Corrupt` (not retryable), naming the record.
#[tokio::test]
async fn an_undecodable_claim_is_corrupt() {
    let cfg = config().await;
    let s = fresh(&cfg).await;
    Client::new(&cfg)
        .put_item()
        .table_name(s.table())
        .item("pk", AttributeValue::S("key#bad".into()))
        .item("sk", AttributeValue::S("claim".into()))
        .item("phase", AttributeValue::S("done".into()))
        .item("owner", AttributeValue::S("a".into()))
        .send()
        .await
        .unwrap();
    match s.claim(&key("bad"), "b", t(0), LEASE).await {
        Err(e @ StoreError::Corrupt(_)) => {
            assert!(!e.is_retryable());
            assert!(e.to_string().contains("claim bad"), "{e}");
        }
        other => panic!("{other:?}"),
    }
}

/// A backend failure (here: no such table) is a retryable `Backend` error naming the operation.
#[tokio::test]
async fn a_backend_failure_is_retryable() {
    let cfg = config().await;
    let s = DynamoStore::from_config(&cfg, "olbridge-no-such-table", Retention::default());
    match s.get_value("x").await {
        Err(e @ StoreError::Backend(_)) => {
            assert!(e.is_retryable());
            assert!(e.to_string().contains("GetItem (meta)"), "{e}");
        }
        other => panic!("{other:?}"),
    }
}

/// Two Lambda instances (two stores on one table, each with its own client) draw from one portal
/// budget: of 24 concurrent requests against a bucket of 10 that barely drains, exactly 10 get a
/// slot, however they interleave (each take is a read and a conditional write; a lost race reads
/// again). What one instance learns from a refusal, the other paces by.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_portal_rate_budget_is_shared_by_concurrent_instances() {
    use olbridge_core::b24::{Priority, RateLimiter, RatePlan};
    let cfg = moto().await;
    let table = fresh_table(&cfg).await;
    let plan = RatePlan { per_sec: 0.001, burst: 10, optional_reserve: 0, adaptive: true };
    let instance = |_: usize| {
        let store: Arc<dyn MetaStore> = Arc::new(DynamoStore::from_config(&cfg, table.clone(), Retention::default()));
        Arc::new(RateLimiter::shared(plan.clone(), store, "rate/portal.bitrix24.example"))
    };
    let (a, b) = (instance(0), instance(1));
    let tries: Vec<_> = (0..24)
        .map(|i| {
            let limiter = Arc::clone(if i % 2 == 0 { &a } else { &b });
            tokio::spawn(async move { tokio::time::timeout(Duration::from_secs(5), limiter.acquire(Priority::Essential)).await.is_ok() })
        })
        .collect();
    let mut granted = 0;
    for t in tries {
        granted += usize::from(t.await.unwrap());
    }
    assert_eq!(granted, 10, "one bucket of 10 for both instances");
    a.refused(a.now()).await;
    let seen_by_b = b.pace().await;
    assert_eq!(seen_by_b.burst, 8.0, "90 % of the 9 held before the refused request, learned by the other instance");
    assert_eq!(seen_by_b.refusals, 1);
}
