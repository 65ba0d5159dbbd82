//! The admin commands against the emulated portal: `register-bot` is idempotent (even when its
//! output was never pasted into `.env`), `doctor` passes
//! on a complete setup and names what is missing otherwise, and the terminal tools (`send`,
//! `read`) work through the real binary.

use std::collections::HashMap;

use olbridge::admin::doctor::{self, Check};
use olbridge::admin::register;
use olbridge_core::b24::{B24Client, ClientOptions, WebhookBase};
use olbridge_core::config::Config;
use olbridge_core::domain::secret::Secret;
use olbridge_tests::{AppOptions, PHONE, TestApp, olbridge_binary, run_olbridge};

use crate::REPLY_TIMEOUT;

fn client(webhook: &str) -> B24Client {
    B24Client::new(WebhookBase::parse(webhook).unwrap(), ClientOptions::default()).unwrap()
}

#[tokio::test]
async fn register_bot_is_idempotent_and_refuses_a_client_id_that_is_not_the_bots() {
    let app = TestApp::spawn(AppOptions::default()).await.unwrap();
    let c = client(&app.portal.webhook_url);
    // The harness registered with the derived CLIENT_ID; nothing configured finds it again.
    let again = register::register(&c, &app.events_url, "olbridge_test", "Test assistant", None).await.unwrap();
    assert!(!again.created);
    assert_eq!(again.bot_id.get(), app.bot_id);
    assert_eq!(again.client_id.expose(), app.client_id);
    let explicit = register::register(&c, &app.events_url, "olbridge_test", "Test assistant", Some(Secret::new(app.client_id.clone()))).await.unwrap();
    assert_eq!(explicit.bot_id.get(), app.bot_id);
    let err = register::register(&c, &app.events_url, "olbridge_test", "Test assistant", Some(Secret::new("not-its-client-id"))).await.unwrap_err();
    assert!(err.to_string().contains("already registered") && err.to_string().contains("B24_BOT_CLIENT_ID"), "{err}");
    let registered = app.emulator.calls().iter().filter(|c| c.method == "imbot.register").count();
    assert_eq!(registered, 1, "no second bot was created");
    app.shutdown().await;
}

fn env_lines(stdout: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stdout).lines().filter(|l| l.starts_with("B24_BOT_")).map(str::to_owned).collect()
}

#[tokio::test]
async fn register_bot_run_twice_with_nothing_pasted_prints_the_same_lines_and_creates_one_bot() {
    let app = TestApp::spawn(AppOptions::default()).await.unwrap();
    let dir = tempfile::TempDir::new().unwrap();
    let env = [("B24_WEBHOOK_BASE", app.portal.webhook_url.as_str()), ("OLBRIDGE_PUBLIC_URL", "https://bridge.example.com")];
    let first = run_olbridge(dir.path(), &env, &["register-bot"]).await.unwrap();
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let second = run_olbridge(dir.path(), &env, &["register-bot"]).await.unwrap();
    assert!(second.status.success(), "{}", String::from_utf8_lossy(&second.stderr));
    let lines = env_lines(&first.stdout);
    assert_eq!(lines.len(), 2, "{}", String::from_utf8_lossy(&first.stdout));
    assert_eq!(env_lines(&second.stdout), lines);
    assert!(String::from_utf8_lossy(&second.stdout).contains("nothing changed"));
    let ours = c_bots(&app, "olbridge").await;
    assert_eq!(ours.len(), 1, "{ours:?}");
    assert_eq!(ours[0].name, register::DEFAULT_NAME);
    assert_eq!(lines[0], format!("B24_BOT_ID={}", ours[0].id));

    // A bot registered by an older olbridge (random CLIENT_ID): found, not guessed, not doubled.
    let legacy = [("B24_WEBHOOK_BASE", app.portal.webhook_url.as_str()), ("OLBRIDGE_PUBLIC_URL", "https://bridge.example.com")];
    let c = client(&app.portal.webhook_url);
    register::register(&c, "https://bridge.example.com/bitrix/events", "olbridge_old", "Old", Some(Secret::new("random-from-an-old-version"))).await.unwrap();
    let out = run_olbridge(dir.path(), &legacy, &["register-bot", "--code", "olbridge_old"]).await.unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("B24_BOT_CLIENT_ID"), "{}", String::from_utf8_lossy(&out.stderr));
    let with_old = [legacy[0], legacy[1], ("B24_BOT_CLIENT_ID", "random-from-an-old-version")];
    let out = run_olbridge(dir.path(), &with_old, &["register-bot", "--code", "olbridge_old"]).await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(env_lines(&out.stdout).contains(&"B24_BOT_CLIENT_ID=random-from-an-old-version".to_owned()));
    assert_eq!(c_bots(&app, "olbridge_old").await.len(), 1);
    app.shutdown().await;
}

