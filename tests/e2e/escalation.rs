//! Acceptance 3: an escalation phrase (or the bot's `handoff`) routes the chat to a live operator,
//! the customer is told, and the bot stays silent for the rest of the session; the next session is
//! served again. An operator writing in the chat silences the bot too.

use olbridge_core::config::DEFAULT_HANDOFF_MESSAGE;
use olbridge_tests::{AppOptions, PHONE, Reply, TestApp};
use serde_json::json;

use crate::REPLY_TIMEOUT;

const OPERATOR: &str = "imopenlines.bot.session.operator";

fn operator_calls(app: &TestApp) -> usize {
    app.emulator.calls().iter().filter(|c| c.method == OPERATOR).count()
}

#[tokio::test]
async fn an_escalation_phrase_hands_the_chat_to_an_operator_once_and_the_bot_goes_silent() {
    let app = TestApp::spawn(AppOptions::default()).await.unwrap();
    app.customer_writes(PHONE, "hello").await.unwrap();
    app.wait_inbox(PHONE, 1, REPLY_TIMEOUT).await;

    let sent = app.customer_writes(PHONE, "I want to talk to an agent please").await.unwrap();
    app.wait_inbox(PHONE, 2, REPLY_TIMEOUT).await;
    // The transfer itself follows the notice.
    app.wait_calls(OPERATOR, 1, REPLY_TIMEOUT).await;

    assert_eq!(app.bot_messages(PHONE), ["echo: hello".to_owned(), DEFAULT_HANDOFF_MESSAGE.to_owned()]);
    assert_eq!(operator_calls(&app), 1);
    assert_eq!(app.bot.received().len(), 1, "the escalation phrase itself never reaches the bot");
    let chat = app.emulator.chat(sent.chat_id).unwrap();
    let human = chat.operator_id.expect("someone has the chat");
    assert_ne!(human, app.bot_id, "a queue operator, not the bot, has the chat");

    // The rest of the session: the customer writes, the bot server would answer, nobody from the bot does.
    app.customer_writes(PHONE, "hello? anyone?").await.unwrap();
    app.emulator.operator_writes(sent.chat_id, human, "Hi, Olga here, how can I help?").await.unwrap();
    app.customer_writes(PHONE, "my order is late").await.unwrap();
    let inbox = app.wait_inbox(PHONE, 3, REPLY_TIMEOUT).await;
    // hello, the escalation, and the two customer messages after it... except that after the
    // handoff the portal no longer sends the bot anything: only what was sent before is logged.
    app.wait_turns(2, REPLY_TIMEOUT).await;
    assert_eq!(app.bot_messages(PHONE).len(), 2, "no bot message after the handoff: {inbox:?}");
    assert_eq!(app.bot.received().len(), 1);
    assert_eq!(operator_calls(&app), 1, "exactly one transfer");

    // The operator closes the session; the next one is the bot's again.
    app.emulator.finish_session(sent.chat_id).await.unwrap();
    app.customer_writes(PHONE, "new question").await.unwrap();
    app.wait_inbox(PHONE, inbox.len() + 1, REPLY_TIMEOUT).await;
    assert_eq!(app.bot_messages(PHONE).last().map(String::as_str), Some("echo: new question"));
    app.shutdown().await;
}

#[tokio::test]
async fn the_bots_handoff_flag_transfers_after_its_reply() {
    let app = TestApp::spawn(AppOptions::default()).await.unwrap();
    app.bot.script([Reply::Json(json!({"reply_text": "Let me get a colleague.", "handoff": true}))]);
    app.customer_writes(PHONE, "I have a complicated billing problem").await.unwrap();
    app.wait_inbox(PHONE, 2, REPLY_TIMEOUT).await;
    app.wait_calls(OPERATOR, 1, REPLY_TIMEOUT).await;
    assert_eq!(app.bot_messages(PHONE), ["Let me get a colleague.".to_owned(), DEFAULT_HANDOFF_MESSAGE.to_owned()]);
    assert_eq!(operator_calls(&app), 1);
    app.shutdown().await;
}

