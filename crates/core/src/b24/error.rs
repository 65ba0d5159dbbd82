//! The one error type of the REST client, classified once, where the response is read.
//!
//! Bitrix24 is inconsistent about HTTP statuses (`QUERY_LIMIT_EXCEEDED` was 429 and is now 503;
//! `batch` answers 200 with per-command errors; some CRM methods send an empty `error` code), so
//! classification keys on the `error` code first and falls back to the status only for codes it does
//! not know. Every caller then decides with [`ErrorKind`] alone: retry, back off, alert an operator
//! about the configuration, or give up.
//!
//! No field ever holds the webhook code: transport errors are built from `reqwest::Error` with the
//! URL stripped.

use std::fmt;
use std::time::Duration;

use crate::ports::{PortalError, PortalErrorKind};

/// How a call failed, which decides what to do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The portal's rate limits (`QUERY_LIMIT_EXCEEDED`, `OPERATION_TIME_LIMIT`): back off.
    RateLimited,
    /// A transient failure (5xx, timeout, dropped connection): retry with backoff.
    Retryable,
    /// Authentication or authorisation: nothing will work until the configuration is fixed.
    Auth,
    /// The request was refused for what it is: retrying gets the same answer.
    Permanent,
}

impl ErrorKind {
    /// Whether trying again later may succeed.
    pub fn is_retryable(self) -> bool {
        matches!(self, Self::RateLimited | Self::Retryable)
    }
}

/// Codes this client makes up for failures that have no Bitrix24 code.
pub mod codes {
    /// No answer within the client's timeout (the portal may still have done the work).
    pub const TIMEOUT: &str = "HTTP_TIMEOUT";
    /// The connection could not be made (the request surely did not reach the portal).
    pub const CONNECT: &str = "HTTP_CONNECT";
    /// Any other transport failure (connection dropped mid-request, bad TLS, ...).
    pub const TRANSPORT: &str = "HTTP_TRANSPORT";
    /// The body is not a Bitrix24 envelope (a proxy's HTML page, an empty body, ...).
    pub const NOT_AN_ENVELOPE: &str = "NOT_AN_ENVELOPE";
    /// The envelope's `result` does not have the shape the typed call expects.
    pub const UNEXPECTED_RESULT: &str = "UNEXPECTED_RESULT";
    /// The request could not be built (parameters are not a JSON object, ...).
    pub const BAD_REQUEST: &str = "CLIENT_BAD_REQUEST";
}

/// A failed Bitrix24 REST call.
#[derive(Clone, PartialEq, Eq)]
pub struct B24Error {
    /// What to do about it.
    pub kind: ErrorKind,
    /// The REST method (`batch` commands carry their own method).
    pub method: String,
    /// Bitrix24's `error` code (may be empty: some CRM methods send none), or one of [`codes`].
    pub code: String,
    /// Bitrix24's `error_description`, or what went wrong in transport.
    pub description: String,
    /// The HTTP status, when a response arrived (`None` for transport failures and batch commands).
    pub status: Option<u16>,
    /// The server's `Retry-After`, when it sent one.
    pub retry_after: Option<Duration>,
}

impl B24Error {
    /// Classifies a Bitrix24 error envelope (or a batch command's `result_error`).
    pub fn from_envelope(method: &str, status: Option<u16>, code: &str, description: &str, retry_after: Option<Duration>) -> Self {
        Self { kind: classify(code, status), method: method.to_owned(), code: code.to_owned(), description: description.to_owned(), status, retry_after }
    }

    /// A response whose body is not a Bitrix24 envelope: retryable when the status says the server
    /// (or a proxy in front of it) failed, permanent otherwise.
    pub fn not_an_envelope(method: &str, status: u16, retry_after: Option<Duration>) -> Self {
        let kind = match status {
            429 => ErrorKind::RateLimited,
            s if s >= 500 => ErrorKind::Retryable,
            _ => ErrorKind::Permanent,
        };
        Self {
            kind,
            method: method.to_owned(),
            code: codes::NOT_AN_ENVELOPE.to_owned(),
            description: format!("HTTP {status} without a Bitrix24 envelope"),
            status: Some(status),
            retry_after,
        }
    }

