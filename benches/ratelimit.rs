//! What a per-action rate limit adds to a request: the cost of one `ActionLimiters::check`
//! (a lock and a hash-map lookup), with limits on and off, over 10,000 users.
//!
//! `cargo bench --bench ratelimit`. Results go to docs/performance.md by hand.

use std::{hint::black_box, time::Instant};

use haven::{
    config::{ActionLimit, RateLimits},
    ratelimit::{Action, ActionLimiters},
};

fn ns_per_check(limiters: &ActionLimiters, users: &[String], n: usize) -> f64 {
    let start = Instant::now();
    for i in 0..n {
        black_box(limiters.check(Action::Message, &users[i % users.len()])).ok();
    }
    start.elapsed().as_nanos() as f64 / n as f64
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this without it.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let users: Vec<String> = (0..10_000)
        .map(|i| format!("@user{i}:example.org"))
        .collect();
    let mut on = RateLimits::default();
    // Far above any load, so every check passes and takes the whole path.
    on.actions.message = ActionLimit {
        per_second: 1e12,
        burst: u32::MAX,
    };
    let off = RateLimits {
        enabled: false,
        ..on.clone()
    };
    let n = 2_000_000;
    for (name, cfg) in [("off", off), ("on", on)] {
        let limiters = ActionLimiters::new(&cfg);
        ns_per_check(&limiters, &users, users.len()); // first sight of each user
        let ns = ns_per_check(&limiters, &users, n);
        println!("rate limits {name}: {ns:.1} ns per message check ({n} checks)");
    }
}
