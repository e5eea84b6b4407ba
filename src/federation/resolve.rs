//! Server-name resolution as the spec orders it: an IP literal or an explicit port is used
//! as is; otherwise `/.well-known/matrix/server` may delegate to another host (resolved the
//! same way, without a further well-known), then an SRV record `_matrix-fed._tcp`, then port
//! 8448. Results are cached (well-known per its `Cache-Control`, within an hour to two days).

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use hickory_resolver::TokioAsyncResolver;
use ruma::ServerName;

const DEFAULT_PORT: u16 = 8448;
/// How long a resolution without a well-known answer is kept.
const DEFAULT_TTL: Duration = Duration::from_secs(3600);
const MAX_TTL: Duration = Duration::from_secs(48 * 3600);

/// Where to reach a server and how to address it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// The name the TLS certificate must be valid for, used in the request URL.
    pub tls_name: String,
    pub port: u16,
    /// The `Host` header.
    pub host_header: String,
    /// Where to connect when it is not `tls_name` itself (an SRV target).
    pub connect_host: Option<String>,
}

impl Destination {
    pub fn base_url(&self) -> String {
        let host = match self.tls_name.parse::<IpAddr>() {
            Ok(IpAddr::V6(ip)) => format!("[{ip}]"),
            _ => self.tls_name.clone(),
        };
        format!("https://{host}:{}", self.port)
    }
}

/// Resolves server names, and answers reqwest's DNS lookups so that connections go to SRV
/// targets while TLS checks the server's own name.
pub struct Resolver {
    dns: TokioAsyncResolver,
    cache: Mutex<HashMap<String, (Destination, Instant)>>,
    /// tls name -> host to look up instead (SRV targets).
    overrides: Mutex<HashMap<String, String>>,
    /// The addresses connections may go to.
    pub policy: Arc<crate::outbound::IpPolicy>,
}

impl Resolver {
    pub fn new(policy: Arc<crate::outbound::IpPolicy>) -> Arc<Self> {
        let dns = TokioAsyncResolver::tokio_from_system_conf()
            .unwrap_or_else(|_| TokioAsyncResolver::tokio(Default::default(), Default::default()));
        Arc::new(Self {
            dns,
            cache: Mutex::new(HashMap::new()),
            overrides: Mutex::new(HashMap::new()),
            policy,
        })
    }

    pub async fn resolve(&self, name: &ServerName, http: &reqwest::Client) -> Destination {
        if let Some((d, until)) = self.cache_lock().get(name.as_str()) {
            if *until > Instant::now() {
                return d.clone();
            }
        }
        let (d, ttl) = self.resolve_uncached(name, http).await;
        if let Some(target) = &d.connect_host {
            self.overrides
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(d.tls_name.clone(), target.clone());
        }
        self.cache_lock()
            .insert(name.to_string(), (d.clone(), Instant::now() + ttl));
        d
    }

    fn cache_lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Destination, Instant)>> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn resolve_uncached(
        &self,
        name: &ServerName,
        http: &reqwest::Client,
    ) -> (Destination, Duration) {
        let host = name.host().to_owned();
        let direct = |port: u16| Destination {
            tls_name: unbracket(&host),
            port,
            host_header: name.to_string(),
            connect_host: None,
        };
        if name.is_ip_literal() {
            return (direct(name.port().unwrap_or(DEFAULT_PORT)), DEFAULT_TTL);
        }
        if let Some(port) = name.port() {
            return (direct(port), DEFAULT_TTL);
        }
        if let Some((delegated, ttl)) = well_known(http, &host).await {
            let (dhost, dport) = split_host_port(&delegated);
            let d = if dhost.parse::<IpAddr>().is_ok() || dport.is_some() {
                Destination {
                    tls_name: dhost,
                    port: dport.unwrap_or(DEFAULT_PORT),
                    host_header: delegated.clone(),
                    connect_host: None,
                }
            } else if let Some((target, port)) = self.srv(&dhost).await {
                Destination {
                    tls_name: dhost.clone(),
                    port,
                    host_header: dhost,
                    connect_host: Some(target),
                }
            } else {
                Destination {
                    tls_name: dhost.clone(),
                    port: DEFAULT_PORT,
                    host_header: dhost,
                    connect_host: None,
                }
            };
            return (d, ttl);
        }
        if let Some((target, port)) = self.srv(&host).await {
            return (
                Destination {
                    tls_name: host.clone(),
                    port,
                    host_header: host,
                    connect_host: Some(target),
                },
                DEFAULT_TTL,
            );
        }
        (direct(DEFAULT_PORT), DEFAULT_TTL)
    }

    /// `_matrix-fed._tcp.<host>`: the target and port of the best record.
    async fn srv(&self, host: &str) -> Option<(String, u16)> {
        let lookup = self
            .dns
            .srv_lookup(format!("_matrix-fed._tcp.{host}."))
            .await
            .ok()?;
        let best = lookup
            .iter()
            .min_by_key(|r| (r.priority(), u16::MAX - r.weight()))?;
        let target = best.target().to_utf8();
        Some((target.trim_end_matches('.').to_owned(), best.port()))
    }

    /// Addresses for a name reqwest connects to (SRV targets substituted), without those the
    /// policy denies (an error when none is left).
    pub async fn lookup(&self, name: &str) -> std::io::Result<Vec<IpAddr>> {
        let ips: Vec<IpAddr> = self
            .lookup_any(name)
            .await?
            .into_iter()
            .filter(|ip| self.policy.allows(*ip))
            .collect();
        if ips.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!("{name}: {}", crate::outbound::DENIED),
            ));
        }
        Ok(ips)
    }

    async fn lookup_any(&self, name: &str) -> std::io::Result<Vec<IpAddr>> {
        let target = self
            .overrides
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
            .unwrap_or_else(|| name.to_owned());
        if let Ok(ip) = target.parse::<IpAddr>() {
            return Ok(vec![ip]);
        }
        let ips = self
            .dns
            .lookup_ip(target.as_str())
            .await
            .map_err(std::io::Error::other)?;
        Ok(ips.iter().collect())
    }
}

