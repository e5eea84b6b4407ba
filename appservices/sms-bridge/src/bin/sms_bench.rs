//! `sms-bench [--rate N] [--seconds S] [--texters T]`: inbound SMS throughput and latency.
//! Starts Haven and the bridge (the binaries next to this one) on loopback with a local Twilio
//! double, opens T conversations, then posts signed inbound webhooks at N per second for S
//! seconds, round-robin over the texters. Latency is webhook POST to answer; the bridge answers
//! only after the text is a Matrix event.

use std::{
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{routing::post, Json, Router};
use base64::{engine::general_purpose::STANDARD, Engine};
use hdrhistogram::Histogram;
use serde_json::json;

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;
const AUTH: &str = "bench_auth_token";

struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn port() -> Res<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn wait_up(http: &reqwest::Client, url: &str) -> Res<()> {
    let start = Instant::now();
    while http.get(url).send().await.is_err() {
        if start.elapsed() > Duration::from_secs(30) {
            return Err(format!("{url} did not come up").into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

async fn inbound(
    http: &reqwest::Client,
    url: &str,
    sid: &str,
    from: &str,
    body: &str,
) -> Res<Duration> {
    let params = vec![
        ("MessageSid".to_owned(), sid.to_owned()),
        ("From".to_owned(), from.to_owned()),
        ("To".to_owned(), "+15550001111".to_owned()),
        ("Body".to_owned(), body.to_owned()),
    ];
    let sig = sms_bridge::signature::compute(AUTH, url, &params);
    let t = Instant::now();
    let r = http
        .post(url)
        .header("x-twilio-signature", sig)
        .form(&params)
        .send()
        .await?;
    if !r.status().is_success() {
        return Err(format!("webhook answered {}", r.status()).into());
    }
    Ok(t.elapsed())
}

#[tokio::main]
async fn main() -> Res<()> {
    let mut args = std::env::args().skip(1);
    let (mut rate, mut seconds, mut texters) = (500u64, 10u64, 200usize);
    while let Some(a) = args.next() {
        let v = args.next().ok_or("flag without value")?;
        match a.as_str() {
            "--rate" => rate = v.parse()?,
            "--seconds" => seconds = v.parse()?,
            "--texters" => texters = v.parse()?,
            _ => return Err(format!("unknown flag {a}").into()),
        }
    }
    let bin_dir = std::env::current_exe()?
        .parent()
        .ok_or("no exe dir")?
        .to_path_buf();
    let dir = tempfile::tempdir()?;
    let (hs_port, br_port, tw_port) = (port()?, port()?, port()?);
    let server = format!("localhost:{hs_port}");
    let reg = dir.path().join("sms.yaml");
    std::fs::write(&reg, format!("id: sms-bridge\nurl: http://127.0.0.1:{br_port}\nas_token: bench_as_token_0123456789\nhs_token: bench_hs_token_0123456789\nsender_localpart: sms_bridge\nrate_limited: false\nnamespaces:\n  users:\n    - exclusive: true\n      regex: '@sms_.*:{server}'\n"))?;
    let hs_cfg = dir.path().join("haven.toml");
    std::fs::write(&hs_cfg, format!("server_name = \"{server}\"\n[listen]\naddress = \"127.0.0.1:{hs_port}\"\n[database]\npath = \"{}\"\n[rate_limits]\nenabled = false\nper_second = 1.0\nburst = 1\n[appservices]\nregistrations = [\"{}\"]\n[logging]\nlevel = \"error\"\nformat = \"plain\"\n", dir.path().join("hs").display(), reg.display()))?;
    let _hs = Proc(
        Command::new(bin_dir.join("haven"))
            .arg("--config")
            .arg(&hs_cfg)
            .stdout(Stdio::null())
            .spawn()?,
    );
    let twilio = Router::new().route(
        "/2010-04-01/Accounts/{sid}/Messages.json",
        post(|| async { Json(json!({"sid": "SMbench", "status": "queued"})) }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", tw_port)).await?;
    tokio::spawn(async move { axum::serve(listener, twilio).await });
    let br_cfg = dir.path().join("bridge.toml");
    std::fs::write(&br_cfg, format!("[bridge]\nhomeserver_url = \"http://127.0.0.1:{hs_port}\"\nserver_name = \"{server}\"\nregistration = \"{}\"\nlisten = \"127.0.0.1:{br_port}\"\npublic_url = \"http://127.0.0.1:{br_port}\"\nstate_dir = \"{}\"\n[twilio]\napi_base_url = \"http://127.0.0.1:{tw_port}\"\naccount_sid = \"ACbench\"\n[[affiliates]]\nid = \"a\"\nname = \"A\"\n[[affiliates.programs]]\nid = \"p\"\nname = \"P\"\nnumber = \"+15550001111\"\nqueue_room = \"#q:{server}\"\nauto_response = \"Hi.\"\nhelp_text = \"Help.\"\ndefault = true\n", reg.display(), dir.path().join("bridge").display()))?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;
    wait_up(
        &http,
        &format!("http://127.0.0.1:{hs_port}/_matrix/client/versions"),
    )
    .await?;
    let _bridge = Proc(
        Command::new(bin_dir.join("sms-bridge"))
            .arg("--config")
            .arg(&br_cfg)
            .env("SMS_BRIDGE_TWILIO_AUTH_TOKEN", AUTH)
            .env("SMS_BRIDGE_HASH_KEY", STANDARD.encode([5u8; 32]))
            .env(
                "SMS_BRIDGE_NUMBER_KEYS",
                format!("k={}", STANDARD.encode([6u8; 32])),
            )
            .env("SMS_BRIDGE_NUMBER_KEY_ID", "k")
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .spawn()?,
    );
    wait_up(&http, &format!("http://127.0.0.1:{br_port}/health")).await?;
    let url = Arc::new(format!("http://127.0.0.1:{br_port}/twilio/sms"));

    // First contacts (each opens a room).
    let mut first = Histogram::<u64>::new(3)?;
    let t0 = Instant::now();
    for i in 0..texters {
        first.record(
            inbound(
                &http,
                &url,
                &format!("SMfirst{i}"),
                &format!("+1555{i:07}"),
                "hello",
            )
            .await?
            .as_micros() as u64,
        )?;
    }
    println!(
        "first contact (room creation), {texters} texters one after another: {:.0}/s, p50 {:.1} ms, p99 {:.1} ms",
        texters as f64 / t0.elapsed().as_secs_f64(),
        first.value_at_quantile(0.5) as f64 / 1000.0,
        first.value_at_quantile(0.99) as f64 / 1000.0
    );

    // Sustained inbound texts at the offered rate.
    let total = rate * seconds;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let hist = Arc::new(std::sync::Mutex::new(Histogram::<u64>::new(3)?));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    for n in 0..total {
        tokio::time::sleep_until((start + interval * n as u32).into()).await;
        let (http, url, hist) = (http.clone(), url.clone(), hist.clone());
        let from = format!("+1555{:07}", n as usize % texters);
        tasks.push(tokio::spawn(async move {
            let d = inbound(
                &http,
                &url,
                &format!("SM{n}"),
                &from,
                "a message of usual length from a texter",
            )
            .await?;
            hist.lock()
                .map_err(|_| "lock")?
                .record(d.as_micros() as u64)?;
            Res::Ok(())
        }));
    }
    let mut failed = 0;
    for t in tasks {
        if t.await.map_err(|e| e.to_string())?.is_err() {
            failed += 1;
        }
    }
    let elapsed = start.elapsed();
    let h = hist.lock().map_err(|_| "lock")?;
    println!(
        "sustained: {total} texts offered at {rate}/s over {texters} texters: {:.0}/s handled, {failed} failed, latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        (total - failed) as f64 / elapsed.as_secs_f64(),
        h.value_at_quantile(0.5) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
        h.max() as f64 / 1000.0
    );
    Ok(())
}
