//! The embedded lab: two network namespaces joined by a veth pair.
//!
//! Each run gets a fresh pair, `twlab-<runid>-server` and
//! `twlab-<runid>-client`, so no TIME_WAIT socket or conntrack entry carries
//! over from the previous variant and no cooldown is needed.
//!
//! With `client.hosts: N` above 1 there are N client namespaces,
//! `twlab-<runid>-client1` … `clientN` at 198.18.0.2 … 198.18.0.(N+1), each
//! joined to the server namespace by a veth pair of its own, addressed
//! point to point (the server's end of every pair holds 198.18.0.1 with
//! that client as its peer: a /32 route each, no subnet). One veth per
//! client rather than a bridge: a packet takes the same path as with one
//! client (no bridge hop to change what is measured), and no bridge means
//! no `br_netfilter` — loaded on every Docker host — sending the lab's
//! frames through netfilter a second time and doubling what conntrack sees. The veth ends
//! are created directly inside the namespaces (no interface ever appears in
//! the machine's own namespace) and addresses come from 198.18.0.0/15, the
//! range reserved for benchmarking. Deleting a namespace removes its veth
//! end, so teardown is: stop what runs inside, delete both namespaces.
//! Sysctls written here are per namespace and vanish with it; the machine's
//! own settings are never touched.
//!
//! Everything is done in-process ([`sys`]: system calls, rtnetlink and one
//! nf_tables transaction), so the embedded lab needs no `ip`, `sysctl`,
//! `nft` or `conntrack` binary; the namespaces are still made where
//! iproute2 makes them (`/run/netns`), so `ip netns exec NAME …` works for a
//! user who looks around during a run.

mod host;
pub mod sys;

pub use host::NetnsHost;

use super::run_id::{owner_file, write_owner_file};

use super::LABEL_PREFIX;
use crate::common::endpoint::{Endpoint, HostRole, Side};
use crate::error::{Error, Result};
use std::net::{IpAddr, Ipv4Addr};

/// The server's lab address.
pub const SERVER_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// The client's lab address (of the first client, when there are several).
pub const CLIENT_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
/// The most client namespaces one embedded lab holds (`client.hosts`):
/// addresses 198.18.0.2 to .65.
pub use crate::scenario::MAX_CLIENT_HOSTS;

/// The lab address of client `i` (1-based) of a lab with several clients.
pub fn client_addr(i: u32) -> Ipv4Addr {
    let [a, b, c, d] = CLIENT_ADDR.octets();
    Ipv4Addr::new(
        a,
        b,
        c,
        d.saturating_add((i.saturating_sub(1)).min(250) as u8),
    )
}
const PREFIX_LEN: u8 = 24;
/// The veth end's name inside each namespace.
pub const IFACE: &str = "twlab0";

/// The namespace name of a run's host.
pub fn netns_name(run_id: &str, side: Side) -> String {
    format!("{LABEL_PREFIX}{run_id}-{side}")
}

/// The namespace name of client `i` (1-based) of a lab with several.
pub fn client_netns_name(run_id: &str, i: u32) -> String {
    format!("{LABEL_PREFIX}{run_id}-client{i}")
}

/// Run a blocking namespace operation off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(format!("namespace task failed: {e}"))))
}

/// The namespaces of one run: the server's and one per client.
pub struct NetnsLab {
    pub run_id: String,
    pub server: NetnsHost,
    /// The (first) client.
    pub client: NetnsHost,
    /// Clients 2 … N, with `client.hosts` above 1.
    pub other_clients: Vec<NetnsHost>,
    /// Set once the lab is destroyed or deliberately kept; until then,
    /// dropping the lab (a panic, an early return) removes it.
    settled: std::sync::atomic::AtomicBool,
}

/// The run id inside a lab namespace name (`twlab-<runid>-server`).
pub fn run_id_of(netns: &str) -> Option<&str> {
    let rest = netns.strip_prefix(LABEL_PREFIX)?;
    rest.strip_suffix("-server")
        .or_else(|| rest.strip_suffix("-client"))
        .or_else(|| {
            let numbered = rest.trim_end_matches(|c: char| c.is_ascii_digit());
            (numbered.len() < rest.len())
                .then(|| numbered.strip_suffix("-client"))
                .flatten()
        })
}

