//! Cost controls end to end, through `olbridge serve` on SQLite against the emulator and the test
//! bot: the FAQ answer cache (a repeated question costs no bot call; personalised answers are never
//! cached; a new knowledge-base version invalidates), the per-phone rate limit (a flood gets one
//! notice and no bot calls past the limit, other chats are answered), and the daily bot-call cap
//! (the chat goes to a human).

use serde_json::json;

use olbridge_core::domain::turn::{HandoffReason, TurnOutcome, TurnRecord};
use olbridge_tests::bot::Reply;
use olbridge_tests::{AppOptions, TestApp, poll_until};

use crate::REPLY_TIMEOUT;

const PHONE_A: &str = olbridge_tests::PHONE;
const OTHER: &str = "+4915199999999";
const THIRD: &str = "+4915188888888";

fn options(env: &[(&str, &str)]) -> AppOptions {
    let mut extra_env: Vec<(String, String)> = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    extra_env.push(("OLBRIDGE_RECONCILE_SEC".into(), "0".into()));
    AppOptions { extra_env, ..AppOptions::default() }
}

fn outcomes(turns: &[TurnRecord]) -> Vec<&'static str> {
    turns.iter().rev().map(|t| t.outcome.name()).collect()
}

#[tokio::test]
async fn the_faq_cache_answers_repeats_without_the_bot_and_never_caches_personal_answers() {
    let app = TestApp::spawn_process(options(&[])).await.unwrap();
    app.bot.script([
        Reply::Json(json!({"reply_text": "We open 9–18, Monday to Friday.", "cacheable": true, "kb_version": "kb-1"})),
        // Personalised: it patches the profile, so it is not cached whatever the flag says.
        Reply::Json(json!({"reply_text": "Delivery is free for you.", "cacheable": true, "profile": {"asked": "delivery"}})),
        Reply::Json(json!({"reply_text": "Delivery costs 5 €.", "cacheable": true})),
        // A new knowledge base, on a question that is not cacheable.
        Reply::Json(json!({"reply_text": "Prices changed today.", "kb_version": "kb-2"})),
        Reply::Json(json!({"reply_text": "We open 8–20 now.", "cacheable": true, "kb_version": "kb-2"})),
    ]);
    let ask = |phone: &'static str, text: &'static str, n: usize| {
        let app = &app;
        async move {
            let before = app.turns().await.len();
            app.customer_writes(phone, text).await.unwrap();
            app.wait_inbox(phone, n, REPLY_TIMEOUT).await;
            app.wait_turns(before + 1, REPLY_TIMEOUT).await
        }
    };
    ask(PHONE_A, "When are you open?", 1).await;
    ask(OTHER, "when are you   OPEN", 1).await;
    assert_eq!(app.bot.received().len(), 1, "the repeat from another customer cost no bot call");
    assert_eq!(app.bot_messages(OTHER), ["We open 9–18, Monday to Friday."]);

    ask(PHONE_A, "How much is delivery?", 2).await;
    ask(OTHER, "How much is delivery?", 2).await;
    assert_eq!(app.bot.received().len(), 3, "the personalised answer was not cached");

    ask(THIRD, "Any news on prices?", 1).await;
    let turns = ask(THIRD, "When are you open?", 2).await;
    assert_eq!(app.bot.received().len(), 5, "the kb-1 answer is stale under kb-2");
    assert_eq!(app.bot_messages(THIRD).last().map(String::as_str), Some("We open 8–20 now."));
    assert_eq!(outcomes(&turns), ["answered", "cached", "answered", "answered", "answered", "answered"]);
    app.shutdown().await;
}

#[tokio::test]
async fn a_flood_from_one_phone_gets_one_notice_and_never_reaches_the_bot_past_the_limit() {
    let notice = "Please slow down.";
    let app = TestApp::spawn_process(options(&[
        ("OLBRIDGE_RATE_LIMIT_MESSAGES", "3"),
        ("OLBRIDGE_RATE_LIMIT_WINDOW_SEC", "3600"),
        ("OLBRIDGE_RATE_LIMIT_NOTICE", notice),
        ("OLBRIDGE_FAQ_CACHE_TTL_SEC", "0"),
    ]))
    .await
    .unwrap();
    for i in 0..12 {
        app.customer_writes(PHONE_A, &format!("spam {i}")).await.unwrap();
    }
    app.customer_writes(OTHER, "hello").await.unwrap();
    app.wait_inbox(OTHER, 1, REPLY_TIMEOUT).await;
    assert_eq!(app.bot_messages(OTHER), ["echo: hello"], "the other chat is answered");

    let flood_chat = format!("chat{}", app.emulator.chat_of_customer(app.line_id, PHONE_A).expect("chat"));
    let logged = |turns: &Vec<TurnRecord>| turns.iter().filter(|t| t.dialog == flood_chat).map(|t| t.keys.len()).sum::<usize>();
    let turns = poll_until(REPLY_TIMEOUT, || app.turns(), |t| logged(t) >= 12).await;
    assert_eq!(logged(&turns), 12, "every message of the flood is in the turn log");
    let asked: usize = app.bot.received().iter().filter(|r| r.body["phone"] == PHONE_A).map(|r| r.body["text"].as_str().unwrap_or("").lines().count()).sum();
    assert!((1..=3).contains(&asked), "the first messages and at most 3 of the flood reached the bot ({asked})");
    let notices = app.bot_messages(PHONE_A).iter().filter(|m| *m == notice).count();
    assert_eq!(notices, 1, "one notice: {:?}", app.bot_messages(PHONE_A));
    let limited = turns.iter().filter(|t| t.dialog == flood_chat && matches!(t.outcome, TurnOutcome::RateLimited { .. })).count();
    assert!(limited >= 1, "{turns:?}");
    assert!(turns.iter().all(|t| !matches!(t.outcome, TurnOutcome::HandedOff { .. })), "never escalated");
    app.shutdown().await;
}

#[tokio::test]
async fn past_the_daily_cap_the_chat_goes_to_a_human() {
    let app = TestApp::spawn_process(options(&[("OLBRIDGE_DAILY_BOT_CALLS", "1")])).await.unwrap();
    app.customer_writes(PHONE_A, "first question").await.unwrap();
    app.wait_inbox(PHONE_A, 1, REPLY_TIMEOUT).await;
    app.wait_turns(1, REPLY_TIMEOUT).await;
    app.customer_writes(PHONE_A, "second question").await.unwrap();
    let turns = app.wait_turns(2, REPLY_TIMEOUT).await;
    assert!(matches!(&turns[0].outcome, TurnOutcome::HandedOff { reason: HandoffReason::DailyCap { calls: 2 } }), "{turns:?}");
    assert_eq!(app.bot.received().len(), 1, "the bot was not asked past the cap");
    let chat = app.emulator.chat(app.emulator.chat_of_customer(app.line_id, PHONE_A).expect("chat")).expect("chat");
    assert_eq!(chat.operator_id, Some(app.portal.operator_id), "a human has the chat");
    app.shutdown().await;
}