    /// A transport failure. The URL (which holds the webhook code) is stripped from the error.
    pub fn transport(method: &str, err: reqwest::Error) -> Self {
        let code = if err.is_timeout() {
            codes::TIMEOUT
        } else if err.is_connect() {
            codes::CONNECT
        } else {
            codes::TRANSPORT
        };
        let err = err.without_url();
        let mut description = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(s) = source {
            description.push_str(": ");
            description.push_str(&s.to_string());
            source = s.source();
        }
        Self { kind: ErrorKind::Retryable, method: method.to_owned(), code: code.to_owned(), description, status: None, retry_after: None }
    }

    /// The result arrived but does not have the expected shape (a contract mismatch: permanent).
    pub fn unexpected_result(method: &str, err: &serde_json::Error) -> Self {
        Self::local(method, ErrorKind::Permanent, codes::UNEXPECTED_RESULT, format!("unexpected result shape: {err}"))
    }

    /// A failure found by the client itself.
    pub fn local(method: &str, kind: ErrorKind, code: &str, description: impl Into<String>) -> Self {
        Self { kind, method: method.to_owned(), code: code.to_owned(), description: description.into(), status: None, retry_after: None }
    }

    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        self.kind.is_retryable()
    }

    /// Whether the portal surely did not act on the request, so sending it again cannot duplicate
    /// anything: the rate limiter refused it before any processing, or no connection was made.
    /// Timeouts and 5xx do not qualify: the portal may have posted the message and then failed.
    pub fn surely_not_applied(&self) -> bool {
        matches!(self.code.as_str(), "QUERY_LIMIT_EXCEEDED" | "OPERATION_TIME_LIMIT" | "OVERLOAD_LIMIT" | codes::CONNECT)
    }
}

/// The classification table (contract §1.5), code first, status for unknown codes.
fn classify(code: &str, status: Option<u16>) -> ErrorKind {
    match code {
        "QUERY_LIMIT_EXCEEDED" | "OPERATION_TIME_LIMIT" => ErrorKind::RateLimited,
        "INTERNAL_SERVER_ERROR" | "ERROR_UNEXPECTED_ANSWER" | "OVERLOAD_LIMIT" => ErrorKind::Retryable,
        "NO_AUTH_FOUND" | "expired_token" | "invalid_token" | "insufficient_scope" | "INVALID_CREDENTIALS" | "WRONG_AUTH_TYPE" | "user_access_error" => {
            ErrorKind::Auth
        }
        // Chatbots 2.0: the `botToken` is wrong or missing, or the bot is gone (§4.8): the
        // configuration (`B24_BOT_CLIENT_ID`, `B24_BOT_ID`) must be fixed.
        "BOT_OWNERSHIP_ERROR" | "BOT_TOKEN_NOT_SPECIFIED" | "BOT_NOT_FOUND" => ErrorKind::Auth,
        // Known codes that arrive with 5xx but will not get better by retrying.
        "PORTAL_DELETED" => ErrorKind::Permanent,
        _ => match status {
            Some(429) => ErrorKind::RateLimited,
            Some(s) if s >= 500 => ErrorKind::Retryable,
            _ => ErrorKind::Permanent,
        },
    }
}

impl fmt::Display for B24Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let code = if self.code.is_empty() { "no error code" } else { &self.code };
        write!(f, "{} failed ({code}", self.method)?;
        if let Some(s) = self.status {
            write!(f, ", HTTP {s}")?;
        }
        write!(f, "): {}", self.description)
    }
}

impl fmt::Debug for B24Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("B24Error")
            .field("kind", &self.kind)
            .field("method", &self.method)
            .field("code", &self.code)
            .field("description", &self.description)
            .field("status", &self.status)
            .field("retry_after", &self.retry_after)
            .finish()
    }
}

impl std::error::Error for B24Error {}

