//! `cargo bench -p escalation --bench lifecycle [-- N]`: how fast staff see what the handler
//! does, end to end on loopback (release builds of Haven, the SMS bridge and the handler).
//! N texters (default 200) each send a first SMS, one after another; the time from the
//! bridge's webhook POST to the responder's client receiving the updated queue board is
//! "routing". Then each sends an imminent-risk message; the time from POST to the
//! supervisor's client receiving the alert is "risk alert". Clients follow with /sync
//! long-polls, as Element does. Build the other binaries first:
//! `cargo build --release -p haven -p sms-bridge && cargo bench -p escalation --bench lifecycle`.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde_json::{json, Value};

#[path = "../tests/support/env.rs"]
mod env;
use env::*;

/// Message bodies a user's client has received, with when.
type Seen = Arc<Mutex<Vec<(Instant, String)>>>;

/// Follows `token`'s /sync, recording message bodies in `room` as they arrive.
fn follow(m: haven_testkit::Matrix, token: String, room: String) -> Seen {
    let seen: Seen = Default::default();
    let out = seen.clone();
    tokio::spawn(async move {
        let (_, first) = m.api("GET", &token, "/sync?timeout=0", json!({})).await;
        let mut since = first["next_batch"].as_str().unwrap_or_default().to_owned();
        loop {
            let url = format!(
                "{}/_matrix/client/v3/sync?since={since}&timeout=30000",
                m.hs
            );
            // The servers stop when the benchmark ends: so does this.
            let Ok(r) = m.http.get(url).bearer_auth(&token).send().await else {
                return;
            };
            let s: Value = r.json().await.unwrap_or(Value::Null);
            let now = Instant::now();
            if let Some(next) = s["next_batch"].as_str() {
                since = next.to_owned();
            }
            let events = s["rooms"]["join"][&room]["timeline"]["events"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let mut seen = out.lock().unwrap();
            for e in events {
                if let Some(b) = e["content"]["body"].as_str() {
                    seen.push((now, b.to_owned()));
                }
            }
        }
    });
    seen
}

/// Waits until `seen` has a body containing `needle` received after `t0`; answers the delay.
async fn seen_after(seen: &Seen, t0: Instant, needle: &str) -> Duration {
    let deadline = t0 + Duration::from_secs(30);
    loop {
        if let Some((at, _)) = seen
            .lock()
            .unwrap()
            .iter()
            .find(|(at, b)| *at >= t0 && b.contains(needle))
        {
            return *at - t0;
        }
        assert!(Instant::now() < deadline, "never saw {needle}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn report(name: &str, mut d: Vec<Duration>, total: Duration) {
    d.sort();
    let ms = |x: Duration| x.as_secs_f64() * 1000.0;
    let pct = |p: f64| ms(d[((d.len() - 1) as f64 * p).round() as usize]);
    println!(
        "{name}: n={} p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {:.0}/s sequential",
        d.len(),
        pct(0.5),
        pct(0.9),
        pct(0.99),
        ms(*d.last().unwrap()),
        d.len() as f64 / total.as_secs_f64()
    );
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this too, without it:
    // nothing to check there, and the benchmark is not a test.
    if !std::env::args().any(|a| a == "--bench") {
        println!("lifecycle: run with cargo bench");
        return;
    }
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(200);
    let env = Env::start().await;
    let s = env.server.clone();
    let queue = env.room_of_alias(&format!("#crisis-queue:{s}")).await;
    let sup = env.room_of_alias(&format!("#crisis-supervisors:{s}")).await;
    env.m.accept_invites(&env.ann.token).await;
    env.m.accept_invites(&env.sue.token).await;
    let board = follow(env.m.clone(), env.ann.token.clone(), queue);
    let alerts = follow(env.m.clone(), env.sue.token.clone(), sup);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut routing = Vec::new();
    let started = Instant::now();
    for i in 1..=n {
        let t0 = Instant::now();
        env.sms(&format!("+1444{i:07}"), CRISIS, &format!("SMb{i}"), "hello")
            .await;
        routing.push(seen_after(&board, t0, &format!("#{i} · risk low")).await);
    }
    report(
        "routing (first SMS to the queue board)",
        routing,
        started.elapsed(),
    );

    let mut risk = Vec::new();
    let started = Instant::now();
    for i in 1..=n {
        let t0 = Instant::now();
        env.sms(
            &format!("+1444{i:07}"),
            CRISIS,
            &format!("SMr{i}"),
            "I took pills",
        )
        .await;
        risk.push(seen_after(&alerts, t0, &format!("Risk imminent in conversation #{i} ")).await);
    }
    report(
        "risk alert (texter's SMS to the supervisor's client)",
        risk,
        started.elapsed(),
    );
    let m: Value = json!(env
        .metrics()
        .await
        .lines()
        .filter(|l| l.starts_with("escalation_queue_depth"))
        .collect::<Vec<_>>());
    println!("{m}");
}
