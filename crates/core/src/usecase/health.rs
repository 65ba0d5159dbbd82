//! The deep health check, shared by `olbridge doctor --json` and the poller Lambda's health
//! invocation (`{"olbridge":"health"}`). `GET /health` stays the cheap liveness check: this one
//! calls the portal, the bot and the store, so it is run on demand or on a schedule, not by a load
//! balancer every few seconds.
//!
//! # Checks
//! | name | ok | warn | fail |
//! |---|---|---|---|
//! | `portal` | `profile` and `scope` answer and the scopes allow the mode | | the webhook is refused, the portal is unreachable, or a scope the mode needs is missing |
//! | `bot` | `BOT_HTTP_URL` answers HTTP (any status below 500) | | not set, connection refused, timeout, or HTTP 5xx |
//! | `store` | a health value is written and read back through the [`MetaStore`] | | the write or the read fails, or reads back something else |
//! | `queue` | the oldest pending job is younger than the warn threshold (or the queue is empty) | older than `OLBRIDGE_HEALTH_QUEUE_WARN_SEC` | older than `OLBRIDGE_HEALTH_QUEUE_FAIL_SEC`, or the gauge cannot be read |
//!
//! # Why the bot probe sends no question
//! A real question (a fake customer turn) would cost a model call, land in the bot's logs and
//! analytics as a customer, and could not be told apart from one by a bot that does not know the
//! bridge's conventions. So the probe is a plain `GET` on `BOT_HTTP_URL` without a body: the bot
//! endpoint normally answers it with 404 or 405 (it takes POSTs), which proves a server is there and
//! its routing works. What counts as down is what would make a real call fail before the bot's
//! logic runs: no connection, no answer in time, or a 5xx (a proxy with no upstream answers 502).
//! Whether the bot actually *answers* is the canary's question (`crate::usecase::canary`).
//!
//! # What the details never say
//! No webhook code, bot token, URL path or query, phone number or error description text from a
//! transport error (reqwest writes the request URL, webhook code included, into its errors): the
//! report is meant to be pasted into a ticket or shown on a dashboard.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use url::Url;

use crate::b24::{B24Client, ErrorKind};
use crate::config::Mode;
use crate::ports::{MetaPut, MetaStore, QueueAge};

/// A check's (and the report's) verdict; ordered so the report's is the worst of its checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Fine.
    Ok,
    /// Works, but worth a look.
    Warn,
    /// Broken.
    Fail,
}

impl Status {
    /// `ok`, `warn` or `fail`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Warn => "warn",
            Self::Fail => "fail",
        }
    }
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckResult {
    /// `portal`, `bot`, `store`, `queue` (or a runtime's own, such as doctor's).
    pub name: String,
    /// The verdict.
    pub status: Status,
    /// What was found, in plain words (no secret, no phone number).
    pub detail: String,
    /// How long the check took, milliseconds.
    pub elapsed_ms: u64,
}

impl CheckResult {
    /// A result with the time elapsed since `started`.
    pub fn new(name: &str, status: Status, detail: impl Into<String>, started: Instant) -> Self {
        Self { name: name.to_owned(), status, detail: detail.into(), elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX) }
    }
}

/// The report: the worst status of its checks, and the checks in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthReport {
    /// The worst status of the checks (`ok` for none).
    pub status: Status,
    /// The checks.
    pub checks: Vec<CheckResult>,
}

impl HealthReport {
    /// The report over `checks`.
    pub fn new(checks: Vec<CheckResult>) -> Self {
        let status = checks.iter().map(|c| c.status).max().unwrap_or(Status::Ok);
        Self { status, checks }
    }

    /// Whether any check failed.
    pub fn failed(&self) -> bool {
        self.status == Status::Fail
    }
}

/// The scopes each mode needs (contract §4–§6): operator mode acts as the webhook's user with `im`
/// and `imopenlines` alone; the bot modes also need `imbot`.
pub const MODE_SCOPES: [(Mode, &[&str]); 3] =
    [(Mode::Operator, &["im", "imopenlines"]), (Mode::Push, &["im", "imopenlines", "imbot"]), (Mode::Fetch, &["im", "imopenlines", "imbot"])];

