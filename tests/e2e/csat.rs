//! CSAT per bot answer: a numbered prompt after every Nth answer (never twice in a row, never in an
//! escalation), and the customer's `1`/`2` consumed — recorded, never sent to the bot. Where the
//! channel shows keyboards (the website widget, `livechat`), the prompt also carries 👍/👎 buttons,
//! whose press (`ONIMCOMMANDADD`) is recorded once; a WhatsApp chat gets the numbered text only.

use olbridge_core::b24::{B24Client, ClientOptions, WebhookBase};
use olbridge_core::config::{DEFAULT_CSAT_PROMPT, DEFAULT_HANDOFF_MESSAGE};
use olbridge_core::domain::turn::TurnRecord;
use olbridge_core::usecase::csat;
use olbridge_tests::{AppOptions, PHONE, TestApp};
use serde_json::Value;

use crate::REPLY_TIMEOUT;

#[tokio::test]
async fn the_prompt_follows_answers_never_twice_in_a_row_and_its_answer_never_reaches_the_bot() {
    let opts = AppOptions { extra_env: vec![("OLBRIDGE_CSAT_EVERY".into(), "1".into())], ..AppOptions::default() };
    let app = TestApp::spawn(opts).await.unwrap();
    app.customer_writes(PHONE, "hello").await.unwrap();
    app.wait_inbox(PHONE, 2, REPLY_TIMEOUT).await;
    app.customer_writes(PHONE, "1").await.unwrap();
    app.wait_turns(2, REPLY_TIMEOUT).await;
    app.customer_writes(PHONE, "question two").await.unwrap();
    app.wait_inbox(PHONE, 3, REPLY_TIMEOUT).await;
    app.customer_writes(PHONE, "question three").await.unwrap();
    app.wait_inbox(PHONE, 5, REPLY_TIMEOUT).await;
    app.customer_writes(PHONE, "2").await.unwrap();
    app.wait_turns(5, REPLY_TIMEOUT).await;
    app.customer_writes(PHONE, "I want to talk to an agent please").await.unwrap();
    app.wait_inbox(PHONE, 6, REPLY_TIMEOUT).await;
    let turns = app.wait_turns(6, REPLY_TIMEOUT).await;

    assert_eq!(
        app.bot_messages(PHONE),
        [
            "echo: hello",
            DEFAULT_CSAT_PROMPT,
            "echo: question two", // never twice in a row
            "echo: question three",
            DEFAULT_CSAT_PROMPT,
            DEFAULT_HANDOFF_MESSAGE, // never inside an escalation
        ]
    );
    let asked: Vec<String> = app.bot.received().iter().map(|r| r.body["text"].as_str().unwrap_or_default().to_owned()).collect();
    assert_eq!(asked, ["hello", "question two", "question three"], "the ratings never reach the bot");
    let ratings: Vec<Option<&str>> = turns.iter().filter(|t| t.outcome.name() == "ignored").map(|t| t.trace.csat.as_deref()).collect();
    assert_eq!(ratings.len(), 2, "{turns:?}");
    assert!(ratings.contains(&Some("up")) && ratings.contains(&Some("down")), "{ratings:?}");
    app.shutdown().await;
}

/// Line 1 of the demo portal: the website chat widget (`livechat`), which shows keyboards.
const WIDGET_LINE: u64 = 1;

fn every_answer(keyboard: Option<&str>) -> AppOptions {
    let mut extra_env = vec![("OLBRIDGE_CSAT_EVERY".to_owned(), "1".to_owned())];
    extra_env.extend(keyboard.map(|k| ("OLBRIDGE_CSAT_KEYBOARD".to_owned(), k.to_owned())));
    AppOptions { extra_env, ..AppOptions::default() }
}

/// The customer of `PHONE` writes on the website widget; returns the chat id.
async fn widget_writes(app: &TestApp, text: &str) -> u64 {
    app.emulator.customer_writes(WIDGET_LINE, PHONE, text).await.unwrap().chat_id
}

fn ratings(turns: &[TurnRecord]) -> Vec<&str> {
    turns.iter().filter_map(|t| t.trace.csat.as_deref()).collect()
}

/// The `KEYBOARD` of every `imbot.message.add` the bridge made, in order (`None`: without one).
fn posted_keyboards(app: &TestApp) -> Vec<Option<Value>> {
    app.emulator.calls().iter().filter(|c| c.method == "imbot.message.add" && c.error.is_none()).map(|c| c.params.get("KEYBOARD").cloned()).collect()
}

