//! Who a request comes from, for rate limits, connection caps and logs.
//!
//! The peer of the TCP connection, unless the peer is one of
//! `http.trusted_proxies`: then the proxy's `Forwarded` (RFC 7239) or, when
//! it sends none, `X-Forwarded-For` names the hops, and the client is the
//! right-most hop that is not a trusted proxy itself. Hops to its left were
//! written by whoever sent the request to the first proxy and are never
//! believed; a header from a peer that is not a trusted proxy is ignored
//! altogether. Without trusted proxies, every client behind a proxy would
//! share one address's allowance.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;

use crate::cidr::{Cidr, any_contains};

/// The client's address, as resolved by the server loop for each request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        if let Some(client) = parts.extensions.get::<ClientAddr>() {
            return Ok(*client);
        }
        // A router served without the server loop (tests): the peer, if known.
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0.ip());
        Ok(ClientAddr(peer))
    }
}

/// The client of a request from `peer` with `headers`.
pub fn client_of(peer: IpAddr, headers: &HeaderMap, trusted: &[Cidr]) -> IpAddr {
    if !any_contains(trusted, peer) {
        return peer;
    }
    let mut hops = forwarded_hops(headers);
    if hops.is_empty() {
        hops = x_forwarded_for_hops(headers);
    }
    // Right to left: the first hop no trusted proxy vouches for. An
    // unparsable hop ends the walk (nothing left of it can be believed).
    let mut client = peer;
    for hop in hops.iter().rev() {
        match hop {
            Some(address) => {
                client = *address;
                if !any_contains(trusted, *address) {
                    break;
                }
            }
            None => break,
        }
    }
    client
}

/// The `for=` of every element of every `Forwarded` header, in order.
fn forwarded_hops(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    headers
        .get_all("forwarded")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|element| {
            element.split(';').find_map(|pair| {
                let (name, value) = pair.split_once('=')?;
                name.trim()
                    .eq_ignore_ascii_case("for")
                    .then(|| node_address(value.trim().trim_matches('"')))
            })
        })
        .collect()
}

/// Every address of every `X-Forwarded-For` header, in order.
fn x_forwarded_for_hops(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|hop| node_address(hop.trim()))
        .collect()
}

/// An address as a hop names it: `192.0.2.1`, `192.0.2.1:4711`, `[2001:db8::1]`
/// or `[2001:db8::1]:4711`, `2001:db8::1`; `None` for `unknown`, an
/// obfuscated name, or anything else.
fn node_address(text: &str) -> Option<IpAddr> {
    if let Ok(address) = text.parse::<IpAddr>() {
        return Some(address);
    }
    if let Ok(socket) = text.parse::<SocketAddr>() {
        return Some(socket.ip());
    }
    let bracketed = text.strip_prefix('[')?.split(']').next()?;
    bracketed.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cidr::parse_all;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn only_a_trusted_peer_is_believed_and_only_for_its_own_hop() {
        let trusted = parse_all(&["10.0.0.0/8".into()]).unwrap();
        let forged = headers(&[("x-forwarded-for", "1.2.3.4")]);
        // Not a trusted proxy: its header changes nothing.
        assert_eq!(
            client_of(ip("198.51.100.9"), &forged, &trusted),
            ip("198.51.100.9")
        );
        // The proxy appended the real client after what the client forged.
        let appended = headers(&[("x-forwarded-for", "1.2.3.4, 203.0.113.5")]);
        assert_eq!(
            client_of(ip("10.0.0.2"), &appended, &trusted),
            ip("203.0.113.5")
        );
        // Two proxies of ours: the client is left of both.
        let chained = headers(&[("x-forwarded-for", "6.6.6.6, 203.0.113.5, 10.0.0.3")]);
        assert_eq!(
            client_of(ip("10.0.0.2"), &chained, &trusted),
            ip("203.0.113.5")
        );
        // Forwarded wins over X-Forwarded-For; ports and brackets are read.
        let both = headers(&[
            (
                "forwarded",
                r#"for=6.6.6.6, for="[2001:db8::7]:4711";proto=https"#,
            ),
            ("x-forwarded-for", "203.0.113.5"),
        ]);
        assert_eq!(
            client_of(ip("10.0.0.2"), &both, &trusted),
            ip("2001:db8::7")
        );
        // No header from a trusted proxy: the proxy itself.
        assert_eq!(
            client_of(ip("10.0.0.2"), &HeaderMap::new(), &trusted),
            ip("10.0.0.2")
        );
        // A garbled hop stops the walk there.
        let garbled = headers(&[("x-forwarded-for", "203.0.113.5, garbage")]);
        assert_eq!(
            client_of(ip("10.0.0.2"), &garbled, &trusted),
            ip("10.0.0.2")
        );
        // Nobody trusted: always the peer.
        assert_eq!(client_of(ip("10.0.0.2"), &appended, &[]), ip("10.0.0.2"));
    }
}
