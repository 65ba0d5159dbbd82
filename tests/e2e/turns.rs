//! Acceptance 2: quick consecutive turns are all answered, in order. A customer who answers at once
//! gets an answer per turn; what a customer writes while the bot thinks is folded into the next
//! turn (one answer for the follow-ups); with the optional quiet window quick messages are answered
//! as one turn with all their text.

use std::time::Duration;

use olbridge_tests::{AppOptions, PHONE, Reply, TestApp, assert_answered_once_in_order};

use crate::REPLY_TIMEOUT;

#[tokio::test]
async fn five_quick_turns_are_all_answered_in_order() {
    let app = TestApp::spawn(AppOptions::default()).await.unwrap();
    // The customer writes again the moment each answer arrives.
    for i in 1..=6 {
        app.customer_writes(PHONE, &format!("turn {i}")).await.unwrap();
        app.wait_inbox(PHONE, i, REPLY_TIMEOUT).await;
    }
    let expected: Vec<String> = (1..=6).map(|i| format!("echo: turn {i}")).collect();
    assert_eq!(app.bot_messages(PHONE), expected);
    assert_eq!(app.bot.received().len(), 6);
    app.shutdown().await;
}

#[tokio::test]
async fn six_messages_at_once_are_each_answered_once_in_order() {
    let app = TestApp::spawn(AppOptions::default()).await.unwrap();
    let texts: Vec<String> = (1..=6).map(|i| format!("message {i}")).collect();
    for t in &texts {
        app.customer_writes(PHONE, t).await.unwrap();
    }
    let keys = |turns: &[olbridge_core::domain::turn::TurnRecord]| turns.iter().map(|t| t.keys.len()).sum::<usize>();
    let turns = olbridge_tests::poll_until(REPLY_TIMEOUT, || app.turns(), |t| keys(t) >= 6).await;
    assert_eq!(keys(&turns), 6, "{turns:?}");
    let expected: Vec<&str> = texts.iter().map(String::as_str).collect();
    assert_answered_once_in_order(&app.bot_messages(PHONE), &expected);
    app.shutdown().await;
}

#[tokio::test]
async fn what_the_customer_writes_while_the_bot_thinks_gets_one_answer() {
    let app = TestApp::spawn(AppOptions::default()).await.unwrap();
    app.bot.script([Reply::After(Duration::from_millis(1500), Box::new(Reply::Echo))]);
    app.customer_writes(PHONE, "where is my order?").await.unwrap();
    assert_eq!(app.bot.wait_requests(1, REPLY_TIMEOUT).await, 1, "answered at once, no quiet window");
    for text in ["it is EX-1234", "I ordered on Monday", "hello??"] {
        app.customer_writes(PHONE, text).await.unwrap();
    }
    app.wait_inbox(PHONE, 2, REPLY_TIMEOUT).await;
    assert_eq!(app.bot_messages(PHONE), ["echo: where is my order?", "echo: it is EX-1234\nI ordered on Monday\nhello??"]);
    assert_eq!(app.bot.received().len(), 2, "one answer for the three follow-ups");
    app.shutdown().await;
}

#[tokio::test]
async fn with_the_burst_window_quick_messages_get_one_answer_with_all_their_text() {
    // A generous window, so a loaded CI machine cannot split the burst.
    let app = TestApp::spawn(AppOptions { burst_ms: 3000, ..AppOptions::default() }).await.unwrap();
    for text in ["hi", "I ordered shoes", "they are too small", "can I exchange them", "size 42 please"] {
        app.customer_writes(PHONE, text).await.unwrap();
    }
    app.wait_inbox(PHONE, 1, REPLY_TIMEOUT).await;
    // The next turn starts cleanly.
    app.bot.wait_answers(1, REPLY_TIMEOUT).await;
    app.customer_writes(PHONE, "thanks").await.unwrap();
    app.wait_inbox(PHONE, 2, REPLY_TIMEOUT).await;

    let received = app.bot.received();
    assert_eq!(received.len(), 2, "two turns: {:?}", received.iter().map(|r| r.body["text"].clone()).collect::<Vec<_>>());
    assert_eq!(received[0].body["text"], "hi\nI ordered shoes\nthey are too small\ncan I exchange them\nsize 42 please");
    assert_eq!(received[1].body["text"], "thanks");
    assert_eq!(app.bot_messages(PHONE), ["echo: hi\nI ordered shoes\nthey are too small\ncan I exchange them\nsize 42 please", "echo: thanks"]);
    app.shutdown().await;
}
