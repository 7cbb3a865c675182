//! Where webhooks may go: not into this machine, its networks or a cloud's
//! metadata service, unless the operator allows a network.
//!
//! Every address a destination's name resolves to is checked, and only the
//! addresses that pass are handed to the HTTP client to connect to (it
//! resolves through [`GuardedResolver`]), so a name that resolves to a
//! public address when checked and a private one a moment later (DNS
//! rebinding) still only reaches the checked one. A URL with an address
//! for a host is checked the same way before the request.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

pub use crate::cidr::{Cidr, CidrError};

/// The ranges refused by default, with what they are.
pub const REFUSED: &[(Cidr, &str)] = &[
    (Cidr::v4(0, 0, 0, 0, 8), "\"this network\""),
    (Cidr::v4(10, 0, 0, 0, 8), "private"),
    (Cidr::v4(100, 64, 0, 0, 10), "shared address space (CGNAT)"),
    (Cidr::v4(127, 0, 0, 0, 8), "loopback"),
    (Cidr::v4(169, 254, 0, 0, 16), "link-local (cloud metadata)"),
    (Cidr::v4(172, 16, 0, 0, 12), "private"),
    (Cidr::v4(192, 0, 0, 0, 24), "IETF protocol assignments"),
    (Cidr::v4(192, 0, 2, 0, 24), "documentation"),
    (Cidr::v4(192, 88, 99, 0, 24), "6to4 relay anycast"),
    (Cidr::v4(192, 168, 0, 0, 16), "private"),
    (Cidr::v4(198, 18, 0, 0, 15), "benchmarking"),
    (Cidr::v4(198, 51, 100, 0, 24), "documentation"),
    (Cidr::v4(203, 0, 113, 0, 24), "documentation"),
    (Cidr::v4(224, 0, 0, 0, 4), "multicast"),
    (Cidr::v4(240, 0, 0, 0, 4), "reserved"),
    (Cidr::v6([0, 0, 0, 0, 0, 0, 0, 0], 128), "unspecified"),
    (Cidr::v6([0, 0, 0, 0, 0, 0, 0, 1], 128), "loopback"),
    // The local-use NAT64 prefix (RFC 8215): where in it an IPv4 address
    // sits depends on the length its operator chose, so none is trusted.
    (
        Cidr::v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48),
        "local-use NAT64",
    ),
    (Cidr::v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64), "discard"),
    (
        Cidr::v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32),
        "documentation",
    ),
    (
        Cidr::v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7),
        "unique local (private)",
    ),
    (Cidr::v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10), "link-local"),
    (Cidr::v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8), "multicast"),
];

/// A destination address refused, and why.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Refused {
    #[error("{address} is {what} (refused unless webhooks.allowed_networks allows it)")]
    Range { address: IpAddr, what: &'static str },
    #[error("{host} resolves to no allowed address ({reasons})")]
    Name { host: String, reasons: String },
}

/// Which destinations pass.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    allowed: Vec<Cidr>,
}

impl Guard {
    pub fn new(allowed: &[String]) -> Result<Self, CidrError> {
        Ok(Self {
            allowed: allowed
                .iter()
                .map(|c| c.parse())
                .collect::<Result<_, _>>()?,
        })
    }

    /// Checks a URL as a destination: http or https, a host, no
    /// credentials, and (when the host is an address) one that passes.
    pub fn check_url(&self, url: &str) -> Result<reqwest::Url, String> {
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err("only http and https URLs can receive webhooks".into());
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err("the URL must not carry credentials".into());
        }
        let address = match parsed.host() {
            None => return Err("the URL has no host".into()),
            Some(url::Host::Ipv4(v4)) => IpAddr::V4(v4),
            Some(url::Host::Ipv6(v6)) => IpAddr::V6(v6),
            Some(url::Host::Domain(_)) => return Ok(parsed),
        };
        self.check(address).map_err(|e| e.to_string())?;
        Ok(parsed)
    }

    /// Passes an address in no refused range, or in an allowed network; an
    /// IPv6 address that carries an IPv4 one (see [`embedded_ipv4`]) passes
    /// only if that IPv4 address does too.
    pub fn check(&self, address: IpAddr) -> Result<(), Refused> {
        let embedded = match address {
            IpAddr::V6(v6) => embedded_ipv4(v6),
            IpAddr::V4(_) => Vec::new(),
        };
        if embedded.is_empty() {
            return self.check_one(address);
        }
        embedded
            .into_iter()
            .try_for_each(|v4| self.check_one(IpAddr::V4(v4)))
    }

    fn check_one(&self, address: IpAddr) -> Result<(), Refused> {
        if self.allowed.iter().any(|c| c.contains(address)) {
            return Ok(());
        }
        match REFUSED.iter().find(|(range, _)| range.contains(address)) {
            Some((_, what)) => Err(Refused::Range { address, what }),
            None => Ok(()),
        }
    }
}

