//! The deep health check and the synthetic canary, as an operator runs them: `olbridge doctor
//! --json` and `olbridge canary` as processes beside an `olbridge serve` process, the emulator as
//! the portal and the test bot, which the tests stop to see both report it.

use olbridge_tests::{AppOptions, TestApp, run_olbridge};
use serde_json::Value;

const TIMEOUT_SEC: &str = "20";

async fn app() -> TestApp {
    let opts = AppOptions { extra_env: vec![("OLBRIDGE_CANARY_TIMEOUT_SEC".into(), TIMEOUT_SEC.into())], ..AppOptions::default() };
    TestApp::spawn_process(opts).await.unwrap()
}

async fn olbridge(app: &TestApp, args: &[&str]) -> std::process::Output {
    let dir = tempfile::TempDir::new().unwrap();
    let env: Vec<(&str, &str)> = app.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    run_olbridge(dir.path(), &env, args).await.unwrap()
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"].as_array().unwrap().iter().find(|c| c["name"] == name).unwrap_or_else(|| panic!("no {name} check in {report}"))
}

#[tokio::test]
async fn the_canary_passes_with_the_bot_up_and_fails_once_it_stops_without_a_handoff() {
    let mut app = app().await;

    let out = olbridge(&app, &["canary"]).await;
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}\nserve: {}", app.serve_log());
    assert_eq!(stdout.lines().count(), 1, "one line: {stdout}");
    assert!(stdout.starts_with("canary passed: the bot replied in "), "{stdout}");
    let asked = app.bot.received();
    assert_eq!(asked.len(), 1, "the bot was asked once: {asked:?}");
    let text = asked[0].body["text"].as_str().unwrap_or_default();
    assert!(text.starts_with("olbridge canary "), "the canary's message reached the bot: {text}");

    app.bot.stop();
    let out = olbridge(&app, &["canary"]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.starts_with("canary FAILED after ") && stderr.contains("fallback message"), "{stderr}");

    // Neither canary was a customer turn: nothing in the turn log, no chat handed to an operator.
    assert!(app.turns().await.is_empty(), "{:?}", app.turns().await);
    let handoffs: Vec<_> = app.emulator.calls().into_iter().filter(|c| c.method.starts_with("imopenlines.bot.session")).collect();
    assert!(handoffs.is_empty(), "{handoffs:?}");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn doctor_json_is_a_report_and_fails_when_the_bot_is_down() {
    let mut app = app().await;

    let out = olbridge(&app, &["doctor", "--json"]).await;
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)));
    for name in ["portal", "bot", "store", "queue"] {
        let c = check(&report, name);
        assert_eq!(c["status"], "ok", "{c}");
        assert!(c["elapsed_ms"].is_u64() && c["detail"].is_string(), "{c}");
    }
    assert!(report["checks"].as_array().unwrap().iter().any(|c| c["name"] == "setup"), "{report}");
    let text = String::from_utf8_lossy(&out.stdout);
    let code = app.env["B24_WEBHOOK_BASE"].trim_end_matches('/').rsplit('/').next().unwrap().to_owned();
    assert!(!text.contains(&code), "no webhook code in the report: {text}");

    app.bot.stop();
    let out = olbridge(&app, &["doctor", "--json"]).await;
    assert!(!out.status.success(), "a failing check fails the command");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["status"], "fail", "{report}");
    assert_eq!(check(&report, "bot")["status"], "fail", "{report}");
    assert_eq!(check(&report, "store")["status"], "ok", "{report}");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_fetch_mode_bridge_answers_the_canary_too() {
    let opts = AppOptions {
        chatbot: olbridge_tests::Chatbot::V2Fetch,
        extra_env: vec![("OLBRIDGE_CANARY_TIMEOUT_SEC".into(), TIMEOUT_SEC.into())],
        ..AppOptions::default()
    };
    let mut app = TestApp::spawn_process(opts).await.unwrap();
    let out = olbridge(&app, &["canary"]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {}\nserve: {}", String::from_utf8_lossy(&out.stderr), app.serve_log());
    assert!(stdout.starts_with("canary passed: "), "{stdout}");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn serve_runs_the_canary_on_its_schedule_and_logs_a_failure() {
    let opts = AppOptions {
        extra_env: vec![("OLBRIDGE_CANARY_EVERY_SEC".into(), "1".into()), ("OLBRIDGE_CANARY_TIMEOUT_SEC".into(), TIMEOUT_SEC.into())],
        ..AppOptions::default()
    };
    let mut app = TestApp::spawn_process(opts).await.unwrap();
    // Up: the canaries reach the bot.
    assert!(app.bot.wait_requests(1, crate::REPLY_TIMEOUT).await >= 1, "serve: {}", app.serve_log());
    app.bot.stop();
    let log = olbridge_tests::poll_until(crate::REPLY_TIMEOUT, || async { app.serve_log() }, |l| l.contains("canary FAILED")).await;
    let line = log.lines().find(|l| l.contains("canary FAILED")).unwrap_or_else(|| panic!("no failure logged: {log}"));
    assert!(line.contains("ERROR") && line.contains("fallback message"), "{line}");
    app.stop().await.unwrap();
}
