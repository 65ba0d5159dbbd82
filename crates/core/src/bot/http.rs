//! The [`Bot`] port over HTTP: one POST per call to `BOT_HTTP_URL`.
//!
//! One call, one attempt: retries, their schedule and their budget belong to the worker, which
//! decides with [`BotError::is_retryable`]. This adapter only makes sure every failure arrives
//! classified: a timeout as [`BotError::Timeout`], a refused or dropped connection as
//! [`BotError::Transport`] (with the URL stripped from the message, since a bot URL may carry a
//! token), an error status as [`BotError::Status`], and anything unreadable as
//! [`BotError::InvalidAnswer`]. The answer body is read up to a cap (1 MiB by default), so a
//! misbehaving bot cannot make the worker buffer without bound; the cap is checked against
//! `Content-Length` first and then chunk by chunk while streaming, so a bot that streams 50 MB is
//! cut off after the first MiB rather than buffered and measured afterwards.
//!
//! # No redirects, no `Referer`, no URL in any message
//! The request carries the customer's phone, text and profile, and `BOT_HTTP_URL` may carry a
//! token in its query string. Following a redirect would re-POST all of that to whatever host the
//! bot (or whoever answers in its name) points at, tell that host the token in `Referer`, and
//! forward that host's answer to the customer. So the client follows no redirect and sends no
//! `Referer`: a 3xx answer is [`BotError::Redirect`], a permanent failure (retrying gets the same
//! redirect), whose message tells the operator to fix `BOT_HTTP_URL`. The policy is set on the
//! client builder inside this module ([`HttpBot::with_builder`]), so no caller can hand in a
//! client that follows redirects. The URL itself never reaches an error, a log line or `Debug`:
//! `reqwest` errors go through `without_url`, and only the bot's origin (scheme, host, port) is
//! ever shown.
//!
//! The request body is serialised once and those exact bytes are both signed (when
//! `BOT_HMAC_SECRET` is set) and sent, so the bot can verify the signature over what it received.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue, LOCATION};
use url::Url;

use super::contract::parse_answer;
use super::sign::{SIGNATURE_HEADER, signature_header};
use crate::domain::ids::DedupKey;
use crate::domain::secret::Secret;
use crate::ports::Bot;
use crate::ports::{BotAnswer, BotError, BotRequest};

/// The default cap on an answer body.
pub const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// The header carrying the turn's de-duplication key.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

/// Why an [`HttpBot`] could not be configured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpBotError {
    /// The URL is not `http` or `https`.
    #[error("BOT_HTTP_URL must be an http:// or https:// URL")]
    Scheme,
    /// `BOT_HTTP_AUTH` cannot be sent as a header value.
    #[error("BOT_HTTP_AUTH is not a valid header value (line breaks or control characters)")]
    AuthHeader,
    /// The HTTP client could not be built (TLS initialisation).
    #[error("could not build the HTTP client: {0}")]
    Client(String),
}

/// The bot at the end of an HTTP URL.
#[derive(Clone)]
pub struct HttpBot {
    client: reqwest::Client,
    url: Url,
    /// `Authorization`, verbatim, marked sensitive so it never shows in debug output.
    auth: Option<HeaderValue>,
    hmac: Option<Secret>,
    timeout: Duration,
    max_answer_bytes: usize,
}

impl fmt::Debug for HttpBot {
    /// Shows only the bot's scheme, host and port: the path or query may hold a token.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpBot")
            .field("origin", &self.url.origin().ascii_serialization())
            .field("auth", &self.auth.as_ref().map(|_| "***"))
            .field("hmac", &self.hmac.as_ref().map(|_| "***"))
            .field("timeout", &self.timeout)
            .field("max_answer_bytes", &self.max_answer_bytes)
            .finish_non_exhaustive()
    }
}

impl HttpBot {
    /// A bot at `url`, with its own HTTP client. `auth` is sent verbatim as `Authorization`
    /// (`BOT_HTTP_AUTH`, e.g. `Bearer <token>`); `hmac` signs every request (`BOT_HMAC_SECRET`);
    /// `timeout` bounds each call from connecting to the last byte of the answer
    /// (`BOT_HTTP_TIMEOUT_SEC`). Fails on a URL that is not http(s) or an `auth` value that cannot
    /// be a header, so a bad configuration is reported at start, not on the first customer message.
    pub fn new(url: Url, auth: Option<Secret>, hmac: Option<Secret>, timeout: Duration) -> Result<Self, HttpBotError> {
        let builder = reqwest::Client::builder().user_agent(concat!("olbridge/", env!("CARGO_PKG_VERSION")));
        Self::with_builder(builder, url, auth, hmac, timeout)
    }

