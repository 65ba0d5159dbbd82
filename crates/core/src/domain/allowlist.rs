//! The receiver's source allow-list (`OLBRIDGE_ALLOWED_CIDRS`) and which address a request comes
//! from behind trusted reverse proxies (`OLBRIDGE_TRUSTED_PROXIES`).
//!
//! One pure type for both runtimes: the local runner checks the TCP peer (or, behind a trusted
//! proxy, the `X-Forwarded-For` address the proxy vouches for), the Lambda receiver API Gateway's
//! `requestContext.http.sourceIp`. Both refuse with 403 `not_allowed` before the body is parsed.
//!
//! # Why the right-most untrusted address
//! `X-Forwarded-For` is a list each proxy appends its peer to; anything left of the last trusted
//! proxy's entry was written by the client and can be forged. So the list is read from the right,
//! trusted proxies are skipped, and the first address that is not a trusted proxy is the client.
//! A request whose TCP peer is not a trusted proxy is judged by the peer alone: its header is
//! ignored.
//!
//! IPv4-mapped IPv6 addresses (`::ffff:203.0.113.7`, what a dual-stack socket reports) are compared
//! as the IPv4 address they carry.

use std::fmt;
use std::net::IpAddr;

/// One CIDR block: `203.0.113.0/24`, `2001:db8::/32`, or a bare address (a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

/// Why a CIDR or a list of them did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an IPv4 or IPv6 CIDR (e.g. 203.0.113.0/24, 2001:db8::/32)")]
pub struct CidrError(pub String);

impl Cidr {
    /// Parses `address/prefix` or a bare address. Host bits set under the prefix are an error: a
    /// typo such as `10.0.0.1/8` would otherwise allow far more than the writer meant.
    pub fn parse(s: &str) -> Result<Self, CidrError> {
        let s = s.trim();
        let bad = || CidrError(s.to_owned());
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let network: IpAddr = addr.parse().map_err(|_| bad())?;
        let network = network.to_canonical();
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p.parse::<u8>().map_err(|_| bad())?,
            Some(_) => return Err(bad()),
            None => max,
        };
        if prefix > max {
            return Err(bad());
        }
        let cidr = Self { network, prefix };
        if cidr.masked(network) != bits(network) {
            return Err(bad());
        }
        Ok(cidr)
    }

    /// Whether `ip` is in this block.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.network.is_ipv4() && self.masked(ip) == bits(self.network)
    }

    fn masked(&self, ip: IpAddr) -> u128 {
        let width = if ip.is_ipv4() { 32 } else { 128 };
        let host_bits = u32::from(width - self.prefix);
        let mask = if host_bits >= 128 { 0 } else { u128::MAX << host_bits };
        bits(ip) & mask
    }
}

fn bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// A list of CIDR blocks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CidrList(Vec<Cidr>);

impl CidrList {
    /// Parses a comma-separated list; blanks around entries are ignored, an empty entry is not.
    /// Every bad entry is named.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut ok = Vec::new();
        let mut bad = Vec::new();
        for part in s.split(',') {
            match Cidr::parse(part) {
                Ok(c) => ok.push(c),
                Err(e) => bad.push(e.to_string()),
            }
        }
        if bad.is_empty() { Ok(Self(ok)) } else { Err(bad.join("; ")) }
    }

    /// Whether any block contains `ip`.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }

    /// The blocks.
    pub fn blocks(&self) -> &[Cidr] {
        &self.0
    }
}

impl fmt::Display for CidrList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, c) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

/// Who may POST events: the allow-list (none: everyone) and the proxies whose `X-Forwarded-For`
/// is believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourcePolicy {
    /// `OLBRIDGE_ALLOWED_CIDRS`; `None` allows every source.
    pub allowed: Option<CidrList>,
    /// `OLBRIDGE_TRUSTED_PROXIES`.
    pub trusted_proxies: CidrList,
}

impl SourcePolicy {
    /// Whether the list is on at all (nothing to resolve or check when it is not).
    pub fn is_open(&self) -> bool {
        self.allowed.is_none()
    }

    /// The address a request comes from: `peer`, or behind trusted proxies the right-most
    /// address of `forwarded_for` (every `X-Forwarded-For` header value, in order) that is not a
    /// trusted proxy. `None` when that entry does not parse: such a request cannot be placed.
    pub fn client<'a>(&self, peer: IpAddr, forwarded_for: impl IntoIterator<Item = &'a str>) -> Option<IpAddr> {
        let peer = peer.to_canonical();
        if !self.trusted_proxies.contains(peer) {
            return Some(peer);
        }
        let hops: Vec<&str> = forwarded_for.into_iter().flat_map(|h| h.split(',')).map(str::trim).filter(|h| !h.is_empty()).collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            let ip = parse_hop(hop)?;
            client = ip;
            if !self.trusted_proxies.contains(ip) {
                return Some(ip);
            }
        }
        // Every hop is a trusted proxy (or there is no header): the left-most one is the client.
        Some(client)
    }

    /// Whether a request from `client` may post events.
    pub fn allows(&self, client: Option<IpAddr>) -> bool {
        match (&self.allowed, client) {
            (None, _) => true,
            (Some(list), Some(ip)) => list.contains(ip),
            (Some(_), None) => false,
        }
    }

    /// [`Self::client`] then [`Self::allows`].
    pub fn admits<'a>(&self, peer: IpAddr, forwarded_for: impl IntoIterator<Item = &'a str>) -> bool {
        self.is_open() || self.allows(self.client(peer, forwarded_for))
    }
}

