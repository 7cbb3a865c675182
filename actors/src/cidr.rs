//! A network as an operator writes it (`10.1.0.0/16`, `fd00::/8`, or one
//! address), and whether an address is in it: for the webhooks' allowed
//! networks and the HTTP front's trusted proxies.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A network, `address/prefix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a network (CIDR, e.g. 10.1.0.0/16 or fd00::/8)")]
pub struct CidrError(String);

impl std::str::FromStr for Cidr {
    type Err = CidrError;

    fn from_str(text: &str) -> Result<Self, CidrError> {
        let error = || CidrError(text.to_owned());
        let (address, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let network: IpAddr = address.trim().parse().map_err(|_| error())?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.trim().parse::<u8>().map_err(|_| error())?,
            None => max,
        };
        if prefix > max {
            return Err(error());
        }
        Ok(Cidr { network, prefix })
    }
}

impl Cidr {
    pub const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> Cidr {
        Cidr {
            network: IpAddr::V4(Ipv4Addr::new(a, b, c, d)),
            prefix,
        }
    }

    pub const fn v6(segments: [u16; 8], prefix: u8) -> Cidr {
        let [a, b, c, d, e, f, g, h] = segments;
        Cidr {
            network: IpAddr::V6(Ipv6Addr::new(a, b, c, d, e, f, g, h)),
            prefix,
        }
    }

    pub fn contains(&self, address: IpAddr) -> bool {
        match (self.network, address) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// Parses each of `texts` (settings' lists of networks).
pub fn parse_all(texts: &[String]) -> Result<Vec<Cidr>, CidrError> {
    texts.iter().map(|t| t.parse()).collect()
}

/// Whether any of `networks` contains `address` (an IPv4 address written as
/// IPv6, `::ffff:a.b.c.d`, counts as that IPv4 address).
pub fn any_contains(networks: &[Cidr], address: IpAddr) -> bool {
    let address = match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    networks.iter().any(|n| n.contains(address))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_and_single_addresses() {
        let nets =
            parse_all(&["10.1.0.0/16".into(), "fd00::/8".into(), "192.0.2.7".into()]).unwrap();
        assert!(any_contains(&nets, "10.1.200.3".parse().unwrap()));
        assert!(!any_contains(&nets, "10.2.0.1".parse().unwrap()));
        assert!(any_contains(&nets, "fd12::1".parse().unwrap()));
        assert!(any_contains(&nets, "::ffff:192.0.2.7".parse().unwrap()));
        assert!(!any_contains(&nets, "192.0.2.8".parse().unwrap()));
        assert!(parse_all(&["10.0.0.0/33".into()]).is_err());
        assert!(parse_all(&["nope".into()]).is_err());
    }
}