#[tokio::test]
async fn on_the_website_widget_the_prompt_has_thumbs_and_a_press_is_recorded_once_never_reaching_the_bot() {
    let app = TestApp::spawn(every_answer(None)).await.unwrap();
    app.emulator.attach_welcome_bot(WIDGET_LINE, app.bot_id).unwrap();
    assert_eq!(app.emulator.calls().iter().filter(|c| c.method == "imbot.command.register").count(), 1, "register-bot registered the command");

    let chat = widget_writes(&app, "hello").await;
    let inbox = app.wait_inbox(PHONE, 2, REPLY_TIMEOUT).await;
    assert_eq!(app.bot_messages(PHONE), ["echo: hello", DEFAULT_CSAT_PROMPT]);
    let shown = inbox.last().and_then(|m| m.keyboard.clone()).expect("the widget shows the buttons");
    let buttons: Vec<(&str, &str)> =
        shown.as_array().unwrap().iter().map(|b| (b["TEXT"].as_str().unwrap_or_default(), b["COMMAND_PARAMS"].as_str().unwrap_or_default())).collect();
    assert_eq!(buttons, [("👍", "up"), ("👎", "down")]);
    assert_eq!(posted_keyboards(&app), [None, Some(csat::keyboard())], "only the prompt carries it");

    // 👍, the same button again (a double tap, another device), then 👎: one rating.
    app.emulator.customer_presses(chat, app.bot_id, csat::COMMAND, "up").await.unwrap();
    app.wait_turns(2, REPLY_TIMEOUT).await;
    app.emulator.customer_presses(chat, app.bot_id, csat::COMMAND, "up").await.unwrap();
    app.emulator.customer_presses(chat, app.bot_id, csat::COMMAND, "down").await.unwrap();
    // A chat's events are handled in order: once the next question is answered, the presses were.
    widget_writes(&app, "question two").await;
    app.wait_inbox(PHONE, 3, REPLY_TIMEOUT).await;
    let turns = app.wait_turns(3, REPLY_TIMEOUT).await;

    assert_eq!(ratings(&turns), ["up"], "{turns:?}");
    let rated = turns.iter().find(|t| t.trace.csat.is_some()).unwrap();
    assert_eq!(rated.outcome.name(), "ignored");
    assert_eq!(rated.trace.line_id, Some(WIDGET_LINE), "counted on the chat's line in `olbridge stats`");
    let asked: Vec<String> = app.bot.received().iter().map(|r| r.body["text"].as_str().unwrap_or_default().to_owned()).collect();
    assert_eq!(asked, ["hello", "question two"], "the press never reaches the bot");
    assert_eq!(app.bot_messages(PHONE), ["echo: hello", DEFAULT_CSAT_PROMPT, "echo: question two"], "nothing posted for the press; never twice in a row");
    assert_eq!(app.emulator.calls().iter().filter(|c| c.method == "imbot.command.answer").count(), 1, "only register-bot's lookup");

    // register-bot again: the command is found, not registered twice.
    let client = B24Client::new(WebhookBase::parse(&app.portal.webhook_url).unwrap(), ClientOptions::default()).unwrap();
    olbridge::admin::register::register(&client, &app.events_url, "olbridge_test", "Test assistant", None).await.unwrap();
    assert_eq!(app.emulator.calls().iter().filter(|c| c.method == "imbot.command.register").count(), 1);
    app.shutdown().await;
}

#[tokio::test]
async fn a_whatsapp_chat_gets_the_numbered_prompt_and_no_keyboard() {
    let app = TestApp::spawn(every_answer(None)).await.unwrap();
    let sent = app.customer_writes(PHONE, "hello").await.unwrap();
    let inbox = app.wait_inbox(PHONE, 2, REPLY_TIMEOUT).await;
    assert_eq!(app.bot_messages(PHONE), ["echo: hello", DEFAULT_CSAT_PROMPT]);
    assert!(inbox.iter().all(|m| m.keyboard.is_none()), "{inbox:?}");
    assert_eq!(posted_keyboards(&app), [None, None], "auto: no keyboard on a WhatsApp connector");
    // Nothing to press: the customer never saw buttons.
    assert!(app.emulator.customer_presses(sent.chat_id, app.bot_id, csat::COMMAND, "up").await.is_err());
    app.customer_writes(PHONE, "1").await.unwrap();
    let turns = app.wait_turns(2, REPLY_TIMEOUT).await;
    assert_eq!(ratings(&turns), ["up"]);
    app.shutdown().await;
}

#[tokio::test]
async fn with_the_keyboard_off_the_website_widget_gets_the_numbered_prompt_too() {
    let app = TestApp::spawn(every_answer(Some("never"))).await.unwrap();
    app.emulator.attach_welcome_bot(WIDGET_LINE, app.bot_id).unwrap();
    let chat = widget_writes(&app, "hello").await;
    let inbox = app.wait_inbox(PHONE, 2, REPLY_TIMEOUT).await;
    assert_eq!(app.bot_messages(PHONE), ["echo: hello", DEFAULT_CSAT_PROMPT]);
    assert!(inbox.iter().all(|m| m.keyboard.is_none()), "{inbox:?}");
    assert_eq!(posted_keyboards(&app), [None, None]);
    assert!(app.emulator.customer_presses(chat, app.bot_id, csat::COMMAND, "up").await.is_err(), "no button to press");
    widget_writes(&app, "2").await;
    let turns = app.wait_turns(2, REPLY_TIMEOUT).await;
    assert_eq!(ratings(&turns), ["down"]);
    app.shutdown().await;
}
