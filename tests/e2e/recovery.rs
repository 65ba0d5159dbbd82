//! Recovery in push mode: Bitrix24 never resends a lost event, so reconciliation reads the chats
//! our bot serves and enqueues, through the same key, customer messages no event brought. An
//! event that did arrive is never answered twice (the key decides); one that was lost is answered
//! late rather than never, including the first message of a chat the bridge has never seen, and
//! what was written while `olbridge serve` was stopped.

use std::time::Duration;

use chrono::Utc;
use olbridge_tests::{AppOptions, Reply, TestApp, poll_until};

use crate::REPLY_TIMEOUT;

/// Reconciliation every `every_s` seconds, judging messages older than `grace_s` seconds.
fn reconciling(every_s: &str, grace_s: &str) -> AppOptions {
    AppOptions {
        extra_env: vec![("OLBRIDGE_RECONCILE_SEC".into(), every_s.into()), ("OLBRIDGE_RECONCILE_GRACE_SEC".into(), grace_s.into())],
        ..AppOptions::default()
    }
}

fn phone(i: usize) -> String {
    format!("+4915300000{i:03}")
}

/// The message ids whose `ONIMBOTMESSAGEADD` delivery was lost.
fn lost(app: &TestApp) -> Vec<u64> {
    app.emulator
        .deliveries()
        .iter()
        .filter(|d| d.event == "ONIMBOTMESSAGEADD" && !d.delivered())
        .filter_map(|d| d.field(&["data", "PARAMS", "MESSAGE_ID"])?.parse().ok())
        .collect()
}

#[tokio::test]
async fn with_every_third_event_lost_every_message_is_answered_once_the_late_ones_within_two_poll_periods() {
    const PERIOD_S: i64 = 2;
    let app = TestApp::spawn(reconciling("2", "1")).await.unwrap();
    app.emulator.drop_every_nth_delivery(3, Some("ONIMBOTMESSAGEADD"));
    // Twelve customers, one message each: four first messages of chats the bridge never saw are
    // lost. Then one customer talks on: a lost message in a chat the bridge knows.
    let mut written = Vec::new();
    for i in 0..12 {
        let p = phone(i);
        let m = app.customer_writes(&p, &format!("question {i}")).await.unwrap();
        written.push((p, m.message_id, Utc::now()));
    }
    let talker = phone(0);
    for turn in 1..=5 {
        let m = app.customer_writes(&talker, &format!("follow-up {turn}")).await.unwrap();
        written.push((talker.clone(), m.message_id, Utc::now()));
        // The next message only once this one is answered (on time, or late).
        poll_until(REPLY_TIMEOUT, || async { app.bot_messages(&talker).len() }, |n| *n > turn).await;
    }
    let all = || async { (0..12).all(|i| !app.bot_messages(&phone(i)).is_empty()) };
    assert!(poll_until(REPLY_TIMEOUT, all, |done| *done).await);
    app.emulator.wait_idle(Duration::from_secs(2)).await;
    tokio::time::sleep(Duration::from_millis(2500)).await; // one more reconciliation period: no late duplicate

    let lost = lost(&app);
    assert!(lost.len() >= 5, "every third event was lost: {lost:?}");
    for i in 1..12 {
        assert_eq!(app.bot_messages(&phone(i)), [format!("echo: question {i}")], "customer {i}: answered exactly once");
    }
    let mut expected = vec!["echo: question 0".to_owned()];
    expected.extend((1..=5).map(|t| format!("echo: follow-up {t}")));
    assert_eq!(app.bot_messages(&talker), expected, "answered once each, in order");
    // The late ones were found within two reconciliation periods of being written.
    let turns = app.turns().await;
    for id in &lost {
        let (_, _, at) = written.iter().find(|(_, m, _)| m == id).expect("a message we wrote");
        let turn = turns.iter().find(|t| t.keys.iter().any(|k| k.as_str().ends_with(&format!(":msg:{id}")))).expect("its turn");
        let found_after = (turn.timings.received_at - *at).num_milliseconds();
        assert!(found_after <= 2 * PERIOD_S * 1000 + 1000, "message {id} was found {found_after} ms after it was written");
    }
    app.shutdown().await;
}