#[tokio::test]
async fn an_operator_writing_in_the_chat_silences_the_bot_for_the_session() {
    let app = TestApp::spawn(AppOptions::default()).await.unwrap();
    let sent = app.customer_writes(PHONE, "hello").await.unwrap();
    app.wait_inbox(PHONE, 1, REPLY_TIMEOUT).await;

    // An operator joins in while the bot still serves the chat.
    app.emulator.operator_writes(sent.chat_id, app.portal.operator_id, "Olga from support here, I'll take it from here.").await.unwrap();
    app.wait_inbox(PHONE, 2, REPLY_TIMEOUT).await;
    app.customer_writes(PHONE, "great, thanks Olga").await.unwrap();
    app.customer_writes(PHONE, "my order number is EX-1234").await.unwrap();
    // hello (answered), the operator's message and the two customer messages (ignored, maybe as
    // one turn): every message logged.
    let keys = |turns: &[olbridge_core::domain::turn::TurnRecord]| turns.iter().map(|t| t.keys.len()).sum::<usize>();
    let turns = olbridge_tests::poll_until(REPLY_TIMEOUT, || app.turns(), |t| keys(t) >= 4).await;
    let outcomes: Vec<String> = turns.iter().rev().map(|t| format!("{}:{:?}", t.outcome.name(), t.outcome)).collect();
    assert_eq!(keys(&turns), 4, "{outcomes:?}");
    assert!(turns.iter().filter(|t| t.outcome.name() != "answered").all(|t| t.outcome.name() == "ignored"), "{outcomes:?}");

    assert_eq!(app.bot_messages(PHONE), ["echo: hello"], "the bot stays silent once an operator wrote");
    assert_eq!(app.bot.received().len(), 1);
    assert_eq!(operator_calls(&app), 0, "no transfer needed: the operator is already there");

    // Next session: the bot serves again.
    app.emulator.finish_session(sent.chat_id).await.unwrap();
    app.customer_writes(PHONE, "back again").await.unwrap();
    let deadline = tokio::time::Instant::now() + REPLY_TIMEOUT;
    while app.bot_messages(PHONE).len() < 2 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(app.bot_messages(PHONE).last().map(String::as_str), Some("echo: back again"));
    app.shutdown().await;
}

#[tokio::test]
async fn a_customer_typing_0_while_the_bot_thinks_makes_the_portal_refuse_the_reply_and_the_chat_stays_with_a_human() {
    let app = TestApp::spawn(AppOptions::default()).await.unwrap();
    app.bot.script([Reply::After(std::time::Duration::from_secs(2), Box::new(Reply::Echo))]);
    let sent = app.customer_writes(PHONE, "a question").await.unwrap();
    assert_eq!(app.bot.wait_requests(1, REPLY_TIMEOUT).await, 1);
    // Bitrix24 itself moves the chat to the queue when the customer types exactly 0.
    app.customer_writes(PHONE, "0").await.unwrap();

    let turns = app.wait_turns(1, REPLY_TIMEOUT).await;
    // The refused reply hands the chat to a human; Bitrix24 already moved it, so the transfer finds
    // a human there (WRONG_CHAT) and nothing more happens.
    let refused = turns.iter().find(|t| format!("{:?}", t.outcome).contains("PortalRefused")).unwrap_or(&turns[0]);
    assert_eq!(refused.outcome.name(), "handed_off", "{:?}", refused.outcome);
    assert!(format!("{:?}", refused.outcome).contains("WRONG_REQUEST"), "{:?}", refused.outcome);
    assert!(app.bot_messages(PHONE).is_empty(), "the bot is no longer in the chat");
    let chat = app.emulator.chat(sent.chat_id).unwrap();
    assert_ne!(chat.operator_id, Some(app.bot_id));
    app.shutdown().await;
}
