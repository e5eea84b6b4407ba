//! Where the server's TCP listeners come from: sockets handed over by whoever started the process
//! (systemd socket activation, or a test harness holding the port), else bound here.
//!
//! A process that binds a port found free a moment earlier can lose it to another process in
//! between; one that is handed an already bound socket cannot. Following systemd's protocol
//! (`LISTEN_FDS`, and `LISTEN_PID` when set), every inherited listening socket is taken at start
//! and used for the configured address it is bound to; addresses nothing was handed for are bound
//! as usual. A configured port 0 binds a port the system chooses; either way the address actually
//! listened on is printed to stdout (`listening <what> <address>`), so whoever started the server
//! can read it.

use std::{collections::HashMap, io::Write, net::SocketAddr, sync::Mutex};

/// The listening sockets this process was started with, by the address each is bound to.
#[derive(Debug, Default)]
pub struct Inherited {
    by_addr: Mutex<HashMap<SocketAddr, std::net::TcpListener>>,
}

impl Inherited {
    /// Takes the sockets named by `LISTEN_FDS` (once per process; the variables are removed).
    /// Call before any other thread starts: the protocol's variables are read and cleared.
    pub fn from_env() -> Self {
        let mut fds = listenfd::ListenFd::from_env();
        let mut by_addr = HashMap::new();
        for i in 0..fds.len() {
            match fds.take_tcp_listener(i) {
                Ok(Some(l)) => match l.local_addr() {
                    Ok(addr) => {
                        by_addr.insert(addr, l);
                    }
                    Err(e) => eprintln!("haven: inherited socket {i} has no address: {e}"),
                },
                Ok(None) => {}
                Err(e) => eprintln!("haven: inherited socket {i} is not a TCP listener: {e}"),
            }
        }
        Self {
            by_addr: Mutex::new(by_addr),
        }
    }

    /// A listener for `addr` (`what` names the setting in errors and in the line printed):
    /// the inherited socket bound there, else a new one.
    pub async fn listen(
        &self,
        addr: SocketAddr,
        what: &str,
    ) -> Result<tokio::net::TcpListener, String> {
        let inherited = self
            .by_addr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&addr);
        let listener = match inherited {
            Some(l) => l
                .set_nonblocking(true)
                .and_then(|()| tokio::net::TcpListener::from_std(l)),
            None => tokio::net::TcpListener::bind(addr).await,
        }
        .map_err(|e| format!("cannot listen on {addr} ({what}): {e}"))?;
        let bound = listener
            .local_addr()
            .map_err(|e| format!("no address for {addr} ({what}): {e}"))?;
        // Best effort: a server started with stdout closed still serves.
        let _ = writeln!(std::io::stdout(), "listening {what} {bound}");
        Ok(listener)
    }
}