/// Which modes a webhook with `scopes` can run.
pub fn modes_allowed(scopes: &[String]) -> Vec<Mode> {
    MODE_SCOPES.iter().filter(|(_, need)| need.iter().all(|n| scopes.iter().any(|s| s == n))).map(|(m, _)| *m).collect()
}

/// The scopes `mode` needs that `scopes` lacks.
pub fn missing_scopes(mode: Mode, scopes: &[String]) -> Vec<&'static str> {
    let need = MODE_SCOPES.iter().find(|(m, _)| *m == mode).map_or(&[][..], |(_, n)| *n);
    need.iter().copied().filter(|n| !scopes.iter().any(|s| s == n)).collect()
}

/// What the deep check needs; each part may be missing (the check then says so).
pub struct HealthDeps<'a> {
    /// The REST client of `B24_WEBHOOK_BASE`.
    pub portal: Option<&'a B24Client>,
    /// The mode the bridge runs in.
    pub mode: Mode,
    /// `BOT_HTTP_URL`.
    pub bot_url: Option<&'a Url>,
    /// How long the bot probe waits.
    pub bot_timeout: Duration,
    /// The store.
    pub meta: &'a dyn MetaStore,
    /// The queue.
    pub queue: &'a dyn QueueAge,
    /// `OLBRIDGE_HEALTH_QUEUE_WARN_SEC`.
    pub queue_warn: Duration,
    /// `OLBRIDGE_HEALTH_QUEUE_FAIL_SEC`.
    pub queue_fail: Duration,
}

impl std::fmt::Debug for HealthDeps<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthDeps")
            .field("mode", &self.mode)
            .field("queue_warn", &self.queue_warn)
            .field("queue_fail", &self.queue_fail)
            .finish_non_exhaustive()
    }
}

/// The [`MetaStore`] name the store check writes.
pub const PROBE_NAME: &str = "health/probe";

/// Runs every check (each one even when an earlier one failed) and returns the report.
pub async fn check(deps: &HealthDeps<'_>, now: DateTime<Utc>) -> HealthReport {
    let (portal, bot, store, queue) = tokio::join!(
        portal_check(deps.portal, deps.mode),
        bot_check(deps.bot_url, deps.bot_timeout),
        store_check(deps.meta, now),
        queue_check(deps.queue, now, deps.queue_warn, deps.queue_fail),
    );
    HealthReport::new(vec![portal, bot, store, queue])
}

/// Why a REST call failed, without the error's description (a transport error's text carries the
/// request URL, webhook code included).
fn rest_failure(e: &crate::b24::B24Error) -> String {
    let code = if e.code.is_empty() { "no error code" } else { e.code.as_str() };
    match e.status {
        Some(s) => format!("{} failed ({code}, HTTP {s})", e.method),
        None => format!("{} failed ({code})", e.method),
    }
}

/// `portal`: the webhook works and its scopes allow the mode.
pub async fn portal_check(client: Option<&B24Client>, mode: Mode) -> CheckResult {
    const NAME: &str = "portal";
    let started = Instant::now();
    let Some(client) = client else { return CheckResult::new(NAME, Status::Fail, "B24_WEBHOOK_BASE is not set", started) };
    let me = match client.profile().await {
        Ok(p) => p.id,
        Err(e) if e.kind == ErrorKind::Auth => {
            return CheckResult::new(NAME, Status::Fail, format!("the portal refused the webhook: {}", rest_failure(&e)), started);
        }
        Err(e) => return CheckResult::new(NAME, Status::Fail, format!("the portal is not reachable: {}", rest_failure(&e)), started),
    };
    match client.scope().await {
        Ok(scopes) => {
            let missing = missing_scopes(mode, &scopes);
            if missing.is_empty() {
                CheckResult::new(
                    NAME,
                    Status::Ok,
                    format!("the webhook acts as user {me}; its scopes ({}) allow {} mode", scopes.join(", "), mode.name()),
                    started,
                )
            } else {
                let detail = format!("{} mode needs the scope(s) {} the webhook lacks (it has: {})", mode.name(), missing.join(", "), scopes.join(", "));
                CheckResult::new(NAME, Status::Fail, detail, started)
            }
        }
        Err(e) => CheckResult::new(NAME, Status::Fail, format!("the webhook works but {}", rest_failure(&e)), started),
    }
}

