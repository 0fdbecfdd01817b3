//! The destination guard: which URLs a webhook may point at and which addresses hookd may
//! connect to (SSRF protection).
//!
//! Two checks, one rule set:
//! - at create/update time, [`check_url`] parses the URL and refuses literal addresses in
//!   blocked networks (hostnames are accepted even if they do not resolve);
//! - at connect time, every address a hostname resolves to goes through [`blocked_reason`]
//!   again, so a name that later resolves to an internal address (DNS rebinding) is refused.
//!
//! Unless `allow_private_networks` is set, an address is blocked when it is loopback,
//! private (RFC 1918), shared (CGNAT, 100.64.0.0/10), link-local (where cloud metadata
//! lives), unspecified, broadcast, multicast, reserved, documentation or benchmarking
//! space, or an IPv6 form of any of these (IPv4-mapped, IPv4-compatible, NAT64, 6to4).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hyper::Uri;
use ipnet::IpNet;

/// Why a URL is refused: `Invalid` answers 400, `NotAllowed` answers 422.
#[derive(Debug, PartialEq, Eq)]
pub enum UrlProblem {
    Invalid(String),
    NotAllowed(String),
}

/// Policy knobs from `[delivery]`.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    pub allow_http: bool,
    pub allow_private_networks: bool,
    /// Exceptions: addresses in these networks pass even when blocked.
    pub allowed_networks: Vec<IpNet>,
}

impl Policy {
    pub fn from_config(d: &crate::config::DeliveryConfig) -> Policy {
        Policy {
            allow_http: d.allow_http,
            allow_private_networks: d.allow_private_networks,
            allowed_networks: d.allowed_networks.clone(),
        }
    }

    /// Why `ip` may not be connected to under this policy, or `None` when it may.
    pub fn refusal(&self, ip: IpAddr) -> Option<&'static str> {
        if self.allow_private_networks || self.allowed_networks.iter().any(|n| in_network(n, ip)) {
            return None;
        }
        blocked_reason(ip)
    }
}

/// Whether `ip` is inside `net`. An IPv4-mapped IPv6 address is the IPv4 address it
/// carries (ipnet alone would say an IPv4 network never contains an IPv6 address).
fn in_network(net: &IpNet, ip: IpAddr) -> bool {
    match (net, ip) {
        (IpNet::V4(v4net), IpAddr::V6(v6)) => {
            v6.to_ipv4_mapped().is_some_and(|v4| v4net.contains(&v4))
        }
        (net, ip) => net.contains(&ip),
    }
}

pub const MAX_URL_LEN: usize = 2048;

/// The host part of a webhook URL.
#[derive(Debug, PartialEq, Eq)]
pub enum Host {
    Ip(IpAddr),
    Name(String),
}

/// Validates a webhook URL and returns its host.
pub fn check_url(url: &str, policy: &Policy) -> Result<Host, UrlProblem> {
    let invalid = |why: &str| UrlProblem::Invalid(format!("`url` {why}"));
    if url.len() > MAX_URL_LEN {
        return Err(invalid(&format!("is longer than {MAX_URL_LEN} bytes")));
    }
    let uri: Uri = url
        .parse()
        .map_err(|_| invalid("is not a valid absolute URL like https://example.com/webhook"))?;
    let scheme = uri
        .scheme_str()
        .ok_or_else(|| invalid("must be absolute, like https://example.com/webhook"))?;
    match scheme {
        "https" => {}
        "http" if policy.allow_http => {}
        "http" => {
            return Err(UrlProblem::NotAllowed(
                "`url` must use https:// (http:// is allowed only with delivery.allow_http)".into(),
            ));
        }
        _ => return Err(invalid("must start with https:// or http://")),
    }
    let authority = uri.authority().ok_or_else(|| invalid("has no host"))?;
    if authority.as_str().contains('@') {
        return Err(invalid("must not contain credentials (user:password@)"));
    }
    let host = authority.host();
    if host.is_empty() {
        return Err(invalid("has no host"));
    }
    let host = parse_host(host).map_err(|why| invalid(&why))?;
    if let Host::Ip(ip) = host
        && let Some(reason) = policy.refusal(ip)
    {
        return Err(UrlProblem::NotAllowed(format!(
            "`url` points at {ip}, a {reason} address; set delivery.allow_private_networks to allow it"
        )));
    }
    Ok(host)
}

