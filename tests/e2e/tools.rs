//! The terminal tools through the real binary: `read --once` prints whole chats, `send` into a chat
//! the bot holds takes the session for the webhook's user first (so a human visibly owns it), and
//! `handback` gives the next session back to the bot.

use olbridge_tests::{AppOptions, PHONE, TestApp, run_olbridge};

use crate::REPLY_TIMEOUT;

fn text(out: &std::process::Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[tokio::test]
async fn read_once_prints_every_message_of_each_chat_oldest_first() {
    let app = TestApp::spawn(AppOptions::default()).await.unwrap();
    let sent = app.customer_writes(PHONE, "first question").await.unwrap();
    app.wait_inbox(PHONE, 1, REPLY_TIMEOUT).await;
    app.customer_writes(PHONE, "second question").await.unwrap();
    app.wait_inbox(PHONE, 2, REPLY_TIMEOUT).await;
    let other = "+4917099887766";
    app.customer_writes(other, "another customer").await.unwrap();
    app.wait_inbox(other, 1, REPLY_TIMEOUT).await;

    let dir = tempfile::TempDir::new().unwrap();
    let out = run_olbridge(dir.path(), &[("B24_WEBHOOK_BASE", &app.portal.webhook_url)], &["read", "--once"]).await.unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let dialog = format!("[chat{}]", sent.chat_id);
    let ours: Vec<&str> = stdout.lines().filter(|l| l.starts_with(&dialog)).collect();
    let at = |needle: &str| ours.iter().position(|l| l.contains(needle)).unwrap_or_else(|| panic!("{needle:?} missing from:\n{stdout}"));
    assert!(at("first question") < at("echo: first question"));
    assert!(at("echo: first question") < at("second question"));
    assert!(at("second question") < at("echo: second question"));
    assert!(stdout.contains("another customer") && stdout.contains("echo: another customer"), "{stdout}");
    app.shutdown().await;
}

#[tokio::test]
async fn send_takes_the_session_from_the_bot_and_handback_returns_the_next_one() {
    let app = TestApp::spawn(AppOptions::default()).await.unwrap();
    let sent = app.customer_writes(PHONE, "hello").await.unwrap();
    app.wait_inbox(PHONE, 1, REPLY_TIMEOUT).await;
    assert_eq!(app.emulator.chat(sent.chat_id).and_then(|c| c.operator_id), Some(app.bot_id));
    let dir = tempfile::TempDir::new().unwrap();
    let env = [("B24_WEBHOOK_BASE", app.portal.webhook_url.as_str())];
    let dialog = format!("chat{}", sent.chat_id);
    let me = app.portal.service_user_id;

    let out = run_olbridge(dir.path(), &env, &["send", &dialog, "A colleague will call you back today."]).await.unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains(&format!("now own {dialog}")) && stdout.contains("handback"), "{stdout}");
    let inbox = app.wait_inbox(PHONE, 2, REPLY_TIMEOUT).await;
    assert_eq!(inbox.last().map(|m| m.text.as_str()), Some("A colleague will call you back today."));
    assert_eq!(app.emulator.chat(sent.chat_id).and_then(|c| c.operator_id), Some(me), "the webhook's user holds the session");

    // A second send: already ours, nothing to take.
    let out = run_olbridge(dir.path(), &env, &["send", &dialog, "Or write here."]).await.unwrap();
    assert!(out.status.success());
    assert!(!text(&out).0.contains("now own"), "{}", text(&out).0);
    assert_eq!(app.emulator.calls().iter().filter(|c| c.method == "imopenlines.session.intercept").count(), 1);

    let out = run_olbridge(dir.path(), &env, &["handback", &dialog]).await.unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("new session"), "{stdout}");
    assert!(app.emulator.chat(sent.chat_id).is_some_and(|c| !c.session_open));

    let before = app.bot_messages(PHONE).len();
    let shown = app.emulator.customer_inbox(PHONE).len();
    app.customer_writes(PHONE, "are you there?").await.unwrap();
    app.wait_inbox(PHONE, shown + 1, REPLY_TIMEOUT).await;
    assert_eq!(app.bot_messages(PHONE).len(), before + 1);
    assert_eq!(app.bot_messages(PHONE).last().map(String::as_str), Some("echo: are you there?"));

    // Handing back a chat the webhook's user does not hold changes nothing.
    let out = run_olbridge(dir.path(), &env, &["handback", &dialog]).await.unwrap();
    assert!(!out.status.success());
    assert!(text(&out).0.contains("Nothing changed"), "{}", text(&out).0);

    let out = run_olbridge(dir.path(), &env, &["send", "not-a-dialog", "x"]).await.unwrap();
    assert!(!out.status.success());
    assert!(text(&out).1.contains("expected e.g. chat97669"));
    app.shutdown().await;
}
