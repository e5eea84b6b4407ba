//! Serving HTTP connections on a listener, plain or TLS, the same way for every listener: with
//! the timeouts and the per-address connection cap that keep slow or greedy clients from holding
//! the server's connections forever (a client that sends headers a byte a minute, a body that
//! never ends, an idle keep-alive connection, a TLS handshake that never finishes), and with a
//! graceful shutdown that lets requests in flight finish.

use std::{
    collections::HashMap,
    future::Future,
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{extract::ConnectInfo, Router};
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulShutdown},
    service::TowerToHyperService,
};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::config::Limits;

/// How long requests in flight may take to finish after a shutdown starts.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Open connections per peer address, for the cap.
#[derive(Default)]
struct PerAddress(Mutex<HashMap<IpAddr, usize>>);

/// One open connection of an address; counted down when dropped.
struct Counted {
    table: Arc<PerAddress>,
    ip: IpAddr,
}

impl PerAddress {
    /// Counts a new connection of `ip`, unless it has `max` open already.
    fn admit(table: &Arc<Self>, ip: IpAddr, max: usize) -> Option<Counted> {
        let mut open = table.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(Counted {
            table: table.clone(),
            ip,
        })
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        let mut open = self.table.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Serves `app` on `listener` (over TLS when `tls` is given) until `shutdown` completes, then
/// waits up to 30 s for connections to finish their requests.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    // Wrapped once around the whole router, never with `Router::layer`: that re-wraps every
    // route, and doing it per connection cost ~1 MB for each connection held open.
    let app = tower_http::timeout::RequestBodyTimeout::new(
        app,
        Duration::from_secs(limits.body_read_timeout_s),
    );
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // Also how long an idle keep-alive connection waits for its next request.
        .header_read_timeout(Duration::from_secs(limits.header_read_timeout_s));
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Duration::from_secs(limits.header_read_timeout_s))
        .keep_alive_timeout(Duration::from_secs(20));
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    let open = Arc::new(PerAddress::default());
    let handshake = Duration::from_secs(limits.tls_handshake_timeout_s);
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors, typically: wait rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let exempt = limits
            .connection_limit_exempt
            .iter()
            .any(|n| n.contains(&peer.ip().to_canonical()));
        let counted = if exempt || limits.max_connections_per_ip == 0 {
            None
        } else {
            match PerAddress::admit(&open, peer.ip(), limits.max_connections_per_ip) {
                Some(c) => Some(c),
                None => {
                    tracing::debug!(%peer, "connection refused: too many from this address");
                    drop(tcp);
                    continue;
                }
            }
        };
        let service = TowerToHyperService::new(tower::Layer::layer(
            &axum::Extension(ConnectInfo::<SocketAddr>(peer)),
            app.clone(),
        ));
        let (builder, tls, watcher) = (builder.clone(), tls.clone(), graceful.watcher());
        tokio::spawn(async move {
            let _counted = counted;
            let result = match tls {
                Some(tls) => match tokio::time::timeout(handshake, tls.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let conn = builder.serve_connection(TokioIo::new(stream), service);
                        watcher.watch(conn.into_owned()).await
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                },
                None => {
                    let conn = builder.serve_connection(TokioIo::new(tcp), service);
                    watcher.watch(conn.into_owned()).await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still running after the shutdown grace period");
    }
}
