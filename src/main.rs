//! `haven`: runs the homeserver. `haven [--config PATH] [COMMAND ARGS...]` (default
//! `config.toml`); with a command, runs that operator command instead (see `haven --help`).
//! Listening sockets handed over at start (systemd's `LISTEN_FDS`) are used for the configured
//! addresses they are bound to (see `listeners`).

use std::{path::PathBuf, process::ExitCode};

use haven::{config::Config, listeners::Inherited, Haven};

fn usage() -> ExitCode {
    eprintln!("usage: haven [--config PATH] [COMMAND ARGS...]");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    // Before any thread starts: the sockets a service manager or test harness handed over.
    let inherited = Inherited::from_env();
    let mut args = std::env::args().skip(1);
    let mut path = PathBuf::from("config.toml");
    let mut command: Vec<String> = Vec::new();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--config" | "-c" => match args.next() {
                Some(p) => path = PathBuf::from(p),
                None => return usage(),
            },
            "--version" | "-V" => {
                println!("haven {}", env!("CARGO_PKG_VERSION"));
                return ExitCode::SUCCESS;
            }
            "--help" | "-h" => {
                println!(
                    "haven [--config PATH] [COMMAND ARGS...]\nhaven --version\n\nRuns the Haven homeserver, or with a command, that command. Settings come from the TOML file and HAVEN_<SECTION>__<KEY> environment variables.\n\nCommands:\n{}",
                    haven::cli::COMMANDS
                );
                return ExitCode::SUCCESS;
            }
            s if s.starts_with('-') && command.is_empty() => return usage(),
            _ => command.push(a),
        }
    }
    let config = match Config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("haven: {e}");
            return ExitCode::from(1);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("haven: cannot start runtime: {e}");
            return ExitCode::from(1);
        }
    };
    if let Some((cmd, rest)) = command.split_first() {
        return match rt.block_on(haven::cli::run(config, cmd, rest)) {
            Ok(out) => {
                println!("{out}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("haven {cmd}: {e}");
                ExitCode::from(1)
            }
        };
    }
    init_tracing(&config);
    match rt.block_on(run(config, inherited)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("haven: {e}");
            ExitCode::from(1)
        }
    }
}

/// jemalloc rather than glibc's malloc: glibc kept what each thread's arena once held (argon2's
/// 19 MiB per password hash stayed resident, 175 MB after 94 registrations against 33 MB), and
/// jemalloc was also the fastest of glibc, mimalloc and jemalloc in haven-bench.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn init_tracing(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(config.logging.filter()));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match config.logging.format {
        haven::config::LogFormat::Json => builder.json().init(),
        haven::config::LogFormat::Plain => builder.init(),
    }
}

async fn run(config: Config, inherited: Inherited) -> Result<(), Box<dyn std::error::Error>> {
    let addr = config.listen.address;
    let haven = Haven::open(config)?;
    haven::appservice::ensure_senders(&haven).await?;
    haven::appservice::sender::start(haven.clone());
    haven::push::gateway::start(haven.clone());
    haven::search::start(haven.clone());
    haven::federation::sender::start(haven.clone());
    haven::federation::announce::start(haven.clone());
    haven::cli::serve(haven.clone())?;
    let app = haven::api::router(haven.clone());
    let limits = haven.config.limits.clone();
    // Every listener stops accepting at the same signal; the client one is waited for.
    let stop = tokio_util::sync::CancellationToken::new();
    if let Some(faddr) = haven.config.federation.listen {
        let listener = inherited.listen(faddr, "federation.listen").await?;
        let faddr = listener.local_addr()?;
        let fed = &haven.config.federation;
        let tls = match (&fed.tls_certificate, &fed.tls_private_key) {
            (Some(cert), Some(key)) => Some(haven::federation::tls::acceptor(cert, key)?),
            _ => None,
        };
        tracing::info!(addr = %faddr, tls = tls.is_some(), "federation listener");
        let stopped = stop.clone().cancelled_owned();
        tokio::spawn(haven::serve::serve(
            listener,
            tls,
            app.clone(),
            limits.clone(),
            stopped,
        ));
    }
    if let Some(maddr) = haven.config.metrics.listen {
        let listener = inherited.listen(maddr, "metrics.listen").await?;
        let maddr = listener.local_addr()?;
        let router = haven::api::metrics_router(haven.clone());
        let stopped = stop.clone().cancelled_owned();
        tokio::spawn(haven::serve::serve(
            listener,
            None,
            router,
            limits.clone(),
            stopped,
        ));
        tracing::info!(addr = %maddr, "metrics listener");
    }
    let listener = inherited.listen(addr, "listen.address").await?;
    let addr = listener.local_addr()?;
    haven
        .ready
        .store(true, std::sync::atomic::Ordering::Release);
    tracing::info!(%addr, server_name = %haven.config.server_name, "Haven is listening");
    let signalled = {
        let stop = stop.clone();
        async move {
            shutdown_signal().await;
            stop.cancel();
        }
    };
    haven::serve::serve(listener, None, app, limits, signalled).await;
    haven.db.flush_blocking()?;
    Ok(())
}

/// SIGINT (Ctrl-C) or SIGTERM (service managers) starts a graceful shutdown.
async fn shutdown_signal() {
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
    tracing::info!("shutting down");
}
