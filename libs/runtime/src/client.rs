//! The client's address: what the webhook log records and what per-source limits (webhooks,
//! API logins) key on.
//!
//! `X-Forwarded-For` is written by whoever sends the request, so it is believed only when the
//! connection comes from a configured proxy (`JT_TRUSTED_PROXIES`: addresses or networks, e.g.
//! `10.0.0.0/8, 192.168.1.10`). Then the header is read from the right — each trusted proxy
//! appended the address it saw — and the first address that is not a trusted proxy is the
//! client. Anything a client put in the header itself sits further left and is never reached.
//! Without trusted proxies the peer of the TCP connection is the client.

use std::net::IpAddr;
use std::str::FromStr;

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl FromStr for TrustedProxies {
    type Err = String;

    /// A list of addresses or networks separated by commas or spaces.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.split(|c: char| c == ',' || c.is_whitespace())
            .filter(|p| !p.is_empty())
            .map(|p| {
                p.parse::<IpNet>()
                    .or_else(|_| p.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("{p:?} is not an IP address or network (CIDR)"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(TrustedProxies)
    }
}

impl TrustedProxies {
    /// Whether `ip` is a trusted proxy.
    #[must_use]
    pub fn contains(&self, ip: &IpAddr) -> bool {
        let ip = canonical(*ip);
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// The client's address: the peer, or — when the peer is a trusted proxy — the right-most
    /// address of `X-Forwarded-For` that is not a trusted proxy. `None` when the peer is not
    /// known (a handler called without connection info).
    #[must_use]
    pub fn client(&self, headers: &HeaderMap, peer: Option<IpAddr>) -> Option<IpAddr> {
        let peer = canonical(peer?);
        if !self.contains(&peer) {
            return Some(peer);
        }
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            // An entry that is not an address ends what can be believed: the last good hop.
            let Some(ip) = parse_hop(hop) else {
                break;
            };
            client = ip;
            if !self.contains(&ip) {
                break;
            }
        }
        Some(client)
    }
}

/// An IPv4 address mapped into IPv6 (`::ffff:1.2.3.4`, as a dual-stack listener reports it)
/// compares as the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 @ IpAddr::V4(_) => v4,
    }
}

/// One `X-Forwarded-For` entry: an address, possibly with a port (`1.2.3.4:5678`,
/// `[2001:db8::1]:443`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Ok(sa) = hop.parse::<std::net::SocketAddr>() {
        return Some(canonical(sa.ip()));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn without_trusted_proxies_the_header_is_ignored() {
        let none = TrustedProxies::default();
        assert_eq!(
            none.client(&headers(&["6.6.6.6"]), Some(ip("52.89.214.238"))),
            Some(ip("52.89.214.238"))
        );
        assert_eq!(none.client(&headers(&["6.6.6.6"]), None), None);
    }

    #[test]
    fn behind_a_trusted_proxy_the_right_most_untrusted_hop_is_the_client() {
        let trusted: TrustedProxies = "10.0.0.0/8, 192.168.1.10".parse().unwrap();
        let peer = Some(ip("10.1.2.3"));
        // The client forged the first entry; the proxies appended the rest.
        assert_eq!(
            trusted.client(&headers(&["6.6.6.6, 52.89.214.238, 192.168.1.10"]), peer),
            Some(ip("52.89.214.238"))
        );
        // Two header lines are one list.
        assert_eq!(
            trusted.client(&headers(&["6.6.6.6", "52.89.214.238:4431"]), peer),
            Some(ip("52.89.214.238"))
        );
        // No header: the proxy itself.
        assert_eq!(trusted.client(&headers(&[]), peer), Some(ip("10.1.2.3")));
        // Garbage stops the walk at the last address a trusted hop vouched for.
        assert_eq!(
            trusted.client(&headers(&["52.89.214.238, not-an-ip, 10.0.0.7"]), peer),
            Some(ip("10.0.0.7"))
        );
        // A peer outside the list cannot set the address.
        assert_eq!(
            trusted.client(&headers(&["10.9.9.9"]), Some(ip("203.0.113.5"))),
            Some(ip("203.0.113.5"))
        );
        // IPv4 seen through a dual-stack socket.
        assert_eq!(
            trusted.client(&headers(&["52.89.214.238"]), Some(ip("::ffff:10.0.0.1"))),
            Some(ip("52.89.214.238"))
        );
    }

    #[test]
    fn a_malformed_list_names_the_bad_entry() {
        let err = "10.0.0.0/8, localhost"
            .parse::<TrustedProxies>()
            .unwrap_err();
        assert!(err.contains("localhost"), "{err}");
        assert_eq!(
            "".parse::<TrustedProxies>().unwrap(),
            TrustedProxies::default()
        );
    }
}
