//! Acceptance 5: SIGKILL the bridge process at any moment, restart it, and every customer message
//! ends answered exactly once in the customer's view.
//!
//! The bridge runs as a real `olbridge serve` child process on a SQLite store in a temp dir; the
//! portal emulator and the bot stay up in the test process, as they would in the field.

use std::time::Duration;

use b24_emulator::Fault;
use olbridge_tests::{AppOptions, PHONE, Reply, TestApp};

use crate::REPLY_TIMEOUT;

fn keys(app: &TestApp) -> Vec<String> {
    app.bot.received().iter().filter_map(|r| r.headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_owned)).collect()
}

#[tokio::test]
async fn sigkill_during_the_bot_call_then_restart_answers_exactly_once() {
    let mut app = TestApp::spawn_process(AppOptions::default()).await.unwrap();
    app.bot.script([Reply::After(Duration::from_secs(30), Box::new(Reply::Echo))]);

    app.customer_writes(PHONE, "are you there?").await.unwrap();
    assert_eq!(app.bot.wait_requests(1, REPLY_TIMEOUT).await, 1, "the bridge is waiting for the bot");
    app.kill().await.unwrap();
    app.restart().await.unwrap();

    app.wait_inbox(PHONE, 1, REPLY_TIMEOUT).await;
    let turns = app.wait_turns(1, REPLY_TIMEOUT).await;
    assert_eq!(app.bot_messages(PHONE), ["echo: are you there?"]);
    assert_eq!(turns.len(), 1);
    let keys = keys(&app);
    assert_eq!(keys.len(), 2, "asked once before the kill, once after");
    assert_eq!(keys[0], keys[1], "with the same Idempotency-Key");
    app.shutdown().await;
}

#[tokio::test]
async fn sigkill_while_the_reply_is_being_posted_then_restart_answers_exactly_once() {
    let mut app = TestApp::spawn_process(AppOptions::default()).await.unwrap();
    // The portal takes the reply at once but answers slowly: the bridge dies before it learns
    // that its post went through.
    app.emulator.inject_fault(Fault::delay_response("imbot.message.add", 1, Duration::from_secs(5)));

    app.customer_writes(PHONE, "hello").await.unwrap();
    app.wait_inbox(PHONE, 1, REPLY_TIMEOUT).await;
    app.kill().await.unwrap();
    app.restart().await.unwrap();

    let turns = app.wait_turns(1, REPLY_TIMEOUT).await;
    assert_eq!(turns.len(), 1);
    assert_eq!(turns[0].outcome.name(), "answered");
    assert_eq!(app.bot_messages(PHONE), ["echo: hello"], "not posted a second time");
    assert_eq!(app.bot.received().len(), 1, "the saved answer was reused, the bot not asked again");
    app.shutdown().await;
}

#[tokio::test]
async fn sigkill_before_the_reply_reaches_the_portal_then_restart_answers_exactly_once() {
    let mut app = TestApp::spawn_process(AppOptions::default()).await.unwrap();
    // The post hangs before the portal applies it: the bridge dies with the reply unsent.
    app.emulator.inject_fault(Fault::delay("imbot.message.add", 1, Duration::from_secs(30)));

    app.customer_writes(PHONE, "hello").await.unwrap();
    assert_eq!(app.bot.wait_answers(1, REPLY_TIMEOUT).await, 1);
    // The worker checkpoints the answer and starts the post within milliseconds of the bot's
    // answer; the emulator records a call only when it completes, so there is no probe for "in
    // flight" and a short pause stands in for one (the post then hangs for 30 s).
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.kill().await.unwrap();
    app.emulator.clear_faults();
    app.restart().await.unwrap();

    app.wait_inbox(PHONE, 1, REPLY_TIMEOUT).await;
    app.wait_turns(1, REPLY_TIMEOUT).await;
    // The hung request may still complete on the portal after the kill; whichever way, one reply.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(app.bot_messages(PHONE), ["echo: hello"]);
    app.shutdown().await;
}

#[tokio::test]
async fn queued_messages_survive_a_sigkill_and_are_answered_once_in_order() {
    let mut app = TestApp::spawn_process(AppOptions::default()).await.unwrap();
    // A slow bot keeps the first turn busy, so the next messages wait in the queue.
    app.bot.script([Reply::After(Duration::from_secs(30), Box::new(Reply::Echo))]);
    for i in 1..=3 {
        app.customer_writes(PHONE, &format!("q{i}")).await.unwrap();
    }
    let delivered = app.emulator.wait_for_deliveries(Some("ONIMBOTMESSAGEADD"), 3, REPLY_TIMEOUT).await;
    assert!(delivered.iter().all(|d| d.status == Some(200)), "the bridge accepted all three");
    app.kill().await.unwrap();
    app.restart().await.unwrap();
    app.customer_writes(PHONE, "q4").await.unwrap();

    let keys = |turns: &[olbridge_core::domain::turn::TurnRecord]| turns.iter().map(|t| t.keys.len()).sum::<usize>();
    olbridge_tests::poll_until(REPLY_TIMEOUT, || app.turns(), |t| keys(t) >= 4).await;
    // The turn in flight is asked again as it was composed before the kill; the queued messages are
    // folded as they come.
    olbridge_tests::assert_answered_once_in_order(&app.bot_messages(PHONE), &["q1", "q2", "q3", "q4"]);
    app.shutdown().await;
}

#[tokio::test]
async fn a_burst_interrupted_by_a_sigkill_is_answered_once_with_all_its_text() {
    let mut app = TestApp::spawn_process(AppOptions { burst_ms: 1500, ..AppOptions::default() }).await.unwrap();
    app.bot.script([Reply::After(Duration::from_secs(30), Box::new(Reply::Echo))]);
    for text in ["hi", "my parcel is late", "order EX-1234"] {
        app.customer_writes(PHONE, text).await.unwrap();
    }
    assert_eq!(app.bot.wait_requests(1, REPLY_TIMEOUT).await, 1);
    assert_eq!(app.bot.received()[0].body["text"], "hi\nmy parcel is late\norder EX-1234");
    app.kill().await.unwrap();
    app.restart().await.unwrap();
    app.customer_writes(PHONE, "hello?").await.unwrap();

    app.wait_turns(2, REPLY_TIMEOUT).await;
    app.wait_inbox(PHONE, 2, REPLY_TIMEOUT).await;
    assert_eq!(app.bot_messages(PHONE), ["echo: hi\nmy parcel is late\norder EX-1234", "echo: hello?"]);
    let texts: Vec<String> = app.bot.received().iter().map(|r| r.body["text"].as_str().unwrap_or("").to_owned()).collect();
    assert_eq!(texts, ["hi\nmy parcel is late\norder EX-1234", "hi\nmy parcel is late\norder EX-1234", "hello?"]);
    app.shutdown().await;
}
