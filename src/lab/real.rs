//! A lab of real hosts, from a lab file: this machine and/or SSH hosts.
//!
//! Unlike the embedded lab, a real lab is connected once for the whole
//! scenario (one SSH control master per host) and is not made fresh per
//! run: the machines are what they are. So between runs twlab waits for the
//! endpoint's sockets and conntrack entries of the previous run to drain
//! (at most `lab.cooldown`), every change goes through the on-disk
//! [`RestoreFile`] first, and the Docker engine of a host with `docker:
//! true` (the server's, the client's) is reached either through this
//! machine's socket or through the remote socket forwarded over twlab's own
//! SSH connection to that host (strict host keys).

use super::Host;
use super::local::LocalHost;
use super::lock::{
    HostLock, lock_identities, lock_machines, machine_identity, same_machine_clients,
};
use super::ssh::SshHost;
use crate::common::endpoint::{Endpoint, HostRole, Side};
use crate::docker::Engine;
use crate::error::{Error, Result};
use crate::lab::restore::RestoreFile;
use crate::scenario::labfile::{HostSpec, LabSpec};
use crate::shutdown::{Level, Shutdown};
use std::time::{Duration, Instant};

/// One host of a real lab, whatever its backend: everything a backend
/// does differently is a [`Host`] method, so [`RealHost::connect`] is the
/// one place that names the backends.
pub struct RealHost(Box<dyn Host>);

impl RealHost {
    pub fn as_host(&self) -> &dyn Host {
        self.0.as_ref()
    }

    /// The host's Docker engine ([`Host::docker_engine`]): this machine's
    /// socket, or a remote one forwarded into `control_dir`.
    pub async fn docker_engine(&self, control_dir: &std::path::Path) -> Result<Engine> {
        self.0.docker_engine(control_dir).await
    }

    /// Connect to the host a lab file describes: the backend its keys name.
    pub async fn connect(
        spec: &HostSpec,
        role: impl Into<HostRole>,
        control_dir: &std::path::Path,
    ) -> Result<Self> {
        let role = role.into();
        Ok(RealHost(match spec.ssh {
            None => Box::new(LocalHost::new(role, spec.sudo)),
            Some(_) => Box::new(SshHost::connect(spec, role, control_dir).await?),
        }))
    }

    /// Let go of the host ([`Host::close`]: an SSH connection is closed).
    pub async fn close(self) {
        self.0.close().await;
    }
}

/// The connected hosts of a real lab.
pub struct RealLab {
    pub spec: LabSpec,
    /// The lab's id: names its restore journal and owner file.
    pub id: String,
    pub server: RealHost,
    /// The client hosts, in the lab file's order (one for `hosts.client`).
    pub clients: Vec<RealHost>,
    /// The server host's Docker engine, when `docker: true`.
    pub engine: Option<Engine>,
    /// The client host's Docker engine, when `docker: true` (for
    /// `client.via: docker`). Connected on its own also when both hosts
    /// are the same machine.
    pub client_engine: Option<Engine>,
    pub restore: RestoreFile,
    /// SSH control sockets and forwarded sockets live here.
    _control_dir: tempfile::TempDir,
    /// One lock per machine by destination, one per machine by identity,
    /// held while the lab is connected.
    _locks: Vec<HostLock>,
    /// The run's stop requests (Ctrl-C, SIGTERM): the waits between runs
    /// (the drain) end at once on one.
    shutdown: Shutdown,
}

/// How long one count of the drain between runs may take (a `conntrack -L`
/// of a large table over SSH) before the tool counts as hung.
pub const DRAIN_COUNT_TIMEOUT: Duration = Duration::from_secs(30);

/// The identity and description of each connected host, server first.
pub async fn identities(hosts: &[&RealHost]) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for h in hosts {
        let host = h.as_host();
        out.push((machine_identity(host).await?, host.describe()));
    }
    Ok(out)
}

