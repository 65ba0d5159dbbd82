//! `olbridge doctor`: checks a setup end to end and says, in plain words, what is wrong and how to
//! fix it. Every check runs even when an earlier one failed, so one run lists every problem.

use std::process::ExitCode;
use std::time::Duration;

use olbridge_core::b24::{B24Client, ClientOptions, ErrorKind};
use olbridge_core::config::Config;

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Fine.
    Ok(String),
    /// Works, but worth a look.
    Warn(String),
    /// Broken; the text says how to fix it.
    Fail(String),
}

impl Check {
    fn print(&self) {
        match self {
            Self::Ok(t) => println!("  ok    {t}"),
            Self::Warn(t) => println!("  warn  {t}"),
            Self::Fail(t) => println!("  FAIL  {t}"),
        }
    }
}

/// Runs every check and returns them in order.
pub async fn checks(config: &Config) -> Vec<Check> {
    let mut out = Vec::new();
    let Some(webhook) = config.portal.webhook.clone() else {
        out.push(Check::Fail(
            "B24_WEBHOOK_BASE is not set: create an incoming webhook for the service user (scopes im, imopenlines, imbot) and put its URL in .env".into(),
        ));
        return out;
    };
    let options = ClientOptions {
        retry: olbridge_core::retry::RetryPolicy::exponential(2, Duration::from_millis(500), Duration::from_secs(2)),
        ..ClientOptions::default()
    };
    let client = match B24Client::new(webhook.clone(), options) {
        Ok(c) => c,
        Err(e) => {
            out.push(Check::Fail(format!("cannot build the REST client: {e}")));
            return out;
        }
    };
    match client.profile().await {
        Ok(p) => out.push(Check::Ok(format!("webhook {webhook} works; it acts as {} {} (user {})", p.name, p.last_name, p.id))),
        Err(e) if e.kind == ErrorKind::Auth => {
            out.push(Check::Fail(format!("the portal refused the webhook ({}): check B24_WEBHOOK_BASE, the webhook may have been deleted or expired", e.code)));
            return out;
        }
        Err(e) => {
            out.push(Check::Fail(format!("cannot reach the portal: {e}")));
            return out;
        }
    }
    match client.scope().await {
        Ok(scopes) => {
            let missing: Vec<&str> = ["im", "imopenlines", "imbot"].into_iter().filter(|s| !scopes.iter().any(|g| g == s)).collect();
            if missing.is_empty() {
                out.push(Check::Ok(format!("scopes: {}", scopes.join(", "))));
            } else {
                out.push(Check::Fail(format!("the webhook lacks the scope(s) {}: edit the webhook in Bitrix24 and tick them", missing.join(", "))));
            }
        }
        Err(e) => out.push(Check::Fail(format!("scope failed: {e}"))),
    }
    let bot_id = config.portal.bot_id.map(|b| b.get());
    match (bot_id, client.imbot_bot_list().await) {
        (None, _) => out.push(Check::Fail("B24_BOT_ID is not set: run `olbridge register-bot`".into())),
        (Some(id), Ok(bots)) => match bots.iter().find(|b| b.id == id) {
            Some(b) => out.push(Check::Ok(format!("bot {id} ({:?}, code {:?}) is registered", b.name, b.code))),
            None => out.push(Check::Fail(format!("bot {id} is not registered on this portal: run `olbridge register-bot` and update .env"))),
        },
        (Some(_), Err(e)) => out.push(Check::Fail(format!("imbot.bot.list failed: {e}"))),
    }
    if config.portal.bot_client_id.is_none() {
        out.push(Check::Fail("B24_BOT_CLIENT_ID is not set: it is printed by `olbridge register-bot`".into()));
    }
    out.extend(line_checks(&client, config, bot_id).await);
    out.push(handler_check(config).await);
    out.push(bot_check(config).await);
    out
}

async fn line_checks(client: &B24Client, config: &Config, bot_id: Option<u64>) -> Vec<Check> {
    let lines = match client.imopenlines_config_list_get(0, 200).await {
        Ok(l) => l,
        Err(e) => return vec![Check::Fail(format!("imopenlines.config.list.get failed: {e}"))],
    };
    let active: Vec<_> = lines.iter().filter(|l| l.active).collect();
    if active.is_empty() {
        return vec![Check::Fail("no active Open Lines: create the WhatsApp line in the Contact Center first".into())];
    }
    let Some(bot_id) = bot_id else { return Vec::new() };
    let served: Vec<_> = active.iter().filter(|l| l.welcome_bot_enable && l.welcome_bot_id == bot_id).collect();
    let mut out = Vec::new();
    if served.is_empty() {
        let names: Vec<String> = active.iter().map(|l| format!("{} ({})", l.line_name, l.id)).collect();
        out.push(Check::Fail(format!(
            "the bot is not attached to any line ({}): Contact Center -> WhatsApp line -> Settings -> Chatbot, see docs/bitrix24-setup.md",
            names.join(", ")
        )));
    }
    for l in served {
        out.push(Check::Ok(format!("line {:?} ({}) is served by the bot", l.line_name, l.id)));
        let needed = config.bot.timeout.as_secs() + 60;
        if l.welcome_bot_time > 0 && l.welcome_bot_time < needed {
            out.push(Check::Warn(format!(
                "line {}: the chat moves to operators after {} s, less than the bot's timeout + 60 s ({needed} s): slow answers will be refused",
                l.id, l.welcome_bot_time
            )));
        }
    }
    out
}

async fn handler_check(config: &Config) -> Check {
    let Some(base) = &config.runner.public_url else {
        return Check::Warn("OLBRIDGE_PUBLIC_URL is not set: cannot check that Bitrix24 can reach the receiver".into());
    };
    let url = format!("{}/health", base.as_str().trim_end_matches('/'));
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build();
    match client {
        Ok(c) => match c.get(&url).send().await {
            Ok(r) if r.status().is_success() => Check::Ok(format!("the receiver answers at {url}")),
            Ok(r) => Check::Fail(format!("{url} answered HTTP {}: is the bridge running behind that address?", r.status().as_u16())),
            Err(_) => Check::Fail(format!("{url} is not reachable from here: start `olbridge serve` and check DNS, TLS and the proxy in front of it")),
        },
        Err(e) => Check::Fail(format!("cannot build an HTTP client: {e}")),
    }
}

async fn bot_check(config: &Config) -> Check {
    let Some(url) = &config.bot.url else { return Check::Fail("BOT_HTTP_URL is not set: the URL of your bot's HTTP endpoint".into()) };
    let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else { return Check::Fail("BOT_HTTP_URL has no host".into()) };
    match tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect((host, port))).await {
        Ok(Ok(_)) => Check::Ok(format!("the bot's host {host}:{port} accepts connections (no request was sent)")),
        _ => Check::Fail(format!("cannot connect to the bot at {host}:{port}: is it running, and reachable from this machine?")),
    }
}

/// Runs `olbridge doctor`.
pub async fn run(config: &Config) -> anyhow::Result<ExitCode> {
    println!("olbridge doctor");
    let results = checks(config).await;
    for c in &results {
        c.print();
    }
    let failed = results.iter().filter(|c| matches!(c, Check::Fail(_))).count();
    if failed == 0 {
        println!("\nEverything needed is in place.");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("\n{failed} problem(s) to fix.");
        Ok(ExitCode::FAILURE)
    }
}