fn parse_host(host: &str) -> Result<Host, String> {
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6
            .parse::<Ipv6Addr>()
            .map(|ip| Host::Ip(IpAddr::V6(ip)))
            .map_err(|_| format!("has an invalid IPv6 address [{v6}]"));
    }
    if let Ok(v4) = host.parse::<Ipv4Addr>() {
        return Ok(Host::Ip(IpAddr::V4(v4)));
    }
    // Numeric hosts that are not dotted quads (`2130706433`, `0x7f.1`, `127.1`) are read as
    // IPv4 addresses by resolvers and browsers alike; refuse the ambiguity outright.
    let last_label = host.trim_end_matches('.').rsplit('.').next().unwrap_or("");
    if last_label.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(format!(
            "has a numeric host \"{host}\" that is not a plain IPv4 address"
        ));
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    if host.len() > 253 || !host.trim_end_matches('.').split('.').all(label_ok) {
        return Err(format!("has an invalid host name \"{host}\""));
    }
    Ok(Host::Name(host.to_ascii_lowercase()))
}

/// Why hookd refuses to connect to `ip`, or `None` when it is a public address.
pub fn blocked_reason(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => blocked_v4(v4),
        IpAddr::V6(v6) => blocked_v6(v6),
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    };
    (u32::from(ip) & mask) == (u32::from(Ipv4Addr::from(net)) & mask)
}

fn blocked_v4(ip: Ipv4Addr) -> Option<&'static str> {
    const RANGES: &[([u8; 4], u32, &str)] = &[
        ([0, 0, 0, 0], 8, "\"this network\" (0.0.0.0/8)"),
        ([10, 0, 0, 0], 8, "private (RFC 1918)"),
        ([100, 64, 0, 0], 10, "shared/CGNAT (100.64.0.0/10)"),
        ([127, 0, 0, 0], 8, "loopback"),
        ([169, 254, 0, 0], 16, "link-local"),
        ([172, 16, 0, 0], 12, "private (RFC 1918)"),
        ([192, 0, 0, 0], 24, "IETF protocol assignment"),
        ([192, 0, 2, 0], 24, "documentation (TEST-NET-1)"),
        ([192, 88, 99, 0], 24, "6to4 relay anycast"),
        ([192, 168, 0, 0], 16, "private (RFC 1918)"),
        ([198, 18, 0, 0], 15, "benchmarking"),
        ([198, 51, 100, 0], 24, "documentation (TEST-NET-2)"),
        ([203, 0, 113, 0], 24, "documentation (TEST-NET-3)"),
        ([224, 0, 0, 0], 4, "multicast"),
        ([255, 255, 255, 255], 32, "broadcast"),
        ([240, 0, 0, 0], 4, "reserved"),
    ];
    RANGES
        .iter()
        .find(|(net, prefix, _)| in_v4(ip, *net, *prefix))
        .map(|(_, _, reason)| *reason)
}

fn in_v6(ip: Ipv6Addr, net: [u16; 8], prefix: u32) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - prefix)
    };
    (u128::from(ip) & mask) == (u128::from(Ipv6Addr::from(net)) & mask)
}

fn embedded_v4(ip: Ipv6Addr) -> Ipv4Addr {
    Ipv4Addr::from((u128::from(ip) & 0xffff_ffff) as u32)
}

