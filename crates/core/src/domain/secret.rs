//! Secrets that never reach a log: `Debug` and `Display` print a placeholder, comparison is in
//! constant time.

use std::fmt;

use subtle::ConstantTimeEq;

/// A secret string (webhook code, application token, bot credentials, HMAC key).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that must send it (an HTTP header, a URL path).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Compares with an untrusted candidate in constant time (for the lengths involved), so a forged
    /// event cannot learn the token byte by byte from response timing.
    pub fn matches(&self, candidate: &str) -> bool {
        let a = self.0.as_bytes();
        let b = candidate.as_bytes();
        // `ct_eq` on slices of different lengths returns false without comparing; the length of
        // the expected token is not the secret part.
        a.ct_eq(b).into()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::Secret;

    #[test]
    fn secrets_hide_in_debug_and_display_and_compare_exactly() {
        let s = Secret::new("s3cr3t-token");
        assert_eq!(format!("{s:?} {s}"), "Secret(***) ***");
        assert!(s.matches("s3cr3t-token"));
        assert!(!s.matches("s3cr3t-toke"));
        assert!(!s.matches("s3cr3t-token!"));
        assert!(!s.matches(""));
    }
}
