//! `olbridge doctor`: checks a setup end to end and says, in plain words, what is wrong and how to
//! fix it. Every check runs even when an earlier one failed, so one run lists every problem.
//!
//! What is checked depends on the mode (`OLBRIDGE_MODE`): push and fetch need a registered bot on
//! a line and (push) a reachable handler; operator mode needs only the `im` and `imopenlines`
//! scopes and the webhook's user in a line's queue. The scope check names every mode the webhook
//! allows, so moving between modes starts with knowing which ones it can do.
//!
//! Two checks need no portal: the handler URL must be one a Bitrix24 portal can call (public
//! HTTPS, contract §3.3: a loopback or plain-http address registers fine and then never receives
//! an event), and `B24_MEMBER_ID`, which nobody can look up in the Bitrix24 UI: it is the
//! `auth[member_id]` of every event; the bridge pins the first verified one in its store, so once
//! it has received an event, doctor can name the line to add to `.env`.
//!
//! `olbridge doctor --json` prints the deep health report instead (`report`): core's checks
//! (`olbridge_core::usecase::health`: portal and scopes, bot, store, queue age) over the local
//! store, then these configuration checks as `setup` entries.
//!
//! A Chatbots 2.0 setup gets its own checks (`doctor_v2`): token, event mode, and what the mode
//! needs. In fetch mode there is no handler URL to check, and `B24_MEMBER_ID` (or a pinned one) is
//! required: fetched events carry no member id.

use std::net::IpAddr;
use std::process::ExitCode;
use std::time::Duration;

use olbridge_core::b24::{B24Client, ClientOptions, ErrorKind};
use olbridge_core::config::{Config, Mode};
use olbridge_core::ports::MetaStore as _;
use olbridge_core::ports::WorkQueueAge;
use olbridge_core::usecase::health::{self, CheckResult, HealthDeps, HealthReport, Status};
use olbridge_core::usecase::receive::MemberPin;
use olbridge_sqlite::SqliteStore;
use url::{Host, Url};

use crate::output::OutputError;

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
    fn print(&self) -> Result<(), OutputError> {
        match self {
            Self::Ok(t) => crate::outln!("  ok    {t}"),
            Self::Warn(t) => crate::outln!("  warn  {t}"),
            Self::Fail(t) => crate::outln!("  FAIL  {t}"),
        }
    }
}

/// Runs every check and returns them in order.
pub async fn checks(config: &Config) -> Vec<Check> {
    let mut out = vec![Check::Ok(format!("mode: {} ({})", config.mode().name(), mode_why(config)))];
    out.extend(portal_checks(config).await);
    if config.mode() != Mode::Operator {
        out.extend(handler_checks(config).await);
    }
    out.push(member_id_check(config).await);
    out.push(bot_check(config).await);
    out
}

fn mode_why(config: &Config) -> &'static str {
    match (config.sources.mode, config.portal.bot_id) {
        (Some(_), _) => "OLBRIDGE_MODE",
        (None, Some(_)) => "OLBRIDGE_MODE is not set and B24_BOT_ID is",
        (None, None) => "OLBRIDGE_MODE and B24_BOT_ID are not set",
    }
}

pub use olbridge_core::usecase::health::{MODE_SCOPES, modes_allowed};

fn scope_check(config: &Config, scopes: &[String]) -> Check {
    let allowed = modes_allowed(scopes);
    let names: Vec<&str> = allowed.iter().map(|m| m.name()).collect();
    let mode = config.mode();
    if allowed.contains(&mode) {
        return Check::Ok(format!("scopes: {}; they allow the modes: {}", scopes.join(", "), names.join(", ")));
    }
    let missing = health::missing_scopes(mode, scopes);
    let others = if names.is_empty() { "none".to_owned() } else { names.join(", ") };
    Check::Fail(format!(
        "{} mode needs the scope(s) {} the webhook lacks: edit the webhook in Bitrix24 and tick them (its scopes {} allow: {others})",
        mode.name(),
        missing.join(", "),
        scopes.join(", ")
    ))
}