/// `bot`: something answers HTTP at `BOT_HTTP_URL` (see the module docs for why a `GET`).
pub async fn bot_check(url: Option<&Url>, timeout: Duration) -> CheckResult {
    const NAME: &str = "bot";
    let started = Instant::now();
    let Some(url) = url else { return CheckResult::new(NAME, Status::Fail, "BOT_HTTP_URL is not set", started) };
    let host = format!("{}:{}", url.host_str().unwrap_or("?"), url.port_or_known_default().unwrap_or(0));
    let client = match reqwest::Client::builder().timeout(timeout).redirect(reqwest::redirect::Policy::none()).build() {
        Ok(c) => c,
        Err(_) => return CheckResult::new(NAME, Status::Fail, "cannot build an HTTP client", started),
    };
    match client.get(url.clone()).send().await {
        Ok(r) if r.status().is_server_error() => {
            CheckResult::new(NAME, Status::Fail, format!("the bot at {host} answered HTTP {} to a probe", r.status().as_u16()), started)
        }
        Ok(r) => CheckResult::new(
            NAME,
            Status::Ok,
            format!("the bot at {host} answers (HTTP {} to a GET probe; no question was sent)", r.status().as_u16()),
            started,
        ),
        Err(e) if e.is_timeout() => {
            CheckResult::new(NAME, Status::Fail, format!("the bot at {host} did not answer within {} s", timeout.as_secs_f64()), started)
        }
        Err(_) => CheckResult::new(NAME, Status::Fail, format!("cannot connect to the bot at {host}: is it running?"), started),
    }
}

/// `store`: writes the time to [`PROBE_NAME`] and reads it back.
pub async fn store_check(meta: &dyn MetaStore, now: DateTime<Utc>) -> CheckResult {
    const NAME: &str = "store";
    let started = Instant::now();
    let value = now.to_rfc3339();
    let expected = match meta.get_value(PROBE_NAME).await {
        Ok(v) => v.map(|v| v.version),
        Err(e) => return CheckResult::new(NAME, Status::Fail, format!("cannot read the store: {}", e.kind_name()), started),
    };
    match meta.put_value(PROBE_NAME, &value, expected).await {
        Ok(MetaPut::Written(_)) => {}
        // Another check wrote in between: the store took a write, which is what is checked.
        Ok(MetaPut::Conflict(_)) => return CheckResult::new(NAME, Status::Ok, "writable (another health check wrote at the same time)", started),
        Err(e) => return CheckResult::new(NAME, Status::Fail, format!("cannot write to the store: {}", e.kind_name()), started),
    }
    match meta.get_value(PROBE_NAME).await {
        Ok(Some(v)) if v.value == value => CheckResult::new(NAME, Status::Ok, "a health value was written and read back", started),
        Ok(_) => CheckResult::new(NAME, Status::Fail, "the store did not return the value just written", started),
        Err(e) => CheckResult::new(NAME, Status::Fail, format!("cannot read back from the store: {}", e.kind_name()), started),
    }
}

/// `queue`: the age of the oldest pending job against the thresholds.
pub async fn queue_check(queue: &dyn QueueAge, now: DateTime<Utc>, warn: Duration, fail: Duration) -> CheckResult {
    const NAME: &str = "queue";
    let started = Instant::now();
    let gauge = match queue.gauge(now).await {
        Ok(g) => g,
        Err(e) => return CheckResult::new(NAME, Status::Fail, format!("cannot read the queue: {}", e.kind_name()), started),
    };
    let pending = gauge.pending.map_or_else(|| "an unknown number of".to_owned(), |n| n.to_string());
    let Some(oldest) = gauge.oldest_received_at else {
        let detail = if gauge.pending == Some(0) {
            "the queue is empty".to_owned()
        } else {
            format!("{pending} job(s) pending; this queue does not report its age here (on AWS the queue-age alarm watches it)")
        };
        return CheckResult::new(NAME, Status::Ok, detail, started);
    };
    let age = (now - oldest).to_std().unwrap_or_default();
    let status = if age >= fail {
        Status::Fail
    } else if age >= warn {
        Status::Warn
    } else {
        Status::Ok
    };
    let detail =
        format!("{pending} job(s) pending; the oldest was received {} s ago (warn at {} s, fail at {} s)", age.as_secs(), warn.as_secs(), fail.as_secs());
    CheckResult::new(NAME, status, detail, started)
}

#[cfg(test)]
mod tests;
