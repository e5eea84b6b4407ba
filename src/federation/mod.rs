//! The server-server API: keys, request signing and verification, resolution of other servers'
//! names and the outbound HTTP client with per-destination backoff.

pub mod announce;
pub mod auth;
pub mod backfill;
pub mod devices;
pub mod hierarchy;
pub mod keys;
pub mod membership;
pub mod pdu;
pub mod query;
pub mod receive;
pub mod resolve;
pub mod sender;
pub mod tls;
pub mod visibility;

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::http::{Method, StatusCode};
use ruma::{
    api::federation::authentication::{XMatrix, XMatrixSigningInput},
    OwnedServerName, ServerName,
};
use serde_json::Value;

use crate::{
    config::FederationConfig,
    error::{ErrCode, Error, Result},
    Haven,
};

/// Longest wait between attempts at a server that keeps failing.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
use crate::outbound::DENIED;

/// Outbound federation: resolution, TLS (verified unless the peer is configured otherwise),
/// signing, and backoff from servers that are down.
pub struct Federation {
    resolver: Arc<resolve::Resolver>,
    verified: reqwest::Client,
    insecure: reqwest::Client,
    insecure_peers: HashSet<String>,
    backoff: Mutex<HashMap<OwnedServerName, (u32, Instant)>>,
    /// One inbound transaction at a time per (origin, transaction ID): a retry that arrives
    /// while the first attempt is still being handled waits for it, then finds it done.
    pub inbound_txns: crate::util::KeyedLocks<(String, String)>,
}

