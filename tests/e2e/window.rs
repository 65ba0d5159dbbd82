//! WhatsApp's 24-hour window end to end: the emulator writes `BLOCK_DATE` into the session string
//! of every customer message (here a window of seconds instead of a day); a reply that would land
//! after it is not posted, no notice either, the chat goes to a human, and the turn is recorded as
//! `window_closed`.

use std::time::Duration;

use olbridge_tests::bot::Reply;
use olbridge_tests::{AppOptions, PHONE, TestApp};

use crate::REPLY_TIMEOUT;

fn options() -> AppOptions {
    // No margin: the test's windows are seconds long. Reconciliation off: nothing else answers.
    let extra_env = [("OLBRIDGE_WINDOW_MARGIN_SEC", "0"), ("OLBRIDGE_RECONCILE_SEC", "0")].iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    AppOptions { extra_env, ..AppOptions::default() }
}

/// Nothing of ours was posted into the chat, not even a message the window would have blocked;
/// a human operator has it; the turn is `window_closed`.
async fn assert_closed_and_silent(app: &TestApp) {
    let turns = app.wait_turns(1, REPLY_TIMEOUT).await;
    assert_eq!(turns[0].outcome.name(), "window_closed", "{turns:?}");
    let chat_id = app.emulator.chat_of_customer(app.line_id, PHONE).expect("chat");
    let chat = app.emulator.chat(chat_id).expect("chat");
    let ours: Vec<_> = chat.messages.iter().filter(|m| m.author_id == app.bot_id).collect();
    assert!(ours.is_empty(), "nothing posted into the closed chat: {ours:?}");
    assert!(!chat.messages.iter().any(|m| m.window_blocked), "nothing even tried");
    assert!(app.emulator.customer_inbox(PHONE).is_empty());
    assert_eq!(chat.operator_id, Some(app.portal.operator_id), "a human has the chat, to send a template");
}

#[tokio::test]
async fn a_reply_that_would_land_after_the_block_date_is_not_sent_and_is_recorded() {
    let app = TestApp::spawn(options()).await.unwrap();
    app.emulator.set_whatsapp_window(Some(Duration::from_secs(2)));
    // The bot thinks past the block date (2 s after the message, to the second).
    app.bot.set_default(Reply::After(Duration::from_secs(4), Box::new(Reply::Echo)));
    app.customer_writes(PHONE, "hello?").await.unwrap();
    assert_closed_and_silent(&app).await;
    assert_eq!(app.bot.received().len(), 1, "the bot was asked while the window was open");
    app.shutdown().await;
}

#[tokio::test]
async fn a_window_already_closed_when_the_turn_starts_asks_no_bot() {
    let app = TestApp::spawn(options()).await.unwrap();
    app.emulator.set_whatsapp_window(Some(Duration::ZERO));
    app.customer_writes(PHONE, "hello?").await.unwrap();
    assert_closed_and_silent(&app).await;
    assert!(app.bot.received().is_empty(), "the bot is not asked");
    app.shutdown().await;
}

#[tokio::test]
async fn within_the_window_the_reply_is_sent_as_usual() {
    let app = TestApp::spawn(options()).await.unwrap();
    app.customer_writes(PHONE, "hello").await.unwrap();
    app.wait_inbox(PHONE, 1, REPLY_TIMEOUT).await;
    assert_eq!(app.bot_messages(PHONE), ["echo: hello"]);
    // The turn is logged just after the reply is posted: wait for it.
    let turns = app.wait_turns(1, REPLY_TIMEOUT).await;
    assert_eq!(turns[0].outcome.name(), "answered", "{turns:?}");
    app.shutdown().await;
}
