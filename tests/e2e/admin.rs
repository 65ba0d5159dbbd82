//! The admin commands against the emulated portal: `register-bot` is idempotent (even when its
//! output was never pasted into `.env`), and `doctor` passes on a complete setup, names what is
//! missing otherwise, refuses handler URLs no portal can call and says where `B24_MEMBER_ID` is; the
//! same for a Chatbots 2.0 bot (`--v2`, webhook or fetch mode).

use std::collections::HashMap;

use olbridge::admin::doctor::{self, Check};
use olbridge::admin::register;
use olbridge_core::b24::{B24Client, ClientOptions, WebhookBase};
use olbridge_core::config::Config;
use olbridge_core::domain::secret::Secret;
use olbridge_tests::{AppOptions, Chatbot, PHONE, TestApp, run_olbridge};

use crate::REPLY_TIMEOUT;

fn client(webhook: &str) -> B24Client {
    B24Client::new(WebhookBase::parse(webhook).unwrap(), ClientOptions::default()).unwrap()
}

fn fails(checks: &[Check]) -> Vec<&String> {
    checks.iter().filter_map(|c| if let Check::Fail(t) = c { Some(t) } else { None }).collect()
}

fn warns(checks: &[Check]) -> Vec<&String> {
    checks.iter().filter_map(|c| if let Check::Warn(t) = c { Some(t) } else { None }).collect()
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
async fn doctor_passes_a_complete_setup_except_its_loopback_handler_and_names_the_member_id() {
    let app = TestApp::spawn(AppOptions::default()).await.unwrap();
    app.customer_writes(PHONE, "hello").await.unwrap();
    app.wait_turns(1, REPLY_TIMEOUT).await;
    let mut env = app.env.clone();
    env.insert("OLBRIDGE_PUBLIC_URL".into(), app.events_url.trim_end_matches("/bitrix/events").to_owned());
    let checks = doctor::checks(&Config::from_map(&env).unwrap()).await;
    let failed = fails(&checks);
    // Everything works from here, but no portal can call http://127.0.0.1.
    assert_eq!(failed.len(), 1, "{checks:#?}");
    assert!(failed[0].contains("OLBRIDGE_PUBLIC_URL") && failed[0].contains("loopback") && failed[0].contains("HTTPS"), "{checks:#?}");
    assert!(checks.iter().any(|c| matches!(c, Check::Ok(t) if t.contains("served by the bot"))), "{checks:#?}");
    assert!(checks.iter().any(|c| matches!(c, Check::Ok(t) if t.contains("the receiver answers"))), "{checks:#?}");
    let member = app.emulator.member_id();
    assert!(warns(&checks).iter().any(|t| t.contains(&format!("B24_MEMBER_ID={member}"))), "{checks:#?}");

    env.insert("B24_MEMBER_ID".into(), member);
    let checks = doctor::checks(&Config::from_map(&env).unwrap()).await;
    assert!(checks.iter().any(|c| matches!(c, Check::Ok(t) if t.starts_with("B24_MEMBER_ID is set"))), "{checks:#?}");
    env.insert("B24_MEMBER_ID".into(), "0123456789abcdef".into());
    let checks = doctor::checks(&Config::from_map(&env).unwrap()).await;
    assert!(fails(&checks).iter().any(|t| t.contains("B24_MEMBER_ID is 0123456789abcdef")), "{checks:#?}");

    env.insert("OLBRIDGE_PUBLIC_URL".into(), "http://bridge.example.com".into());
    let checks = doctor::checks(&Config::from_map(&env).unwrap()).await;
    assert!(fails(&checks).iter().any(|t| t.contains("plain http")), "{checks:#?}");
    app.shutdown().await;
}

#[tokio::test]
async fn doctor_names_every_missing_piece() {
    let app = TestApp::spawn(AppOptions::default()).await.unwrap();
    // A webhook without the imbot scope, a bot id the portal does not know, no public URL, no store.
    let user = app.emulator.add_employee("Second", "Service");
    let webhook = app.emulator.add_webhook(user, &["im", "imopenlines"]);
    let dir = tempfile::TempDir::new().unwrap();
    let env: HashMap<String, String> = [
        ("B24_WEBHOOK_BASE", webhook),
        ("B24_BOT_ID", "999".to_owned()),
        ("BOT_HTTP_URL", "http://127.0.0.1:9/bot".to_owned()),
        ("OLBRIDGE_DATA_DIR", dir.path().join("none").display().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let checks = doctor::checks(&Config::from_map(&env).unwrap()).await;
    let text = format!("{checks:#?}");
    let fails = fails(&checks);
    assert!(fails.iter().any(|t| t.contains("imbot")), "{text}");
    assert!(fails.iter().any(|t| t.contains("B24_BOT_CLIENT_ID")), "{text}");
    assert!(fails.iter().any(|t| t.contains("cannot connect to the bot")), "{text}");
    let warns = warns(&checks);
    assert!(warns.iter().any(|t| t.contains("OLBRIDGE_PUBLIC_URL")), "{text}");
    assert!(warns.iter().any(|t| t.contains("B24_MEMBER_ID is not set") && t.contains("auth[member_id]")), "{text}");
    app.shutdown().await;
}

fn v2_env_lines(stdout: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stdout).lines().filter(|l| l.starts_with("B24_") || l.starts_with("OLBRIDGE_")).map(str::to_owned).collect()
}

#[tokio::test]
async fn register_bot_v2_is_idempotent_in_both_modes_and_never_switches_a_bots_mode() {
    let app = TestApp::spawn(AppOptions::default()).await.unwrap();
    let dir = tempfile::TempDir::new().unwrap();
    let webhook = app.portal.webhook_url.as_str();
    let env = [("B24_WEBHOOK_BASE", webhook), ("OLBRIDGE_PUBLIC_URL", "https://bridge.example.com")];
    let first = run_olbridge(dir.path(), &env, &["register-bot", "--v2"]).await.unwrap();
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let second = run_olbridge(dir.path(), &env, &["register-bot", "--v2"]).await.unwrap();
    assert!(second.status.success(), "{}", String::from_utf8_lossy(&second.stderr));
    let lines = v2_env_lines(&first.stdout);
    assert_eq!(v2_env_lines(&second.stdout), lines);
    assert!(String::from_utf8_lossy(&second.stdout).contains("nothing changed"));
    let ours = c_bots(&app, register::DEFAULT_CODE).await;
    assert_eq!(ours.len(), 1, "{ours:?}");
    assert_eq!(lines[..3], [format!("B24_BOT_ID={}", ours[0].id), lines[1].clone(), "OLBRIDGE_BOT_API=v2".to_owned()]);
    let token = lines[1].strip_prefix("B24_BOT_CLIENT_ID=").unwrap();
    assert!(!token.is_empty() && token.len() <= 40, "{token}");
    assert!(lines.iter().any(|l| l.starts_with("B24_APPLICATION_TOKEN=")), "webhook mode needs it: {lines:?}");
    let registered = app.emulator.calls().into_iter().filter(|c| c.method == "imbot.v2.Bot.register").collect::<Vec<_>>();
    assert_eq!(registered[0].params["fields"]["webhookUrl"], "https://bridge.example.com/bitrix/events");
    assert_eq!(registered[0].params["fields"]["type"], "openline");

    // The same bot in the other mode: refused, not silently kept.
    let out = run_olbridge(dir.path(), &env, &["register-bot", "--v2", "--fetch"]).await.unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("webhook mode"), "{}", String::from_utf8_lossy(&out.stderr));
    // Another token for the same code: refused with the way out.
    let wrong = [env[0], env[1], ("B24_BOT_CLIENT_ID", "not-its-token")];
    let out = run_olbridge(dir.path(), &wrong, &["register-bot", "--v2"]).await.unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("B24_BOT_CLIENT_ID"), "{}", String::from_utf8_lossy(&out.stderr));

    // Fetch mode: no public URL needed, no handler URL sent.
    let fetch_env = [("B24_WEBHOOK_BASE", webhook)];
    let args = ["register-bot", "--v2", "--fetch", "--code", "olbridge_fetch"];
    let first = run_olbridge(dir.path(), &fetch_env, &args).await.unwrap();
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let second = run_olbridge(dir.path(), &fetch_env, &args).await.unwrap();
    assert!(String::from_utf8_lossy(&second.stdout).contains("nothing changed"));
    let lines = v2_env_lines(&first.stdout);
    assert_eq!(v2_env_lines(&second.stdout), lines);
    assert!(lines.contains(&"OLBRIDGE_MODE=fetch".to_owned()) && lines.contains(&"OLBRIDGE_BOT_API=v2".to_owned()), "{lines:?}");
    assert!(lines.iter().any(|l| l.starts_with("B24_MEMBER_ID=")), "fetch mode needs it: {lines:?}");
    assert_eq!(c_bots(&app, "olbridge_fetch").await.len(), 1);
    let last = app.emulator.calls().into_iter().rfind(|c| c.method == "imbot.v2.Bot.register").unwrap();
    assert_eq!(last.params["fields"]["eventMode"], "fetch");
    assert!(last.params["fields"].get("webhookUrl").is_none());
    app.shutdown().await;
}

