//! Which addresses this server connects to on others' say-so. A remote server name, its
//! `.well-known` delegation, its SRV record, any `X-Matrix` origin or notary request, and a
//! user's push gateway URL can name any host, including this machine and its private network:
//! without a check, a request could make Haven connect there. Addresses are checked after DNS
//! resolution (and IP literals as they are), against a deny list of internal ranges on by
//! default (as Synapse's `ip_range_blacklist`), with an allow list that wins for test and
//! private deployments. Appservices are configured by the operator and are not checked.

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use ipnet::IpNet;

/// Why a connection was not made.
pub const DENIED: &str =
    "its address is in a range this server does not connect to (outbound.ip_range_denylist)";

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

    /// Whether a URL may be requested: an IP literal host is checked here (it is connected to
    /// without a lookup); a name is checked when the client made by [`IpPolicy::client`]
    /// resolves it.
    pub fn allows_url(&self, url: &reqwest::Url) -> bool {
        let Some(host) = url.host_str() else {
            return false;
        };
        match host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            Ok(ip) => self.allows(ip),
            Err(_) => true,
        }
    }

    /// An HTTP client whose name lookups leave out denied addresses (failing when none is
    /// left), with timeouts.
    pub fn client(self: &Arc<Self>) -> reqwest::Result<reqwest::Client> {
        reqwest::Client::builder()
            .dns_resolver(Arc::new(Filtered(self.clone())))
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .build()
    }
}

/// reqwest's DNS hook for [`IpPolicy::client`]: the system resolver, filtered.
struct Filtered(Arc<IpPolicy>);

impl reqwest::dns::Resolve for Filtered {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let allowed: Vec<SocketAddr> = found.filter(|a| policy.allows(a.ip())).collect();
            if allowed.is_empty() {
                return Err(format!("{host}: {DENIED}").into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
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
