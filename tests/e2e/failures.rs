//! A bot that fails: timeouts, 5xx, garbage. Retried within the budget when worth it; when the bot
//! keeps failing the customer gets the fallback message and the chat goes to an operator. One slow
//! answer is not a failure.

use std::time::Duration;

use olbridge_core::config::DEFAULT_FALLBACK_MESSAGE;
use olbridge_tests::{AppOptions, PHONE, Reply, TestApp};
use serde_json::json;

use crate::REPLY_TIMEOUT;

async fn wait_transfer(app: &TestApp) -> usize {
    app.wait_calls("imopenlines.bot.session.operator", 1, REPLY_TIMEOUT).await
}

#[tokio::test]
async fn a_bot_that_keeps_answering_500_gets_the_fallback_and_an_operator() {
    let app = TestApp::spawn(AppOptions { bot_max_attempts: 3, ..AppOptions::default() }).await.unwrap();
    app.bot.set_default(Reply::Raw(500, "text/plain", "boom".into()));
    app.customer_writes(PHONE, "hello").await.unwrap();
    app.wait_inbox(PHONE, 1, REPLY_TIMEOUT).await;
    assert_eq!(app.bot_messages(PHONE), [DEFAULT_FALLBACK_MESSAGE]);
    assert_eq!(wait_transfer(&app).await, 1);
    assert_eq!(app.bot.received().len(), 3, "three attempts, then the fallback");
    let turns = app.wait_turns(1, REPLY_TIMEOUT).await;
    assert_eq!(turns[0].outcome.name(), "fallback");
    assert_eq!(turns[0].bot_attempts, 3);
    app.shutdown().await;
}

#[tokio::test]
async fn one_failure_then_success_is_just_answered() {
    let app = TestApp::spawn(AppOptions::default()).await.unwrap();
    app.bot.script([Reply::Raw(503, "text/plain", "busy".into())]);
    app.customer_writes(PHONE, "hello").await.unwrap();
    app.wait_inbox(PHONE, 1, REPLY_TIMEOUT).await;
    assert_eq!(app.bot_messages(PHONE), ["echo: hello"]);
    let received = app.bot.received();
    assert_eq!(received.len(), 2);
    let key = |i: usize| received[i].headers.get("idempotency-key").cloned();
    assert_eq!(key(0), key(1), "a retry carries the same Idempotency-Key");
    app.shutdown().await;
}

#[tokio::test]
async fn a_bot_that_times_out_is_retried_then_falls_back() {
    let app = TestApp::spawn(AppOptions { bot_timeout_sec: Some(1.0), bot_max_attempts: 2, ..AppOptions::default() }).await.unwrap();
    app.bot.set_default(Reply::After(Duration::from_secs(3), Box::new(Reply::Echo)));
    app.customer_writes(PHONE, "hello").await.unwrap();
    app.wait_inbox(PHONE, 1, REPLY_TIMEOUT).await;
    assert_eq!(app.bot_messages(PHONE), [DEFAULT_FALLBACK_MESSAGE]);
    assert_eq!(app.bot.received().len(), 2);
    assert_eq!(wait_transfer(&app).await, 1);
    app.shutdown().await;
}

#[tokio::test]
async fn garbage_answers_are_failures_without_retries() {
    for garbage in [
        Reply::Raw(200, "application/json", "{not json".into()),
        Reply::Raw(200, "application/json", "42".into()),
        Reply::Raw(404, "text/plain", "no such route".into()),
    ] {
        let app = TestApp::spawn(AppOptions::default()).await.unwrap();
        app.bot.set_default(garbage.clone());
        app.customer_writes(PHONE, "hello").await.unwrap();
        app.wait_inbox(PHONE, 1, REPLY_TIMEOUT).await;
        assert_eq!(app.bot_messages(PHONE), [DEFAULT_FALLBACK_MESSAGE], "{garbage:?}");
        assert_eq!(app.bot.received().len(), 1, "{garbage:?} is not retried");
        assert_eq!(wait_transfer(&app).await, 1);
        app.shutdown().await;
    }
}

/// The client's RAG bot can take 90 s; under the 120 s default that is an answer, not a failure.
/// This test takes 90 s of wall time (it waits on sockets, not the CPU).
#[tokio::test]
async fn a_90_second_answer_under_the_120_second_default_is_delivered() {
    let app = TestApp::spawn(AppOptions { bot_timeout_sec: None, ..AppOptions::default() }).await.unwrap();
    app.bot.script([Reply::After(Duration::from_secs(90), Box::new(Reply::Json(json!({"reply_text": "Here is the thorough answer."}))))]);
    app.customer_writes(PHONE, "a hard question").await.unwrap();
    app.wait_inbox(PHONE, 1, Duration::from_secs(150)).await;
    assert_eq!(app.bot_messages(PHONE), ["Here is the thorough answer."]);
    assert_eq!(app.bot.received().len(), 1, "no retry while the bot is still within its timeout");
    assert!(app.emulator.calls().iter().all(|c| c.method != "imopenlines.bot.session.operator"));
    let turns = app.wait_turns(1, REPLY_TIMEOUT).await;
    assert!(turns[0].timings.bot_ms.is_some_and(|ms| ms >= 90_000));
    app.shutdown().await;
}