    /// As [`HttpBot::new`], over a client builder the caller prepared (proxies, TLS roots, tests).
    /// It takes a builder, not a built client, so that this adapter sets the redirect and
    /// `Referer` policy itself (none, and off): whatever the caller configured, a redirect is
    /// never followed.
    pub fn with_builder(
        builder: reqwest::ClientBuilder,
        url: Url,
        auth: Option<Secret>,
        hmac: Option<Secret>,
        timeout: Duration,
    ) -> Result<Self, HttpBotError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(HttpBotError::Scheme);
        }
        let client =
            builder.redirect(reqwest::redirect::Policy::none()).referer(false).build().map_err(|e| HttpBotError::Client(e.without_url().to_string()))?;
        let auth = auth
            .map(|a| {
                let mut value = HeaderValue::from_str(a.expose()).map_err(|_| HttpBotError::AuthHeader)?;
                value.set_sensitive(true);
                Ok(value)
            })
            .transpose()?;
        Ok(Self { client, url, auth, hmac, timeout, max_answer_bytes: MAX_ANSWER_BYTES })
    }

    /// Changes the cap on the answer body.
    pub fn with_max_answer_bytes(mut self, max: usize) -> Self {
        self.max_answer_bytes = max;
        self
    }

    /// The per-call timeout in whole seconds, rounded up (what [`BotError::Timeout`] reports).
    fn timeout_secs(&self) -> u64 {
        self.timeout.as_secs() + u64::from(self.timeout.subsec_nanos() > 0)
    }

    fn classify(&self, err: reqwest::Error) -> BotError {
        if err.is_timeout() {
            return BotError::Timeout(self.timeout_secs());
        }
        // `without_url` keeps the URL (and any credentials in it) out of the message; the
        // sources say what actually went wrong ("Connection refused").
        let err = err.without_url();
        let mut message = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        BotError::Transport(message)
    }

    async fn read_body(&self, mut response: reqwest::Response) -> Result<Vec<u8>, BotError> {
        let too_large = || BotError::InvalidAnswer(format!("the answer is larger than {} bytes", self.max_answer_bytes));
        if response.content_length().is_some_and(|n| n > self.max_answer_bytes as u64) {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.classify(e))? {
            if body.len() + chunk.len() > self.max_answer_bytes {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

#[async_trait]
impl Bot for HttpBot {
    async fn ask(&self, request: &BotRequest, idempotency_key: &DedupKey, timeout: Duration) -> Result<BotAnswer, BotError> {
        let timeout = timeout.min(self.timeout);
        let body = serde_json::to_vec(request).map_err(|e| BotError::InvalidAnswer(format!("could not encode the request: {e}")))?;
        let mut call = self
            .client
            .post(self.url.clone())
            .timeout(timeout)
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json, text/plain;q=0.9")
            .header(IDEMPOTENCY_HEADER, header_safe(idempotency_key.as_str()));
        if let Some(auth) = &self.auth {
            call = call.header(AUTHORIZATION, auth.clone());
        }
        if let Some(secret) = &self.hmac {
            call = call.header(SIGNATURE_HEADER, signature_header(secret, chrono::Utc::now().timestamp(), &body));
        }
        let response = call.body(body).send().await.map_err(|e| self.classify(e))?;
        let status = response.status().as_u16();
        if response.status().is_redirection() {
            // Where it points, as an origin only: enough for the operator to fix BOT_HTTP_URL,
            // without logging a path or query that may hold the same token as ours.
            let target =
                response.headers().get(LOCATION).and_then(|v| v.to_str().ok()).and_then(|l| self.url.join(l).ok()).map(|u| u.origin().ascii_serialization());
            tracing::warn!(
                bot = %self.url.origin().ascii_serialization(),
                status,
                location = target.as_deref().unwrap_or("(none)"),
                "the bot answered a redirect; not followed (fix BOT_HTTP_URL)"
            );
            return Err(BotError::Redirect(status));
        }
        if !response.status().is_success() {
            return Err(BotError::Status(status));
        }
        let content_type = response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let body = self.read_body(response).await?;
        parse_answer(status, content_type.as_deref(), &body)
    }
}

/// A key as a header value: printable ASCII stays, anything else is percent-encoded (command
/// keys may hold the customer's text).
fn header_safe(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if (0x21..=0x7e).contains(&b) && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_is_checked_and_debug_hides_secrets() {
        let url = |s: &str| Url::parse(s).expect("url");
        let t = Duration::from_secs(120);
        assert_eq!(HttpBot::new(url("ftp://bot/x"), None, None, t).err(), Some(HttpBotError::Scheme));
        let bad = Some(Secret::new("Bearer a\r\nX-Evil: 1"));
        assert_eq!(HttpBot::new(url("https://bot/x"), bad, None, t).err(), Some(HttpBotError::AuthHeader));
        let bot = HttpBot::with_builder(
            reqwest::Client::builder(),
            url("https://u:pw@bot.example:8443/hook?token=abc"),
            Some(Secret::new("Bearer s3cr3t")),
            Some(Secret::new("k")),
            t,
        )
        .expect("valid");
        let shown = format!("{bot:?}");
        assert!(shown.contains("https://bot.example:8443"), "{shown}");
        for hidden in ["s3cr3t", "token=abc", "pw", "/hook"] {
            assert!(!shown.contains(hidden), "{hidden} leaked: {shown}");
        }
    }

    #[test]
    fn keys_become_header_safe() {
        assert_eq!(header_safe("abc:msg:42"), "abc:msg:42");
        assert_eq!(header_safe("m:cmd:1:rate:up 5%é"), "m:cmd:1:rate:up%205%25%C3%A9");
    }
}
