//! The HTTP side facing the homeserver: transactions, user and alias queries, ping, health.

use std::{future::Future, sync::Arc};

use axum::{
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, Uri},
    response::{IntoResponse, Response},
    routing::{get, post, put},
    Json, Router,
};
use ruma::{
    api::{appservice::event::push_events, IncomingRequestExt},
    events::AnyTimelineEvent,
    serde::Raw,
    OwnedRoomAliasId, OwnedUserId,
};
use serde_json::{json, Value};
use subtle::ConstantTimeEq;
use tokio::sync::Mutex;

use crate::{BoxError, Store};

/// One transaction from the homeserver, in the order it was sent.
pub struct Transaction {
    pub txn_id: String,
    pub events: Vec<Raw<AnyTimelineEvent>>,
    /// Ephemeral events (typing, receipts, presence) with their `room_id`.
    pub ephemeral: Vec<Value>,
    /// To-device messages for the appservice's users (MSC4203), with `to_user_id` and
    /// `to_device_id`.
    pub to_device: Vec<Value>,
    /// MSC3202: `{device_lists, device_one_time_keys_count, device_unused_fallback_key_types}`
    /// when the homeserver sent any of them.
    pub device_extensions: Option<Value>,
}

/// What an appservice does with what the homeserver sends it.
pub trait Handler: Send + Sync + 'static {
    /// Handles a whole transaction. An error makes the homeserver retry it later.
    fn on_transaction(&self, txn: Transaction)
        -> impl Future<Output = Result<(), BoxError>> + Send;

    /// Whether the user exists or was just created (answering the homeserver's query).
    fn query_user(&self, _user: OwnedUserId) -> impl Future<Output = bool> + Send {
        async { false }
    }

    /// Whether the alias exists or was just created.
    fn query_alias(&self, _alias: OwnedRoomAliasId) -> impl Future<Output = bool> + Send {
        async { false }
    }
}

struct Ctx<H> {
    hs_token: String,
    store: Store,
    handler: H,
    /// Transactions are handled one at a time, in arrival order.
    order: Mutex<()>,
}

const TXN_TREE: &str = "transactions";

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({ "errcode": code, "error": message }))).into_response()
}

/// 401 without a token, 403 with a wrong one; the comparison is constant-time.
fn check_token(headers: &HeaderMap, uri: &Uri, expected: &str) -> Result<(), Box<Response>> {
    let header = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let query = uri.query().and_then(|q| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("access_token=").map(str::to_owned))
    });
    let Some(token) = header.map(str::to_owned).or(query) else {
        return Err(Box::new(error(
            StatusCode::UNAUTHORIZED,
            "M_UNAUTHORIZED",
            "Missing homeserver token",
        )));
    };
    let ok =
        token.len() == expected.len() && bool::from(token.as_bytes().ct_eq(expected.as_bytes()));
    if ok {
        Ok(())
    } else {
        Err(Box::new(error(
            StatusCode::FORBIDDEN,
            "M_FORBIDDEN",
            "Wrong homeserver token",
        )))
    }
}

async fn transaction<H: Handler>(
    State(ctx): State<Arc<Ctx<H>>>,
    Path(txn_id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = check_token(&headers, &uri, &ctx.hs_token) {
        return *r;
    }
    let _order = ctx.order.lock().await;
    match ctx.store.contains(TXN_TREE, &txn_id) {
        Ok(true) => return Json(json!({})).into_response(),
        Ok(false) => {}
        Err(e) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "M_UNKNOWN",
                &e.to_string(),
            )
        }
    }
    let req = http::Request::builder()
        .method("PUT")
        .uri(uri)
        .body(body.as_ref())
        .map_err(|e| e.to_string());
    let parsed = req.and_then(|r| {
        push_events::v1::Request::try_from_http_request(r, &[txn_id.as_str()])
            .map_err(|e| e.to_string())
    });
    let parsed = match parsed {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, "M_BAD_JSON", &e),
    };
    let ephemeral = parsed
        .ephemeral
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e.json().get()).ok())
        .collect();
    let to_device = parsed
        .to_device
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e.json().get()).ok())
        .collect();
    let has_extensions = !parsed.device_lists.changed.is_empty()
        || !parsed.device_lists.left.is_empty()
        || !parsed.device_one_time_keys_count.is_empty();
    let device_extensions = has_extensions.then(|| {
        json!({
            "device_lists": { "changed": parsed.device_lists.changed, "left": parsed.device_lists.left },
            "device_one_time_keys_count": parsed.device_one_time_keys_count,
            "device_unused_fallback_key_types": parsed.device_unused_fallback_key_types,
        })
    });
    let txn = Transaction {
        txn_id: txn_id.clone(),
        events: parsed.events,
        ephemeral,
        to_device,
        device_extensions,
    };
    if let Err(e) = ctx.handler.on_transaction(txn).await {
        tracing::warn!(txn = %txn_id, error = %e, "transaction failed; the homeserver will retry it");
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "M_UNKNOWN",
            "Transaction failed",
        );
    }
    if let Err(e) = ctx.store.put(TXN_TREE, &txn_id, &true) {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "M_UNKNOWN",
            &e.to_string(),
        );
    }
    if let Err(e) = ctx.store.flush().await {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "M_UNKNOWN",
            &e.to_string(),
        );
    }
    Json(json!({})).into_response()
}