/// A new lab's second lock, once connected: each machine by identity;
/// then a dead run's journal on one of them is refused (it may name the
/// machine another way), and the identities go into the lab's journal.
/// Two client hosts that are one machine (named two ways) are refused:
/// their counts would be one machine's, counted twice.
async fn lock_connected(
    server: &RealHost,
    clients: &[RealHost],
    restore: &RestoreFile,
    lab_id: &str,
) -> Result<Vec<HostLock>> {
    let all: Vec<&RealHost> = std::iter::once(server).chain(clients).collect();
    let hosts = identities(&all).await?;
    if let Some(message) = same_machine_clients(&hosts[1..]) {
        return Err(Error::env(message));
    }
    let locks = lock_identities(&hosts, &[], "twlab")?;
    let machines: Vec<String> = locks.iter().map(|(id, _)| id.clone()).collect();
    crate::lab::restore::refuse_dead_journals_on(&machines, lab_id)?;
    let roles: Vec<(HostRole, String)> = all
        .iter()
        .zip(&hosts)
        .map(|(h, (id, _))| (h.as_host().role(), id.clone()))
        .collect();
    restore.record_machines(&machines, &roles)?;
    Ok(locks.into_iter().map(|(_, l)| l).collect())
}

impl RealLab {
    /// Lock the lab's machines by destination, write the restore journal,
    /// connect to both hosts, lock them again by identity (a machine in
    /// use under another name is refused here), then their Docker engines.
    /// Nothing is changed on the hosts yet.
    pub async fn connect(spec: &LabSpec, id: &str) -> Result<RealLab> {
        let locks = lock_machines(spec)?;
        // Under the locks, so no `clean` is undoing it meanwhile.
        crate::lab::restore::refuse_dead_journals(spec)?;
        let restore = RestoreFile::create(id, spec)?;
        let result = Self::connect_hosts(spec, id, restore.clone(), locks).await;
        if result.is_err() {
            let _ = restore.finish();
        }
        result
    }

    async fn connect_hosts(
        spec: &LabSpec,
        id: &str,
        restore: RestoreFile,
        locks: Vec<HostLock>,
    ) -> Result<RealLab> {
        let control_dir = tempfile::Builder::new()
            .prefix("twlab-ssh-")
            .tempdir()
            .map_err(|e| {
                Error::env(format!(
                    "cannot make a directory for SSH control sockets: {e}"
                ))
            })?;
        restore.record_control_dir(control_dir.path())?;
        let server =
            RealHost::connect(&spec.hosts.server, Side::Server, control_dir.path()).await?;
        let mut clients = Vec::new();
        for (i, c) in spec.hosts.client_hosts().into_iter().enumerate() {
            match RealHost::connect(c, HostRole::client(i), control_dir.path()).await {
                Ok(h) => clients.push(h),
                Err(e) => {
                    close_all(server, clients).await;
                    return Err(e);
                }
            }
        }
        // Which machines these are, now that twlab can ask them: a lab file
        // may name a machine in use by another run under another name.
        // Refused before anything is changed or journaled for them.
        let machine_locks = match lock_connected(&server, &clients, &restore, id).await {
            Ok(l) => l,
            Err(e) => {
                close_all(server, clients).await;
                return Err(e);
            }
        };
        let mut locks = locks;
        locks.extend(machine_locks);
        let engine = if spec.hosts.server.docker {
            Some(server.docker_engine(control_dir.path()).await?)
        } else {
            None
        };
        let client_engine = match clients.first() {
            Some(client) if spec.hosts.client().docker => {
                // Its own forwarded socket: the server's may be forwarded to
                // `control_dir/docker.sock` already.
                let dir = control_dir.path().join("client");
                std::fs::create_dir_all(&dir).map_err(|e| Error::io(dir.display(), e))?;
                Some(client.docker_engine(&dir).await?)
            }
            _ => None,
        };
        Ok(RealLab {
            spec: spec.clone(),
            id: id.to_string(),
            server,
            clients,
            engine,
            client_engine,
            restore,
            _control_dir: control_dir,
            _locks: locks,
            shutdown: Shutdown::never(),
        })
    }

    /// Let the waits between runs end as soon as `shutdown` asks for a
    /// stop (a cooldown may be hours long; Ctrl-C must not wait for it).
    pub fn with_shutdown(mut self, shutdown: Shutdown) -> RealLab {
        self.shutdown = shutdown;
        self
    }

    /// The server, or the first client host.
    pub fn host(&self, side: Side) -> &dyn Host {
        match (side, self.clients.first()) {
            (Side::Client, Some(c)) => c.as_host(),
            _ => self.server.as_host(),
        }
    }

    /// The first `n` client hosts (all of them when fewer).
    pub fn client_hosts(&self, n: usize) -> Vec<&dyn Host> {
        self.clients.iter().take(n).map(RealHost::as_host).collect()
    }

    /// Every host: the server, then the clients.
    fn all_hosts(&self) -> impl Iterator<Item = &RealHost> {
        std::iter::once(&self.server).chain(&self.clients)
    }