async fn portal_checks(config: &Config) -> Vec<Check> {
    let mut out = Vec::new();
    let Some(webhook) = config.portal.webhook.clone() else {
        out.push(Check::Fail(
            "B24_WEBHOOK_BASE is not set: create an incoming webhook for the service user (scopes im, imopenlines, imbot) and put its URL in .env".into(),
        ));
        return out;
    };
    let client = match B24Client::new(webhook.clone(), doctor_client_options()) {
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
        Ok(scopes) => out.push(scope_check(config, &scopes)),
        Err(e) => out.push(Check::Fail(format!("scope failed: {e}"))),
    }
    if config.mode() == Mode::Operator {
        out.extend(operator_line_checks(&client).await);
        return out;
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
        out.push(Check::Fail("B24_BOT_CLIENT_ID is not set: it is printed by `olbridge register-bot` (the v2 botToken with --v2)".into()));
    }
    out.extend(super::doctor_v2::checks(&client, config).await);
    out.extend(line_checks(&client, config, bot_id).await);
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

/// Operator mode: the webhook's user sees a line's chats only as one of its queue operators.
async fn operator_line_checks(client: &B24Client) -> Vec<Check> {
    let me = client.webhook().user_id().get();
    let lines = match client.imopenlines_config_list_get(0, 200).await {
        Ok(l) => l,
        Err(e) => return vec![Check::Fail(format!("imopenlines.config.list.get failed: {e}"))],
    };
    let in_queue =
        |l: &&olbridge_core::b24::imopenlines::LineConfig| l.queue.iter().any(|q| q.as_u64().or_else(|| q.as_str().and_then(|s| s.parse().ok())) == Some(me));
    let served: Vec<String> = lines.iter().filter(|l| l.active).filter(in_queue).map(|l| format!("{:?} ({})", l.line_name, l.id)).collect();
    if served.is_empty() {
        return vec![Check::Fail(format!(
            "the webhook's user ({me}) is in no active line's queue, so it sees no Open Lines chat: Contact Center -> WhatsApp line -> Settings -> Queue, add it (see docs/migration.md)"
        ))];
    }
    vec![Check::Ok(format!("the webhook's user ({me}) is a queue operator of: {}", served.join(", ")))]
}

async fn handler_checks(config: &Config) -> Vec<Check> {
    if config.mode() == Mode::Fetch {
        return vec![Check::Ok("fetch mode: the bridge pulls the bot's events (imbot.v2.Event.get), no public endpoint is needed".into())];
    }
    let Some(base) = &config.runner.public_url else {
        return vec![Check::Warn("OLBRIDGE_PUBLIC_URL is not set: cannot check that Bitrix24 can reach the receiver".into())];
    };
    let mut out = Vec::new();
    if let Some(problem) = unreachable_for_bitrix24(base) {
        out.push(Check::Fail(format!(
            "OLBRIDGE_PUBLIC_URL {base} {problem}: Bitrix24 only calls public HTTPS handler URLs (no localhost, no self-signed certificates). \
             Put a TLS reverse proxy with a real certificate in front of OLBRIDGE_LISTEN, set OLBRIDGE_PUBLIC_URL=https://<public host>, \
             and if the bot was registered with this address, register it with the new one (`olbridge register-bot --code <new code>`) and attach that bot to the line"
        )));
    }
    let url = format!("{}/health", base.as_str().trim_end_matches('/'));
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build();
    out.push(match client {
        Ok(c) => match c.get(&url).send().await {
            Ok(r) if r.status().is_success() => Check::Ok(format!("the receiver answers at {url}")),
            Ok(r) => Check::Fail(format!("{url} answered HTTP {}: is the bridge running behind that address?", r.status().as_u16())),
            Err(_) => Check::Fail(format!("{url} is not reachable from here: start `olbridge serve` and check DNS, TLS and the proxy in front of it")),
        },
        Err(e) => Check::Fail(format!("cannot build an HTTP client: {e}")),
    });
    out
}

/// Why a Bitrix24 portal cannot call `url`, if it cannot: not HTTPS, or a host that is not public.
pub fn unreachable_for_bitrix24(url: &Url) -> Option<&'static str> {
    let private = match url.host() {
        None => return Some("has no host"),
        Some(Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d == "localhost" || d.ends_with(".localhost") || d.ends_with(".local") || !d.contains('.')
        }
        Some(Host::Ipv4(ip)) => !is_public(IpAddr::V4(ip)),
        Some(Host::Ipv6(ip)) => !is_public(IpAddr::V6(ip)),
    };
    if private {
        Some("is a loopback or private address")
    } else if url.scheme() != "https" {
        Some("is plain http")
    } else {
        None
    }
}

fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !(v4.is_loopback() || v4.is_private() || v4.is_link_local() || v4.is_unspecified() || v4.is_broadcast()),
        IpAddr::V6(v6) => {
            let unique_local = (v6.segments()[0] & 0xfe00) == 0xfc00;
            let link_local = (v6.segments()[0] & 0xffc0) == 0xfe80;
            !(v6.is_loopback() || v6.is_unspecified() || unique_local || link_local) && v6.to_ipv4_mapped().is_none_or(|v4| is_public(IpAddr::V4(v4)))
        }
    }
}

/// `B24_MEMBER_ID`: where to find it, and whether it agrees with the member id the bridge pinned
/// from the first verified event.
async fn member_id_check(config: &Config) -> Check {
    let pinned = pinned_member_id(config).await;
    if config.mode() == Mode::Operator && config.portal.member_id.is_none() && pinned.is_none() {
        return Check::Warn(
            "B24_MEMBER_ID is not set: operator mode receives no event to learn it from, and no REST call of an incoming webhook returns it,              so messages are keyed with a stand-in named after the portal's domain. That works on its own; before running push and polling              on the same chats, or moving to push mode, set B24_MEMBER_ID (the auth[member_id] of any event; `olbridge doctor` names it once              a push-mode bridge has received one)"
                .into(),
        );
    }
    match (&config.portal.member_id, pinned) {
        (Some(m), Some(p)) if m.as_str() != p => Check::Fail(format!(
            "B24_MEMBER_ID is {m}, but the bridge pinned member id {p} from the events it verified: check which portal B24_WEBHOOK_BASE belongs to and fix B24_MEMBER_ID"
        )),
        (Some(m), _) => Check::Ok(format!("B24_MEMBER_ID is set ({m}): events from other portals are refused")),
        (None, Some(p)) => Check::Warn(format!(
            "B24_MEMBER_ID is not set; the bridge pinned member id {p} from the first verified event and refuses events naming another portal. \
             Add B24_MEMBER_ID={p} to .env to make it explicit (it then never depends on which event came first)"
        )),
        (None, None) if config.mode() == Mode::Fetch => Check::Fail(
            "B24_MEMBER_ID is not set, and fetch mode needs it: fetched events carry no auth block, so the bridge cannot learn it \
             (`olbridge serve` refuses to start). See docs/bitrix24-setup.md, \"Chatbots 2.0\", for where to find it"
                .into(),
        ),
        (None, None) => Check::Warn(
            "B24_MEMBER_ID is not set: the bridge will pin the member id of the first verified event and refuse others. The Bitrix24 UI does not show it: \
             every event carries it as auth[member_id], and the bridge logs it (WARN \"learned the portal's member id\") when it pins it. \
             Once `olbridge serve` has received an event, run `olbridge doctor` again and it names the line to add"
                .into(),
        ),
    }
}

/// The member id the bridge pinned in the local store, if there is a store and it pinned one.
async fn pinned_member_id(config: &Config) -> Option<String> {
    let store = SqliteStore::open_for_admin(&config.runner.data_dir).ok()?;
    store.get_value(MemberPin::META_NAME).await.ok().flatten().map(|v| v.value)
}

/// The bot: core's probe (`olbridge_core::usecase::health::bot_check`: an HTTP GET, no question).
async fn bot_check(config: &Config) -> Check {
    let c = health::bot_check(config.bot.url.as_ref(), BOT_PROBE_TIMEOUT).await;
    match c.status {
        Status::Ok => Check::Ok(c.detail),
        Status::Warn => Check::Warn(c.detail),
        Status::Fail => Check::Fail(format!("{}: check BOT_HTTP_URL and that the bot runs and is reachable from this machine", c.detail)),
    }
}

/// How long the bot probe waits.
const BOT_PROBE_TIMEOUT: Duration = Duration::from_secs(5);

