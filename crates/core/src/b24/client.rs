//! The REST client: one HTTP client, one rate limiter, one retry policy, shared by all clones.
//!
//! Every call goes the same way: take a slot from the [`RateLimiter`], POST the parameters as JSON
//! to `<webhook>/<method>`, read the envelope (contract §1.2–§1.5), classify a failure once as a
//! [`B24Error`], and let [`crate::retry::retry`] decide whether to go again. Each attempt takes a new
//! slot, so retries are paced like everything else, and a `QUERY_LIMIT_EXCEEDED` from the portal
//! fills our bucket and teaches the limiter the portal's real budget ([`super::pace`]), so the whole
//! client slows down, not just the call that was refused. A method whose operating time nears the
//! per-method limit waits for its window to move instead of being refused.
//!
//! Every success envelope's `time.operating` (the method's execution time summed over the last ten
//! minutes, contract §2.2) is kept per method ([`B24Client::operating`]), and each batch command's
//! `result_time` too: the pollers read it to slow down before the portal blocks a method with
//! `OPERATION_TIME_LIMIT`. That refusal is per method, so unlike `QUERY_LIMIT_EXCEEDED` it does
//! not fill the shared bucket (replies use other methods and must not wait for it).
//!
//! Logging: one `b24.call` span per attempt with the method, attempt, HTTP status and latency. The
//! webhook URL (it holds the code) and the parameters (they hold customers' messages) are never
//! logged.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use tracing::Instrument;

use super::coalesce::Coalescer;
use super::error::{B24Error, ErrorKind, codes};
use super::ratelimit::{Permit, Priority, RateLimiter, RatePlan};
use super::webhook::WebhookBase;
use crate::retry::{RetryPolicy, Verdict, retry};

/// How the client behaves.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientOptions {
    /// The client's share of the portal's request budget.
    pub rate: RatePlan,
    /// Retries of rate-limited and transient failures. Its budget counts from the first attempt,
    /// time spent queued for the rate limiter included.
    pub retry: RetryPolicy,
    /// The timeout of one HTTP request (Bitrix24 cuts requests off at 60 s itself).
    pub timeout: Duration,
    /// Sent as `User-Agent`, as the Bitrix24 docs ask of integrations.
    pub user_agent: String,
    /// The portal's per-method operating-time limit over ten minutes (contract §2.2: UNCONFIRMED
    /// for the cloud; the docs' example and the 2024 docs say 480 s). Calls of a method within 10 %
    /// of it wait for its window to move. `None`: no gate (the portal's refusal is still retried).
    pub operating_limit: Option<Duration>,
    /// Send essential calls that wait for the same rate budget together, up to 50 in one `batch`
    /// ([`super::coalesce`]); each keeps the semantics it has alone (`B24_BATCH_REQUESTS`).
    pub coalesce: bool,
}

impl Default for ClientOptions {
    /// 2 requests/s with a burst of 40; up to 6 attempts over at most 60 s, backing off from 0.5 s
    /// to 8 s with jitter; 30 s per request; the operating-time gate at 480 s.
    fn default() -> Self {
        Self {
            rate: RatePlan::default(),
            retry: RetryPolicy::exponential(6, Duration::from_millis(500), Duration::from_secs(8)).with_budget(Duration::from_secs(60)),
            timeout: Duration::from_secs(30),
            user_agent: concat!("olbridge/", env!("CARGO_PKG_VERSION")).to_owned(),
            operating_limit: Some(Duration::from_secs(480)),
            coalesce: true,
        }
    }
}

impl ClientOptions {
    /// The defaults with the configured rate plan (`B24_RATE_PER_SEC`, `B24_RATE_BURST`,
    /// `B24_RATE_ADAPTIVE`) and
    /// operating-time limit (`B24_OPERATING_LIMIT_SEC`): what every runtime's client uses.
    pub fn from_config(config: &crate::config::Config) -> Self {
        Self {
            rate: RatePlan { adaptive: config.portal.rate_adaptive, ..RatePlan::new(config.portal.rate_per_sec, config.portal.rate_burst) },
            operating_limit: Some(config.sources.operating_limit),
            coalesce: config.portal.batch_requests,
            ..Self::default()
        }
    }
}

