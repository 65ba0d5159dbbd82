//! Acceptance 1: a fresh customer message is answered, with the bot contract honoured.

use olbridge_tests::{AppOptions, PHONE, Reply, TestApp};
use serde_json::json;

use crate::REPLY_TIMEOUT;

#[tokio::test]
async fn a_fresh_customer_message_is_answered_by_the_bot() {
    let app = TestApp::spawn(AppOptions { extra_env: vec![("BOT_HTTP_AUTH".into(), "Bearer t0ken".into())], ..AppOptions::default() }).await.unwrap();

    let sent = app.customer_writes(PHONE, "hello there").await.unwrap();
    let inbox = app.wait_inbox(PHONE, 1, REPLY_TIMEOUT).await;

    assert_eq!(app.bot_messages(PHONE), vec!["echo: hello there".to_owned()], "inbox: {inbox:?}");
    let received = app.bot.received();
    assert_eq!(received.len(), 1);
    let req = &received[0];
    let body = &req.body;
    assert_eq!(body["platform"], "bitrix24");
    assert_eq!(body["direction"], "inbound");
    assert_eq!(body["dialog_id"], format!("chat{}", sent.chat_id));
    assert_eq!(body["chat_id"], sent.chat_id);
    assert_eq!(body["message_id"], sent.message_id);
    assert_eq!(body["text"], "hello there");
    assert_eq!(body["message"], "hello there");
    assert_eq!(body["phone"], PHONE);
    assert_eq!(body["customer_phone"], PHONE);
    assert_eq!(body["business_phone"], "+4930123456");
    assert_eq!(body["author_id"], sent.user_id);
    assert_eq!(body["line_id"], app.portal.whatsapp_line_id);
    assert_eq!(body["connector"], "whatsappbyedna");
    assert_eq!(body["session_id"], sent.session_id);
    assert_eq!(body["crm"]["entity_type"], "lead", "the WhatsApp line creates a lead: {body}");
    assert!(body["profile"].is_object());
    assert!(body["history"].as_array().is_some_and(Vec::is_empty));
    let key = req.headers.get("idempotency-key").and_then(|v| v.to_str().ok()).unwrap();
    assert_eq!(body["event_id"], key);
    assert!(key.ends_with(&format!(":msg:{}", sent.message_id)));
    assert_eq!(req.headers.get("authorization").and_then(|v| v.to_str().ok()), Some("Bearer t0ken"));
    assert!(req.headers.get("x-olbridge-signature").is_none(), "no signature without BOT_HMAC_SECRET");
    app.shutdown().await;
}

#[tokio::test]
async fn requests_are_signed_when_a_secret_is_set() {
    let app = TestApp::spawn(AppOptions { hmac_secret: Some("sh4red".into()), ..AppOptions::default() }).await.unwrap();
    app.customer_writes(PHONE, "sign me").await.unwrap();
    app.wait_inbox(PHONE, 1, REPLY_TIMEOUT).await;
    let req = &app.bot.received()[0];
    let header = req.headers.get("x-olbridge-signature").and_then(|v| v.to_str().ok()).unwrap();
    let secret = olbridge_core::domain::secret::Secret::new("sh4red");
    assert!(olbridge_core::bot::sign::verify(&secret, header, &req.raw, chrono::Utc::now().timestamp(), 300));
    assert!(!olbridge_core::bot::sign::verify(&olbridge_core::domain::secret::Secret::new("other"), header, &req.raw, chrono::Utc::now().timestamp(), 300));
    app.shutdown().await;
}

#[tokio::test]
async fn every_response_shape_of_the_existing_bot_works() {
    let app = TestApp::spawn(AppOptions::default()).await.unwrap();
    app.bot.script([
        Reply::Json(json!({"reply_text": "one"})),
        Reply::Json(json!({"replies": ["two-a", "two-b"]})),
        Reply::Json(json!({"text": "three"})),
        Reply::Json(json!({"messages": ["four"]})),
        Reply::Json(json!({"response": "five"})),
        Reply::Json(json!({"reply": "six"})),
        Reply::Text("seven".into()),
        Reply::NoContent,
        Reply::Json(json!({"reply_text": ""})),
        Reply::Json(json!({"reply_text": "ten"})),
    ]);
    for i in 1..=10 {
        let before = app.bot.received().len();
        app.customer_writes(PHONE, &format!("question {i}")).await.unwrap();
        assert_eq!(app.bot.wait_answers(before + 1, REPLY_TIMEOUT).await, before + 1);
    }
    app.wait_inbox(PHONE, 9, REPLY_TIMEOUT).await;
    assert_eq!(app.bot_messages(PHONE), ["one", "two-a", "two-b", "three", "four", "five", "six", "seven", "ten"]);
    app.shutdown().await;
}

#[tokio::test]
async fn long_replies_are_split_at_whatsapps_limit() {
    let app = TestApp::spawn(AppOptions::default()).await.unwrap();
    let paragraph = "word ".repeat(600); // 3,000 characters
    let long = format!("{}\n\n{}\n\n{}", paragraph.trim(), paragraph.trim(), paragraph.trim());
    app.bot.script([Reply::Json(json!({"reply_text": long}))]);
    app.customer_writes(PHONE, "tell me everything").await.unwrap();
    app.wait_inbox(PHONE, 3, REPLY_TIMEOUT).await;
    let got = app.bot_messages(PHONE);
    assert_eq!(got.len(), 3, "{:?}", got.iter().map(|m| m.chars().count()).collect::<Vec<_>>());
    assert!(got.iter().all(|m| m.chars().count() <= 4096));
    assert_eq!(got.join(" ").split_whitespace().count(), 1800);
    app.shutdown().await;
}

#[tokio::test]
async fn the_profile_the_bot_returns_is_sent_back_next_time() {
    let app = TestApp::spawn(AppOptions::default()).await.unwrap();
    app.bot.script([Reply::Json(json!({"reply_text": "Nice to meet you", "profile": {"name": "Ana", "language": "pt", "tier": "gold"}}))]);
    app.customer_writes(PHONE, "my name is Ana").await.unwrap();
    app.wait_inbox(PHONE, 1, REPLY_TIMEOUT).await;
    app.customer_writes(PHONE, "what's my tier?").await.unwrap();
    app.wait_inbox(PHONE, 2, REPLY_TIMEOUT).await;
    let second = &app.bot.received()[1].body;
    assert_eq!(second["profile"]["name"], "Ana");
    assert_eq!(second["profile"]["language"], "pt");
    assert_eq!(second["profile"]["tier"], "gold");
    let history = second["history"].as_array().unwrap();
    assert_eq!(history.len(), 2, "{history:?}");
    assert_eq!(history[0]["role"], "customer");
    assert_eq!(history[0]["text"], "my name is Ana");
    assert_eq!(history[1]["role"], "bot");
    assert_eq!(history[1]["text"], "Nice to meet you");
    app.shutdown().await;
}