async fn c_bots(app: &TestApp, code: &str) -> Vec<olbridge_core::b24::imbot::BotInfo> {
    client(&app.portal.webhook_url).imbot_bot_list().await.unwrap().into_iter().filter(|b| b.code == code).collect()
}

#[tokio::test]
async fn doctor_passes_on_a_complete_setup() {
    let app = TestApp::spawn(AppOptions::default()).await.unwrap();
    let mut env = app.env.clone();
    env.insert("OLBRIDGE_PUBLIC_URL".into(), app.events_url.trim_end_matches("/bitrix/events").to_owned());
    let config = Config::from_map(&env).unwrap();
    let checks = doctor::checks(&config).await;
    let failed: Vec<&Check> = checks.iter().filter(|c| matches!(c, Check::Fail(_))).collect();
    assert!(failed.is_empty(), "{checks:#?}");
    assert!(checks.iter().any(|c| matches!(c, Check::Ok(t) if t.contains("served by the bot"))), "{checks:#?}");
    app.shutdown().await;
}

#[tokio::test]
async fn doctor_names_every_missing_piece() {
    let app = TestApp::spawn(AppOptions::default()).await.unwrap();
    // A webhook without the imbot scope, a bot id the portal does not know, no public URL.
    let user = app.emulator.add_employee("Second", "Service");
    let webhook = app.emulator.add_webhook(user, &["im", "imopenlines"]);
    let env: HashMap<String, String> = [("B24_WEBHOOK_BASE", webhook), ("B24_BOT_ID", "999".to_owned()), ("BOT_HTTP_URL", "http://127.0.0.1:9/bot".to_owned())]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    let checks = doctor::checks(&Config::from_map(&env).unwrap()).await;
    let text = format!("{checks:#?}");
    let fails: Vec<&String> = checks.iter().filter_map(|c| if let Check::Fail(t) = c { Some(t) } else { None }).collect();
    assert!(fails.iter().any(|t| t.contains("imbot")), "{text}");
    assert!(fails.iter().any(|t| t.contains("B24_BOT_CLIENT_ID")), "{text}");
    assert!(fails.iter().any(|t| t.contains("cannot connect to the bot")), "{text}");
    assert!(checks.iter().any(|c| matches!(c, Check::Warn(t) if t.contains("OLBRIDGE_PUBLIC_URL"))), "{text}");
    app.shutdown().await;
}

#[tokio::test]
async fn send_and_read_work_through_the_binary() {
    let app = TestApp::spawn(AppOptions::default()).await.unwrap();
    let sent = app.customer_writes(PHONE, "hello").await.unwrap();
    app.wait_inbox(PHONE, 1, REPLY_TIMEOUT).await;
    let bin = olbridge_binary().unwrap();
    let dir = tempfile::TempDir::new().unwrap();
    // The emulator runs on this test's runtime: the child must be awaited, not waited for.
    let run = |args: &[&str]| {
        tokio::process::Command::new(&bin)
            .args(["--env-dir", &dir.path().display().to_string()])
            .args(args)
            .env_clear()
            .env("B24_WEBHOOK_BASE", &app.portal.webhook_url)
            .output()
    };
    let dialog = format!("chat{}", sent.chat_id);
    let out = run(&["send", &dialog, "A colleague will call you back today."]).await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let inbox = app.wait_inbox(PHONE, 2, REPLY_TIMEOUT).await;
    assert_eq!(inbox.last().map(|m| m.text.as_str()), Some("A colleague will call you back today."));

    let out = run(&["read", "--once"]).await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&dialog), "{stdout}");
    assert!(stdout.contains("A colleague will call you back today."), "{stdout}");

    let out = run(&["send", "not-a-dialog", "x"]).await.unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected e.g. chat97669"));
    app.shutdown().await;
}
