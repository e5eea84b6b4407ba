//! `haven-bench`: starts a Haven server on a loopback port with a fresh data directory and
//! measures memory after set-up, send throughput (8 senders, and 64 senders in one room),
//! send-to-/sync delivery latency, initial /sync time, memory after the load, disk and the
//! log written at the default level. Usage: `haven-bench [--server PATH] [--messages N]
//! [--engine auto|sled|fjall]`; `--idle N`: send throughput
//! with and without N idle `/sync` long-polls held (their users in no room), the server's CPU
//! while it only holds them, and its memory; `--startup USERS`: start-up time and first `/sync`
//! of a database of USERS users and USERS / 10 rooms.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;
use serde_json::{json, Value};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Res<Value> {
        let mut rb = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let resp = rb.send().await?;
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(format!("{path}: {status} {v}").into());
        }
        Ok(v)
    }

    async fn register(&self, name: &str) -> Res<String> {
        let v = self
            .call(reqwest::Method::POST, "/_matrix/client/v3/register", None,
                Some(json!({"username": name, "password": "bench-password", "auth": {"type": "m.login.dummy"}})))
            .await?;
        Ok(v["access_token"].as_str().ok_or("no token")?.to_owned())
    }

    async fn create_room(&self, token: &str, public: bool) -> Res<String> {
        let preset = if public {
            "public_chat"
        } else {
            "private_chat"
        };
        let v = self
            .call(
                reqwest::Method::POST,
                "/_matrix/client/v3/createRoom",
                Some(token),
                Some(json!({"preset": preset})),
            )
            .await?;
        Ok(v["room_id"].as_str().ok_or("no room")?.to_owned())
    }

    async fn join(&self, token: &str, room: &str) -> Res<()> {
        self.call(
            reqwest::Method::POST,
            &format!("/_matrix/client/v3/join/{}", enc(room)),
            Some(token),
            Some(json!({})),
        )
        .await?;
        Ok(())
    }

    async fn send(&self, token: &str, room: &str, txn: &str, body: &str) -> Res<()> {
        let path = format!(
            "/_matrix/client/v3/rooms/{}/send/m.room.message/{txn}",
            enc(room)
        );
        self.call(
            reqwest::Method::PUT,
            &path,
            Some(token),
            Some(json!({"msgtype": "m.text", "body": body})),
        )
        .await?;
        Ok(())
    }

    async fn sync(&self, token: &str, since: Option<&str>, timeout_ms: u64) -> Res<Value> {
        let mut path = format!("/_matrix/client/v3/sync?timeout={timeout_ms}");
        if let Some(s) = since {
            path.push_str(&format!("&since={s}"));
        }
        self.call(reqwest::Method::GET, &path, Some(token), None)
            .await
    }
}