#[tokio::test]
async fn doctor_names_what_is_missing_for_v2() {
    let app = TestApp::spawn(AppOptions { chatbot: Chatbot::V2Fetch, ..AppOptions::default() }).await.unwrap();
    app.customer_writes(PHONE, "hello").await.unwrap();
    app.wait_turns(1, REPLY_TIMEOUT).await;
    let with = |changes: &[(&str, Option<&str>)]| {
        let mut env = app.env.clone();
        for (k, v) in changes {
            match v {
                Some(v) => env.insert((*k).to_owned(), (*v).to_owned()),
                None => env.remove(*k),
            };
        }
        Config::from_map(&env).unwrap()
    };
    let checks = doctor::checks(&with(&[])).await;
    assert!(fails(&checks).is_empty(), "{checks:#?}");
    assert!(checks.iter().any(|c| matches!(c, Check::Ok(t) if t.contains("no public endpoint is needed"))), "{checks:#?}");
    assert!(checks.iter().any(|c| matches!(c, Check::Ok(t) if t.contains("botToken; the bot is in fetch mode"))), "{checks:#?}");

    // Push mode with this fetch-mode bot, and no application token to verify pushed events with.
    let checks = doctor::checks(&with(&[("OLBRIDGE_MODE", None)])).await;
    let f = fails(&checks);
    assert!(f.iter().any(|t| t.contains("B24_APPLICATION_TOKEN is not set")), "{checks:#?}");
    assert!(f.iter().any(|t| t.contains("is in fetch mode") && t.contains("OLBRIDGE_MODE=fetch")), "{checks:#?}");
    // A token the portal does not accept.
    let checks = doctor::checks(&with(&[("B24_BOT_CLIENT_ID", Some("not-its-token"))])).await;
    assert!(fails(&checks).iter().any(|t| t.contains("refused B24_BOT_CLIENT_ID")), "{checks:#?}");
    // No member id, and none pinned (another store).
    let dir = tempfile::TempDir::new().unwrap();
    let dir = dir.path().display().to_string();
    let checks = doctor::checks(&with(&[("B24_MEMBER_ID", None), ("OLBRIDGE_DATA_DIR", Some(&dir))])).await;
    assert!(fails(&checks).iter().any(|t| t.contains("B24_MEMBER_ID is not set, and fetch mode needs it")), "{checks:#?}");
    // A v1 bot cannot fetch; a v1 id with the v2 API is no v2 bot.
    let checks = doctor::checks(&with(&[("OLBRIDGE_BOT_API", Some("v1"))])).await;
    assert!(fails(&checks).iter().any(|t| t.contains("needs a Chatbots 2.0 bot")), "{checks:#?}");
    app.shutdown().await;
}

#[tokio::test]
async fn serve_in_fetch_mode_without_a_member_id_refuses_to_start_and_says_why() {
    let app = TestApp::spawn(AppOptions { chatbot: Chatbot::V2Fetch, ..AppOptions::default() }).await.unwrap();
    let dir = tempfile::TempDir::new().unwrap();
    let data = dir.path().join("store").display().to_string();
    let mut env: Vec<(&str, &str)> =
        app.env.iter().filter(|(k, _)| *k != "B24_MEMBER_ID" && *k != "OLBRIDGE_DATA_DIR").map(|(k, v)| (k.as_str(), v.as_str())).collect();
    env.extend([("OLBRIDGE_DATA_DIR", data.as_str()), ("OLBRIDGE_LISTEN", "127.0.0.1:0")]);
    let out = run_olbridge(dir.path(), &env, &["serve"]).await.unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("fetch mode needs the portal's member id") && err.contains("B24_MEMBER_ID"), "{err}");
    app.shutdown().await;
}