impl Federation {
    pub fn new(
        config: &FederationConfig,
        policy: std::sync::Arc<crate::outbound::IpPolicy>,
    ) -> Result<Self> {
        let resolver = resolve::Resolver::new(policy);
        let builder = || {
            reqwest::Client::builder()
                .dns_resolver(Arc::new(resolve::Dns(resolver.clone())))
                .connect_timeout(Duration::from_secs(10))
                .timeout(Duration::from_secs(60))
                .pool_idle_timeout(Duration::from_secs(90))
                .user_agent(concat!("Haven/", env!("CARGO_PKG_VERSION")))
        };
        let mut verified = builder();
        if let Some(path) = &config.ca_file {
            let pem = std::fs::read(path).map_err(|e| {
                Error::internal(format!("federation.ca_file {}: {e}", path.display()))
            })?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem).map_err(Error::internal)? {
                verified = verified.add_root_certificate(cert);
            }
        }
        let verified = verified.build().map_err(Error::internal)?;
        let insecure = builder()
            .danger_accept_invalid_certs(true)
            .build()
            .map_err(Error::internal)?;
        Ok(Self {
            resolver,
            verified,
            insecure,
            insecure_peers: config.insecure_peers.iter().cloned().collect(),
            backoff: Mutex::new(HashMap::new()),
            inbound_txns: Default::default(),
        })
    }

    fn http_for(&self, dest: &ServerName) -> &reqwest::Client {
        if self.insecure_peers.contains(dest.as_str()) {
            &self.insecure
        } else {
            &self.verified
        }
    }

    fn backoff_lock(&self) -> std::sync::MutexGuard<'_, HashMap<OwnedServerName, (u32, Instant)>> {
        self.backoff.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `dest` failed recently enough that it should not be tried yet.
    pub fn backing_off(&self, dest: &ServerName) -> bool {
        self.backoff_lock()
            .get(dest)
            .is_some_and(|(_, until)| *until > Instant::now())
    }

    /// Clears the backoff of a server that is up again (it reached us, or its wait is over).
    pub fn forgive(&self, dest: &ServerName) {
        self.backoff_lock().remove(dest);
    }

    fn record(&self, dest: &ServerName, ok: bool) {
        let mut b = self.backoff_lock();
        if ok {
            b.remove(dest);
        } else {
            let failures = b.get(dest).map_or(0, |(n, _)| *n) + 1;
            let wait = Duration::from_secs(1u64 << failures.min(12)).min(MAX_BACKOFF);
            b.insert(dest.to_owned(), (failures, Instant::now() + wait));
        }
    }

    /// A request to another server, signed with `X-Matrix` unless `signed` is false (key
    /// fetches). Answers the JSON body of a 2xx response; a Matrix error from the server keeps
    /// its status and errcode.
    pub async fn request(
        &self,
        h: &Haven,
        dest: &ServerName,
        method: Method,
        path_and_query: &str,
        body: Option<&Value>,
        signed: bool,
    ) -> Result<Value> {
        if dest == h.key.server_name {
            return Err(Error::internal(
                "a federation request to this server itself",
            ));
        }
        if self.backing_off(dest) {
            return Err(unreachable(dest, "it failed recently; retrying later"));
        }
        let http = self.http_for(dest);
        let d = self.resolver.resolve(dest, http).await;
        // Names are checked where they are looked up (`Resolver::lookup`); an IP literal is
        // connected to without a lookup, so it is checked here.
        if let Ok(ip) = d.tls_name.parse::<std::net::IpAddr>() {
            if d.connect_host.is_none() && !self.resolver.policy.allows(ip) {
                return Err(unreachable(dest, DENIED));
            }
        }
        let bytes = match body {
            Some(b) => serde_json::to_vec(b).map_err(Error::internal)?,
            None => Vec::new(),
        };
        let mut req = http
            .request(method.clone(), format!("{}{path_and_query}", d.base_url()))
            .header(reqwest::header::HOST, &d.host_header);
        if signed {
            let to_sign = http::Request::builder()
                .method(method)
                .uri(path_and_query)
                .body(bytes.clone())
                .map_err(Error::internal)?;
            let input =
                XMatrixSigningInput::new(h.key.server_name.clone(), dest.to_owned(), &h.key.pair);
            let x = XMatrix::sign_http_request(&to_sign, input).map_err(Error::internal)?;
            req = req.header(reqwest::header::AUTHORIZATION, http::HeaderValue::from(&x));
        }
        if body.is_some() {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(bytes);
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                self.record(dest, false);
                tracing::info!(%dest, error = %e, "federation request failed");
                return Err(unreachable(dest, &e.to_string()));
            }
        };
        let status = resp.status();
        self.record(dest, !status.is_server_error());
        let text = resp
            .bytes()
            .await
            .map_err(|e| unreachable(dest, &e.to_string()))?;
        let json: Value = serde_json::from_slice(&text).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(json);
        }
        let message = json["error"]
            .as_str()
            .map_or_else(|| format!("{dest} answered {status}"), str::to_owned);
        // A refusal about the request (400, 403, 404, 429) is passed on as the server said it;
        // anything else (its 401 is about this server's signature, not the client's token;
        // its failures) is this server's gateway failing.
        if !matches!(status.as_u16(), 400 | 403 | 404 | 429) {
            return Err(unreachable(dest, &format!("{status}: {message}")));
        }
        let code = json["errcode"].as_str().unwrap_or("M_UNKNOWN");
        Err(Error::Matrix {
            status: StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY),
            code: ErrCode::from_str_or_unknown(code),
            message,
            extra: None,
        })
    }

    pub async fn get(&self, h: &Haven, dest: &ServerName, path: &str) -> Result<Value> {
        self.request(h, dest, Method::GET, path, None, true).await
    }

    pub async fn put(
        &self,
        h: &Haven,
        dest: &ServerName,
        path: &str,
        body: &Value,
    ) -> Result<Value> {
        self.request(h, dest, Method::PUT, path, Some(body), true)
            .await
    }

    pub async fn post(
        &self,
        h: &Haven,
        dest: &ServerName,
        path: &str,
        body: &Value,
    ) -> Result<Value> {
        self.request(h, dest, Method::POST, path, Some(body), true)
            .await
    }

    pub async fn get_unsigned(&self, h: &Haven, dest: &ServerName, path: &str) -> Result<Value> {
        self.request(h, dest, Method::GET, path, None, false).await
    }

    pub async fn post_unsigned(
        &self,
        h: &Haven,
        dest: &ServerName,
        path: &str,
        body: &Value,
    ) -> Result<Value> {
        self.request(h, dest, Method::POST, path, Some(body), false)
            .await
    }
}

fn unreachable(dest: &ServerName, why: &str) -> Error {
    Error::new(
        StatusCode::BAD_GATEWAY,
        ErrCode::Unknown,
        format!("Could not reach {dest}: {why}"),
    )
}