impl Check {
    /// As a check of a [`HealthReport`], named `setup` (doctor's configuration checks).
    fn to_result(&self) -> CheckResult {
        let (status, detail) = match self {
            Self::Ok(t) => (Status::Ok, t),
            Self::Warn(t) => (Status::Warn, t),
            Self::Fail(t) => (Status::Fail, t),
        };
        CheckResult { name: "setup".into(), status, detail: detail.clone(), elapsed_ms: 0 }
    }
}

/// The deep health report (`olbridge_core::usecase::health`) over the local store and queue, then
/// doctor's configuration checks (lines, handler URL, member id...) as `setup` entries; the bot is
/// checked once, by the deep check.
pub async fn report(config: &Config) -> HealthReport {
    let client = config.portal.webhook.clone().and_then(|w| B24Client::new(w, doctor_client_options()).ok());
    let now = chrono::Utc::now();
    let mut checks = match SqliteStore::open_for_admin(&config.runner.data_dir) {
        Ok(store) => {
            let queue = WorkQueueAge(&store);
            let deps = HealthDeps {
                portal: client.as_ref(),
                mode: config.mode(),
                bot_url: config.bot.url.as_ref(),
                bot_timeout: BOT_PROBE_TIMEOUT,
                meta: &store,
                queue: &queue,
                queue_warn: config.health.queue_warn,
                queue_fail: config.health.queue_fail,
            };
            health::check(&deps, now).await.checks
        }
        Err(e) => {
            let started = std::time::Instant::now();
            let (status, why) = match e {
                olbridge_sqlite::OpenError::Missing { .. } => (Status::Warn, "no store in OLBRIDGE_DATA_DIR yet: `olbridge serve` creates it".to_owned()),
                other => (Status::Fail, format!("cannot open the store in OLBRIDGE_DATA_DIR: {other}")),
            };
            vec![
                health::portal_check(client.as_ref(), config.mode()).await,
                health::bot_check(config.bot.url.as_ref(), BOT_PROBE_TIMEOUT).await,
                CheckResult::new("store", status, why.clone(), started),
                CheckResult::new("queue", status, why, started),
            ]
        }
    };
    let mut setup = vec![Check::Ok(format!("mode: {} ({})", config.mode().name(), mode_why(config)))];
    setup.extend(portal_checks(config).await);
    if config.mode() != Mode::Operator {
        setup.extend(handler_checks(config).await);
    }
    setup.push(member_id_check(config).await);
    checks.extend(setup.iter().map(Check::to_result));
    HealthReport::new(checks)
}

fn doctor_client_options() -> ClientOptions {
    ClientOptions { retry: olbridge_core::retry::RetryPolicy::exponential(2, Duration::from_millis(500), Duration::from_secs(2)), ..ClientOptions::default() }
}

/// Runs `olbridge doctor --json`: the report on stdout; failure when a check failed.
pub async fn run_json(config: &Config) -> anyhow::Result<ExitCode> {
    let report = report(config).await;
    crate::outln!("{}", serde_json::to_string_pretty(&report)?)?;
    Ok(if report.failed() { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// Runs `olbridge doctor`.
pub async fn run(config: &Config) -> anyhow::Result<ExitCode> {
    crate::outln!("olbridge doctor")?;
    let results = checks(config).await;
    for c in &results {
        c.print()?;
    }
    let failed = results.iter().filter(|c| matches!(c, Check::Fail(_))).count();
    if failed == 0 {
        crate::outln!("\nEverything needed is in place.")?;
        Ok(ExitCode::SUCCESS)
    } else {
        crate::outln!("\n{failed} problem(s) to fix.")?;
        Ok(ExitCode::FAILURE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_https_urls_reach_a_handler() {
        let problem = |u: &str| unreachable_for_bitrix24(&Url::parse(u).unwrap());
        assert_eq!(problem("https://bridge.example.com"), None);
        assert_eq!(problem("https://203.0.113.7:8443/x"), None);
        assert_eq!(problem("http://bridge.example.com"), Some("is plain http"));
        for private in [
            "https://127.0.0.1:8080",
            "http://localhost:8080",
            "https://[::1]/",
            "https://10.0.0.5",
            "https://192.168.1.2",
            "https://bridge/",
            "https://0.0.0.0",
        ] {
            assert_eq!(problem(private), Some("is a loopback or private address"), "{private}");
        }
    }
}
