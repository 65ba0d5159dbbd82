//! Acceptance 2: quick consecutive turns are all answered, in order; with the burst window on they
//! are answered as one turn with all their text.

use olbridge_tests::{AppOptions, PHONE, TestApp};

use crate::REPLY_TIMEOUT;

#[tokio::test]
async fn five_quick_turns_are_all_answered_in_order() {
    let app = TestApp::spawn(AppOptions { burst_ms: 0, ..AppOptions::default() }).await.unwrap();
    for i in 1..=6 {
        app.customer_writes(PHONE, &format!("turn {i}")).await.unwrap();
    }
    app.wait_inbox(PHONE, 6, REPLY_TIMEOUT).await;
    let expected: Vec<String> = (1..=6).map(|i| format!("echo: turn {i}")).collect();
    assert_eq!(app.bot_messages(PHONE), expected);
    assert_eq!(app.bot.received().len(), 6);
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