    pub fn endpoint(&self, port: u16) -> Endpoint {
        Endpoint::new(self.spec.server_address(), port)
    }

    /// "server local (this machine), client ssh root@h".
    pub fn describe(&self) -> String {
        let clients: Vec<String> = self
            .clients
            .iter()
            .map(|c| c.as_host().describe())
            .collect();
        format!(
            "real hosts: server {}, client{} {}",
            self.server.as_host().describe(),
            if clients.len() > 1 { "s" } else { "" },
            clients.join(", ")
        )
    }

    /// Wait until no socket (but LISTEN) and no conntrack entry of the
    /// endpoint is left on either host, at most `cooldown`. Returns what was
    /// still there when the wait ended (empty when drained). A stop signal
    /// ends the wait with an error: the next run is not started.
    pub async fn drain(&self, endpoint: Endpoint, conntrack: bool) -> Result<Vec<String>> {
        let deadline = Instant::now() + self.spec.cooldown();
        loop {
            let mut left = Vec::new();
            for real in self.all_hosts() {
                let host = real.as_host();
                let side = host.role();
                let sockets = self
                    .bounded(
                        format!("counting the sockets of {endpoint} on the {side} host to see them drain"),
                        host.socket_counts(endpoint),
                    )
                    .await?;
                let n: u64 = sockets
                    .iter()
                    .filter(|(state, _)| state.as_str() != "LISTEN")
                    .map(|(_, n)| n)
                    .sum();
                if n > 0 {
                    left.push(format!("{n} sockets on the {side}"));
                }
                if conntrack {
                    let n: u64 = self
                        .bounded(
                            format!("counting the conntrack entries of {endpoint} on the {side} host to see them drain"),
                            host.conntrack_counts(endpoint),
                        )
                        .await?
                        .values()
                        .sum();
                    if n > 0 {
                        left.push(format!("{n} conntrack entries on the {side}"));
                    }
                }
            }
            if left.is_empty() || Instant::now() >= deadline {
                return Ok(left);
            }
            // Counted once a second; a stop ends the wait at once.
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                () = self.shutdown.reached(Level::Graceful) => {
                    return Err(Error::env(format!(
                        "stopped by a signal while waiting for the endpoint {endpoint} to drain ({} left)",
                        left.join(", ")
                    )));
                }
            }
        }
    }

    /// One count of the drain, bounded: a hung tool (`conntrack -L`, a
    /// command on an SSH host) ends the wait with an error after
    /// [`DRAIN_COUNT_TIMEOUT`], a stop signal at once.
    async fn bounded<T>(
        &self,
        what: String,
        count: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let stopped = self.shutdown.reached(Level::Graceful);
        tokio::select! {
            counted = tokio::time::timeout(DRAIN_COUNT_TIMEOUT, count) => counted.unwrap_or_else(|_| {
                Err(Error::env(format!(
                    "{what} took longer than {}s (a hung tool?); no run is started",
                    DRAIN_COUNT_TIMEOUT.as_secs()
                )))
            }),
            () = stopped => Err(Error::env(format!("stopped by a signal while {what}"))),
        }
    }

    /// Close the SSH connections; the restore journal is removed when
    /// nothing is left to undo. A program on an SSH host is forgotten only
    /// once its pidfile is seen gone there: after a dropped connection it
    /// may still run, and then `twlab clean` must still find it.
    pub async fn close(self) -> Result<()> {
        for host in self.all_hosts() {
            let h = host.as_host();
            let role = h.role();
            let files = self.restore.remote_pidfiles(role);
            if files.is_empty() {
                continue;
            }
            match h.present_pidfiles(&files).await {
                Ok(left) => {
                    let gone: Vec<String> = files
                        .iter()
                        .filter(|f| !left.contains(f))
                        .cloned()
                        .collect();
                    self.restore.forget_remote(role, &gone)?;
                    if !left.is_empty() {
                        errln!(
                            "twlab: {} program(s) still run on {}; `twlab clean` ends them",
                            left.len(),
                            h.describe()
                        );
                    }
                }
                Err(e) => errln!(
                    "twlab: cannot tell whether the programs twlab started on {} have ended ({e}); `twlab clean` ends what is left",
                    h.describe()
                ),
            }
        }
        close_all(self.server, self.clients).await;
        self.restore.finish()
    }
}

/// Close the connections of a server and its clients.
async fn close_all(server: RealHost, clients: Vec<RealHost>) {
    server.close().await;
    for c in clients {
        c.close().await;
    }
}
