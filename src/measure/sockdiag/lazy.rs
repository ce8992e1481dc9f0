//! A host's sock_diag socket, opened on first use and kept for every
//! sample, used off the async runtime's threads; in an embedded lab's
//! namespace with its sockstat file beside it.

use super::{SockDiag, open_sockstat_in_netns};
use crate::common::counts::Counts;
use crate::common::endpoint::{Endpoint, Side};
use std::collections::HashSet;
use std::fs::File;
use std::net::IpAddr;

/// The socket and, in a namespace of the run's own, its sockstat file.
type Opened = (SockDiag, Option<File>);

/// A host's sock_diag socket: opened on first use (in a named namespace, or
/// in twlab's own), kept for every later sample, used off the async
/// runtime's threads. Cheap to clone; clones share the socket.
#[derive(Clone, Default)]
pub struct LazySockDiag {
    /// `/run/netns/NAME`, or `None` for the namespace twlab runs in.
    netns: Option<std::path::PathBuf>,
    /// The namespace holds nothing but the endpoint's connections (an
    /// embedded lab's): count with [`SockDiag::count_in_own_namespace`].
    own_namespace: bool,
    cell: std::sync::Arc<std::sync::Mutex<Option<Opened>>>,
    /// The client addresses that server-side counts have seen so far.
    peers: std::sync::Arc<std::sync::Mutex<HashSet<IpAddr>>>,
}

impl LazySockDiag {
    /// For the namespace twlab runs in (a `local` host).
    pub fn here() -> Self {
        Self::default()
    }

    /// For the named namespace at `path`.
    pub fn in_netns(path: std::path::PathBuf) -> Self {
        LazySockDiag {
            netns: Some(path),
            ..Self::default()
        }
    }

    /// For a namespace made for the run, whose every TCP socket is one of
    /// the endpoint's (an embedded lab host): TIME_WAIT is read from the
    /// namespace's sockstat instead of one message per socket.
    pub fn in_own_netns(path: std::path::PathBuf) -> Self {
        LazySockDiag {
            netns: Some(path),
            own_namespace: true,
            ..Self::default()
        }
    }

    /// Count the endpoint's sockets by state as seen from `side`. On the
    /// server side the remote addresses of the sockets the dump reported
    /// are noted too ([`LazySockDiag::peers_seen`]).
    pub async fn count(&self, endpoint: Endpoint, side: Side) -> crate::error::Result<Counts> {
        let peers = self.peers.clone();
        self.with(move |sd, sockstat| match (side, sockstat) {
            (Side::Server, sockstat) => {
                // Gathered apart and merged after the dump, so the set's
                // lock is never held while the kernel answers.
                let mut seen = HashSet::new();
                let counts = sd.count_noting_peers(&endpoint, sockstat, &mut seen)?;
                if let Ok(mut all) = peers.lock() {
                    all.extend(seen);
                }
                Ok(counts)
            }
            (Side::Client, Some(file)) => sd.count_in_own_namespace(&endpoint, side, file),
            (Side::Client, None) => sd.count(&endpoint, side),
        })
        .await
    }

    /// Forget the client addresses seen so far (a new run on a host that
    /// stays connected, as a real lab's do).
    pub fn reset_peers(&self) {
        if let Ok(mut p) = self.peers.lock() {
            p.clear();
        }
    }

    /// How many distinct client addresses the server-side counts so far
    /// have seen: of the sockets each dump reported (in an embedded lab's
    /// namespace every state but TIME_WAIT, which comes from sockstat).
    pub fn peers_seen(&self) -> u64 {
        self.peers.lock().map_or(0, |p| p.len() as u64)
    }

    /// Run `f` on the socket (opened first if need be) off the async threads.
    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut SockDiag, Option<&mut File>) -> std::io::Result<T> + Send + 'static,
    ) -> crate::error::Result<T> {
        use crate::error::Error;
        let this = self.clone();
        let place = match &self.netns {
            Some(p) => format!(" in {}", p.display()),
            None => String::new(),
        };
        tokio::task::spawn_blocking(move || {
            let mut guard = this
                .cell
                .lock()
                .map_err(|_| Error::env("sock_diag socket lock poisoned"))?;
            if guard.is_none() {
                let opened = match &this.netns {
                    Some(path) => SockDiag::open_in_netns(path),
                    None => SockDiag::open(),
                };
                let sd = opened.map_err(|e| Error::env(format!("sock_diag socket{place}: {e}")))?;
                let sockstat = match (&this.netns, this.own_namespace) {
                    (Some(path), true) => Some(
                        open_sockstat_in_netns(path)
                            .map_err(|e| Error::env(format!("/proc/net/sockstat{place}: {e}")))?,
                    ),
                    _ => None,
                };
                *guard = Some((sd, sockstat));
            }
            let (sd, sockstat) = guard
                .as_mut()
                .ok_or_else(|| Error::env("sock_diag socket missing"))?;
            f(sd, sockstat.as_mut()).map_err(|e| Error::env(format!("sock_diag dump{place}: {e}")))
        })
        .await
        .map_err(|e| Error::env(format!("sock_diag task: {e}")))?
    }

    /// Close the socket (a namespace about to be deleted must not be held).
    pub fn close(&self) {
        if let Ok(mut guard) = self.cell.lock() {
            *guard = None;
        }
    }
}
