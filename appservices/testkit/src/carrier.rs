//! A Twilio double that fails the way a carrier does: down (connections refused), slow
//! (answering after the client has given up, with or without having taken the message) or
//! erroring. It records every message it takes, when, and lists them back like Twilio's
//! `GET Messages.json`, so a client can find out whether an unanswered send went through.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime},
};

use axum::{
    extract::{Query, State},
    http::{HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
    Form, Json, Router,
};
use serde_json::{json, Value};

use crate::TwilioSent;

/// How the double behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Up,
    /// Nothing listens: connections are refused.
    Down,
    /// Answers after `delay`; with `takes_it` the message was taken (and is listed) anyway.
    Slow {
        delay: Duration,
        takes_it: bool,
    },
    /// Answers this status (429, 500, 503 …) without taking the message.
    Error(u16),
}

/// One message taken.
struct Taken {
    form: Vec<(String, String)>,
    at: Instant,
    wall: SystemTime,
    sid: String,
}

#[derive(Default)]
struct Log {
    taken: Vec<Taken>,
}

#[derive(Clone)]
struct Shared {
    mode: Arc<Mutex<Mode>>,
    log: Arc<Mutex<Log>>,
    sent: TwilioSent,
}

pub struct Carrier {
    /// Every message taken, as posted (the same shape as [`crate::twilio_double`]'s).
    pub sent: TwilioSent,
    pub base: String,
    shared: Shared,
    addr: std::net::SocketAddr,
    server: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Carrier {
    pub async fn start() -> Self {
        let shared = Shared {
            mode: Arc::new(Mutex::new(Mode::Up)),
            log: Default::default(),
            sent: Default::default(),
        };
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("local address");
        let carrier = Self {
            sent: shared.sent.clone(),
            base: format!("http://{addr}"),
            shared,
            addr,
            server: Mutex::new(None),
        };
        carrier.serve(listener);
        carrier
    }

    fn serve(&self, listener: tokio::net::TcpListener) {
        let app = Router::new()
            .route(
                "/2010-04-01/Accounts/{sid}/Messages.json",
                post(create).get(list),
            )
            .layer(axum::middleware::map_response(close_connection))
            .with_state(self.shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        *self.server.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
    }

    /// Switches behaviour; `Down` stops listening, anything else listens again.
    pub async fn set(&self, mode: Mode) {
        *self.shared.mode.lock().unwrap_or_else(|e| e.into_inner()) = mode;
        let running = self.server.lock().unwrap_or_else(|e| e.into_inner()).take();
        match (mode, running) {
            (Mode::Down, Some(task)) => {
                task.abort();
                let _ = task.await;
            }
            (Mode::Down, None) => {}
            (_, Some(task)) => {
                *self.server.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
            }
            (_, None) => {
                let listener = loop {
                    match tokio::net::TcpListener::bind(self.addr).await {
                        Ok(l) => break l,
                        Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                    }
                };
                self.serve(listener);
            }
        }
    }

    /// When each message to `to` was taken, in order, with its body.
    pub fn taken_to(&self, to: &str) -> Vec<(Instant, String)> {
        let log = self.shared.log.lock().unwrap_or_else(|e| e.into_inner());
        log.taken
            .iter()
            .filter(|t| field(&t.form, "To") == Some(to))
            .map(|t| (t.at, field(&t.form, "Body").unwrap_or_default().to_owned()))
            .collect()
    }
}

/// Every answer closes its connection, so stopping the listener stops the carrier (no pooled
/// connection keeps it reachable).
async fn close_connection(mut r: Response) -> Response {
    r.headers_mut()
        .insert("connection", HeaderValue::from_static("close"));
    r
}

fn field<'a>(form: &'a [(String, String)], key: &str) -> Option<&'a str> {
    form.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn take(s: &Shared, form: Vec<(String, String)>) -> String {
    let mut log = s.log.lock().unwrap_or_else(|e| e.into_inner());
    let sid = format!("SM{:032}", log.taken.len() + 1);
    s.sent
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(form.clone());
    log.taken.push(Taken {
        form,
        at: Instant::now(),
        wall: SystemTime::now(),
        sid: sid.clone(),
    });
    sid
}

async fn create(State(s): State<Shared>, Form(form): Form<Vec<(String, String)>>) -> Response {
    let mode = *s.mode.lock().unwrap_or_else(|e| e.into_inner());
    match mode {
        Mode::Up | Mode::Down => {
            let sid = take(&s, form);
            Json(json!({ "sid": sid, "status": "queued" })).into_response()
        }
        Mode::Slow { delay, takes_it } => {
            let sid = takes_it.then(|| take(&s, form));
            tokio::time::sleep(delay).await;
            match sid {
                Some(sid) => Json(json!({ "sid": sid, "status": "queued" })).into_response(),
                None => StatusCode::GATEWAY_TIMEOUT.into_response(),
            }
        }
        Mode::Error(status) => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            Json(json!({ "code": 20500, "message": "Internal Server Error", "status": status })),
        )
            .into_response(),
    }
}

/// `GET Messages.json?To=…&From=…`: the newest first, as Twilio lists them.
async fn list(State(s): State<Shared>, Query(q): Query<Vec<(String, String)>>) -> Json<Value> {
    let log = s.log.lock().unwrap_or_else(|e| e.into_inner());
    let want = |k: &str| q.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
    let messages: Vec<Value> = log
        .taken
        .iter()
        .rev()
        .filter(|t| want("To").is_none_or(|to| field(&t.form, "To") == Some(to)))
        .filter(|t| {
            want("From").is_none_or(|from| {
                field(&t.form, "From") == Some(from)
                    || field(&t.form, "MessagingServiceSid") == Some(from)
            })
        })
        .map(|t| {
            json!({
                "sid": t.sid,
                "to": field(&t.form, "To"),
                "from": field(&t.form, "From"),
                "body": field(&t.form, "Body"),
                "status": "sent",
                "date_created": httpdate::fmt_http_date(t.wall).replace("GMT", "+0000"),
            })
        })
        .collect();
    Json(json!({ "messages": messages, "page": 0 }))
}