/// One `X-Forwarded-For` entry: an address, maybe with a port (`203.0.113.7:4711`,
/// `[2001:db8::1]:4711`), as some proxies write it.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(sa) = hop.parse::<std::net::SocketAddr>() {
        return Some(sa.ip().to_canonical());
    }
    hop.strip_prefix('[').and_then(|h| h.strip_suffix(']')).and_then(|h| h.parse::<IpAddr>().ok()).map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn list(s: &str) -> CidrList {
        CidrList::parse(s).unwrap()
    }

    #[test]
    fn blocks_parse_and_contain() {
        let l = list("203.0.113.0/24, 2001:db8::/32,198.51.100.7");
        assert!(l.contains(ip("203.0.113.255")));
        assert!(!l.contains(ip("203.0.114.0")));
        assert!(l.contains(ip("2001:db8:ffff::1")));
        assert!(!l.contains(ip("2001:db9::1")));
        assert!(l.contains(ip("198.51.100.7")) && !l.contains(ip("198.51.100.8")), "a bare address is a /32");
        assert!(l.contains(ip("::ffff:203.0.113.9")), "IPv4-mapped IPv6 is compared as IPv4");
        assert!(list("0.0.0.0/0").contains(ip("8.8.8.8")) && !list("0.0.0.0/0").contains(ip("::1")));
        assert!(list("::/0").contains(ip("::1")));
        assert_eq!(l.to_string(), "203.0.113.0/24,2001:db8::/32,198.51.100.7/32");
    }

    #[test]
    fn bad_blocks_are_each_named() {
        for bad in ["", "10.0.0.0/33", "10.0.0.1/8", "10.0.0.0/", "10.0.0.0/+8", "2001:db8::/129", "example.com/24", "10.0.0.0/8/8"] {
            assert!(Cidr::parse(bad).is_err(), "{bad:?} parsed");
        }
        let e = CidrList::parse("10.0.0.0/8,nope,10.0.0.1/8").unwrap_err();
        assert!(e.contains("\"nope\"") && e.contains("\"10.0.0.1/8\""), "{e}");
        assert!(CidrList::parse("10.0.0.0/8,").is_err(), "a trailing comma is an empty entry");
    }

    #[test]
    fn an_unset_list_admits_everyone_and_a_set_one_only_its_blocks() {
        let open = SourcePolicy::default();
        assert!(open.admits(ip("192.0.2.1"), []));
        let closed = SourcePolicy { allowed: Some(list("203.0.113.0/24")), trusted_proxies: CidrList::default() };
        assert!(closed.admits(ip("203.0.113.4"), []));
        assert!(!closed.admits(ip("127.0.0.1"), []));
        assert!(!closed.admits(ip("127.0.0.1"), ["203.0.113.4"]), "an untrusted peer's X-Forwarded-For is ignored");
    }

    #[test]
    fn behind_trusted_proxies_the_right_most_untrusted_address_is_the_client() {
        let p = SourcePolicy { allowed: Some(list("203.0.113.0/24")), trusted_proxies: list("127.0.0.0/8,10.0.0.0/8") };
        // The client forged the left-most entry; the proxies appended the real one.
        assert_eq!(p.client(ip("127.0.0.1"), ["203.0.113.4, 198.51.100.9, 10.1.2.3"]), Some(ip("198.51.100.9")));
        assert!(!p.admits(ip("127.0.0.1"), ["203.0.113.4, 198.51.100.9, 10.1.2.3"]));
        assert!(p.admits(ip("127.0.0.1"), ["198.51.100.9", "203.0.113.4"]), "several headers are one list, in order");
        assert!(p.admits(ip("::ffff:127.0.0.1"), ["203.0.113.4:4711"]), "a port is dropped; a mapped peer is IPv4");
        assert_eq!(p.client(ip("127.0.0.1"), ["[2001:db8::1]:80"]), Some(ip("2001:db8::1")));
        assert_eq!(p.client(ip("127.0.0.1"), []), Some(ip("127.0.0.1")), "no header: the proxy itself");
        assert_eq!(p.client(ip("127.0.0.1"), ["10.0.0.1, 10.0.0.2"]), Some(ip("10.0.0.1")), "all trusted: the left-most");
        assert_eq!(p.client(ip("127.0.0.1"), ["203.0.113.4, garbage"]), None, "an unreadable hop cannot be placed");
        assert!(!p.admits(ip("127.0.0.1"), ["203.0.113.4, garbage"]));
    }
}
