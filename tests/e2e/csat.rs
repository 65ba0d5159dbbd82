//! CSAT per bot answer: a numbered prompt after every Nth answer (never twice in a row, never in an
//! escalation), and the customer's `1`/`2` consumed — recorded, never sent to the bot.

use olbridge_core::config::{DEFAULT_CSAT_PROMPT, DEFAULT_HANDOFF_MESSAGE};
use olbridge_tests::{AppOptions, PHONE, TestApp};

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
