//! Who may POST events (`OLBRIDGE_ALLOWED_CIDRS`) and which reverse proxies are believed about the
//! client's address (`OLBRIDGE_TRUSTED_PROXIES`); the rules are [`SourcePolicy`]'s.
//!
//! Unset (or empty) `OLBRIDGE_ALLOWED_CIDRS` admits every source: the application token, the
//! portal's member id and the `ts` window still guard the route. The allow-list is a second fence,
//! for deployments that know where their portal's events come from (a self-hosted portal; a cloud
//! portal's outgoing addresses are not published, so measure them before closing the door).

use super::Reader;
use super::vars::{OLBRIDGE_ALLOWED_CIDRS, OLBRIDGE_TRUSTED_PROXIES};
use crate::domain::allowlist::{CidrList, SourcePolicy};

/// `OLBRIDGE_ALLOWED_CIDRS` and `OLBRIDGE_TRUSTED_PROXIES`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessSettings {
    /// The policy both receivers apply before they read an event.
    pub sources: SourcePolicy,
}

pub(super) fn read(r: &mut Reader<'_>) -> AccessSettings {
    let what = "expected comma-separated IPv4/IPv6 CIDRs, e.g. 203.0.113.0/24,2001:db8::/32";
    let allowed = r.parse(OLBRIDGE_ALLOWED_CIDRS, what, CidrList::parse);
    let trusted_proxies = r.parse(OLBRIDGE_TRUSTED_PROXIES, what, CidrList::parse).unwrap_or_default();
    AccessSettings { sources: SourcePolicy { allowed, trusted_proxies } }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use crate::config::Config;

    fn load(pairs: &[(&str, &str)]) -> Result<Config, crate::config::ConfigError> {
        Config::from_map(&pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect::<HashMap<_, _>>())
    }

    #[test]
    fn unset_admits_everyone_set_is_parsed_and_bad_entries_are_reported() {
        let open = load(&[]).expect("valid");
        assert!(open.access.sources.is_open());
        let set = load(&[("OLBRIDGE_ALLOWED_CIDRS", "203.0.113.0/24, ::1"), ("OLBRIDGE_TRUSTED_PROXIES", "127.0.0.1")]).expect("valid");
        assert_eq!(set.access.sources.allowed.as_ref().map(ToString::to_string).as_deref(), Some("203.0.113.0/24,::1/128"));
        assert_eq!(set.access.sources.trusted_proxies.blocks().len(), 1);
        let e = load(&[("OLBRIDGE_ALLOWED_CIDRS", "10.0.0.0/8,bogus"), ("OLBRIDGE_TRUSTED_PROXIES", "1.2.3.4/40")]).expect_err("invalid");
        assert_eq!(e.0.len(), 2, "{e}");
        assert!(e.0[0].starts_with("OLBRIDGE_ALLOWED_CIDRS") && e.0[0].contains("bogus"), "{e}");
    }
}