/// When a failed request may be sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Replay {
    /// The call is idempotent (reads, state changes that converge): retry every retryable failure.
    Always,
    /// The call creates something (a message, a comment): retry only failures after which the portal
    /// surely did nothing ([`B24Error::surely_not_applied`]); a timeout or a 5xx is returned to the
    /// caller, who can check whether the message landed before posting it again.
    IfNotApplied,
}

/// A successful envelope: the `result`, plus `total` and `next` for v1 lists.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The method's result.
    pub result: T,
    /// List methods: how many records match in all.
    pub total: Option<u64>,
    /// List methods: the `start` of the next page, when there is one.
    pub next: Option<u64>,
}

/// A Bitrix24 REST client over one incoming webhook. Cheap to clone.
#[derive(Clone)]
pub struct B24Client {
    inner: Arc<Inner>,
}

struct Inner {
    webhook: WebhookBase,
    http: reqwest::Client,
    limiter: Arc<RateLimiter>,
    options: ClientOptions,
    /// The last `time.operating` the portal reported, per method.
    operating: Mutex<HashMap<String, Operating>>,
    /// Essential calls waiting for the rate budget, sent together (`None`: coalescing off).
    coalescer: Option<Coalescer>,
}

/// What the portal last said about a method's operating time (contract §2.2).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Operating {
    /// Seconds of execution time counted in the current ten-minute window.
    pub secs: f64,
    /// When the oldest counted bucket expires (Unix seconds), when the portal said.
    pub reset_at: Option<i64>,
}

impl B24Client {
    /// A client with its own rate limiter.
    pub fn new(webhook: WebhookBase, options: ClientOptions) -> Result<Self, B24Error> {
        let limiter = Arc::new(RateLimiter::new(options.rate.clone()));
        Self::with_limiter(webhook, options, limiter)
    }

    /// A client that shares `limiter` with others: the portal counts requests per portal, so two
    /// webhooks of one portal should draw from one bucket. `options.rate` is ignored.
    pub fn with_limiter(webhook: WebhookBase, options: ClientOptions, limiter: Arc<RateLimiter>) -> Result<Self, B24Error> {
        let http =
            reqwest::Client::builder().timeout(options.timeout).user_agent(options.user_agent.clone()).build().map_err(|e| {
                B24Error::local("(client)", ErrorKind::Permanent, codes::BAD_REQUEST, format!("cannot build the HTTP client: {}", e.without_url()))
            })?;
        let coalescer = options.coalesce.then(Coalescer::default);
        Ok(Self { inner: Arc::new(Inner { webhook, http, limiter, options, operating: Mutex::default(), coalescer }) })
    }

    /// The operating time the portal last reported for `method` by this webhook, if any call of it
    /// succeeded yet.
    pub fn operating(&self, method: &str) -> Option<Operating> {
        self.inner.operating.lock().unwrap_or_else(PoisonError::into_inner).get(method).copied()
    }

    pub(crate) fn record_operating(&self, method: &str, time: Option<&Value>) {
        let Some(time) = time else { return };
        let Some(secs) = time.get("operating").and_then(number) else { return };
        let reset_at = time.get("operating_reset_at").and_then(number).map(|n| n as i64);
        self.inner.operating.lock().unwrap_or_else(PoisonError::into_inner).insert(method.to_owned(), Operating { secs, reset_at });
    }

    /// The webhook this client calls (its `Display` masks the code).
    pub fn webhook(&self) -> &WebhookBase {
        &self.inner.webhook
    }

    /// The shared rate limiter.
    pub fn limiter(&self) -> &Arc<RateLimiter> {
        &self.inner.limiter
    }

    /// The options in force.
    pub fn options(&self) -> &ClientOptions {
        &self.inner.options
    }

    pub(crate) fn coalescer(&self) -> Option<&Coalescer> {
        self.inner.coalescer.as_ref()
    }

    /// Calls `method` (essential priority, retried per the policy) and decodes its `result`.
    pub async fn call<T: DeserializeOwned>(&self, method: &str, params: &Value) -> Result<T, B24Error> {
        self.call_page(method, params, Replay::Always).await.map(|p| p.result)
    }

    /// Like [`B24Client::call`] for calls that create something: see [`Replay::IfNotApplied`].
    pub async fn call_no_replay<T: DeserializeOwned>(&self, method: &str, params: &Value) -> Result<T, B24Error> {
        self.call_page(method, params, Replay::IfNotApplied).await.map(|p| p.result)
    }

