//! The job lifecycle under fault sequences: restarts are not failures (innocent messages in flight
//! survive any number of them), errors that outlive every retry end with the customer told and a
//! human given the chat, and an operator can put a given-up turn back.

use std::time::Duration;

use b24_emulator::{Fault, RateLimit};
use olbridge_core::config::DEFAULT_FALLBACK_MESSAGE;
use olbridge_core::ports::DeadLetters as _;
use olbridge_sqlite::SqliteStore;
use olbridge_tests::{AppOptions, PHONE, Reply, TestApp};

use crate::REPLY_TIMEOUT;

fn phones(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("+4915100000{i:03}")).collect()
}

/// Ten customers' messages are in flight (the bot takes 2.5 s) when the process is SIGKILLed and
/// restarted, twenty times in quick succession; then it is left alone. Each message is answered
/// by the bot, exactly once, and nothing is given up.
async fn twenty_restarts_leave_every_message_answered_once(opts: AppOptions) {
    let mut app = TestApp::spawn_process(opts).await.unwrap();
    app.bot.set_default(Reply::After(Duration::from_millis(2500), Box::new(Reply::Echo)));
    let phones = phones(10);
    for p in &phones {
        app.customer_writes(p, &format!("question from {p}")).await.unwrap();
    }
    // Every event reached the bridge before the first kill (one delivered to a dead bridge is lost
    // until the reconciliation poller finds it: Bitrix24 never resends).
    let delivered = app.emulator.wait_for_deliveries(Some("ONIMBOTMESSAGEADD"), phones.len(), REPLY_TIMEOUT).await;
    assert!(delivered.len() == phones.len() && delivered.iter().all(|d| d.status == Some(200)), "{delivered:?}");
    assert!(app.bot.wait_requests(3, REPLY_TIMEOUT).await >= 3, "turns are in flight");
    for round in 0..20u64 {
        app.kill().await.unwrap();
        app.restart().await.unwrap();
        // Killed at varying points of the bot's 2.5 s: always mid-turn.
        tokio::time::sleep(Duration::from_millis(300 + (round * 137) % 700)).await;
    }
    let answered = olbridge_tests::poll_until(
        Duration::from_secs(90),
        || async { phones.iter().filter(|p| !app.bot_messages(p).is_empty()).count() },
        |n| *n == phones.len(),
    )
    .await;
    assert_eq!(answered, phones.len(), "every customer got an answer after the restarts");
    // Let any duplicate show up before looking.
    app.emulator.wait_idle(Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for p in &phones {
        assert_eq!(app.bot_messages(p), [format!("echo: question from {p}")], "{p}: answered by the bot, exactly once");
    }
    let store = SqliteStore::open_for_admin(std::path::Path::new(&app.env["OLBRIDGE_DATA_DIR"])).unwrap();
    assert!(store.dead_letters(10).await.unwrap().is_empty(), "nothing was given up");
    app.shutdown().await;
}

#[tokio::test]
async fn innocent_messages_survive_twenty_quick_sigkill_restarts_answered_once() {
    twenty_restarts_leave_every_message_answered_once(AppOptions::default()).await;
}

#[tokio::test]
async fn innocent_messages_survive_twenty_quick_sigkill_restarts_on_a_portal_at_two_requests_a_second() {
    let opts = AppOptions { portal_rate: RateLimit { per_sec: 2.0, burst: 10.0 }, client_rate: (2.0, 8), ..AppOptions::default() };
    twenty_restarts_leave_every_message_answered_once(opts).await;
}

fn gives_up_after_three() -> AppOptions {
    AppOptions { extra_env: vec![("OLBRIDGE_QUEUE_MAX_ATTEMPTS".into(), "3".into())], ..AppOptions::default() }
}

/// The webhook lost its scope: every post is refused with `insufficient_scope` (not a transient
/// error). After three failed attempts the turn is given up: once the portal takes posts again the
/// customer gets the fallback message and the chat goes to an operator, and the turn is set aside
/// for the operator.
#[tokio::test]
async fn a_turn_that_keeps_failing_is_given_up_with_the_fallback_and_a_transfer() {
    let app = TestApp::spawn(gives_up_after_three()).await.unwrap();
    app.emulator.inject_fault(Fault::error("imbot.message.add", 3, "insufficient_scope", "The request requires higher privileges", 403));
    app.customer_writes(PHONE, "hello?").await.unwrap();

    app.wait_inbox(PHONE, 1, REPLY_TIMEOUT).await;
    assert_eq!(app.wait_calls("imopenlines.bot.session.operator", 1, REPLY_TIMEOUT).await, 1, "the chat went to an operator");
    assert_eq!(app.bot_messages(PHONE), [DEFAULT_FALLBACK_MESSAGE], "told once, and never the bot's answer after the give-up");
    assert_eq!(app.bot.received().len(), 1, "the bot was asked once; its saved answer was never re-asked");
    let turns = app.wait_turns(1, REPLY_TIMEOUT).await;
    assert_eq!(turns[0].outcome.name(), "gave_up", "{:?}", turns[0].outcome);
    let dead = olbridge_tests::poll_until(REPLY_TIMEOUT, || async { app.bridge().unwrap().store().dead_letters(10).await.unwrap() }, |d| !d.is_empty()).await;
    assert_eq!(dead.len(), 1);
    assert!(dead[0].reason.contains("insufficient_scope"), "{}", dead[0].reason);
    app.shutdown().await;
}

/// A given-up turn whose chat could not be handed over (the transfer was refused) is put back by
/// the operator once the cause is fixed: the bot answers it, once, and a second redrive finds
/// nothing to do.
#[tokio::test]
async fn redrive_puts_a_given_up_turn_back_and_the_bot_answers_it_once() {
    let app = TestApp::spawn(gives_up_after_three()).await.unwrap();
    app.emulator.inject_fault(Fault::error("imbot.message.add", 3, "insufficient_scope", "The request requires higher privileges", 403));
    app.emulator.inject_fault(Fault::error("imopenlines.bot.session.operator", 1, "ACCESS_DENIED", "Access denied", 400));
    app.customer_writes(PHONE, "where is my parcel?").await.unwrap();
    let dead = olbridge_tests::poll_until(REPLY_TIMEOUT, || async { app.bridge().unwrap().store().dead_letters(10).await.unwrap() }, |d| !d.is_empty()).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(app.bot_messages(PHONE), [DEFAULT_FALLBACK_MESSAGE]);

    // The operator puts it back, as `olbridge dead-letters --redrive --all` does, beside the running
    // bridge.
    let store = SqliteStore::open_for_admin(std::path::Path::new(&app.env["OLBRIDGE_DATA_DIR"])).unwrap();
    let back = olbridge_core::usecase::job::redrive(&store, &store, &store, None, chrono::Utc::now()).await.unwrap();
    assert_eq!(back, [dead[0].job.key.clone()]);
    app.wait_inbox(PHONE, 2, REPLY_TIMEOUT).await;
    assert_eq!(app.bot_messages(PHONE), [DEFAULT_FALLBACK_MESSAGE.to_owned(), "echo: where is my parcel?".to_owned()]);
    assert!(olbridge_core::usecase::job::redrive(&store, &store, &store, None, chrono::Utc::now()).await.unwrap().is_empty());
    app.emulator.wait_idle(Duration::from_secs(5)).await;
    assert_eq!(app.bot_messages(PHONE).len(), 2, "answered once");
    app.shutdown().await;
}

/// One portal 500 on the reply (the portal may or may not have applied it), then a storm of 503s
/// longer than the REST client's own retries: the reply comes once the portal recovers, exactly
/// once, and the turn is not given up. (How soon after recovery is measured by the load harness:
/// `docs/performance.md`.)
#[tokio::test]
async fn portal_errors_that_outlive_the_clients_retries_delay_the_reply_without_duplicating_or_giving_it_up() {
    let app = TestApp::spawn(gives_up_after_three()).await.unwrap();
    app.emulator.inject_fault(Fault::error("imbot.message.add", 1, "INTERNAL_SERVER_ERROR", "Internal server error", 500));
    app.emulator.inject_fault(Fault::error("imbot.message.add", 12, "SERVICE_UNAVAILABLE", "Service unavailable", 503));
    app.emulator.inject_fault(Fault::error("im.dialog.messages.get", 6, "SERVICE_UNAVAILABLE", "Service unavailable", 503));
    app.customer_writes(PHONE, "hello").await.unwrap();
    app.wait_inbox(PHONE, 1, Duration::from_secs(60)).await;
    app.emulator.wait_idle(Duration::from_secs(5)).await;
    assert_eq!(app.bot_messages(PHONE), ["echo: hello"]);
    let turns = app.wait_turns(1, REPLY_TIMEOUT).await;
    assert_eq!(turns[0].outcome.name(), "answered", "transient failures are retried past the attempt limit: {:?}", turns[0].outcome);
    assert!(app.bridge().unwrap().store().dead_letters(10).await.unwrap().is_empty());
    app.shutdown().await;
}