impl From<B24Error> for PortalError {
    fn from(e: B24Error) -> Self {
        let kind = match e.kind {
            ErrorKind::RateLimited => PortalErrorKind::RateLimited,
            ErrorKind::Retryable => PortalErrorKind::Retryable,
            ErrorKind::Auth => PortalErrorKind::Auth,
            ErrorKind::Permanent => PortalErrorKind::Permanent,
        };
        PortalError { kind, method: e.method, code: e.code, description: e.description }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(code: &str, status: u16) -> ErrorKind {
        B24Error::from_envelope("m", Some(status), code, "", None).kind
    }

    #[test]
    fn codes_win_over_statuses() {
        assert_eq!(kind("QUERY_LIMIT_EXCEEDED", 503), ErrorKind::RateLimited);
        assert_eq!(kind("QUERY_LIMIT_EXCEEDED", 429), ErrorKind::RateLimited);
        assert_eq!(kind("QUERY_LIMIT_EXCEEDED", 200), ErrorKind::RateLimited);
        assert_eq!(kind("OPERATION_TIME_LIMIT", 429), ErrorKind::RateLimited);
        for c in ["INTERNAL_SERVER_ERROR", "ERROR_UNEXPECTED_ANSWER", "OVERLOAD_LIMIT"] {
            assert_eq!(kind(c, 500), ErrorKind::Retryable, "{c}");
        }
        for c in ["NO_AUTH_FOUND", "expired_token", "invalid_token", "insufficient_scope", "INVALID_CREDENTIALS", "WRONG_AUTH_TYPE", "user_access_error"] {
            assert_eq!(kind(c, 401), ErrorKind::Auth, "{c}");
            assert_eq!(kind(c, 500), ErrorKind::Auth, "{c}");
        }
        assert_eq!(kind("PORTAL_DELETED", 500), ErrorKind::Permanent);
        for c in ["BOT_OWNERSHIP_ERROR", "BOT_TOKEN_NOT_SPECIFIED", "BOT_NOT_FOUND"] {
            assert_eq!(kind(c, 400), ErrorKind::Auth, "{c}");
        }
    }

    #[test]
    fn unknown_codes_fall_back_to_the_status() {
        assert_eq!(kind("WRONG_CHAT", 400), ErrorKind::Permanent);
        assert_eq!(kind("ACCESS_DENIED", 403), ErrorKind::Permanent);
        assert_eq!(kind("", 400), ErrorKind::Permanent);
        assert_eq!(kind("SOMETHING_NEW", 502), ErrorKind::Retryable);
        assert_eq!(kind("SOMETHING_NEW", 429), ErrorKind::RateLimited);
        assert_eq!(B24Error::from_envelope("batch", None, "", "Not found", None).kind, ErrorKind::Permanent);
    }

    #[test]
    fn bodies_that_are_not_envelopes_are_classified_by_status() {
        assert_eq!(B24Error::not_an_envelope("m", 502, None).kind, ErrorKind::Retryable);
        assert_eq!(B24Error::not_an_envelope("m", 404, None).kind, ErrorKind::Permanent);
        assert_eq!(B24Error::not_an_envelope("m", 200, None).kind, ErrorKind::Permanent);
    }

    #[test]
    fn displays_and_converts_to_a_portal_error() {
        let e = B24Error::from_envelope("crm.lead.get", Some(400), "", "Not found", None);
        assert_eq!(e.to_string(), "crm.lead.get failed (no error code, HTTP 400): Not found");
        let p = PortalError::from(B24Error::from_envelope("imbot.message.add", Some(401), "NO_AUTH_FOUND", "Wrong authorization data", None));
        assert_eq!(p.kind, PortalErrorKind::Auth);
        assert_eq!(p.code, "NO_AUTH_FOUND");
        assert!(!p.is_retryable());
    }

    #[test]
    fn only_refusals_before_processing_count_as_surely_not_applied() {
        assert!(B24Error::from_envelope("m", Some(503), "QUERY_LIMIT_EXCEEDED", "", None).surely_not_applied());
        assert!(B24Error::local("m", ErrorKind::Retryable, codes::CONNECT, "refused").surely_not_applied());
        assert!(!B24Error::local("m", ErrorKind::Retryable, codes::TIMEOUT, "slow").surely_not_applied());
        assert!(!B24Error::from_envelope("m", Some(500), "INTERNAL_SERVER_ERROR", "", None).surely_not_applied());
    }
}
