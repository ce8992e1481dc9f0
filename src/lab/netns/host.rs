//! One host of the embedded lab: a named network namespace on this
//! machine, with the ways twlab counts in it kept open (sock_diag, the
//! socket gauge, ctnetlink and its event listener, the kernel's counter
//! files), so a sample enters no namespace and opens nothing.

use super::blocking;
use super::sys;
use crate::common::counts::Counts;
use crate::common::endpoint::{Endpoint, HostRole, Side};
use crate::error::{Error, Result};
use crate::lab::Host;
use crate::measure::ctnetlink::CtNetlink;
use crate::measure::ctnetlink::events::CtEvents;
use crate::measure::sock_gauge::NetnsGauge;
use crate::measure::sockdiag::LazySockDiag;
use crate::scenario::SysctlName;
use async_trait::async_trait;
use std::path::PathBuf;
use tokio::process::Command;

/// A host that is a named network namespace on this machine.
pub struct NetnsHost {
    /// The server, or client host `i` (the sysctl journal keys changes by it).
    role: HostRole,
    name: String,
    diag: LazySockDiag,
    /// The ctnetlink socket inside the namespace, opened at the first count
    /// and reused (no `conntrack` process per sample).
    ct: std::sync::Arc<std::sync::Mutex<Option<CtNetlink>>>,
    /// The conntrack event listener of the run's endpoint, when it could
    /// be started (then counts cost no dump); see [`NetnsHost::watch_conntrack`].
    ct_events: std::sync::Arc<std::sync::Mutex<Option<CtEvents>>>,
    /// The kernel's counter files, opened inside the namespace at the
    /// first read and read again from any thread (no namespace switch per
    /// sample; see [`crate::measure::kernel_counters::CounterFiles`]).
    counters:
        std::sync::Arc<std::sync::Mutex<Option<crate::measure::kernel_counters::CounterFiles>>>,
    /// The socket gauge's view of the namespace, when it watches it (then
    /// a count walks nothing); see [`NetnsHost::watch_sockets`].
    gauge: std::sync::Arc<std::sync::Mutex<Option<NetnsGauge>>>,
}