impl NetnsLab {
    /// Create both namespaces, the veth pair, addresses and loopback. On
    /// failure whatever this call made is removed again before the error
    /// returns — and only that: a namespace of the same name that existed
    /// already (another run's, should two ids ever meet) is never touched.
    pub async fn create(run_id: &str) -> Result<NetnsLab> {
        Self::create_with_clients(run_id, 1).await
    }

    /// Create the server's namespace and `clients` client namespaces (1 to
    /// [`MAX_CLIENT_HOSTS`]), each joined to the server's by its own veth
    /// pair (the module doc says why). On failure whatever was made is
    /// removed again before the error returns.
    pub async fn create_with_clients(run_id: &str, clients: u32) -> Result<NetnsLab> {
        if !(1..=MAX_CLIENT_HOSTS).contains(&clients) {
            return Err(Error::invalid(format!(
                "an embedded lab holds 1 to {MAX_CLIENT_HOSTS} client hosts, not {clients}"
            )));
        }
        let (client, other_clients) = if clients == 1 {
            (
                NetnsHost::new(HostRole::client(0), netns_name(run_id, Side::Client)),
                Vec::new(),
            )
        } else {
            let client = |i: u32| HostRole::client(i as usize - 1);
            let mut all: Vec<NetnsHost> = (1..=clients)
                .map(|i| NetnsHost::new(client(i), client_netns_name(run_id, i)))
                .collect();
            let first = all.remove(0);
            (first, all)
        };
        let lab = NetnsLab {
            run_id: run_id.to_string(),
            server: NetnsHost::new(HostRole::SERVER, netns_name(run_id, Side::Server)),
            client,
            other_clients,
            settled: std::sync::atomic::AtomicBool::new(false),
        };
        for host in lab.hosts() {
            if host.path().exists() {
                lab.settled.store(true, std::sync::atomic::Ordering::SeqCst);
                return Err(Error::env(format!(
                    "cannot build the lab of run {run_id}: the namespace {} exists already (another run's); nothing was changed",
                    host.name()
                )));
            }
        }
        write_owner_file(run_id)?;
        if let Err(e) = lab.build().await {
            // What `build` made it removed itself; no process runs inside yet.
            lab.settle();
            return Err(e);
        }
        Ok(lab)
    }

    async fn build(&self) -> Result<()> {
        let s = self.server.name().to_string();
        let clients: Vec<String> = self.clients().map(|c| c.name().to_string()).collect();
        let what = format!("cannot build the lab {s} / {}", clients.join(", "));
        blocking(move || {
            // add_netns refuses a name that exists (O_EXCL): a name taken
            // between the check above and here is not ours to delete.
            sys::add_netns(&s)?;
            let mut made = vec![s.clone()];
            let built = (|| {
                if let [c] = clients.as_slice() {
                    sys::add_netns(c)?;
                    made.push(c.clone());
                    return sys::veth_pair(
                        &s,
                        IFACE,
                        SERVER_ADDR,
                        c,
                        IFACE,
                        CLIENT_ADDR,
                        PREFIX_LEN,
                    );
                }
                for (i, c) in (1u32..).zip(&clients) {
                    sys::add_netns(c)?;
                    made.push(c.clone());
                    sys::veth_pair_with(
                        (&s, &format!("twlab{i}"), SERVER_ADDR),
                        (c, IFACE, client_addr(i)),
                        sys::Addressing::PointToPoint,
                    )?;
                }
                Ok(())
            })();
            if built.is_err() {
                // Only what this call made: a name it could not add is
                // another run's.
                for ns in &made {
                    let _ = sys::del_netns(ns);
                }
            }
            built
        })
        .await
        .map_err(|e| Error::env(format!("{what}: {e}")))
    }

    /// Every client host, the first one first.
    pub fn clients(&self) -> impl Iterator<Item = &NetnsHost> {
        std::iter::once(&self.client).chain(&self.other_clients)
    }

    /// Every namespace of the lab: the server's, then the clients'.
    pub fn hosts(&self) -> impl Iterator<Item = &NetnsHost> {
        std::iter::once(&self.server).chain(self.clients())
    }

    /// The lab address of each client, in order.
    pub fn client_addresses(&self) -> Vec<Ipv4Addr> {
        if self.other_clients.is_empty() {
            vec![CLIENT_ADDR]
        } else {
            (1..=1 + self.other_clients.len() as u32)
                .map(client_addr)
                .collect()
        }
    }