/// reqwest's DNS hook: resolves through [`Resolver::lookup`].
pub struct Dns(pub Arc<Resolver>);

impl reqwest::dns::Resolve for Dns {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let r = self.0.clone();
        let name = name.as_str().to_owned();
        Box::pin(async move {
            let ips = r.lookup(&name).await?;
            let addrs: reqwest::dns::Addrs =
                Box::new(ips.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

/// `GET https://<host>/.well-known/matrix/server`: the delegated server and how long to trust
/// the answer.
async fn well_known(http: &reqwest::Client, host: &str) -> Option<(String, Duration)> {
    let resp = http
        .get(format!("https://{host}/.well-known/matrix/server"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .ok()?;
    if !resp.status().is_success() {
        return None;
    }
    let ttl = resp
        .headers()
        .get(reqwest::header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .and_then(max_age)
        .map_or(Duration::from_secs(24 * 3600), |s| {
            Duration::from_secs(s).clamp(DEFAULT_TTL, MAX_TTL)
        });
    let body: serde_json::Value = resp.json().await.ok()?;
    let server = body["m.server"].as_str()?.trim().to_owned();
    let (h, _) = split_host_port(&server);
    (!h.is_empty()).then_some((server, ttl))
}

fn max_age(cache_control: &str) -> Option<u64> {
    cache_control
        .split(',')
        .find_map(|d| d.trim().strip_prefix("max-age=")?.parse().ok())
}

/// `host[:port]` with IPv6 literals in brackets.
fn split_host_port(s: &str) -> (String, Option<u16>) {
    if let Some(rest) = s.strip_prefix('[') {
        if let Some((ip, after)) = rest.split_once(']') {
            let port = after.strip_prefix(':').and_then(|p| p.parse().ok());
            return (ip.to_owned(), port);
        }
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => match p.parse() {
            Ok(port) => (h.to_owned(), Some(port)),
            Err(_) => (s.to_owned(), None),
        },
        _ => (s.to_owned(), None),
    }
}

fn unbracket(host: &str) -> String {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_port() {
        assert_eq!(split_host_port("example.org"), ("example.org".into(), None));
        assert_eq!(
            split_host_port("example.org:443"),
            ("example.org".into(), Some(443))
        );
        assert_eq!(split_host_port("[::1]:8448"), ("::1".into(), Some(8448)));
        assert_eq!(split_host_port("1.2.3.4"), ("1.2.3.4".into(), None));
        assert_eq!(max_age("public, max-age=7200"), Some(7200));
    }

    #[tokio::test]
    async fn literals_and_ports_need_no_lookup() {
        let r = Resolver::new(Default::default());
        let http = reqwest::Client::new();
        let d = r.resolve(ruma::server_name!("127.0.0.1:9000"), &http).await;
        assert_eq!(d.base_url(), "https://127.0.0.1:9000");
        assert_eq!(d.host_header, "127.0.0.1:9000");
        let d = r.resolve(ruma::server_name!("[::1]"), &http).await;
        assert_eq!(d.base_url(), "https://[::1]:8448");
        let d = r.resolve(ruma::server_name!("localhost:8449"), &http).await;
        assert_eq!((d.tls_name.as_str(), d.port), ("localhost", 8449));
    }
}