impl NetnsHost {
    pub(super) fn new(role: HostRole, name: String) -> Self {
        let diag = LazySockDiag::in_own_netns(PathBuf::from("/run/netns").join(&name));
        NetnsHost {
            role,
            name,
            diag,
            ct: Default::default(),
            ct_events: Default::default(),
            counters: Default::default(),
            gauge: Default::default(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from(sys::NETNS_RUN_DIR).join(&self.name)
    }

    /// Keep the endpoint's conntrack entries from the kernel's events, so a
    /// count is a lookup rather than a dump of the table (at the seed's
    /// steady state a dump costs half a second of kernel CPU per side).
    /// Called before the server starts, on an empty table. If the listener
    /// cannot start, or later loses events, counts fall back to dumps and
    /// stderr says why.
    pub async fn watch_conntrack(&self, endpoint: Endpoint) {
        let (path, slot) = (self.path(), self.ct_events.clone());
        let started = tokio::task::spawn_blocking(move || {
            CtEvents::start(&path, endpoint.socket_addr()).map(|ev| {
                if let Ok(mut s) = slot.lock() {
                    *s = Some(ev);
                }
            })
        })
        .await;
        match started {
            Ok(Ok(())) => {}
            Ok(Err(e)) => errln!(
                "twlab: conntrack in {} is counted by dumps (the event listener did not start: {e})",
                self.name
            ),
            Err(e) => errln!("twlab: conntrack event listener task: {e}"),
        }
    }

    /// Count the endpoint's sockets here with the socket gauge from now on
    /// (called before the server starts, on a namespace with no socket of
    /// the endpoint yet). The error says why the gauge cannot; counts then
    /// walk as before.
    pub async fn watch_sockets(&self, endpoint: Endpoint) -> std::result::Result<(), String> {
        let (path, side, slot) = (self.path(), self.role.side, self.gauge.clone());
        tokio::task::spawn_blocking(move || {
            let gauge = NetnsGauge::watch(&path, side, &endpoint)?;
            if let Ok(mut s) = slot.lock() {
                *s = Some(gauge);
            }
            Ok(())
        })
        .await
        .map_err(|e| format!("socket gauge task: {e}"))?
    }

    /// Close every way of counting kept open in the namespace (it is about
    /// to be deleted: nothing of twlab's may hold it).
    pub(super) fn close_counting(&self) {
        self.diag.close();
        self.unwatch_conntrack();
        if let Ok(mut g) = self.gauge.lock() {
            *g = None;
        }
    }

    /// Stop listening to conntrack events (a namespace about to be deleted).
    pub fn unwatch_conntrack(&self) {
        if let Ok(mut s) = self.ct_events.lock() {
            *s = None;
        }
    }

    /// Make the namespace track connections (the `twlab_ct` nf_tables
    /// table; [`sys`] says why this mechanism).
    pub async fn enable_conntrack(&self) -> Result<()> {
        let ns = self.name.clone();
        blocking(move || sys::enable_conntrack(&ns))
            .await
            .map_err(|e| Error::env(format!("cannot make {} track connections: {e}", self.name)))
    }
}

#[async_trait]
impl Host for NetnsHost {
    fn side(&self) -> Side {
        self.role.side
    }

    fn role(&self) -> HostRole {
        self.role
    }

    fn describe(&self) -> String {
        format!("netns {}", self.name)
    }

    /// The program runs in the namespace: the child enters it with
    /// `setns` between fork and exec (what `ip netns exec` does, without
    /// needing `ip`). Messages show it as `ip netns exec NAME …`, the
    /// command a user would type to do the same.
    fn command(&self, argv: &[String]) -> (Command, Vec<String>) {
        let mut shown = vec![
            "ip".to_string(),
            "netns".into(),
            "exec".into(),
            self.name.clone(),
        ];
        shown.extend(argv.iter().cloned());
        let mut cmd = Command::new(argv.first().map_or("", String::as_str));
        cmd.args(argv.iter().skip(1));
        let ns = std::fs::File::open(self.path()).map(std::os::fd::OwnedFd::from);
        let path = self.path();
        // SAFETY: the closure runs between fork and exec and only makes the
        // setns system call (async-signal-safe) on a descriptor it owns, or
        // returns a prepared error: a child that cannot enter the namespace
        // must fail rather than run in this machine's own.
        unsafe {
            cmd.pre_exec(move || match &ns {
                Ok(fd) => nix::sched::setns(fd, nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(std::io::Error::from),
                Err(e) => Err(std::io::Error::new(
                    e.kind(),
                    format!("cannot open namespace {}", path.display()),
                )),
            });
        }
        (cmd, shown)
    }

    async fn read_sysctl(&self, name: &SysctlName) -> Result<String> {
        let (ns, key) = (self.name.clone(), name.to_string());
        blocking(move || sys::sysctl_read(&ns, &key))
            .await
            .map_err(|e| Error::env(format!("sysctl {name} in {}: {e}", self.name)))
    }

    async fn write_sysctl(&self, name: &SysctlName, value: &str) -> Result<()> {
        let (ns, key, v) = (self.name.clone(), name.to_string(), value.to_string());
        blocking(move || sys::sysctl_write(&ns, &key, &v))
            .await
            .map_err(|e| Error::env(format!("sysctl -w {name}={value} in {}: {e}", self.name)))
    }

    async fn socket_counts(&self, endpoint: Endpoint) -> Result<Counts> {
        if self.gauge.lock().is_ok_and(|g| g.is_some()) {
            let (slot, name) = (self.gauge.clone(), self.name.clone());
            return blocking(move || {
                let mut guard = slot
                    .lock()
                    .map_err(|_| std::io::Error::other("socket gauge lock poisoned"))?;
                match guard.as_mut() {
                    Some(g) => g.count(),
                    None => Err(std::io::Error::other("the socket gauge was closed")),
                }
            })
            .await
            .map_err(|e| Error::env(format!("socket gauge in {name}: {e}")));
        }
        self.diag.count(endpoint, self.role.side).await
    }

    async fn peer_addresses(&self, _endpoint: Endpoint) -> Result<Option<u64>> {
        if let Ok(g) = self.gauge.lock()
            && let Some(g) = g.as_ref()
        {
            return Ok(Some(g.peers_seen()));
        }
        Ok(Some(self.diag.peers_seen()))
    }

    fn reset_peers(&self) {
        if let Ok(g) = self.gauge.lock()
            && let Some(g) = g.as_ref()
        {
            g.reset_peers();
        }
        self.diag.reset_peers();
    }

    /// From the namespace's counter files, opened once from a thread
    /// inside it (`/proc/thread-self/net`).
    async fn kernel_counters(&self) -> Result<crate::measure::kernel_counters::KernelCounters> {
        use crate::measure::kernel_counters::CounterFiles;
        let path = self.path();
        let files = self.counters.clone();
        blocking(move || {
            let mut slot = files
                .lock()
                .map_err(|_| std::io::Error::other("the counter files' lock is poisoned"))?;
            if slot.is_none() {
                let opened = sys::in_netns(&path, || {
                    CounterFiles::open_here().map_err(std::io::Error::other)
                })?;
                *slot = Some(opened);
            }
            match slot.as_mut() {
                Some(f) => f.read().map_err(std::io::Error::other),
                None => Err(std::io::Error::other("the counter files are not open")),
            }
        })
        .await
        .map_err(|e| Error::env(format!("kernel counters in {}: {e}", self.name)))
    }

    /// From the event listener when it runs; else in-process over
    /// ctnetlink dumps, filtered by the kernel where it can.
    async fn conntrack_counts(&self, endpoint: Endpoint) -> Result<Counts> {
        if let Some(counts) = self.counts_from_events() {
            return Ok(counts);
        }
        let (ct, path) = (self.ct.clone(), self.path());
        blocking(move || {
            let mut guard = ct
                .lock()
                .map_err(|_| std::io::Error::other("the ctnetlink socket's lock is poisoned"))?;
            if guard.is_none() {
                *guard = Some(CtNetlink::open_in_netns(&path)?);
            }
            match guard.as_mut() {
                Some(socket) => socket.count(endpoint.socket_addr()),
                None => Err(std::io::Error::other("no ctnetlink socket")),
            }
        })
        .await
        .map_err(|e| Error::env(format!("counting conntrack entries in {}: {e}", self.name)))
    }
}

impl NetnsHost {
    /// The event listener's counts, or `None` (no listener, or it lost
    /// events: then it is dropped, stderr says so, and dumps take over).
    fn counts_from_events(&self) -> Option<Counts> {
        let mut slot = self.ct_events.lock().ok()?;
        let result = slot.as_ref()?.counts();
        match result {
            Ok(c) => Some(c),
            Err(e) => {
                errln!(
                    "twlab: conntrack in {} is counted by dumps from now on: {e}",
                    self.name
                );
                *slot = None;
                None
            }
        }
    }
}
