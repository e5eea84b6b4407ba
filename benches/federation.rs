//! Federation benchmark between two Haven servers on loopback (TLS, separate names):
//!
//! 1. sustained throughput: messages sent on A by 8 concurrent senders until B has them all;
//! 2. joining a remote room with many members and much history: time of the join, and the
//!    joining server's resident memory before and after.
//!
//! `cargo bench --bench federation -- [MESSAGES] [MEMBERS] [HISTORY]` (defaults 5000, 1000,
//! 10000). Results go to docs/performance.md by hand.

#[path = "../tests/common/mod.rs"]
mod common;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use common::{Client, Server};

fn rss_mb(s: &Server) -> f64 {
    let pid = s.child.as_ref().map(|c| c.id()).unwrap_or(0);
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse::<f64>().ok())
        })
        .unwrap_or(0.0)
        / 1024.0
}

/// Sends `n` messages from `c` over 8 concurrent senders.
async fn send_many(c: &Client, room: &ruma::RoomId, n: usize, prefix: &str) {
    let c = Arc::new(c.clone());
    let mut tasks = Vec::new();
    for w in 0..8 {
        let (c, room, prefix) = (c.clone(), room.to_owned(), prefix.to_owned());
        tasks.push(tokio::spawn(async move {
            for i in (w..n).step_by(8) {
                c.send_text(&room, &format!("{prefix} {i}")).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// How many of the room's messages `c` can see (its server's timeline).
async fn count(c: &Client, room: &ruma::RoomId) -> usize {
    c.message_bodies(room).await.len()
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` builds and runs this without it,
    // and it is not a test.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let messages = args.first().copied().unwrap_or(5000);
    let members = args.get(1).copied().unwrap_or(1000);
    let history = args.get(2).copied().unwrap_or(10_000);

    let (a, b, alice, bob, room) = common::federated_room("127.0.0.1", "127.0.0.1").await;
    let pa = a.fed_port();

    // 1. Throughput.
    let t0 = Instant::now();
    send_many(&alice, &room, messages, "m").await;
    let sent = t0.elapsed();
    // Counting pages through /messages on B, so it is done sparingly.
    while count(&bob, &room).await < messages {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let all = t0.elapsed();
    println!(
        "throughput: {messages} messages sent on A in {:.1} s ({:.0}/s); all on B after {:.1} s ({:.0}/s end to end)",
        sent.as_secs_f64(),
        messages as f64 / sent.as_secs_f64(),
        all.as_secs_f64(),
        messages as f64 / all.as_secs_f64()
    );

    // 2. Joining a big room.
    let big = alice
        .create_room(|r| {
            r.preset = Some(ruma::api::client::room::create_room::v3::RoomPreset::PublicChat)
        })
        .await;
    let t = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..8 {
        let base = a.client();
        let big = big.clone();
        tasks.push(tokio::spawn(async move {
            for i in (w..members).step_by(8) {
                let mut c = base.clone();
                c.register(&format!("member{i}"), "password").await;
                c.join(&big).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    send_many(&alice, &big, history, "h").await;
    println!(
        "big room: {members} members and {history} messages made in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let before = rss_mb(&b);
    let t = Instant::now();
    let (st, v) = bob
        .raw(
            "POST",
            &format!("/_matrix/client/v3/join/{big}?server_name=127.0.0.1:{pa}"),
            Some("{}"),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let joined = t.elapsed();
    let after = rss_mb(&b);
    let (_, m) = bob
        .raw(
            "GET",
            &format!("/_matrix/client/v3/rooms/{big}/joined_members"),
            None,
        )
        .await;
    println!(
        "remote join of a room with {} joined members: {:.2} s; joining server RSS {:.0} MB -> {:.0} MB",
        m["joined"].as_object().map_or(0, |o| o.len()),
        joined.as_secs_f64(),
        before,
        after
    );

    // 3. Reading the room's history from before the join (backfilled from A as Bob pages back),
    //    a page of 50 at a time as Element asks for it.
    let t = Instant::now();
    let (mut messages, mut pages, mut from) = (0, 0, String::new());
    let mut slowest = std::time::Duration::ZERO;
    loop {
        let p = Instant::now();
        let (st, v) = bob
            .raw(
                "GET",
                &format!("/_matrix/client/v3/rooms/{big}/messages?dir=b&limit=50{from}"),
                None,
            )
            .await;
        slowest = slowest.max(p.elapsed());
        assert_eq!(st, 200, "{v}");
        pages += 1;
        messages += v["chunk"].as_array().map_or(0, |c| {
            c.iter().filter(|e| e["type"] == "m.room.message").count()
        });
        match v["end"].as_str() {
            Some(end) => from = format!("&from={end}"),
            None => break,
        }
    }
    println!(
        "backfill: {messages} messages from before the join paged back in {pages} pages of 50 in {:.1} s ({:.0} events/s; slowest page {:.0} ms); joining server RSS {:.0} MB",
        t.elapsed().as_secs_f64(),
        (pages * 50) as f64 / t.elapsed().as_secs_f64(),
        slowest.as_secs_f64() * 1000.0,
        rss_mb(&b)
    );
}
