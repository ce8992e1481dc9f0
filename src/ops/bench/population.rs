//! A population of TIME_WAIT sockets, with their conntrack entries, for the
//! counting section to count.
//!
//! It lives in the server namespace of a fresh embedded lab (labelled, so
//! `twlab clean` finds it after a crash), on that namespace's loopback: a
//! listener on 127.0.0.1 accepts and closes first, so the server end of
//! every connection stays in TIME_WAIT for 60 s, and the namespace's
//! conntrack table (made active as in a run) holds one entry per
//! connection, in TIME_WAIT for 120 s.
//!
//! One client address has one port range towards one endpoint, and a port
//! that comes free is soon used again: a new connection on the 4-tuple of a
//! TIME_WAIT socket recycles it and the count stops growing. So the
//! connections come from many source addresses of 127.0.0.0/8, a few hundred
//! each — the "several client addresses" of a real load, on loopback.

use crate::common::endpoint::{Endpoint, Side};
use crate::error::{Error, Result};
use crate::lab::netns::{NetnsLab, sys};
use crate::lab::run_id::{random_id, reserve_run_id};
use crate::measure::ctnetlink::events::CtEvents;
use crate::measure::sock_gauge::NetnsGauge;
use socket2::{Domain, Socket, Type};
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The port the population's server end listened on.
const PORT: u16 = 18080;
/// Connections per source address.
const PER_SOURCE: u64 = 500;
/// Client threads making connections.
const CLIENT_THREADS: u64 = 2;

/// A lab namespace holding `n` TIME_WAIT sockets on [`Population::endpoint`].
pub struct Population {
    pub lab: NetnsLab,
    pub endpoint: SocketAddr,
    /// How long making the connections took.
    pub built_in: Duration,
    /// The conntrack event listener started on the empty table, as a run
    /// starts it (the embedded lab's way of counting conntrack).
    pub events: Option<CtEvents>,
    /// The socket gauge watching the namespace from before its first
    /// socket, as a run's (the embedded lab's way of counting sockets).
    pub gauge: Option<std::sync::Mutex<NetnsGauge>>,
}

impl Population {
    /// Make a fresh lab and `n` connections closed by the server first.
    pub async fn build(n: u64) -> Result<Population> {
        let lab = NetnsLab::create(&reserve_run_id(|| format!("b{}", random_id()))).await?;
        let ns = lab.server.name().to_string();
        let tw_buckets = (2 * n + 10_000).to_string();
        let settings = [
            ("net.ipv4.tcp_max_tw_buckets", tw_buckets.as_str()),
            ("net.ipv4.ip_local_port_range", "10000 65000"),
        ];
        for (name, value) in settings {
            if let Err(e) = sys::sysctl_write(&ns, name, value) {
                lab.destroy().await;
                return Err(Error::env(format!("bench: cannot set {name} in {ns}: {e}")));
            }
        }
        if let Err(e) = lab.server.enable_conntrack().await {
            lab.destroy().await;
            return Err(e);
        }
        let path = PathBuf::from(sys::NETNS_RUN_DIR).join(&ns);
        let endpoint = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, PORT));
        let events = match CtEvents::start(&path, endpoint) {
            Ok(ev) => Some(ev),
            Err(e) => {
                errln!("  conntrack events unavailable ({e}): that row is left out");
                None
            }
        };
        let gauge = match NetnsGauge::watch(&path, Side::Server, &Endpoint::from(endpoint)) {
            Ok(g) => Some(std::sync::Mutex::new(g)),
            Err(e) => {
                errln!("  the socket gauge is unavailable ({e}): that row is left out");
                None
            }
        };
        let started = Instant::now();
        let made =
            tokio::task::spawn_blocking(move || sys::in_netns(&path, move || connect_many(n)))
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(format!("population task: {e}"))));
        if let Err(e) = made {
            lab.destroy().await;
            return Err(Error::env(format!(
                "bench: cannot make {n} connections in {ns}: {e}"
            )));
        }
        let built_in = started.elapsed();
        // The last closes' final segments may still be in flight when the
        // clients return: let them land, so every method counts the same.
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok(Population {
            lab,
            endpoint,
            built_in,
            events,
            gauge,
        })
    }

    pub fn netns_path(&self) -> PathBuf {
        self.lab.server.path()
    }

    pub async fn destroy(mut self) {
        self.events = None;
        self.gauge = None;
        self.lab.destroy().await;
    }
}

/// The source address of connection `i`: 127.1.x.y, [`PER_SOURCE`] each.
fn source(i: u64) -> Ipv4Addr {
    let idx = i / PER_SOURCE;
    Ipv4Addr::new(127, 1, (idx / 250) as u8, (idx % 250 + 1) as u8)
}

/// `n` connections to 127.0.0.1:[`PORT`], each closed by the accepting side
/// first (it keeps the TIME_WAIT), from [`CLIENT_THREADS`] threads.
fn connect_many(n: u64) -> std::io::Result<()> {
    let listener = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    listener.set_reuse_address(true)?;
    listener.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, PORT)).into())?;
    listener.listen(4096)?;
    // accept() honours SO_RCVTIMEO: a client thread that failed cannot
    // leave the accepting thread waiting for ever.
    listener.set_read_timeout(Some(Duration::from_secs(5)))?;
    std::thread::scope(|scope| {
        let server = scope.spawn(|| -> std::io::Result<()> {
            for _ in 0..n {
                let (conn, _) = listener.accept()?;
                drop(conn);
            }
            Ok(())
        });
        let clients: Vec<_> = (0..CLIENT_THREADS)
            .map(|t| {
                scope.spawn(move || -> std::io::Result<()> {
                    let mut i = t;
                    while i < n {
                        connect_once(source(i))?;
                        i += CLIENT_THREADS;
                    }
                    Ok(())
                })
            })
            .collect();
        let mut result = Ok(());
        for c in clients {
            let r = c
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("client thread panicked")));
            result = result.and(r);
        }
        let r = server
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("server thread panicked")));
        result.and(r)
    })
}

/// One connection from `src`: connect, wait for the server's FIN, close.
fn connect_once(src: Ipv4Addr) -> std::io::Result<()> {
    let s = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    s.bind(&SocketAddr::from((src, 0)).into())?;
    s.connect(&SocketAddr::from((Ipv4Addr::LOCALHOST, PORT)).into())?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut s = std::net::TcpStream::from(s);
    let mut buf = [0u8; 16];
    while s.read(&mut buf)? > 0 {}
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_change_every_few_hundred_connections_and_stay_in_loopback() {
        assert_eq!(source(0), Ipv4Addr::new(127, 1, 0, 1));
        assert_eq!(source(PER_SOURCE - 1), Ipv4Addr::new(127, 1, 0, 1));
        assert_eq!(source(PER_SOURCE), Ipv4Addr::new(127, 1, 0, 2));
        // 200k connections: 400 addresses, all of them loopback.
        let last = source(200_000 - 1);
        assert_eq!(last, Ipv4Addr::new(127, 1, 1, 150));
        assert!(last.is_loopback());
    }
}
