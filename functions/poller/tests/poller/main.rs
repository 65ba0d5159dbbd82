//! The poller Lambda's handler end to end on the AWS adapters: the emulator as the portal, moto's
//! DynamoDB for the lease, cursors and keys, moto's SQS FIFO as the queue the worker reads. Each
//! invocation is built from `events/poller-scheduled.json` with a deadline a few seconds ahead.
//!
//! Needs moto: `./scripts/test` starts one and exports `AWS_ENDPOINT_URL`; without it every test
//! fails saying so (as the worker's).
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod probe;
mod support;

use b24_emulator::Fault;
use chrono::Utc;
use olbridge_core::ports::MetaStore as _;
use olbridge_poller::RunReport;
use olbridge_poller::lease::LeaseValue;

use crate::support::{CLIENT_ID, World};

const ANNA: &str = "+4915133333333";
const BORIS: &str = "+4915144444444";

/// How long each invocation may run (the run stops a quarter earlier).
const RUN_SECS: f64 = 2.5;

#[test]
fn the_fixture_is_a_scheduled_event() {
    let event = support::scheduled_event();
    assert_eq!((event.source.as_str(), event.detail_type.as_str()), ("aws.events", "Scheduled Event"));
    assert!(event.resources.unwrap_or_default().iter().any(|r| r.contains(":rule/")));
}

#[tokio::test]
async fn operator_mode_enqueues_a_customer_message_once_and_the_next_run_finds_nothing_new() {
    let w = World::start().await;
    let (chat, message) = w.customer_writes(ANNA, "do you deliver on Sundays?").await;

    let first = w.instance(&[]);
    let totals = World::ran(World::invoke(&first, "req-1", RUN_SECS).await);
    assert!(totals.passes >= 2, "it kept polling until the deadline: {totals:?}");
    assert_eq!((totals.enqueued, totals.failed), (1, 0), "{totals:?}");
    let jobs = w.take_queued().await;
    assert_eq!(World::texts(&jobs), ["do you deliver on Sundays?"]);
    assert!(jobs[0].key.as_str().ends_with(&format!(":msg:{message}")), "the push path's key: {}", jobs[0].key);
    assert_eq!(first.metric("PollerRecovered"), 1.0);
    assert_eq!(first.metric("PollerFailed"), 0.0);

    // The cursor is in the table: a new instance (no cache) reads nothing it has seen.
    let cursor = w.store.get_value(&format!("poll.operator.chat{chat}")).await.expect("get").expect("a cursor");
    assert_eq!(cursor.value, message.to_string());
    let second = w.instance(&[]);
    let totals = World::ran(World::invoke(&second, "req-2", RUN_SECS).await);
    assert_eq!((totals.enqueued, totals.duplicates, totals.resent), (0, 0, 0), "{totals:?}");
    assert!(w.take_queued().await.is_empty());
    assert_eq!(second.metric("PollerRecovered"), 0.0);

    // And what is new is found.
    w.customer_writes(ANNA, "and on Mondays?").await;
    World::ran(World::invoke(&second, "req-3", RUN_SECS).await);
    assert_eq!(World::texts(&w.take_queued().await), ["and on Mondays?"]);
    let lease = w.store.get_value(olbridge_poller::lease::LEASE_NAME).await.expect("get").expect("the lease");
    assert!(lease.value.contains("\"owner\":\"\""), "released at the end of the run: {}", lease.value);
}

#[tokio::test]
async fn of_two_overlapping_invocations_one_polls_and_the_other_returns_at_once() {
    let w = World::start().await;
    w.customer_writes(ANNA, "hello").await;
    w.customer_writes(BORIS, "good morning").await;
    let (a, b) = (w.instance(&[]), w.instance(&[]));
    let (ra, rb) = tokio::join!(World::invoke(&a, "req-a", RUN_SECS), World::invoke(&b, "req-b", RUN_SECS));
    let (ran, busy) = match (ra, rb) {
        (RunReport::Ran(t), RunReport::Busy { holder, .. }) => (t, holder),
        (RunReport::Busy { holder, .. }, RunReport::Ran(t)) => (t, holder),
        other => panic!("exactly one of them polls: {other:?}"),
    };
    assert!(busy == "req-a" || busy == "req-b", "the busy one names the holder: {busy}");
    assert_eq!(ran.enqueued, 2, "{ran:?}");
    let mut texts = World::texts(&w.take_queued().await);
    texts.sort();
    assert_eq!(texts, ["good morning", "hello"], "each once");
    assert_eq!(a.metric("PollerRecovered") + b.metric("PollerRecovered"), 2.0, "the busy run writes no metrics");
}

