//! The one REST error type, and the documented system errors.
//!
//! Every failure a method can report is an [`ApiError`]: an HTTP status, Bitrix's `error` code and its
//! `error_description`. It becomes `{"error": CODE, "error_description": TEXT}` in exactly one place
//! ([`super::envelope::error_body`]), so no handler can invent another envelope.

use super::params::ParseError;

/// A Bitrix24 REST error: what the client sees.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {code}: {description}")]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// The `error` code (may be empty: CRM v1 methods send `""`).
    pub code: String,
    /// The `error_description`.
    pub description: String,
}

impl ApiError {
    /// Any status, code and text.
    pub fn new(status: u16, code: &str, description: &str) -> ApiError {
        ApiError { status, code: code.to_owned(), description: description.to_owned() }
    }

    /// HTTP 400 (Bitrix `STATUS_WRONG_REQUEST`, the status of nearly every method error).
    pub fn bad(code: &str, description: &str) -> ApiError {
        ApiError::new(400, code, description)
    }

    /// HTTP 403.
    pub fn forbidden(code: &str, description: &str) -> ApiError {
        ApiError::new(403, code, description)
    }

    /// A CRM v1 error: empty code, the meaning only in the text (contract §1.4), HTTP 400.
    pub fn crm(description: &str) -> ApiError {
        ApiError::new(400, "", description)
    }

    /// 401 `NO_AUTH_FOUND`: unknown webhook, user or code.
    pub fn no_auth() -> ApiError {
        ApiError::new(401, "NO_AUTH_FOUND", "Wrong authorization data")
    }

    /// 403 `insufficient_scope`.
    pub fn insufficient_scope() -> ApiError {
        ApiError::new(403, "insufficient_scope", "The request requires higher privileges than provided by the webhook token")
    }

    /// 404 `ERROR_METHOD_NOT_FOUND` (text UNCONFIRMED, contract §1.5).
    pub fn method_not_found() -> ApiError {
        ApiError::new(404, "ERROR_METHOD_NOT_FOUND", "Method not found!")
    }

    /// 503 `QUERY_LIMIT_EXCEEDED`.
    pub fn query_limit() -> ApiError {
        ApiError::new(503, "QUERY_LIMIT_EXCEEDED", "Too many requests")
    }

    /// 403 `ACCESS_DENIED` "Access denied! Client ID not specified" (SRC: `AccessException`).
    pub fn no_client_id() -> ApiError {
        ApiError::forbidden("ACCESS_DENIED", "Access denied! Client ID not specified")
    }

    /// 403 `WRONG_AUTH_TYPE` for methods that need an application context.
    pub fn wrong_auth_type() -> ApiError {
        ApiError::forbidden("WRONG_AUTH_TYPE", "Current authorization type is denied for this method. Application context required")
    }

    /// 500 `INTERNAL_SERVER_ERROR` (an emulator bug; never expected).
    pub fn internal() -> ApiError {
        ApiError::new(500, "INTERNAL_SERVER_ERROR", "Internal server error")
    }
}

impl From<ParseError> for ApiError {
    /// Unreadable parameters. Real Bitrix24 has no documented answer for this (PHP silently drops what it
    /// cannot parse); the emulator answers 400 `INVALID_REQUEST`, which is UNCONFIRMED.
    fn from(e: ParseError) -> ApiError {
        let text = match &e {
            ParseError::Json(_) => "Invalid JSON in request body".to_owned(),
            ParseError::BadKey(k) => format!("Malformed parameter name: {k}"),
            other => other.to_string(),
        };
        ApiError::new(400, "INVALID_REQUEST", &text)
    }
}
