//! The incoming-webhook base URL (`B24_WEBHOOK_BASE`): `https://<portal>/rest/<user_id>/<code>/`.
//!
//! The `<code>` part is a password: anyone holding the URL can call the portal as that user. So it
//! is kept as a [`Secret`] and the URL is only ever assembled in `WebhookBase::method_url`, whose
//! result goes straight into the HTTP request. `Debug` and `Display` print the URL with the code
//! masked, which is what logs and error messages get.

use std::fmt;

use url::Url;

use crate::domain::ids::{IdError, PortalDomain, UserId};
use crate::domain::secret::Secret;

/// Why a webhook base URL was refused. Never contains the code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid Bitrix24 webhook URL: {0} (expected https://<portal>/rest/<user_id>/<code>/)")]
pub struct WebhookError(&'static str);

/// A parsed incoming-webhook base URL.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookBase {
    /// Scheme, host and port, plus any path prefix before `/rest/` (self-hosted installs under a
    /// sub-path), ending without a slash.
    origin: String,
    user_id: UserId,
    code: Secret,
    domain: PortalDomain,
}

impl WebhookBase {
    /// Parses `https://<portal>/rest/<user_id>/<code>/` (trailing slash optional). Plain `http` is
    /// accepted for local emulators; real portals refuse it with `INVALID_REQUEST`.
    pub fn parse(raw: &str) -> Result<Self, WebhookError> {
        let url = Url::parse(raw.trim()).map_err(|_| WebhookError("not a URL"))?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(WebhookError("scheme must be https (or http for a local emulator)"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(WebhookError("must not have a query or fragment"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(WebhookError("must not carry user info"));
        }
        let domain = PortalDomain::from_url(&url).map_err(|_: IdError| WebhookError("bad host"))?;
        let mut segments: Vec<&str> = url.path_segments().map(|s| s.collect()).unwrap_or_default();
        if segments.last() == Some(&"") {
            segments.pop();
        }
        let [prefix @ .., rest, user, code] = segments.as_slice() else {
            return Err(WebhookError("path must end with /rest/<user_id>/<code>"));
        };
        if *rest != "rest" {
            return Err(WebhookError("path must end with /rest/<user_id>/<code>"));
        }
        let user_id = UserId::parse(user).map_err(|_| WebhookError("user id must be a positive integer"))?;
        if code.is_empty() || !code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
            return Err(WebhookError("code must be letters, digits, '_' or '-'"));
        }
        let mut origin = url.origin().ascii_serialization();
        for p in prefix {
            origin.push('/');
            origin.push_str(p);
        }
        Ok(Self { origin, user_id, code: Secret::new(*code), domain })
    }

    /// The user the webhook acts as.
    pub fn user_id(&self) -> UserId {
        self.user_id
    }

    /// The portal (`host[:port]`), as events name it in `auth[domain]`.
    pub fn domain(&self) -> &PortalDomain {
        &self.domain
    }

    /// The webhook code.
    pub fn code(&self) -> &Secret {
        &self.code
    }

    /// The URL to POST `method` to: `<base><method>` (the form the Bitrix24 docs use; the `.json`
    /// suffix is optional). Contains the code: send it, never log it.
    pub(crate) fn method_url(&self, method: &str) -> String {
        format!("{}/rest/{}/{}/{}", self.origin, self.user_id, self.code.expose(), method)
    }
}

impl fmt::Display for WebhookBase {
    /// `https://portal/rest/38005/***/`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/rest/{}/***/", self.origin, self.user_id)
    }
}

impl fmt::Debug for WebhookBase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WebhookBase({self})")
    }
}

impl std::str::FromStr for WebhookBase {
    type Err = WebhookError;
    fn from_str(s: &str) -> Result<Self, WebhookError> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_shape_with_or_without_trailing_slash() {
        for raw in ["https://Example.bitrix24.com/rest/38005/abc123xyz/", "https://example.bitrix24.com/rest/38005/abc123xyz"] {
            let w = WebhookBase::parse(raw).expect("valid");
            assert_eq!(w.user_id().get(), 38005);
            assert_eq!(w.domain().as_str(), "example.bitrix24.com");
            assert!(w.code().matches("abc123xyz"));
            assert_eq!(w.method_url("im.message.add"), "https://example.bitrix24.com/rest/38005/abc123xyz/im.message.add");
            assert_eq!(w.to_string(), "https://example.bitrix24.com/rest/38005/***/");
            assert_eq!(format!("{w:?}"), "WebhookBase(https://example.bitrix24.com/rest/38005/***/)");
        }
    }

    #[test]
    fn keeps_ports_and_path_prefixes_for_local_emulators() {
        let w = WebhookBase::parse("http://127.0.0.1:8091/portal/rest/1/k3y/").expect("valid");
        assert_eq!(w.domain().as_str(), "127.0.0.1:8091");
        assert_eq!(w.method_url("profile"), "http://127.0.0.1:8091/portal/rest/1/k3y/profile");
        assert!(!format!("{w} {w:?}").contains("k3y"));
    }

    #[test]
    fn refuses_other_shapes_without_echoing_the_code() {
        for raw in [
            "ftp://p/rest/1/code/",
            "https://p/rest/0/code/",
            "https://p/rest/x/code/",
            "https://p/api/1/code/",
            "https://p/rest/1/",
            "https://p/rest/1/co%20de/",
            "https://p/rest/1/code/?a=b",
            "https://u:pw@p/rest/1/code/",
            "not a url",
        ] {
            let err = WebhookBase::parse(raw).expect_err(raw);
            assert!(!err.to_string().contains("code/"), "{err}");
        }
    }
}
