//! Which addresses this server connects to for federation. A remote server name, its
//! `.well-known` delegation, its SRV record and any `X-Matrix` origin or notary request can name
//! any host, including this machine and its private network: without a check, an unauthenticated
//! request could make Haven connect there. Addresses are checked after DNS resolution (and IP
//! literals as they are), against a deny list of internal ranges on by default (as Synapse's
//! `ip_range_blacklist`), with an allow list that wins for test and private deployments.

use std::net::IpAddr;

use ipnet::IpNet;

/// Loopback, private (RFC 1918), carrier-grade NAT, link-local, unique local, multicast,
/// documentation, benchmarking, reserved and unspecified ranges.
pub fn default_denylist() -> Vec<IpNet> {
    [
        "127.0.0.0/8",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "192.0.0.0/24",
        "169.254.0.0/16",
        "192.88.99.0/24",
        "198.18.0.0/15",
        "192.0.2.0/24",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "0.0.0.0/8",
        "240.0.0.0/4",
        "255.255.255.255/32",
        "::1/128",
        "::/128",
        "fe80::/10",
        "fc00::/7",
        "2001:db8::/32",
        "ff00::/8",
        "fec0::/10",
    ]
    .iter()
    .filter_map(|n| n.parse().ok())
    .collect()
}

/// The configured deny and allow lists.
#[derive(Debug, Clone, Default)]
pub struct IpPolicy {
    deny: Vec<IpNet>,
    allow: Vec<IpNet>,
}

impl IpPolicy {
    pub fn new(deny: Vec<IpNet>, allow: Vec<IpNet>) -> Self {
        Self { deny, allow }
    }

    /// Whether a connection to `ip` is allowed: in the allow list, or in no denied range. An
    /// IPv4 address written as IPv6 (`::ffff:127.0.0.1`) is judged as the IPv4 address.
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.allow.iter().any(|n| n.contains(&ip)) || !self.deny.iter().any(|n| n.contains(&ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_ranges_are_denied_unless_allowed() {
        let p = IpPolicy::new(default_denylist(), vec![]);
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.20.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "224.0.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!p.allows(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "1.1.1.1", "2606:4700::1111"] {
            assert!(p.allows(ip.parse().unwrap()), "{ip}");
        }
        let p = IpPolicy::new(default_denylist(), vec!["127.0.0.1/32".parse().unwrap()]);
        assert!(p.allows("127.0.0.1".parse().unwrap()));
        assert!(!p.allows("127.0.0.2".parse().unwrap()));
    }
}