    /// Calls `method` and decodes the whole envelope, keeping `total`/`next`.
    pub async fn call_page<T: DeserializeOwned>(&self, method: &str, params: &Value, replay: Replay) -> Result<Page<T>, B24Error> {
        let page = self.send(method, params, replay).await?;
        decode(method, page)
    }

    /// Calls `method` at optional priority, once: `Ok(None)` when the rate budget is too short and
    /// the call was skipped. Not retried: an optional call that failed is stale by the time a retry
    /// could go (a typing indicator, a read mark).
    pub async fn call_optional<T: DeserializeOwned>(&self, method: &str, params: &Value) -> Result<Option<T>, B24Error> {
        check_params(method, params)?;
        match self.inner.limiter.acquire(Priority::Optional).await {
            Permit::Skipped => {
                tracing::debug!(method, "optional call skipped: rate budget short");
                Ok(None)
            }
            Permit::Granted => {
                let sent_at = self.inner.limiter.now();
                decode(method, self.post(method, params, 1, sent_at).await?).map(|p| Some(p.result))
            }
        }
    }

    /// Reads every page of a v1 list method (`start`/`next`, 50 per page), in order. The result of
    /// each page must be an array (or `{"items": [...]}` as `crm.item.list` writes it).
    pub async fn list_all<T: DeserializeOwned>(&self, method: &str, params: &Value) -> Result<Vec<T>, B24Error> {
        check_params(method, params)?;
        let mut params = params.as_object().cloned().unwrap_or_default();
        let mut out = Vec::new();
        let mut start = 0_u64;
        loop {
            params.insert("start".into(), Value::from(start));
            let page = self.send(method, &Value::Object(params.clone()), Replay::Always).await?;
            let items = match page.result {
                Value::Object(mut m) if m.get("items").is_some_and(Value::is_array) => m.remove("items").unwrap_or_default(),
                other => other,
            };
            let items: Vec<T> = serde_json::from_value(items).map_err(|e| B24Error::unexpected_result(method, &e))?;
            out.extend(items);
            // A `next` that does not move forward would loop forever: stop instead.
            match page.next {
                Some(next) if next > start => start = next,
                _ => return Ok(out),
            }
        }
    }

    /// Calls `method` at background priority (it waits for headroom in the rate budget, leaving
    /// the reserve to replies; see [`Priority::Background`]), retried per the policy: the pollers'
    /// reads.
    pub async fn call_background<T: DeserializeOwned>(&self, method: &str, params: &Value) -> Result<T, B24Error> {
        let page = self.send_at(method, params, Replay::Always, Priority::Background).await?;
        decode(method, page).map(|p| p.result)
    }

    /// Sends with retries; the raw envelope.
    pub(crate) async fn send(&self, method: &str, params: &Value, replay: Replay) -> Result<Page<Value>, B24Error> {
        self.send_at(method, params, replay, Priority::Essential).await
    }

    /// Sends with retries at `priority` (essential or background); the raw envelope.
    pub(crate) async fn send_at(&self, method: &str, params: &Value, replay: Replay, priority: Priority) -> Result<Page<Value>, B24Error> {
        check_params(method, params)?;
        if let (Some(coalescer), false) = (self.coalescer(), method == "batch") {
            let op = |_attempt: u32| async move {
                self.operating_gate(method).await;
                match priority {
                    Priority::Background => self.ride(coalescer, method, params).await,
                    _ => self.coalesced(coalescer, method, params).await,
                }
            };
            return retry(&self.inner.options.retry, op, |e: &B24Error| verdict(e, replay)).await.map_err(|x| x.last);
        }
        let op = |attempt: u32| async move {
            self.operating_gate(method).await;
            self.inner.limiter.acquire(priority).await;
            let sent_at = self.inner.limiter.now();
            self.post(method, params, attempt, sent_at).await
        };
        retry(&self.inner.options.retry, op, |e: &B24Error| verdict(e, replay)).await.map_err(|x| x.last)
    }