    pub fn host(&self, side: Side) -> &NetnsHost {
        match side {
            Side::Server => &self.server,
            Side::Client => &self.client,
        }
    }

    /// The endpoint the client targets.
    pub fn endpoint(&self, port: u16) -> Endpoint {
        Endpoint::new(IpAddr::V4(SERVER_ADDR), port)
    }

    /// Stop every process left in the namespaces and delete them. Never
    /// fails: what cannot be removed is reported on stderr for `twlab clean`.
    pub async fn destroy(&self) {
        let hosts: Vec<&NetnsHost> = self.clients().chain([&self.server]).collect();
        for host in hosts {
            host.close_counting();
            remove_netns(host.name()).await;
        }
        self.settle();
    }

    /// Leave the lab up for inspection; `twlab clean` removes it later. The
    /// owner file stays: once this twlab has ended it names a dead owner,
    /// which is what lets a plain `twlab clean` prove the lab is twlab's.
    pub fn keep(&self) {
        self.settled
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    fn settle(&self) {
        self.settled
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = std::fs::remove_file(owner_file(&self.run_id));
    }
}

impl Drop for NetnsLab {
    /// The safety net behind `destroy`: a lab dropped without being
    /// destroyed or kept (a panic unwinding, an early return) is removed
    /// here, synchronously, with the same SIGKILL-then-delete as `clean`.
    fn drop(&mut self) {
        if self.settled.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        for host in self.hosts() {
            for pid in sys::netns_pids(host.name()).unwrap_or_default() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            let _ = sys::del_netns(host.name());
        }
        let _ = std::fs::remove_file(owner_file(&self.run_id));
    }
}

/// Names of the namespaces on this machine that carry twlab's label.
pub async fn labelled_netns() -> Result<Vec<String>> {
    let names = blocking(sys::list_netns)
        .await
        .map_err(|e| Error::env(format!("cannot list {}: {e}", sys::NETNS_RUN_DIR)))?;
    Ok(names
        .into_iter()
        .filter(|n| n.starts_with(LABEL_PREFIX))
        .collect())
}

/// Stop the processes inside a twlab namespace (SIGTERM, grace, SIGKILL) and
/// delete it. Every process in a twlab namespace was started by twlab.
pub async fn remove_netns(name: &str) {
    if !std::path::Path::new(sys::NETNS_RUN_DIR).join(name).exists() {
        return;
    }
    for sig in [
        nix::sys::signal::Signal::SIGTERM,
        nix::sys::signal::Signal::SIGKILL,
    ] {
        let pids = netns_pids(name).await;
        if pids.is_empty() {
            break;
        }
        for pid in &pids {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(*pid), sig);
        }
        for _ in 0..30 {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            if netns_pids(name).await.is_empty() {
                break;
            }
        }
    }
    let owned = name.to_string();
    if let Err(e) = blocking(move || sys::del_netns(&owned)).await {
        errln!("twlab: could not delete namespace {name} (run `twlab clean`): {e}");
    }
}

async fn netns_pids(name: &str) -> Vec<i32> {
    let owned = name.to_string();
    blocking(move || sys::netns_pids(&owned))
        .await
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_come_back_out_of_namespace_names() {
        assert_eq!(
            run_id_of(&netns_name("ab12cd34", Side::Server)),
            Some("ab12cd34")
        );
        assert_eq!(
            run_id_of(&netns_name("ab12cd34", Side::Client)),
            Some("ab12cd34")
        );
        assert_eq!(
            run_id_of(&client_netns_name("ab12cd34", 12)),
            Some("ab12cd34")
        );
        assert_eq!(run_id_of("twlab-ab12cd34-clientx"), None);
        assert_eq!(run_id_of("twlab-doctor-77"), None);
        assert_eq!(run_id_of("other-ab12-server"), None);
    }

    #[test]
    fn clients_are_numbered_from_the_first_lab_address_after_the_server() {
        assert_eq!(client_addr(1), CLIENT_ADDR);
        assert_eq!(client_addr(4), Ipv4Addr::new(198, 18, 0, 5));
        assert_eq!(client_addr(MAX_CLIENT_HOSTS), Ipv4Addr::new(198, 18, 0, 65));
    }
}