fn blocked_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    // Forms that carry an IPv4 address: judge the address they lead to.
    const EMBEDDING: &[([u16; 8], u32)] = &[
        ([0, 0, 0, 0, 0, 0xffff, 0, 0], 96),    // IPv4-mapped
        ([0, 0, 0, 0, 0, 0, 0, 0], 96),         // IPv4-compatible (deprecated)
        ([0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96), // NAT64 well-known prefix
        ([0, 0, 0, 0, 0xffff, 0, 0, 0], 96),    // IPv4-translated
    ];
    if EMBEDDING.iter().any(|(net, p)| in_v6(ip, *net, *p)) {
        return blocked_v4(embedded_v4(ip));
    }
    if in_v6(ip, [0x2002, 0, 0, 0, 0, 0, 0, 0], 16) {
        // 6to4: the IPv4 address sits in bits 16..48.
        let v4 = Ipv4Addr::from(((u128::from(ip) >> 80) & 0xffff_ffff) as u32);
        return blocked_v4(v4).map(|_| "6to4 form of a blocked IPv4");
    }
    const RANGES: &[([u16; 8], u32, &str)] = &[
        ([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48, "local-use NAT64"),
        ([0x100, 0, 0, 0, 0, 0, 0, 0], 64, "discard-only"),
        ([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32, "documentation"),
        ([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20, "documentation"),
        (
            [0x2001, 0, 0, 0, 0, 0, 0, 0],
            23,
            "IETF protocol assignment",
        ),
        ([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7, "unique local (ULA)"),
        ([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10, "link-local"),
        ([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10, "site-local"),
        ([0xff00, 0, 0, 0, 0, 0, 0, 0], 8, "multicast"),
    ];
    RANGES
        .iter()
        .find(|(net, prefix, _)| in_v6(ip, *net, *prefix))
        .map(|(_, _, reason)| *reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRICT: &Policy = &Policy {
        allow_http: false,
        allow_private_networks: false,
        allowed_networks: Vec::new(),
    };
    const OPEN: &Policy = &Policy {
        allow_http: true,
        allow_private_networks: true,
        allowed_networks: Vec::new(),
    };

    #[test]
    fn allowed_networks_are_exceptions() {
        let policy = Policy {
            allowed_networks: vec!["10.1.0.0/16".parse().unwrap(), "fd00::/8".parse().unwrap()],
            ..Policy::default()
        };
        assert_eq!(policy.refusal("10.1.2.3".parse().unwrap()), None);
        assert_eq!(policy.refusal("::ffff:10.1.2.3".parse().unwrap()), None);
        assert_eq!(policy.refusal("fd12::1".parse().unwrap()), None);
        assert!(policy.refusal("10.2.0.1".parse().unwrap()).is_some());
        assert!(policy.refusal("127.0.0.1".parse().unwrap()).is_some());
        assert!(check_url("https://10.1.9.9/h", &policy).is_ok());
        for bad in [
            "10.0.0.0",
            "10.0.0.0/33",
            "::/129",
            "x/8",
            "10.0.0.0/-1",
            "10.0.0.0/",
        ] {
            assert!(crate::config::parse_network(bad).is_err(), "{bad}");
        }
        let everything = crate::config::parse_network("0.0.0.0/0").unwrap();
        assert!(in_network(&everything, "8.8.8.8".parse().unwrap()));
    }

    fn blocked(s: &str) -> bool {
        blocked_reason(s.parse().unwrap()).is_some()
    }

    #[test]
    fn blocks_every_special_ipv4_range() {
        for ip in [
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "100.64.0.1",
            "100.127.255.255",
            "127.0.0.1",
            "127.255.0.1",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.255",
            "240.0.0.1",
            "255.255.255.255",
        ] {
            assert!(blocked(ip), "{ip} should be blocked");
        }
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "100.63.255.255",
            "100.128.0.0",
            "172.32.0.1",
            "192.169.0.1",
            "198.20.0.1",
        ] {
            assert!(!blocked(ip), "{ip} should be allowed");
        }
    }

    #[test]
    fn blocks_ipv6_ranges_and_embedded_ipv4() {
        for ip in [
            "::",
            "::1",
            "fc00::1",
            "fdff::1",
            "fe80::1",
            "febf::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::1",
            "::127.0.0.1",
            "2002:7f00:1::1",
            "100::1",
            "3fff::1",
            "fec0::1",
        ] {
            assert!(blocked(ip), "{ip} should be blocked");
        }
        for ip in [
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert!(!blocked(ip), "{ip} should be allowed");
        }
    }

    #[test]
    fn url_checks_scheme_host_and_literals() {
        assert_eq!(
            check_url("https://example.com/hook?x=1", STRICT),
            Ok(Host::Name("example.com".into()))
        );
        assert!(matches!(
            check_url("ftp://example.com/", STRICT),
            Err(UrlProblem::Invalid(_))
        ));
        assert!(matches!(
            check_url("example.com/hook", STRICT),
            Err(UrlProblem::Invalid(_))
        ));
        assert!(matches!(
            check_url("not a url", STRICT),
            Err(UrlProblem::Invalid(_))
        ));
        assert!(matches!(
            check_url("https://u:p@example.com/", STRICT),
            Err(UrlProblem::Invalid(_))
        ));
        assert!(matches!(
            check_url("https://2130706433/", STRICT),
            Err(UrlProblem::Invalid(_))
        ));
        assert!(matches!(
            check_url("https://127.1/", STRICT),
            Err(UrlProblem::Invalid(_))
        ));
        assert!(matches!(
            check_url("http://example.com/", STRICT),
            Err(UrlProblem::NotAllowed(_))
        ));
        assert!(matches!(
            check_url("https://127.0.0.1:9/", STRICT),
            Err(UrlProblem::NotAllowed(_))
        ));
        assert!(matches!(
            check_url("https://[::1]/", STRICT),
            Err(UrlProblem::NotAllowed(_))
        ));
        assert!(matches!(
            check_url("https://[::ffff:192.168.0.1]/", STRICT),
            Err(UrlProblem::NotAllowed(_))
        ));
        assert!(check_url("http://127.0.0.1:9/", OPEN).is_ok());
        assert!(check_url("https://does-not-resolve.invalid/", STRICT).is_ok());
        assert!(matches!(
            check_url(&format!("https://example.com/{}", "a".repeat(3000)), STRICT),
            Err(UrlProblem::Invalid(_))
        ));
    }
}