#[tokio::test]
async fn a_live_lease_is_respected_and_one_left_by_a_crashed_invocation_is_taken_over() {
    let w = World::start().await;
    w.customer_writes(ANNA, "anyone there?").await;
    let instance = w.instance(&[]);
    let lease = olbridge_poller::lease::Lease::new(w.store.clone());

    let alive = (Utc::now() + chrono::Duration::seconds(60)).timestamp_millis();
    lease.force(&LeaseValue { owner: "req-still-running".into(), until: alive }).await.expect("write");
    match World::invoke(&instance, "req-1", RUN_SECS).await {
        RunReport::Busy { holder, .. } => assert_eq!(holder, "req-still-running"),
        other => panic!("the live lease is respected: {other:?}"),
    }
    assert!(w.take_queued().await.is_empty());

    // That invocation crashed: its lease ended with its deadline.
    let expired = (Utc::now() - chrono::Duration::seconds(1)).timestamp_millis();
    lease.force(&LeaseValue { owner: "req-crashed".into(), until: expired }).await.expect("write");
    let totals = World::ran(World::invoke(&instance, "req-2", RUN_SECS).await);
    assert_eq!(totals.enqueued, 1, "{totals:?}");
    assert!(!totals.lost_lease);
    assert_eq!(World::texts(&w.take_queued().await), ["anyone there?"]);
    let now = lease.current().await.expect("read").expect("stored");
    assert!(now.owner.is_empty(), "released: {now:?}");
}

#[tokio::test]
async fn push_mode_reconciliation_recovers_a_message_whose_event_was_dropped_once() {
    let w = World::start().await;
    let bot = w.register_bot().await.to_string();
    let member = w.emulator.member_id();
    let env = [
        ("OLBRIDGE_MODE", "push"),
        ("B24_BOT_ID", bot.as_str()),
        ("B24_BOT_CLIENT_ID", CLIENT_ID),
        ("B24_MEMBER_ID", member.as_str()),
        ("OLBRIDGE_RECONCILE_SEC", "0.3"),
        ("OLBRIDGE_RECONCILE_GRACE_SEC", "0"),
    ];
    // Bitrix24 drops the event and never resends it.
    w.emulator.inject_fault(Fault::drop_delivery("ONIMBOTMESSAGEADD", 1));
    let (_, message) = w.customer_writes(ANNA, "is my order shipped?").await;
    let dropped = w.emulator.deliveries().into_iter().filter(|d| d.event == "ONIMBOTMESSAGEADD").count();
    assert_eq!(dropped, 1, "the event was sent (and lost)");

    let instance = w.instance(&env);
    let totals = World::ran(World::invoke(&instance, "req-1", RUN_SECS).await);
    assert_eq!(totals.enqueued, 1, "{totals:?}");
    let jobs = w.take_queued().await;
    assert_eq!(World::texts(&jobs), ["is my order shipped?"]);
    assert_eq!(jobs[0].key.as_str(), format!("{member}:msg:{message}"), "the key push would have given it");
    assert_eq!(instance.metric("PollerRecovered"), 1.0);

    let again = w.instance(&env);
    let totals = World::ran(World::invoke(&again, "req-2", RUN_SECS).await);
    assert_eq!(totals.enqueued + totals.resent, 0, "{totals:?}");
    assert!(w.take_queued().await.is_empty(), "recovered once");
}

#[tokio::test]
async fn a_failing_portal_counts_a_failed_run_loses_nothing_and_the_next_run_recovers() {
    let w = World::start().await;
    w.customer_writes(ANNA, "are you open today?").await;
    w.emulator.inject_fault(Fault::error("im.recent.list", 10_000, "INTERNAL_SERVER_ERROR", "Internal server error", 500));

    let instance = w.instance(&[]);
    let totals = World::ran(World::invoke(&instance, "req-1", RUN_SECS).await);
    assert!(totals.passes >= 2 && totals.failed == totals.passes, "every pass failed, and the run kept trying: {totals:?}");
    assert_eq!(instance.metric("PollerFailed"), 1.0);
    assert!(w.take_queued().await.is_empty());

    w.emulator.clear_faults();
    let totals = World::ran(World::invoke(&instance, "req-2", RUN_SECS).await);
    assert_eq!((totals.enqueued, totals.failed), (1, 0), "{totals:?}");
    assert_eq!(World::texts(&w.take_queued().await), ["are you open today?"]);
    assert_eq!(instance.metric("PollerFailed"), 1.0, "the second run wrote 0");
    assert_eq!(instance.metric("PollerRecovered"), 1.0);
}
