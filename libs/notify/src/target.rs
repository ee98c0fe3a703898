//! Where a webhook or Discord request may go: never into the platform's own network unless the
//! operator allows it (SSRF guard).
//!
//! A user names the URL a notification is sent to, and the notifier runs inside the cluster: an
//! `https://` URL whose host resolves to `10.0.0.5` or `169.254.169.254` (cloud metadata) would
//! make the platform call its own private services for whoever wrote the URL. So every address a
//! target's host resolves to is classified ([`is_private`]) and the request is refused when any
//! of them is private — loopback, RFC 1918, unique-local `fc00::/7`, link-local (IPv4
//! `169.254/16`, IPv6 `fe80::/10`), unspecified, multicast, broadcast and reserved, CGNAT
//! `100.64/10`, and the IPv4-mapped, -compatible and NAT64 forms of IPv4 ones.
//!
//! The check happens in the HTTP client's own resolver ([`GuardedResolver`]): the addresses it
//! checked are the addresses the client connects to, so a DNS answer that changes between a
//! check and the connect (DNS rebinding) cannot slip past it. A URL whose host is an IP literal
//! never reaches a resolver, so [`literal_refusal`] checks those before the request.
//!
//! `JT_NOTIFY_ALLOW_PRIVATE_TARGETS=true` (default off; on in `jt dev`, and in tests whose
//! receivers listen on loopback) lets private addresses through.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The setting that lets notifications reach private addresses.
pub const ALLOW_PRIVATE_ENV: &str = "JT_NOTIFY_ALLOW_PRIVATE_TARGETS";

/// Whether an IPv4 address is one a notification must not reach.
fn private_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()                      // 127/8
        || ip.is_private()                // 10/8, 172.16/12, 192.168/16
        || ip.is_link_local()             // 169.254/16, cloud metadata among them
        || ip.is_unspecified()            // 0.0.0.0
        || ip.is_multicast()              // 224/4
        || ip.is_broadcast()              // 255.255.255.255
        || a == 0                         // "this network" 0/8: reaches the host itself
        || (a == 100 && (b & 0xc0) == 64) // CGNAT 100.64/10
        || a >= 240 // reserved 240/4
}

/// Whether an IP address is one a notification must not reach (see the module's list).
#[must_use]
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => private_v4(v4),
        IpAddr::V6(v6) => private_v6(v6),
    }
}

fn private_v6(ip: Ipv6Addr) -> bool {
    if ip.is_loopback() || ip.is_unspecified() || ip.is_multicast() {
        return true;
    }
    let s = ip.segments();
    // An IPv4 address in IPv6 clothing is judged as that IPv4 address: mapped ::ffff:a.b.c.d,
    // the deprecated compatible ::a.b.c.d, and NAT64's 64:ff9b::a.b.c.d (a gateway would
    // forward it to the IPv4 host).
    if let Some(v4) = ip.to_ipv4_mapped() {
        return private_v4(v4);
    }
    let embedded = Ipv4Addr::new(
        (s[6] >> 8) as u8,
        (s[6] & 0xff) as u8,
        (s[7] >> 8) as u8,
        (s[7] & 0xff) as u8,
    );
    if s[..6] == [0; 6] || s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return private_v4(embedded);
    }
    (s[0] & 0xfe00) == 0xfc00        // unique local fc00::/7
        || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (s[0] & 0xffc0) == 0xfec0 // deprecated site-local fec0::/10
}

/// A request refused because its target is private: what the delivery log shows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the target resolves to a private address ({0}): refused so that notifications cannot reach \
     the platform's own network (an operator can allow it with JT_NOTIFY_ALLOW_PRIVATE_TARGETS)"
)]
pub struct PrivateTarget(pub IpAddr);

/// The refusal of a URL whose host is a private IP literal (such a host is never resolved);
/// `None` for a name or a public address. A URL that cannot be parsed is left to the HTTP
/// client, which refuses it.
#[must_use]
pub fn literal_refusal(url: &str) -> Option<PrivateTarget> {
    let u = reqwest::Url::parse(url).ok()?;
    let host = u.host_str()?;
    let ip: IpAddr = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()?;
    is_private(ip).then_some(PrivateTarget(ip))
}

