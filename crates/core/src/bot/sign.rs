//! Signing bot requests, so a bot can tell the bridge from anyone else who learnt its URL.
//!
//! When `BOT_HMAC_SECRET` is set, every request carries
//! `X-Olbridge-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`, the scheme
//! Stripe and Svix use: the timestamp is inside the signed bytes, so a captured request cannot be
//! replayed outside the tolerance window, and the raw body is signed as sent, so the bot must
//! verify before parsing JSON (re-serialising would change the bytes). [`verify`] is the reference
//! check for bot owners and our demo bot; it accepts several `v1=` entries, so a secret can be
//! rotated by signing with both for a while.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::domain::secret::Secret;

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "X-Olbridge-Signature";

type HmacSha256 = Hmac<Sha256>;

/// The MAC over `"<t>.<body>"`. HMAC takes keys of any length, so the error branch of
/// `new_from_slice` cannot happen; it is mapped to `None` rather than a panic.
fn mac(secret: &Secret, unix_secs: i64, body: &[u8]) -> Option<HmacSha256> {
    let mut mac = HmacSha256::new_from_slice(secret.expose().as_bytes()).ok()?;
    mac.update(unix_secs.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(mac)
}

/// The header value for `body` sent at `unix_secs`.
pub fn signature_header(secret: &Secret, unix_secs: i64, body: &[u8]) -> String {
    let v1 = mac(secret, unix_secs, body).map(|m| hex::encode(m.finalize().into_bytes())).unwrap_or_default();
    format!("t={unix_secs},v1={v1}")
}

/// Whether `header` is a valid signature of `body` by `secret`, made within `tolerance_secs` of
/// `now` (Unix seconds; 300 is the usual choice). The MAC is compared in constant time; a
/// malformed header is simply invalid.
pub fn verify(secret: &Secret, header: &str, body: &[u8], now: i64, tolerance_secs: u64) -> bool {
    let mut t = None;
    let mut candidates = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.trim().parse::<i64>().ok(),
            Some(("v1", v)) => candidates.push(v.trim()),
            _ => {}
        }
    }
    let Some(t) = t else { return false };
    if now.abs_diff(t) > tolerance_secs {
        return false;
    }
    let Some(expected) = mac(secret, t, body) else { return false };
    candidates.into_iter().filter_map(|c| hex::decode(c).ok()).any(|sig| expected.clone().verify_slice(&sig).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"{"text":"hello"}"#;

    fn secret() -> Secret {
        Secret::new("olbridge-test-secret")
    }

    #[test]
    fn known_answer() {
        // python3 -c "import hmac,hashlib;print(hmac.new(b'olbridge-test-secret',
        //   b'1772093963.{\"text\":\"hello\"}',hashlib.sha256).hexdigest())"
        assert_eq!(signature_header(&secret(), 1_772_093_963, BODY), "t=1772093963,v1=835de4f239c3229a37ed2c3711872e629aedfb95eb9f326bbff3b439310a2309");
    }

    #[test]
    fn verifies_within_tolerance_only() {
        let h = signature_header(&secret(), 1000, BODY);
        let tol = 300;
        assert!(verify(&secret(), &h, BODY, 1000, tol));
        assert!(verify(&secret(), &h, BODY, 1300, tol));
        assert!(verify(&secret(), &h, BODY, 700, tol));
        assert!(!verify(&secret(), &h, BODY, 1301, tol), "too old");
        assert!(!verify(&secret(), &h, BODY, 699, tol), "from the future");
    }

    #[test]
    fn refuses_other_bodies_secrets_and_garbage() {
        let h = signature_header(&secret(), 1000, BODY);
        let tol = 300;
        assert!(!verify(&secret(), &h, br#"{"text":"hellO"}"#, 1000, tol));
        assert!(!verify(&Secret::new("other"), &h, BODY, 1000, tol));
        for bad in ["", "t=1000", "v1=00", "t=x,v1=00", "t=1000,v1=zz", "t=1000,v1="] {
            assert!(!verify(&secret(), bad, BODY, 1000, tol), "{bad:?}");
        }
        // Rotation: any matching v1 entry is enough; spaces are tolerated.
        let rotated = format!("t=1000, v1=deadbeef, {}", h.split(',').nth(1).unwrap_or_default());
        assert!(verify(&secret(), &rotated, BODY, 1000, tol));
    }
}
