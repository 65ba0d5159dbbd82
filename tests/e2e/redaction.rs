//! No secret and no phone number in any log line: the bridge runs as `olbridge serve` at TRACE, in
//! the compact and the JSON format, while the phone number, the webhook code, the application
//! token (a v1 bot's `CLIENT_ID`), `BOT_HTTP_AUTH` and `BOT_HMAC_SECRET` appear in every field we
//! can put them in: the customer's texts, the bot's answers and profile patch, the bot's error
//! bodies, forged and malformed events. Every byte the process logged is searched for each of them.

use std::time::Duration;

use olbridge_tests::bot::Reply;
use olbridge_tests::{AppOptions, PHONE, TestApp};
use serde_json::json;

use crate::REPLY_TIMEOUT;

const BOT_AUTH: &str = "Bearer botauth-Zq81xK";
const HMAC: &str = "hmacsecret-Pw4u9Y";

/// The webhook code of `https://<portal>/rest/<user>/<code>/`.
fn webhook_code(app: &TestApp) -> String {
    let base = &app.env["B24_WEBHOOK_BASE"];
    base.trim_end_matches('/').rsplit('/').next().expect("a code").to_owned()
}

/// What must never be logged, with a name for the failure message.
fn secrets(app: &TestApp) -> Vec<(&'static str, String)> {
    let digits: String = PHONE.chars().filter(char::is_ascii_digit).collect();
    vec![
        ("phone", digits),
        ("webhook code", webhook_code(app)),
        ("application token / CLIENT_ID", app.client_id.clone()),
        ("BOT_HTTP_AUTH", "botauth-Zq81xK".to_owned()),
        ("BOT_HMAC_SECRET", HMAC.to_owned()),
    ]
}

/// Every secret in one string, as a customer (or a bot) might write them.
fn all_of_them(app: &TestApp) -> String {
    secrets(app).iter().map(|(what, v)| format!("{what}: {v}")).collect::<Vec<_>>().join(", ") + &format!(", call me on {PHONE}")
}

async fn run(json_logs: bool) -> (String, Vec<(&'static str, String)>) {
    let mut extra_env = vec![("RUST_LOG".to_owned(), "trace".to_owned()), ("BOT_HTTP_AUTH".to_owned(), BOT_AUTH.to_owned())];
    if json_logs {
        extra_env.push(("OLBRIDGE_LOG_FORMAT".to_owned(), "json".to_owned()));
    }
    let opts = AppOptions { extra_env, hmac_secret: Some(HMAC.to_owned()), bot_max_attempts: 2, ..AppOptions::default() };
    let app = TestApp::spawn_process(opts).await.unwrap();
    let everything = all_of_them(&app);

    // 1. Answered: the bot repeats every secret and stores them in the profile.
    app.bot.script([Reply::Json(json!({"reply_text": format!("noted: {everything}"), "profile": {"phone": PHONE, "notes": everything}}))]);
    app.customer_writes(PHONE, &format!("hello, {everything}")).await.unwrap();
    app.wait_turns(1, REPLY_TIMEOUT).await;
    // 2. The bot fails with the secrets in its error bodies: fallback.
    app.bot
        .script([Reply::Raw(500, "text/plain", format!("boom {everything}")), Reply::Raw(401, "application/json", format!("{{\"error\": \"{everything}\"}}"))]);
    app.customer_writes(PHONE, &format!("second, {everything}")).await.unwrap();
    app.wait_turns(2, REPLY_TIMEOUT).await;
    // 3. Forged and malformed events carrying them.
    let forged = format!(
        "event=ONIMBOTMESSAGEADD&auth[application_token]={t}x&auth[domain]={d}&data[PARAMS][MESSAGE]={m}&data[PARAMS][MESSAGE_ID]={p}&ts=1",
        t = app.client_id,
        d = app.emulator.domain(),
        m = urlencode(&everything),
        p = urlencode(PHONE),
    );
    let (status, _) = app.post_event(forged).await.unwrap();
    assert!(matches!(status, 400 | 401 | 403), "{status}");
    let malformed = format!("event=ONIMBOTMESSAGEADD&auth[application_token]={}&data[PARAMS][MESSAGE_ID]={}", app.client_id, urlencode(&everything));
    let (status, _) = app.post_event(malformed).await.unwrap();
    assert!(matches!(status, 400 | 401 | 403), "{status}");
    // The secrets were in play: the bot got the Authorization header and signed requests, and
    // the customer's phone reached it.
    let asked = app.bot.received();
    assert!(asked.iter().all(|r| r.headers.get("authorization").is_some_and(|v| v == BOT_AUTH) && r.headers.contains_key("x-olbridge-signature")));
    assert!(asked.iter().any(|r| r.body["phone"] == PHONE));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = app.serve_log();
    let secrets = secrets(&app);
    app.shutdown().await;
    (log, secrets)
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn assert_no_secret(log: &str, secrets: &[(&str, String)], format: &str) {
    assert!(log.lines().count() > 50, "{format}: the run logged at TRACE ({} lines)", log.lines().count());
    assert!(log.contains("turn finished") && log.contains("the bot failed: fallback message and handoff"), "{format}: the turns were logged");
    assert!(log.contains("TRACE") || log.contains("\"level\":\"TRACE\""), "{format}: at TRACE");
    let mut leaks = Vec::new();
    for (what, secret) in secrets {
        for line in log.lines().filter(|l| l.contains(secret.as_str())) {
            leaks.push(format!("{what} in: {line}"));
        }
    }
    assert!(leaks.is_empty(), "{format}: {} leaking line(s):\n{}", leaks.len(), leaks.join("\n"));
}

#[tokio::test]
async fn no_secret_or_phone_number_in_compact_logs_at_trace() {
    let (log, secrets) = run(false).await;
    assert!(!log.trim_start().starts_with('{'), "compact, not JSON");
    assert_no_secret(&log, &secrets, "compact");
}

#[tokio::test]
async fn no_secret_or_phone_number_in_json_logs_at_trace() {
    let (log, secrets) = run(true).await;
    // The start-up banner is plain text; every log line is a JSON object.
    let lines: Vec<&str> = log.lines().filter(|l| l.starts_with('{')).collect();
    assert!(lines.len() > 50 && lines.iter().all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()), "JSON log lines");
    assert_no_secret(&log, &secrets, "json");
}