    /// Waits when the portal's last `time.operating` for `method` is within 10 % of the per-method
    /// limit ([`ClientOptions::operating_limit`], contract §2.2), until the oldest minute of its
    /// window expires (`operating_reset_at`, at most 60 s away): the portal would otherwise refuse
    /// the method with `OPERATION_TIME_LIMIT` until then. Other methods are not held up.
    async fn operating_gate(&self, method: &str) {
        let Some(limit) = self.inner.options.operating_limit else { return };
        let Some(op) = self.operating(method) else { return };
        let (Some(reset_at), true) = (op.reset_at, op.secs >= limit.as_secs_f64() * 0.9) else { return };
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let wait = u64::try_from(reset_at).unwrap_or(0).saturating_sub(now).min(60);
        if wait > 0 {
            tracing::info!(method, operating_secs = op.secs, wait_secs = wait, "method near its operating-time limit: waiting for its window to move");
            tokio::time::sleep(Duration::from_secs(wait)).await;
        }
    }

    /// One HTTP attempt, no retry, slot taken at `sent_at` (the limiter's clock).
    pub(crate) async fn post(&self, method: &str, params: &Value, attempt: u32, sent_at: f64) -> Result<Page<Value>, B24Error> {
        // Counted for the task that sends the request; a coalesced call is counted by its caller
        // (the driver's task has no scope), see `coalesce`.
        super::usage::add(1);
        let span = tracing::info_span!("b24.call", method, attempt, status = tracing::field::Empty, latency_ms = tracing::field::Empty);
        let started = Instant::now();
        let outcome = async {
            let response = self.inner.http.post(self.inner.webhook.method_url(method)).json(params).send().await;
            let response = response.map_err(|e| B24Error::transport(method, e))?;
            let status = response.status().as_u16();
            tracing::Span::current().record("status", status);
            let retry_after = retry_after(response.headers());
            let body = response.bytes().await.map_err(|e| B24Error::transport(method, e))?;
            let (page, time) = parse_envelope(method, status, &body, retry_after)?;
            self.record_operating(method, time.as_ref());
            Ok::<_, B24Error>(page)
        }
        .instrument(span.clone())
        .await;
        let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        span.record("latency_ms", latency_ms);
        let _enter = span.enter();
        match &outcome {
            Ok(_) => tracing::debug!("b24 call succeeded"),
            Err(e) => {
                // An operating-time block is per method: the other methods (the replies) go on.
                if e.kind == ErrorKind::RateLimited && e.code != "OPERATION_TIME_LIMIT" {
                    self.inner.limiter.refused(sent_at).await;
                }
                // The code and kind are safe at info level; descriptions may quote input, so debug.
                tracing::info!(code = %e.code, kind = ?e.kind, "b24 call failed");
                tracing::debug!(description = %e.description, "b24 error description");
            }
        }
        outcome
    }
}

impl fmt::Debug for B24Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("B24Client")
            .field("webhook", &self.inner.webhook)
            .field("rate", self.inner.limiter.plan())
            .field("retry", &self.inner.options.retry)
            .field("timeout", &self.inner.options.timeout)
            .finish_non_exhaustive()
    }
}

fn verdict(e: &B24Error, replay: Replay) -> Verdict {
    if replay == Replay::IfNotApplied && !e.surely_not_applied() {
        return Verdict::Stop;
    }
    match e.kind {
        ErrorKind::RateLimited => e.retry_after.map_or(Verdict::Retry, Verdict::RetryAfter),
        ErrorKind::Retryable => Verdict::Retry,
        ErrorKind::Auth | ErrorKind::Permanent => Verdict::Stop,
    }
}

/// Parameters must be a JSON object (or `null` for none): that is what Bitrix24 parses.
fn check_params(method: &str, params: &Value) -> Result<(), B24Error> {
    if params.is_object() || params.is_null() {
        Ok(())
    } else {
        Err(B24Error::local(method, ErrorKind::Permanent, codes::BAD_REQUEST, "parameters must be a JSON object"))
    }
}

fn decode<T: DeserializeOwned>(method: &str, page: Page<Value>) -> Result<Page<T>, B24Error> {
    let result = serde_json::from_value(page.result).map_err(|e| B24Error::unexpected_result(method, &e))?;
    Ok(Page { result, total: page.total, next: page.next })
}