/// The IPv4 addresses an IPv6 address carries, which is where a packet to it
/// may end up (a host or relay that routes the form reaches that IPv4
/// address): IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible `::a.b.c.d`
/// (deprecated, still routed by some stacks), NAT64's well-known prefix
/// `64:ff9b::a.b.c.d` (RFC 6052), 6to4 `2002:AABB:CCDD::/48` (RFC 3056) and
/// Teredo `2001:0:SSSS:SSSS:…:CCCC:CCCC` (RFC 4380: the server, and the
/// client with its bits inverted). Empty for any other address.
pub fn embedded_ipv4(address: Ipv6Addr) -> Vec<Ipv4Addr> {
    let s = address.segments();
    let v4 = |high: u16, low: u16| Ipv4Addr::from((u32::from(high) << 16) | u32::from(low));
    match s {
        // `::` and `::1` are IPv6's own unspecified and loopback addresses.
        [0, 0, 0, 0, 0, 0, 0, 0 | 1] => Vec::new(),
        [0, 0, 0, 0, 0, 0xffff, high, low] | [0, 0, 0, 0, 0, 0, high, low] => vec![v4(high, low)],
        [0x64, 0xff9b, 0, 0, 0, 0, high, low] => vec![v4(high, low)],
        [0x2002, high, low, ..] => vec![v4(high, low)],
        [
            0x2001,
            0,
            server_high,
            server_low,
            _,
            _,
            client_high,
            client_low,
        ] => vec![v4(server_high, server_low), v4(!client_high, !client_low)],
        _ => Vec::new(),
    }
}

/// The HTTP client's resolver: the system's answer, only the addresses
/// the guard passes.
pub struct GuardedResolver(pub Arc<Guard>);

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let guard = self.0.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut reasons = Vec::new();
            let passed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| match guard.check(a.ip()) {
                    Ok(()) => true,
                    Err(refused) => {
                        reasons.push(refused.to_string());
                        false
                    }
                })
                .collect();
            if passed.is_empty() {
                let reasons = if reasons.is_empty() {
                    "no address at all".to_owned()
                } else {
                    reasons.join("; ")
                };
                return Err(Box::new(Refused::Name { host, reasons }) as _);
            }
            Ok(Box::new(passed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn special_ranges_are_refused_public_ones_pass() {
        let guard = Guard::default();
        for refused in [
            "127.0.0.1",
            "10.1.2.3",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "::ffff:127.0.0.1",
            "fd00:ec2::254",
            "fe80::1",
            "224.0.0.1",
        ] {
            assert!(guard.check(ip(refused)).is_err(), "{refused}");
        }
        for passes in [
            "93.184.215.14",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
        ] {
            assert!(guard.check(ip(passes)).is_ok(), "{passes}");
        }
    }

    /// Every IPv6 form that carries an IPv4 address: refused when that
    /// address is internal, passed when it is public.
    #[test]
    fn ipv6_forms_that_carry_an_internal_ipv4_address_are_refused() {
        let guard = Guard::default();
        // (form, internal, public)
        let forms = [
            ("mapped", "::ffff:127.0.0.1", "::ffff:93.184.215.14"),
            ("mapped, hex", "::ffff:a9fe:a9fe", "::ffff:5db8:d70e"),
            ("compatible", "::127.0.0.1", "::93.184.215.14"),
            ("compatible, metadata", "::169.254.169.254", "::8.8.8.8"),
            ("compatible, hex", "::7f00:1", "::5db8:d70e"),
            ("compatible, private", "::10.0.0.1", "::1.1.1.1"),
            ("NAT64", "64:ff9b::127.0.0.1", "64:ff9b::93.184.215.14"),
            ("NAT64, metadata", "64:ff9b::a9fe:a9fe", "64:ff9b::808:808"),
            ("6to4", "2002:7f00:1::1", "2002:5db8:d70e::1"),
            ("6to4, private", "2002:c0a8:101:1::1", "2002:808:808::"),
            ("6to4, metadata", "2002:a9fe:a9fe::", "2002:101:101::"),
            // Teredo: server 65.54.227.120 (public) and the client, bits
            // inverted: 127.0.0.1 is 80ff:fffe, 93.184.215.14 is a247:28f1.
            (
                "Teredo, client",
                "2001:0:4136:e378:8000:63bf:80ff:fffe",
                "2001:0:4136:e378:8000:63bf:a247:28f1",
            ),
            (
                "Teredo, server",
                "2001:0:a00:1:8000:63bf:a247:28f1",
                "2001:0:4136:e378:0:0:a247:28f1",
            ),
        ];
        for (form, internal, public) in forms {
            assert!(guard.check(ip(internal)).is_err(), "{form}: {internal}");
            assert!(guard.check(ip(public)).is_ok(), "{form}: {public}");
        }
        // The local-use NAT64 prefix, whatever it carries; and the
        // well-known one's own other addresses carry nothing.
        assert!(guard.check(ip("64:ff9b:1::5db8:d70e")).is_err());
        assert!(guard.check(ip("64:ff9b:1:ffff::1")).is_err());
        assert!(guard.check(ip("::ffff")).is_err(), "::0.0.255.255");
        for own in ["::", "::1"] {
            let refused = guard.check(ip(own)).unwrap_err().to_string();
            assert!(refused.contains(own), "checked as itself: {refused}");
        }
        // Allowing the IPv4 network allows its IPv6 forms.
        let allowed = Guard::new(&["127.0.0.0/8".into()]).unwrap();
        assert!(allowed.check(ip("::127.0.0.1")).is_ok());
        assert!(allowed.check(ip("2002:7f00:1::1")).is_ok());
    }

    #[test]
    fn an_allowed_network_passes() {
        let guard = Guard::new(&["127.0.0.0/8".into(), "fd00::/8".into()]).unwrap();
        assert!(guard.check(ip("127.0.0.1")).is_ok());
        assert!(guard.check(ip("fd12::1")).is_ok());
        assert!(guard.check(ip("10.0.0.1")).is_err());
        assert!(Guard::new(&["10.0.0.0/33".into()]).is_err());
        assert!(Guard::new(&["nonsense".into()]).is_err());
    }
}