#[tokio::test]
async fn messages_written_while_serve_was_stopped_are_answered_once_after_it_starts() {
    let mut app = TestApp::spawn_process(reconciling("30", "1")).await.unwrap();
    app.customer_writes(&phone(1), "hello").await.unwrap();
    app.wait_inbox(&phone(1), 1, REPLY_TIMEOUT).await;
    app.stop().await.unwrap();

    // Written while the bridge is down: the portal's deliveries fail and are never resent.
    app.customer_writes(&phone(1), "are you still there?").await.unwrap();
    app.customer_writes(&phone(2), "first message of a new chat").await.unwrap();
    let failed = poll_until(REPLY_TIMEOUT, || async { app.emulator.deliveries() }, |d| d.iter().filter(|x| !x.delivered()).count() >= 2).await;
    assert!(failed.iter().filter(|d| !d.delivered()).count() >= 2, "{failed:?}");
    tokio::time::sleep(Duration::from_millis(1100)).await; // past the grace period

    app.restart().await.unwrap();
    app.wait_inbox(&phone(1), 2, REPLY_TIMEOUT).await;
    app.wait_inbox(&phone(2), 1, REPLY_TIMEOUT).await;
    app.emulator.wait_idle(Duration::from_secs(2)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.bot_messages(&phone(1)), ["echo: hello", "echo: are you still there?"], "{}", app.serve_log());
    assert_eq!(app.bot_messages(&phone(2)), ["echo: first message of a new chat"]);
    app.shutdown().await;
}

/// What a customer wrote while the bridge was down is answered before what they write right after
/// it starts, although reconciliation's grace period (20 s) has not passed: the start-up catch-up
/// queues it before the workers start.
#[tokio::test]
async fn a_message_written_while_serve_was_down_is_answered_before_the_next_one() {
    let mut app = TestApp::spawn_process(reconciling("30", "20")).await.unwrap();
    app.customer_writes(&phone(3), "hello").await.unwrap();
    app.wait_inbox(&phone(3), 1, REPLY_TIMEOUT).await;
    app.kill().await.unwrap();

    app.customer_writes(&phone(3), "written while you were down").await.unwrap();
    poll_until(REPLY_TIMEOUT, || async { app.emulator.deliveries() }, |d| d.iter().any(|x| !x.delivered())).await;
    app.restart().await.unwrap();
    app.customer_writes(&phone(3), "written right after").await.unwrap();
    let answered = |n: usize| move |texts: &Vec<String>| texts.join("\n").matches("written").count() >= n;
    let texts = poll_until(REPLY_TIMEOUT, || async { app.bot_messages(&phone(3)) }, answered(2)).await;
    app.emulator.wait_idle(Duration::from_secs(2)).await;
    let all = texts.join("\n");
    let (down, after) = (all.find("written while you were down"), all.find("written right after"));
    assert!(matches!((down, after), (Some(d), Some(a)) if d < a), "in the order written, each once: {texts:?}\n{}", app.serve_log());
    assert_eq!(all.matches("written").count(), 2, "{texts:?}");
    app.shutdown().await;
}

/// Push and reconciliation racing on every message: reconciliation with no grace at all reads the
/// chats every 100 ms, so it finds most messages before, while or after their event arrives. Each
/// is answered exactly once: whoever admits the key first enqueues it, the other finds it known.
#[tokio::test]
async fn push_and_polling_on_the_same_chats_never_double_answer() {
    let app = TestApp::spawn(reconciling("0.1", "0")).await.unwrap();
    app.bot.set_default(Reply::After(Duration::from_millis(300), Box::new(Reply::Echo)));
    let customers = 6;
    for round in 0..3 {
        for i in 0..customers {
            app.customer_writes(&phone(i), &format!("round {round}")).await.unwrap();
        }
        let answered = || async { (0..customers).all(|i| app.bot_messages(&phone(i)).join("\n").contains(&format!("round {round}"))) };
        assert!(poll_until(REPLY_TIMEOUT, answered, |done| *done).await, "round {round}");
    }
    app.emulator.wait_idle(Duration::from_secs(2)).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    for i in 0..customers {
        let texts = ["round 0", "round 1", "round 2"];
        olbridge_tests::assert_answered_once_in_order(&app.bot_messages(&phone(i)), &texts);
    }
    let polled = app.emulator.calls().iter().filter(|c| c.method == "im.dialog.messages.get").count();
    assert!(polled > 0, "reconciliation read the chats while push delivered");
    app.shutdown().await;
}