/// The refusal inside a request's error, when the resolver refused it.
pub(crate) fn refused(e: &(dyn std::error::Error + 'static)) -> Option<PrivateTarget> {
    let mut next = Some(e);
    while let Some(err) = next {
        if let Some(p) = err.downcast_ref::<PrivateTarget>() {
            return Some(p.clone());
        }
        next = err.source();
    }
    None
}

/// The notifier's HTTP resolver: the system's lookup, then every address checked; refuses the
/// whole name when one address is private (a name with one private address is a rebinding
/// attempt waiting for its turn).
#[derive(Debug, Clone, Copy)]
pub struct GuardedResolver {
    /// Private addresses allowed ([`ALLOW_PRIVATE_ENV`]).
    pub allow_private: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow = self.allow_private;
        Box::pin(async move {
            // Port 0: the client puts the URL's port on the addresses it connects to.
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            if !allow && let Some(bad) = addrs.iter().find(|a| is_private(a.ip())) {
                return Err(Box::new(PrivateTarget(bad.ip())) as Box<_>);
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn private(s: &str) -> bool {
        is_private(s.parse().unwrap())
    }

    #[test]
    fn private_ipv4_addresses_are_recognised() {
        for ip in [
            "127.0.0.1",
            "127.255.0.9",
            "10.0.0.5",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "169.254.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "224.0.0.1",
            "239.255.255.250",
            "255.255.255.255",
            "100.64.0.1",
            "100.127.255.255",
            "240.0.0.1",
        ] {
            assert!(private(ip), "{ip} is private");
        }
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "172.15.255.255",
            "172.32.0.1",
            "100.63.255.255",
            "100.128.0.0",
            "169.253.0.1",
            "192.169.0.1",
            "11.0.0.1",
        ] {
            assert!(!private(ip), "{ip} is public");
        }
    }

    #[test]
    fn private_ipv6_addresses_are_recognised() {
        for ip in [
            "::1",
            "::",
            "fc00::1",
            "fd12:3456:789a::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
        ] {
            assert!(private(ip), "{ip} is private");
        }
        for ip in ["2606:4700:4700::1111", "2001:4860:4860::8888", "fe00::1"] {
            assert!(!private(ip), "{ip} is public");
        }
    }

    #[test]
    fn ipv4_in_ipv6_forms_are_judged_as_their_ipv4_address() {
        for ip in [
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "::ffff:169.254.169.254",
            "::ffff:100.64.0.1",
            "::10.0.0.1",
            "64:ff9b::192.168.0.1",
            "64:ff9b::a9fe:a9fe",
        ] {
            assert!(private(ip), "{ip} is private");
        }
        for ip in ["::ffff:8.8.8.8", "64:ff9b::1.1.1.1", "::ffff:172.32.0.1"] {
            assert!(!private(ip), "{ip} is public");
        }
    }

    #[test]
    fn literal_hosts_are_checked_without_a_lookup() {
        for url in [
            "https://127.0.0.1/hook",
            "http://[::1]:9000/x",
            "https://[::ffff:169.254.169.254]/latest/meta-data",
            "https://10.0.0.5:8443/x",
            // The URL parser reads these as 127.0.0.1: the check sees the same address.
            "https://2130706433/x",
            "https://0x7f.1/x",
        ] {
            let r = literal_refusal(url).unwrap_or_else(|| panic!("{url} refused"));
            assert!(
                r.to_string()
                    .starts_with("the target resolves to a private address"),
                "{r}"
            );
        }
        assert_eq!(literal_refusal("https://8.8.8.8/hook"), None);
        assert_eq!(literal_refusal("https://hooks.example.com/hook"), None);
        assert_eq!(literal_refusal("not a url"), None);
    }

    #[test]
    fn the_resolver_refuses_a_name_with_a_private_address_unless_allowed() {
        use reqwest::dns::Resolve as _;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let name = || -> reqwest::dns::Name { "localhost".parse().unwrap() };
            let e = match (GuardedResolver {
                allow_private: false,
            })
            .resolve(name())
            .await
            {
                Ok(_) => panic!("localhost must be refused"),
                Err(e) => e,
            };
            let p = refused(e.as_ref()).unwrap();
            assert!(p.0.is_loopback(), "{p}");
            let addrs: Vec<_> = GuardedResolver {
                allow_private: true,
            }
            .resolve(name())
            .await
            .unwrap()
            .collect();
            assert!(!addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback()));
        });
    }
}