async fn query_user<H: Handler>(
    State(ctx): State<Arc<Ctx<H>>>,
    Path(user): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = check_token(&headers, &uri, &ctx.hs_token) {
        return *r;
    }
    match OwnedUserId::try_from(user) {
        Ok(u) if ctx.handler.query_user(u.clone()).await => Json(json!({})).into_response(),
        _ => error(StatusCode::NOT_FOUND, "M_NOT_FOUND", "No such user"),
    }
}

async fn query_alias<H: Handler>(
    State(ctx): State<Arc<Ctx<H>>>,
    Path(alias): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = check_token(&headers, &uri, &ctx.hs_token) {
        return *r;
    }
    match OwnedRoomAliasId::try_from(alias) {
        Ok(a) if ctx.handler.query_alias(a.clone()).await => Json(json!({})).into_response(),
        _ => error(StatusCode::NOT_FOUND, "M_NOT_FOUND", "No such alias"),
    }
}

async fn ping<H: Handler>(
    State(ctx): State<Arc<Ctx<H>>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    match check_token(&headers, &uri, &ctx.hs_token) {
        Ok(()) => Json(json!({})).into_response(),
        Err(r) => *r,
    }
}

async fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "M_UNRECOGNIZED",
        "Unrecognized request",
    )
}

/// The router the homeserver talks to (plus `/health`).
pub fn router<H: Handler>(hs_token: String, store: Store, handler: H) -> Router {
    let ctx = Arc::new(Ctx {
        hs_token,
        store,
        handler,
        order: Mutex::new(()),
    });
    Router::new()
        .route(
            "/_matrix/app/v1/transactions/{txn_id}",
            put(transaction::<H>),
        )
        .route("/transactions/{txn_id}", put(transaction::<H>))
        .route("/_matrix/app/v1/users/{user_id}", get(query_user::<H>))
        .route("/_matrix/app/v1/rooms/{alias}", get(query_alias::<H>))
        .route("/_matrix/app/v1/ping", post(ping::<H>))
        .route("/health", get(|| async { "ok" }))
        .fallback(not_found)
        .with_state(ctx)
}

/// Listening sockets handed over by whoever started the process (systemd's `LISTEN_FDS`
/// protocol: a service manager, or a test harness that holds the port so nobody else can take
/// it), by the address each is bound to.
static INHERITED: std::sync::OnceLock<
    std::sync::Mutex<std::collections::HashMap<std::net::SocketAddr, std::net::TcpListener>>,
> = std::sync::OnceLock::new();

/// Takes the sockets named by `LISTEN_FDS` (the variables are then removed): call before any
/// other thread starts, as [`crate::cli::run`] does. [`serve`] uses the one bound to its address.
pub fn take_inherited_sockets() {
    INHERITED.get_or_init(|| {
        let mut fds = listenfd::ListenFd::from_env();
        let mut by_addr = std::collections::HashMap::new();
        for i in 0..fds.len() {
            if let Ok(Some(l)) = fds.take_tcp_listener(i) {
                if let Ok(addr) = l.local_addr() {
                    by_addr.insert(addr, l);
                }
            }
        }
        std::sync::Mutex::new(by_addr)
    });
}

/// A listener on `addr`: the inherited socket bound there, else a new one (port 0: one the
/// system picks). The address listened on is printed to stdout as `listening appservice ADDR`.
async fn listen(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let inherited = INHERITED
        .get()
        .and_then(|m| m.lock().unwrap_or_else(|e| e.into_inner()).remove(&addr));
    let listener = match inherited {
        Some(l) => {
            l.set_nonblocking(true)?;
            tokio::net::TcpListener::from_std(l)?
        }
        None => tokio::net::TcpListener::bind(addr).await?,
    };
    let bound = listener.local_addr()?;
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "listening appservice {bound}");
    Ok(listener)
}

/// Serves `router` on `addr` until SIGINT or SIGTERM.
pub async fn serve(addr: std::net::SocketAddr, router: Router) -> std::io::Result<()> {
    let listener = listen(addr).await.map_err(|e| {
        std::io::Error::new(e.kind(), format!("cannot listen on {addr} (listen): {e}"))
    })?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "appservice listening");
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown())
        .await
}

async fn shutdown() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