/// `Retry-After` in seconds (the HTTP-date form is not used by Bitrix24 or its proxies).
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let raw = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    raw.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// Reads a response body as a Bitrix24 envelope: `{"error": ...}` is a failure whatever the status;
/// `{"result": ...}` with a 2xx status is a success, handed back with its `time` object; anything
/// else is not an envelope.
fn parse_envelope(method: &str, status: u16, body: &[u8], retry_after: Option<Duration>) -> Result<(Page<Value>, Option<Value>), B24Error> {
    let Ok(Value::Object(mut m)) = serde_json::from_slice::<Value>(body) else {
        return Err(B24Error::not_an_envelope(method, status, retry_after));
    };
    if let Some(code) = m.get("error") {
        let code = text(code);
        let description = m.get("error_description").map(text).unwrap_or_default();
        return Err(B24Error::from_envelope(method, Some(status), &code, &description, retry_after));
    }
    let result = match m.remove("result") {
        Some(r) if (200..300).contains(&status) => r,
        _ => return Err(B24Error::not_an_envelope(method, status, retry_after)),
    };
    Ok((Page { result, total: count(&m, "total"), next: count(&m, "next") }, m.remove("time")))
}

/// A number sent as a number or a numeric string.
pub(crate) fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

pub(crate) fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn count(m: &Map<String, Value>, key: &str) -> Option<u64> {
    match m.get(key)? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(status: u16, body: &str) -> Result<Page<Value>, B24Error> {
        parse_envelope("m", status, body.as_bytes(), None).map(|(page, _)| page)
    }

    #[test]
    fn a_success_envelope_hands_back_its_time() {
        let body = r#"{"result":true,"time":{"operating":12.5,"operating_reset_at":1772609304}}"#;
        let (_, time) = parse_envelope("m", 200, body.as_bytes(), None).expect("ok");
        let time = time.expect("time");
        assert_eq!(time.get("operating").and_then(number), Some(12.5));
        assert_eq!(time.get("operating_reset_at").and_then(number), Some(1_772_609_304.0));
    }

    #[test]
    fn success_envelopes_keep_total_and_next() {
        let p = parse(200, r#"{"result":[{"ID":"1"}],"total":120,"next":50,"time":{"start":1}}"#).expect("ok");
        assert_eq!(p.result, json!([{"ID": "1"}]));
        assert_eq!((p.total, p.next), (Some(120), Some(50)));
        let p = parse(200, r#"{"result":true}"#).expect("ok");
        assert_eq!((p.result, p.total, p.next), (json!(true), None, None));
    }

    #[test]
    fn error_envelopes_are_classified_whatever_the_status() {
        let e = parse(503, r#"{"error":"QUERY_LIMIT_EXCEEDED","error_description":"Too many requests"}"#).expect_err("err");
        assert_eq!((e.kind, e.code.as_str(), e.status), (ErrorKind::RateLimited, "QUERY_LIMIT_EXCEEDED", Some(503)));
        let e = parse(400, r#"{"error":"","error_description":"Not found"}"#).expect_err("err");
        assert_eq!((e.kind, e.code.as_str(), e.description.as_str()), (ErrorKind::Permanent, "", "Not found"));
        let e = parse(200, r#"{"error":100,"error_description":"x"}"#).expect_err("err");
        assert_eq!(e.code, "100");
    }

    #[test]
    fn other_bodies_are_not_envelopes() {
        assert_eq!(parse(502, "<html>Bad gateway</html>").expect_err("e").kind, ErrorKind::Retryable);
        assert_eq!(parse(404, "").expect_err("e").kind, ErrorKind::Permanent);
        assert_eq!(parse(500, r#"{"result":1}"#).expect_err("e").kind, ErrorKind::Retryable);
        assert_eq!(parse(200, r#"{"time":{}}"#).expect_err("e").code, codes::NOT_AN_ENVELOPE);
    }

    #[test]
    fn verdicts_follow_the_kind_and_the_replay_rule() {
        let limited = B24Error::from_envelope("m", Some(503), "QUERY_LIMIT_EXCEEDED", "", Some(Duration::from_secs(2)));
        let failed = B24Error::from_envelope("m", Some(500), "INTERNAL_SERVER_ERROR", "", None);
        let auth = B24Error::from_envelope("m", Some(401), "NO_AUTH_FOUND", "", None);
        assert_eq!(verdict(&limited, Replay::Always), Verdict::RetryAfter(Duration::from_secs(2)));
        assert_eq!(verdict(&limited, Replay::IfNotApplied), Verdict::RetryAfter(Duration::from_secs(2)));
        assert_eq!(verdict(&failed, Replay::Always), Verdict::Retry);
        assert_eq!(verdict(&failed, Replay::IfNotApplied), Verdict::Stop);
        assert_eq!(verdict(&auth, Replay::Always), Verdict::Stop);
    }
}