fn enc(s: &str) -> String {
    s.replace('!', "%21")
        .replace(':', "%3A")
        .replace('#', "%23")
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// The `[rate_limits]` of the benchmark's server: off, or (`--rate-limits`) on with every
/// limit far above the load, so that what is measured is the cost of checking them.
fn rate_limits(on: bool) -> String {
    if !on {
        return "[rate_limits]\nenabled = false\nper_second = 1.0\nburst = 1\n".into();
    }
    let high = "{ per_second = 1000000.0, burst = 1000000 }";
    let actions = [
        "login_address",
        "login_account",
        "login_failure",
        "registration",
        "room_creation",
        "invite",
        "join",
        "message",
        "media_upload",
    ]
    .iter()
    .map(|a| format!("{a} = {high}\n"))
    .collect::<String>();
    format!("[rate_limits]\nenabled = true\nper_second = 1000000.0\nburst = 1000000\n[rate_limits.actions]\n{actions}")
}

fn start_server(
    bin: &PathBuf,
    dir: &std::path::Path,
    port: u16,
    as_port: Option<u16>,
    limits_on: bool,
    engine: &str,
) -> Res<Child> {
    let config = dir.join("config.toml");
    let mut appservices = String::new();
    if let Some(as_port) = as_port {
        let reg = dir.join("bench-as.yaml");
        std::fs::write(&reg, format!(
            "id: bench\nurl: http://127.0.0.1:{as_port}\nas_token: bench_as_token_0123456789\nhs_token: bench_hs_token_0123456789\nsender_localpart: benchbot\nnamespaces:\n  users:\n    - exclusive: true\n      regex: '@bench_.*'\n  rooms:\n    - exclusive: false\n      regex: '.*'\n"))?;
        appservices = format!("[appservices]\nregistrations = [\"{}\"]\n", reg.display());
    }
    std::fs::write(&config, format!(
        "server_name = \"localhost:{port}\"\n[listen]\naddress = \"127.0.0.1:{port}\"\n[database]\npath = \"{}\"\nengine = \"{engine}\"\ncache_mb = 16\n{limits}{appservices}",
        dir.join("data").display(), limits = rate_limits(limits_on)))?;
    // The default log level, into a file: how much it writes is one of the measurements.
    let log = std::fs::File::create(dir.join("server.log"))?;
    Ok(Command::new(bin)
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()?)
}

#[tokio::main]
async fn main() -> Res<()> {
    let mut args = std::env::args().skip(1);
    let mut bin = std::env::current_exe()?.with_file_name("haven");
    let mut messages: usize = 8000;
    let mut growth: Option<usize> = None;
    let mut search: Option<usize> = None;
    let mut sliding: Option<usize> = None;
    let mut thumbs: Option<usize> = None;
    let mut appservice_rate: Option<u64> = None;
    let mut limits_on = false;
    let mut idle: Option<usize> = None;
    let mut engine = "auto".to_owned();
    let mut startup: Option<usize> = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--startup" => startup = Some(args.next().ok_or("--startup USERS")?.parse()?),
            "--idle" => idle = Some(args.next().ok_or("--idle N")?.parse()?),
            "--growth" => growth = Some(args.next().ok_or("--growth N")?.parse()?),
            "--search" => search = Some(args.next().ok_or("--search N")?.parse()?),
            "--sliding" => sliding = Some(args.next().ok_or("--sliding ROOMS")?.parse()?),
            "--thumbnails" => thumbs = Some(args.next().ok_or("--thumbnails N")?.parse()?),
            "--appservice" => {
                appservice_rate = Some(args.next().ok_or("--appservice RATE")?.parse()?)
            }
            "--server" => bin = PathBuf::from(args.next().ok_or("--server PATH")?),
            "--messages" => messages = args.next().ok_or("--messages N")?.parse()?,
            "--rate-limits" => limits_on = true,
            "--engine" => engine = args.next().ok_or("--engine sled|fjall")?,
            _ => return Err(format!("unknown argument {a}").into()),
        }
    }
    let dir = std::env::temp_dir().join(format!("haven-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let as_port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let with_as = appservice_rate.is_some() || startup.is_some();
    let receiver = match with_as {
        true => Some(start_receiver(as_port).await?),
        false => None,
    };
    let as_port = with_as.then_some(as_port);
    let mut child = start_server(&bin, &dir, port, as_port, limits_on, &engine)?;
    let pid = child.id();
    let api = Arc::new(Api {
        base: format!("http://127.0.0.1:{port}"),
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()?,
    });
    let start = Instant::now();
    while api
        .call(reqwest::Method::GET, "/_matrix/client/versions", None, None)
        .await
        .is_err()
    {
        if start.elapsed() > Duration::from_secs(20) {
            return Err("server did not start".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_rss = rss_kb(pid);
    if let (Some(rate), Some(rx)) = (appservice_rate, receiver) {
        let r = appservice_delivery(api, rate, rx).await;
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_dir_all(&dir);
        return r;
    }
    if sliding.is_some() || thumbs.is_some() {
        let r = match (sliding, thumbs) {
            (Some(n), _) => sliding_latency(api, n).await,
            (_, Some(n)) => thumbnail_throughput(api, n).await,
            _ => Ok(()),
        };
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_dir_all(&dir);
        return r;
    }
    if let Some(users) = startup {
        let restart = || start_server(&bin, &dir, port, as_port, limits_on, &engine);
        let r = start_up(api, users, child, restart).await;
        let _ = std::fs::remove_dir_all(&dir);
        return r;
    }
    if let Some(n) = idle {
        let r = idle_long_polls(api, n, messages, pid).await;
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_dir_all(&dir);
        return r;
    }
    if let Some(n) = search {
        let r = search_latency(api, n).await;
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_dir_all(&dir);
        return r;
    }
    if let Some(n) = growth {
        let r = storage_growth(api, n, pid, &dir.join("data")).await;
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_dir_all(&dir);
        return r;
    }
    let result = run(api, messages, pid).await;
    let _ = child.kill();
    let _ = child.wait();
    let disk = dir_size(&dir.join("data"));
    let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    let (lines, loaded_rss) = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("server log, last lines:");
            for l in log
                .lines()
                .rev()
                .take(20)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
            {
                eprintln!("  {l}");
            }
            return Err(e);
        }
    };
    println!("RSS after start: {:.1} MB", idle_rss as f64 / 1024.0);
    for l in lines {
        println!("{l}");
    }
    println!("RSS after load: {:.1} MB", loaded_rss as f64 / 1024.0);
    println!("disk at the end: {:.1} MB", disk as f64 / 1e6);
    println!(
        "log at the default level: {} bytes, {} lines",
        log.len(),
        log.lines().count()
    );
    Ok(())
}

/// The default script: users and rooms first (memory after set-up), then the loads — 8 senders
/// in one room, 64 senders in one room, delivery latency to 20 long-polls, initial sync of a user
/// in 50 rooms — then memory after the load.
async fn run(api: Arc<Api>, messages: usize, pid: u32) -> Res<(Vec<String>, u64)> {
    let mut out = Vec::new();

    // Set-up: 94 users (an owner, 8 senders, 64 big-room senders, 20 receivers, one busy user)
    // and 53 rooms, before any load.
    let owner = api.register("owner").await?;
    let room = api.create_room(&owner, true).await?;
    let big_room = api.create_room(&owner, true).await?;
    let room2 = api.create_room(&owner, true).await?;
    let mut senders = Vec::new();
    for i in 0..8 {
        let t = api.register(&format!("sender{i}")).await?;
        api.join(&t, &room).await?;
        senders.push(t);
    }
    let mut crowd = Vec::new();
    for i in 0..64 {
        let t = api.register(&format!("crowd{i}")).await?;
        api.join(&t, &big_room).await?;
        crowd.push(t);
    }
    let mut receivers = Vec::new();
    for i in 0..20 {
        let t = api.register(&format!("recv{i}")).await?;
        api.join(&t, &room2).await?;
        receivers.push(t);
    }
    let busy = api.register("busy").await?;
    let mut busy_rooms = Vec::new();
    for _ in 0..50 {
        busy_rooms.push(api.create_room(&busy, false).await?);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    out.push(format!(
        "RSS after creating 94 users and 53 rooms: {:.1} MB",
        rss_kb(pid) as f64 / 1024.0
    ));

    // 1. Send throughput: 8 concurrent senders in one room.
    let rate = send_rate(&api, &senders, &room, messages / 8, "t").await?;
    out.push(format!(
        "send throughput (8 senders, {} messages): {rate:.0} messages/s",
        messages / 8 * 8
    ));

    // 2. A big room: 64 concurrent senders in a room of 65 members, as many messages.
    let (rate, p50) =
        send_rate_latency(&api, &crowd, &big_room, (messages / 64).max(1), "big").await?;
    out.push(format!(
        "send throughput (64 senders in a room of 65, {} messages): {rate:.0} messages/s, p50 {p50:.1} ms",
        (messages / 64).max(1) * 64
    ));

    // 3. Delivery latency: 20 long-polling receivers, one sender.
    let mut polls = Vec::new();
    for t in receivers {
        let since = api.sync(&t, None, 0).await?["next_batch"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        polls.push((t, since));
    }
    let rounds = 200;
    let sent_at = Arc::new(std::sync::Mutex::new(std::collections::HashMap::<
        String,
        Instant,
    >::new()));
    let hist = Arc::new(std::sync::Mutex::new(Histogram::<u64>::new(3)?));
    let mut tasks = Vec::new();
    for (tok, since) in polls {
        let (api, sent_at, hist) = (api.clone(), sent_at.clone(), hist.clone());
        tasks.push(tokio::spawn(async move {
            let mut since = since;
            let mut seen = 0;
            while seen < rounds {
                let v = api.sync(&tok, Some(&since), 5000).await?;
                let now = Instant::now();
                since = v["next_batch"].as_str().unwrap_or_default().to_owned();
                if let Some(rooms) = v["rooms"]["join"].as_object() {
                    for r in rooms.values() {
                        for e in r["timeline"]["events"].as_array().into_iter().flatten() {
                            if let Some(b) = e["content"]["body"].as_str() {
                                if let Some(t) = sent_at.lock().map_err(|_| "lock")?.get(b) {
                                    hist.lock()
                                        .map_err(|_| "lock")?
                                        .record(now.duration_since(*t).as_micros() as u64)?;
                                    seen += 1;
                                }
                            }
                        }
                    }
                }
            }
            Res::Ok(())
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for n in 0..rounds {
        let body = format!("latency {n}");
        sent_at
            .lock()
            .map_err(|_| "lock")?
            .insert(body.clone(), Instant::now());
        api.send(&owner, &room2, &format!("l{n}"), &body).await?;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for t in tasks {
        t.await??;
    }
    let line = {
        let h = hist.lock().map_err(|_| "lock")?;
        format!(
            "send-to-sync delivery (20 receivers, {rounds} messages): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        h.value_at_quantile(0.5) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
        h.max() as f64 / 1000.0
    )
    };
    out.push(line);

    // 4. Initial sync for a user in 50 rooms of 20 messages.
    for (r, room) in busy_rooms.iter().enumerate() {
        for n in 0..20 {
            api.send(&busy, room, &format!("b{r}-{n}"), "history")
                .await?;
        }
    }
    let mut times = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let v = api.sync(&busy, None, 0).await?;
        times.push(t.elapsed());
        if v["rooms"]["join"].as_object().map(|m| m.len()) != Some(50) {
            return Err("initial sync did not return 50 rooms".into());
        }
    }
    times.sort();
    out.push(format!(
        "initial /sync, 50 rooms x 20 messages: median {:.1} ms (min {:.1} ms)",
        times[2].as_secs_f64() * 1000.0,
        times[0].as_secs_f64() * 1000.0
    ));
    Ok((out, rss_kb(pid)))
}

/// Messages per second from `senders` (each sending `per` in turn) into `room`, and the median
/// time a send took.
async fn send_rate_latency(
    api: &Arc<Api>,
    senders: &[String],
    room: &str,
    per: usize,
    tag: &str,
) -> Res<(f64, f64)> {
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for (i, tok) in senders.iter().enumerate() {
        let (api, tok, room, tag) = (api.clone(), tok.clone(), room.to_owned(), tag.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut took = Vec::with_capacity(per);
            for n in 0..per {
                let t = Instant::now();
                api.send(&tok, &room, &format!("{tag}{i}-{n}"), "benchmark message")
                    .await?;
                took.push(t.elapsed());
            }
            Res::Ok(took)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    let rate = all.len() as f64 / t0.elapsed().as_secs_f64();
    Ok((rate, percentiles(all).0))
}

/// `--startup USERS`: a database of USERS users (registered by the appservice, so without
/// password hashing) in USERS / 10 rooms of ten, three messages in each, one user in 21 rooms;
/// then the server is stopped and started again, timing the start (until `/versions`
/// answers) and that user's first `/sync`.
async fn start_up(
    api: Arc<Api>,
    users: usize,
    mut child: Child,
    restart: impl Fn() -> Res<Child>,
) -> Res<()> {
    const AS: &str = "bench_as_token_0123456789";
    let rooms = (users / 10).max(21);
    let t0 = Instant::now();
    let tokens: Vec<String> = in_parallel(users, |i, api| async move {
        let v = api
            .call(
                reqwest::Method::POST,
                "/_matrix/client/v3/register",
                Some(AS),
                Some(json!({"type": "m.login.application_service", "username": format!("bench_{i}")})),
            )
            .await?;
        Ok(v["access_token"].as_str().ok_or("no token")?.to_owned())
    }, &api)
    .await?;
    let tokens = Arc::new(tokens);
    let toks = tokens.clone();
    let room_ids: Vec<String> = in_parallel(
        rooms,
        move |r, api| {
            let tok = toks[(r * 10) % toks.len()].clone();
            async move { api.create_room(&tok, true).await }
        },
        &api,
    )
    .await?;
    let room_ids = Arc::new(room_ids);
    let (toks, ids) = (tokens.clone(), room_ids.clone());
    in_parallel(
        users,
        move |i, api| {
            let (tok, room) = (toks[i].clone(), ids[(i / 10) % ids.len()].clone());
            async move {
                if i % 10 != 0 {
                    api.join(&tok, &room).await?;
                }
                Ok(())
            }
        },
        &api,
    )
    .await?;
    let (toks, ids) = (tokens.clone(), room_ids.clone());
    in_parallel(
        20,
        move |r, api| {
            let (tok, room) = (toks[0].clone(), ids[r + 1].clone());
            async move { api.join(&tok, &room).await }
        },
        &api,
    )
    .await?;
    let (toks, ids) = (tokens.clone(), room_ids.clone());
    in_parallel(
        rooms * 3,
        move |k, api| {
            let r = k % ids.len();
            let (tok, room) = (toks[(r * 10) % toks.len()].clone(), ids[r].clone());
            async move {
                api.send(
                    &tok,
                    &room,
                    &format!("s{k}"),
                    "a support conversation message of typical length",
                )
                .await
            }
        },
        &api,
    )
    .await?;
    println!(
        "{users} users, {rooms} rooms, {} messages created in {:.0} s",
        rooms * 3,
        t0.elapsed().as_secs_f64()
    );
    // A clean stop (SIGTERM), then a timed start.
    Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()?;
    child.wait()?;
    let t = Instant::now();
    let mut child = restart()?;
    while api
        .call(reqwest::Method::GET, "/_matrix/client/versions", None, None)
        .await
        .is_err()
    {
        if t.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            return Err("server did not start".into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let started = t.elapsed();
    let t = Instant::now();
    let first = api.sync(&tokens[0], None, 0).await?;
    let first_sync = t.elapsed();
    let joined = first["rooms"]["join"].as_object().map_or(0, |m| m.len());
    let t = Instant::now();
    api.sync(&tokens[1], None, 0).await?;
    let other_sync = t.elapsed();
    println!(
        "start-up until /versions answers: {:.0} ms",
        started.as_secs_f64() * 1000.0
    );
    println!(
        "first /sync after start ({joined} rooms): {:.1} ms; another user's (1 room): {:.1} ms",
        first_sync.as_secs_f64() * 1000.0,
        other_sync.as_secs_f64() * 1000.0
    );
    println!(
        "RSS after the first syncs: {:.1} MB",
        rss_kb(child.id()) as f64 / 1024.0
    );
    let _ = child.kill();
    let _ = child.wait();
    Ok(())
}

/// Runs `f(0..n)` with 16 requests in flight, answering the results in order.
async fn in_parallel<T, F, Fut>(n: usize, f: F, api: &Arc<Api>) -> Res<Vec<T>>
where
    T: Send + 'static,
    F: Fn(usize, Arc<Api>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Res<T>> + Send + 'static,
{
    let f = Arc::new(f);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (f, next, api) = (f.clone(), next.clone(), api.clone());
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    return Res::Ok(out);
                }
                out.push((i, f(i, api.clone()).await?));
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    all.sort_by_key(|(i, _)| *i);
    Ok(all.into_iter().map(|(_, v)| v).collect())
}

/// Bytes allocated on disk under `p` (sparse regions do not count).
fn dir_size(p: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::read_dir(p)
        .map(|rd| {
            rd.flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_size(&e.path()),
                    Ok(m) => m.blocks() * 512,
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

/// Sends `n` messages over 100 rooms with 8 senders, reporting disk and memory every 10%.
async fn storage_growth(api: Arc<Api>, n: usize, pid: u32, data: &std::path::Path) -> Res<()> {
    let tok = api.register("grower").await?;
    let mut rooms = Vec::new();
    for _ in 0..100 {
        rooms.push(api.create_room(&tok, false).await?);
    }
    let rooms = Arc::new(rooms);
    let step = (n / 10).max(1);
    let t0 = Instant::now();
    let mut done = 0;
    while done < n {
        let mut tasks = Vec::new();
        for w in 0..8 {
            let (api, tok, rooms) = (api.clone(), tok.clone(), rooms.clone());
            let base = done;
            tasks.push(tokio::spawn(async move {
                for i in (w..step).step_by(8) {
                    let k = base + i;
                    api.send(
                        &tok,
                        &rooms[k % rooms.len()],
                        &format!("g{k}"),
                        "a support conversation message of typical length",
                    )
                    .await?;
                }
                Res::Ok(())
            }));
        }
        for t in tasks {
            t.await??;
        }
        done += step;
        println!(
            "{done} events: disk {:.1} MB, RSS {:.1} MB, {:.0} s",
            dir_size(data) as f64 / 1048576.0,
            rss_kb(pid) as f64 / 1024.0,
            t0.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// What the stand-in appservice saw: when each message body arrived, and transaction sizes.
#[derive(Default)]
struct Received {
    arrivals: std::collections::HashMap<String, Instant>,
    txns: u64,
    largest_txn: usize,
}

type Shared = Arc<std::sync::Mutex<Received>>;

/// A minimal appservice endpoint that records arrivals and acknowledges every transaction.
async fn start_receiver(port: u16) -> Res<Shared> {
    use axum::{extract::State, routing::put, Json, Router};
    let shared: Shared = Default::default();
    async fn txn(State(s): State<Shared>, Json(body): Json<Value>) -> Json<Value> {
        let now = Instant::now();
        if let Ok(mut r) = s.lock() {
            let events = body["events"].as_array().cloned().unwrap_or_default();
            r.txns += 1;
            r.largest_txn = r.largest_txn.max(events.len());
            for e in events {
                if let Some(b) = e["content"]["body"].as_str() {
                    r.arrivals.entry(b.to_owned()).or_insert(now);
                }
            }
        }
        Json(json!({}))
    }
    let app = Router::new()
        .route("/_matrix/app/v1/transactions/{txn}", put(txn))
        .with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(shared)
}

/// Sends messages at `rate` per second for 10 s (8 senders) and measures how long each takes
/// to reach the appservice.
async fn appservice_delivery(api: Arc<Api>, rate: u64, rx: Shared) -> Res<()> {
    let owner = api.register("asowner").await?;
    let room = api.create_room(&owner, true).await?;
    let mut tokens = Vec::new();
    for i in 0..8 {
        let t = api.register(&format!("assender{i}")).await?;
        api.join(&t, &room).await?;
        tokens.push(t);
    }
    let total = rate * 10;
    let interval = Duration::from_secs_f64(8.0 / rate as f64);
    let sent_at = Arc::new(std::sync::Mutex::new(std::collections::HashMap::<
        String,
        Instant,
    >::new()));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for (w, tok) in tokens.into_iter().enumerate() {
        let (api, room, sent_at) = (api.clone(), room.clone(), sent_at.clone());
        tasks.push(tokio::spawn(async move {
            let mut next = Instant::now();
            for n in (w as u64..total).step_by(8) {
                tokio::time::sleep_until(next.into()).await;
                next += interval;
                let body = format!("as {n}");
                sent_at
                    .lock()
                    .map_err(|_| "lock")?
                    .insert(body.clone(), Instant::now());
                api.send(&tok, &room, &format!("a{n}"), &body).await?;
            }
            Res::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let sending = t0.elapsed();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = rx.lock().map_err(|_| "lock")?.arrivals.len() as u64;
        if got >= total || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = rx.lock().map_err(|_| "lock")?;
    let sent = sent_at.lock().map_err(|_| "lock")?;
    let mut h = Histogram::<u64>::new(3)?;
    let mut last = t0;
    for (body, at) in &r.arrivals {
        if let Some(s) = sent.get(body) {
            h.record(at.duration_since(*s).as_micros() as u64)?;
            last = last.max(*at);
        }
    }
    println!("appservice delivery, {total} messages offered at {rate}/s by 8 senders (sending took {:.1} s):", sending.as_secs_f64());
    println!(
        "  delivered {} of {total} in {} transactions (largest {} events)",
        r.arrivals.len(),
        r.txns,
        r.largest_txn
    );
    println!(
        "  delivery throughput: {:.0} events/s",
        r.arrivals.len() as f64 / last.duration_since(t0).as_secs_f64()
    );
    println!(
        "  lag from send to appservice: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        h.value_at_quantile(0.5) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
        h.max() as f64 / 1000.0
    );
    Ok(())
}

/// `--search N`: N messages over 20 rooms from an 2,000-word vocabulary, then /search latency
/// for a common word, two words together, and a rare word (50 queries each).
async fn search_latency(api: Arc<Api>, n: usize) -> Res<()> {
    let tok = api.register("searcher").await?;
    let mut rooms = Vec::new();
    for _ in 0..20 {
        rooms.push(api.create_room(&tok, false).await?);
    }
    let rooms = Arc::new(rooms);
    // Word k appears about 1/(k+1) as often as word 0 (a Zipf-like spread, as in real chat).
    let word = |x: u64| -> String {
        let k = (2000.0 * ((x % 10_000) as f64 / 10_000.0).powi(3)) as u64;
        format!("w{k}")
    };
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..8 {
        let (api, tok, rooms) = (api.clone(), tok.clone(), rooms.clone());
        tasks.push(tokio::spawn(async move {
            let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ (w as u64);
            for i in (w..n).step_by(8) {
                let mut body = String::new();
                for _ in 0..8 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    body.push_str(&word(x));
                    body.push(' ');
                }
                api.send(&tok, &rooms[i % rooms.len()], &format!("s{i}"), &body)
                    .await?;
            }
            Res::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    println!("sent {n} messages in {:.1} s", t0.elapsed().as_secs_f64());
    let query = |term: &str| json!({"search_categories": {"room_events": {"search_term": term, "order_by": "recent", "filter": {"limit": 10}}}});
    // The first query waits for the indexer to catch up.
    let t = Instant::now();
    api.call(
        reqwest::Method::POST,
        "/_matrix/client/v3/search",
        Some(&tok),
        Some(query("w0")),
    )
    .await?;
    println!(
        "first search (after indexing catches up): {:.1} ms",
        t.elapsed().as_secs_f64() * 1000.0
    );
    for (name, term) in [
        ("common word", "w0"),
        ("two words", "w0 w1"),
        ("rare word", "w1900"),
    ] {
        let mut lat = Vec::new();
        let mut count = 0;
        for _ in 0..50 {
            let t = Instant::now();
            let v = api
                .call(
                    reqwest::Method::POST,
                    "/_matrix/client/v3/search",
                    Some(&tok),
                    Some(query(term)),
                )
                .await?;
            lat.push(t.elapsed());
            count = v["search_categories"]["room_events"]["count"]
                .as_u64()
                .unwrap_or(0);
        }
        lat.sort();
        println!(
            "search {name} ({count} matches): p50 {:.1} ms, p99 {:.1} ms",
            lat[lat.len() / 2].as_secs_f64() * 1000.0,
            lat[lat.len() * 99 / 100].as_secs_f64() * 1000.0
        );
    }
    Ok(())
}

fn percentiles(mut lat: Vec<Duration>) -> (f64, f64) {
    lat.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    (
        ms(lat[lat.len() / 2]),
        ms(lat[(lat.len() * 99 / 100).min(lat.len() - 1)]),
    )
}

/// `--sliding N`: a user in N rooms (one message each); the sliding-sync list response of a new
/// connection (first 20 rooms by recency, room name, one timeline event), 30 times.
async fn sliding_latency(api: Arc<Api>, n: usize) -> Res<()> {
    let tok = api.register("slider").await?;
    for i in 0..n {
        let room = api.create_room(&tok, false).await?;
        api.send(&tok, &room, &format!("m{i}"), &format!("hello {i}"))
            .await?;
    }
    let body = json!({"lists": {"all": {"ranges": [[0, 19]], "required_state": [["m.room.name", ""]], "timeline_limit": 1}}});
    let path = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync";
    let mut lat = Vec::new();
    for _ in 0..30 {
        let t = Instant::now();
        let v = api
            .call(reqwest::Method::POST, path, Some(&tok), Some(body.clone()))
            .await?;
        lat.push(t.elapsed());
        if v["lists"]["all"]["count"].as_u64() != Some(n as u64) {
            return Err(format!("list count {}", v["lists"]["all"]["count"]).into());
        }
    }
    let (p50, p99) = percentiles(lat);
    println!("sliding sync list (user in {n} rooms, first 20, new connection): p50 {p50:.1} ms, p99 {p99:.1} ms");
    // Incremental: one new message somewhere in the window, then the next request.
    let mut v = api
        .call(reqwest::Method::POST, path, Some(&tok), Some(body.clone()))
        .await?;
    let mut lat = Vec::new();
    for i in 0..30 {
        let rooms: Vec<String> = v["rooms"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        let room = rooms
            .get(i % rooms.len().max(1))
            .cloned()
            .unwrap_or_default();
        let pos = v["pos"].as_str().unwrap_or_default().to_owned();
        api.send(&tok, &room, &format!("inc{i}"), "news").await?;
        let t = Instant::now();
        v = api
            .call(
                reqwest::Method::POST,
                &format!("{path}?pos={pos}&timeout=0"),
                Some(&tok),
                Some(body.clone()),
            )
            .await?;
        lat.push(t.elapsed());
        if v["rooms"].as_object().map(|m| m.len()) != Some(1) {
            return Err(format!("incremental response sent {} rooms", v["rooms"]).into());
        }
    }
    let (p50, p99) = percentiles(lat);
    println!("sliding sync incremental (one room changed): p50 {p50:.1} ms, p99 {p99:.1} ms");
    Ok(())
}

/// `--thumbnails N`: one 1024x768 photo-like PNG, N thumbnails of distinct sizes (each made
/// afresh) by 4 concurrent clients, then the same again (served from the cache).
async fn thumbnail_throughput(api: Arc<Api>, n: usize) -> Res<()> {
    let tok = api.register("thumbs").await?;
    let mut png = std::io::Cursor::new(Vec::new());
    image::RgbImage::from_fn(1024, 768, |x, y| {
        image::Rgb([(x ^ y) as u8, (x / 4) as u8, (y / 3) as u8])
    })
    .write_to(&mut png, image::ImageFormat::Png)?;
    let up: serde_json::Value = api
        .http
        .post(format!("{}/_matrix/media/v3/upload", api.base))
        .bearer_auth(&tok)
        .header("content-type", "image/png")
        .body(png.into_inner())
        .send()
        .await?
        .json()
        .await?;
    let mxc = up["content_uri"]
        .as_str()
        .ok_or("no content_uri")?
        .trim_start_matches("mxc://")
        .to_owned();
    for round in ["made", "cached"] {
        let t0 = Instant::now();
        let mut tasks = Vec::new();
        for w in 0..4 {
            let (api, tok, mxc) = (api.clone(), tok.clone(), mxc.clone());
            tasks.push(tokio::spawn(async move {
                for i in (w..n).step_by(4) {
                    let size = 64 + (i % 400);
                    let url = format!("{}/_matrix/client/v1/media/thumbnail/{mxc}?width={size}&height={size}&method=scale", api.base);
                    let r = api.http.get(url).bearer_auth(&tok).send().await?;
                    if !r.status().is_success() {
                        return Err(format!("thumbnail {}", r.status()).into());
                    }
                    r.bytes().await?;
                }
                Res::Ok(())
            }));
        }
        for t in tasks {
            t.await??;
        }
        let secs = t0.elapsed().as_secs_f64();
        println!(
            "thumbnails {round}: {n} in {secs:.2} s = {:.0}/s",
            n as f64 / secs
        );
    }
    Ok(())
}

/// CPU seconds (user + system) the process has used so far.
fn cpu_s(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime and stime are 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// Messages per second from `senders` (each sending `per` in turn) into one room.
async fn send_rate(
    api: &Arc<Api>,
    senders: &[String],
    room: &str,
    per: usize,
    tag: &str,
) -> Res<f64> {
    Ok(send_rate_latency(api, senders, room, per, tag).await?.0)
}

/// Issue 19: idle clients must cost nothing. Send throughput with and without `n` idle
/// long-polls (spread over 100 users in no room, each re-polling when its poll ends), the
/// server's CPU while it only holds them, and its memory.
async fn idle_long_polls(api: Arc<Api>, n: usize, messages: usize, pid: u32) -> Res<()> {
    let owner = api.register("owner").await?;
    let room = api.create_room(&owner, true).await?;
    let mut senders = Vec::new();
    for i in 0..8 {
        let t = api.register(&format!("sender{i}")).await?;
        api.join(&t, &room).await?;
        senders.push(t);
    }
    let per = (messages / 8).max(1);
    send_rate(&api, &senders, &room, per / 4, "warm").await?;
    let without = send_rate(&api, &senders, &room, per, "a").await?;
    let mut idle_users = Vec::new();
    for i in 0..n.min(100) {
        let t = api.register(&format!("idle{i}")).await?;
        let since = api.sync(&t, None, 0).await?["next_batch"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        idle_users.push((t, since));
    }
    // After the registrations: what the long-polls cost, not what creating their users did.
    let rss_before = rss_kb(pid);
    // Each poller has its own connection (as each client would).
    let held = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut pollers = Vec::new();
    for i in 0..n {
        let (tok, since) = idle_users[i % idle_users.len()].clone();
        let base = api.base.clone();
        let held = held.clone();
        pollers.push(tokio::spawn(async move {
            let own = Api {
                base,
                http: reqwest::Client::builder()
                    .pool_max_idle_per_host(1)
                    .build()?,
            };
            loop {
                held.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let r = own.sync(&tok, Some(&since), 30_000).await;
                held.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                r?;
            }
            #[allow(unreachable_code)]
            Res::Ok(())
        }));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (c0, t0) = (cpu_s(pid), Instant::now());
    tokio::time::sleep(Duration::from_secs(10)).await;
    let holding_cores = (cpu_s(pid) - c0) / t0.elapsed().as_secs_f64();
    let rss_held = rss_kb(pid);
    let with = send_rate(&api, &senders, &room, per, "b").await?;
    let still = held.load(std::sync::atomic::Ordering::Relaxed);
    for p in pollers {
        p.abort();
    }
    println!("idle /sync long-polls held: {n} ({still} still held after the sends)");
    println!(
        "send throughput (8 senders, {} messages) without them: {without:.0} messages/s",
        per * 8
    );
    println!(
        "send throughput with them: {with:.0} messages/s ({:+.1}%)",
        (with / without - 1.0) * 100.0
    );
    println!("server CPU while only holding them: {holding_cores:.3} cores");
    println!(
        "RSS: {:.1} MB before, {:.1} MB holding them (+{:.1} MB)",
        rss_before as f64 / 1024.0,
        rss_held as f64 / 1024.0,
        (rss_held as f64 - rss_before as f64) / 1024.0
    );
    Ok(())
}
