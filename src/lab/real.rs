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
use super::ssh::SshHost;
use crate::common::endpoint::{Endpoint, Side};
use crate::docker::Engine;
use crate::error::{Error, Result};
use crate::lab::restore::RestoreFile;
use crate::scenario::labfile::{HostSpec, LabSpec};
use std::time::{Duration, Instant};

/// One host of a real lab.
pub enum RealHost {
    Local(LocalHost),
    Ssh(Box<SshHost>),
}

impl RealHost {
    pub fn as_host(&self) -> &dyn Host {
        match self {
            RealHost::Local(h) => h,
            RealHost::Ssh(h) => h.as_ref(),
        }
    }

    /// The host's Docker engine: this machine's socket, or the remote one
    /// forwarded to `control_dir/docker.sock` over the host's SSH connection.
    pub async fn docker_engine(&self, control_dir: &std::path::Path) -> Result<Engine> {
        match self {
            RealHost::Local(_) => Engine::local().await,
            RealHost::Ssh(h) => {
                let sock = control_dir.join("docker.sock");
                h.forward_docker_socket(&sock).await?;
                Engine::at_socket(&sock, format!("engine of {}", h.describe())).await
            }
        }
    }

    /// Connect to the host a lab file describes.
    pub async fn connect(
        spec: &HostSpec,
        side: Side,
        control_dir: &std::path::Path,
    ) -> Result<Self> {
        Ok(match spec.ssh {
            None => RealHost::Local(LocalHost::new(side, spec.sudo)),
            Some(_) => RealHost::Ssh(Box::new(SshHost::connect(spec, side, control_dir).await?)),
        })
    }
}

/// The connected hosts of a real lab.
pub struct RealLab {
    pub spec: LabSpec,
    /// The lab's id: names its restore journal and owner file.
    pub id: String,
    pub server: RealHost,
    pub client: RealHost,
    /// The server host's Docker engine, when `docker: true`.
    pub engine: Option<Engine>,
    /// The client host's Docker engine, when `docker: true` (for
    /// `client.via: docker`). Connected on its own also when both hosts
    /// are the same machine.
    pub client_engine: Option<Engine>,
    pub restore: RestoreFile,
    /// SSH control sockets and forwarded sockets live here.
    _control_dir: tempfile::TempDir,
    /// One lock per machine, held while the lab is connected.
    _locks: Vec<nix::fcntl::Flock<std::fs::File>>,
    /// Has a stop (Ctrl-C, SIGTERM) been asked for? The waits between runs
    /// (the drain) end early on one. A question rather than the run's
    /// `Shutdown`: the lab sits below the load and run modules.
    stop_requested: StopCheck,
}

/// How long one count of the drain between runs may take (a `conntrack -L`
/// of a large table over SSH) before the tool counts as hung.
pub const DRAIN_COUNT_TIMEOUT: Duration = Duration::from_secs(30);

/// See [`RealLab::with_stop_check`].
pub type StopCheck = std::sync::Arc<dyn Fn() -> bool + Send + Sync>;

/// Take the lock of each machine of the lab: two twlab runs on one host
/// would each restore "their" old sysctl values and leave the second
/// run's changes in place. The kernel drops a lock when its holder dies,
/// even by `kill -9`, so a crash never leaves a host locked.
pub fn lock_machines(spec: &LabSpec) -> Result<Vec<nix::fcntl::Flock<std::fs::File>>> {
    use nix::fcntl::{Flock, FlockArg};
    let dir = std::path::Path::new(super::netns::OWNER_DIR);
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display(), e))?;
    let mut keys: Vec<String> = Side::BOTH
        .iter()
        .map(|s| spec.hosts.get(*s).machine_key())
        .collect();
    keys.dedup();
    let mut locks = Vec::new();
    for key in keys {
        let safe: String = key
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let path = dir.join(format!("host-{safe}.lock"));
        let file = std::fs::File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(path.display(), e))?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => locks.push(lock),
            Err((_, errno)) => {
                return Err(Error::env(format!(
                    "another twlab run is using {key} ({}: {errno}); two runs on one host would undo each other's sysctls: wait for it to end",
                    path.display()
                )));
            }
        }
    }
    Ok(locks)
}

impl RealLab {
    /// Write the restore journal, then connect to both hosts (and their
    /// Docker engines). Nothing is changed on the hosts yet.
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
        locks: Vec<nix::fcntl::Flock<std::fs::File>>,
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
        let client =
            RealHost::connect(&spec.hosts.client, Side::Client, control_dir.path()).await?;
        let engine = if spec.hosts.server.docker {
            Some(server.docker_engine(control_dir.path()).await?)
        } else {
            None
        };
        let client_engine = if spec.hosts.client.docker {
            // Its own forwarded socket: the server's may be forwarded to
            // `control_dir/docker.sock` already.
            let dir = control_dir.path().join("client");
            std::fs::create_dir_all(&dir).map_err(|e| Error::io(dir.display(), e))?;
            Some(client.docker_engine(&dir).await?)
        } else {
            None
        };
        Ok(RealLab {
            spec: spec.clone(),
            id: id.to_string(),
            server,
            client,
            engine,
            client_engine,
            restore,
            _control_dir: control_dir,
            _locks: locks,
            stop_requested: std::sync::Arc::new(|| false),
        })
    }

    /// Let the waits between runs end once `stop` says a stop signal came
    /// (a cooldown may be hours long; Ctrl-C must not wait for it).
    pub fn with_stop_check(mut self, stop: StopCheck) -> RealLab {
        self.stop_requested = stop;
        self
    }

    pub fn host(&self, side: Side) -> &dyn Host {
        match side {
            Side::Server => self.server.as_host(),
            Side::Client => self.client.as_host(),
        }
    }

    pub fn endpoint(&self, port: u16) -> Endpoint {
        Endpoint::new(self.spec.server_address(), port)
    }

    /// "server local (this machine), client ssh root@h".
    pub fn describe(&self) -> String {
        format!(
            "real hosts: server {}, client {}",
            self.server.as_host().describe(),
            self.client.as_host().describe()
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
            for side in Side::BOTH {
                let host = self.host(side);
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
            // Counted once a second, a stop looked for every 100 ms.
            for _ in 0..10 {
                if (self.stop_requested)() {
                    return Err(Error::env(format!(
                        "stopped by a signal while waiting for the endpoint {endpoint} to drain ({} left)",
                        left.join(", ")
                    )));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
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
        let stopped = async {
            while !(self.stop_requested)() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
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
        for (side, host) in [(Side::Server, &self.server), (Side::Client, &self.client)] {
            let RealHost::Ssh(h) = host else {
                continue;
            };
            let files = self.restore.remote_pidfiles(side);
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
                    self.restore.forget_remote(side, &gone)?;
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
        for host in [self.server, self.client] {
            if let RealHost::Ssh(h) = host {
                h.close().await;
            }
        }
        self.restore.finish()
    }
}
