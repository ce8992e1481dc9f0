//! A real lab host reached over SSH.
//!
//! **One control master per host.** twlab runs many short commands on a
//! host during a run (a socket count and a conntrack listing every sample,
//! sysctl reads and writes around each variant). A fresh SSH connection for
//! each would cost a TCP handshake, a key exchange and an authentication —
//! tens to hundreds of milliseconds, more than a sample interval allows, and
//! its own traffic on the machine being measured. So [`SshHost::connect`]
//! opens one multiplexed connection (the [`openssh`] crate's process mux: a
//! backgrounded `ssh -M` with a control socket in the run's control
//! directory) and every command afterwards is an `ssh -S <socket>` client
//! that only opens a channel on it. The master exits with [`SshHost::close`]
//! or when the host is dropped, and on its own after a long idle time, so a
//! killed twlab does not leave it behind for ever. (sshd's `MaxSessions`,
//! 10 by default, bounds how many commands run at once on one connection;
//! twlab needs a few.)
//!
//! **Host keys are checked strictly.** BatchMode is on (no password or
//! passphrase prompt can hang a run) and `StrictHostKeyChecking=yes`: an
//! unknown or changed host key is refused, never added to known_hosts. A
//! lab host is a machine twlab changes sysctls on, possibly as root; trusting
//! whatever answers at the address would hand those rights to anyone who can
//! intercept it. The user's ssh config and agent apply as with `ssh`; the lab
//! file can name a port, an identity, a known_hosts file and a config file.
//!
//! **Quoting.** SSH carries a command as one string that the remote login
//! shell interprets. Commands are built from argument vectors here as
//! everywhere in twlab: every argument is shell-quoted on its own, so an
//! argument with spaces, quotes or `$(...)` reaches the program verbatim and
//! is never executed. With `sudo: true` the line starts with `sudo -n --`
//! (`-n`: fail instead of asking for a password).
//!
//! **Remote PIDs.** Without a terminal (`ssh -T`), signalling the local `ssh`
//! process does not reach the remote program: the channel closes, and the
//! program keeps running — holding the port, the sockets twlab counts, the
//! load it generates. So a long-running program is started through a small
//! wrapper that writes its PID to a pidfile before `exec`ing it (in
//! `/run/twlab/pids` when it runs as root, a `0700` directory only root can
//! write, since root later signals the PID the file holds; else in a `0700`
//! directory of the user in `/tmp`),
//! and the [`Supervised`] child gets a [`Signaller`] that runs
//! `kill -s SIG <pid>` on the host over the same master (through sudo when
//! configured). The wrapper removes the pidfile when the program ends, so a
//! late SIGKILL finds nothing to kill. [`SshHost::pidfiles`] lists the files
//! of every program started, for a cleanup after a crash.
//!
//! **The binary copy.** The builtin server and load client are twlab itself
//! (`twlab serve`, `twlab load`). Unless the lab file names a twlab on the
//! host, this twlab is copied there once, as
//! `/tmp/twlab-<version>-<content hash>`: a copy of the same content that is
//! already there (and belongs to the SSH user) is reused, so repeated runs
//! copy nothing. The copy goes through the session (`cat` into a temporary
//! file, `chmod`, then an atomic `mv`), so a half-written binary never
//! carries the final name.

mod install;
mod remote;
pub use remote::*;

use super::Host;
use crate::common::counts::Counts;
use crate::common::endpoint::{Endpoint, HostRole, Side};
use crate::error::{CommandError, Error, Result};
use crate::measure::sockets_text;
use crate::process::{Signaller, Supervised};
use crate::scenario::labfile::HostSpec;
use async_trait::async_trait;
use nix::sys::signal::Signal;
use openssh::{ControlPersist, ForwardType, KnownHosts, Session, SessionBuilder, Socket};
use std::borrow::Cow;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::process::Command;

/// How long connecting (TCP, key exchange, authentication) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Keepalives on the master connection, so a host that vanished is noticed.
const SERVER_ALIVE_INTERVAL: Duration = Duration::from_secs(15);
/// The master exits after this long without any command or program on it
/// (a run keeps it busy; a killed twlab must not leave it for ever).
const IDLE_PERSIST_SECS: usize = 900;
/// Where remote pidfiles of programs run as root live; they are named
/// `twlab-<16 hex>.pid`. Other users' go to [`pidfile_dir`].
pub const PIDFILE_DIR: &str = "/run/twlab/pids";
/// How long [`SshHost::close`] lets signals still being delivered finish.
const PENDING_SIGNALS_WAIT: Duration = Duration::from_secs(5);
/// The remote Docker engine's socket.
pub const DOCKER_SOCKET: &str = "/var/run/docker.sock";

const TOOL_SS: u8 = 0;
const TOOL_NETSTAT: u8 = 1;
const TOOL_NONE: u8 = 2;

/// A host reached over one multiplexed SSH connection.
pub struct SshHost {
    role: HostRole,
    destination: String,
    /// [`HostSpec::describe`]: the destination with its port, if any.
    described: String,
    sudo: bool,
    /// The lab file's `known_hosts` file, if it names one.
    known_hosts: Option<PathBuf>,
    /// `None` once closed.
    session: Option<Session>,
    /// The master's control socket (what every command goes through).
    ctl: PathBuf,
    /// The lab file's `twlab:` path on the host.
    twlab: Option<String>,
    /// The twlab binary on the host, once known.
    exe: tokio::sync::OnceCell<PathBuf>,
    /// TOOL_SS, TOOL_NETSTAT or TOOL_NONE.
    tool: AtomicU8,
    /// Pidfiles of the programs started with [`Host::spawn`], in order.
    pidfiles: Mutex<Vec<String>>,
    /// Their directory ([`pidfile_dir`] of the user programs run as there),
    /// found by the probe.
    pidfile_dir: std::sync::OnceLock<String>,
    /// Threads waiting for `kill` commands still under way.
    pending: Arc<Mutex<Vec<std::thread::JoinHandle<()>>>>,
    /// Unix socket forwards (local, remote), cancelled on close.
    forwards: Mutex<Vec<(PathBuf, PathBuf)>>,
}

impl SshHost {
    /// Connect (BatchMode, strict host key check) with a control socket in
    /// `control_dir`, then look at the host: which socket tool it has, and
    /// that `sudo -n` works when the lab file asks for sudo.
    pub async fn connect(
        spec: &HostSpec,
        role: impl Into<HostRole>,
        control_dir: &Path,
    ) -> Result<SshHost> {
        let role = role.into();
        let side = role.side;
        let destination =
            spec.ssh.as_ref().map(|d| d.0.clone()).ok_or_else(|| {
                Error::env(format!("hosts.{side} is not an SSH host (no `ssh:`)"))
            })?;
        let at = |msg: String| Error::env(format!("ssh {destination} ({role}): {msg}"));
        for (key, path) in [
            ("identity", &spec.identity),
            ("known_hosts", &spec.known_hosts),
            ("ssh_config", &spec.ssh_config),
        ] {
            if let Some(p) = path
                && !p.is_file()
            {
                return Err(at(format!(
                    "its {key} file {} is not a readable file",
                    p.display()
                )));
            }
        }
        // ssh refuses control socket paths longer than a unix socket address
        // holds; openssh adds `/.ssh-connectionXXXXXX/master` and ssh a
        // random suffix while binding.
        let ctl_len =
            control_dir.as_os_str().len() + "/.ssh-connectionXXXXXX/master.XXXXXXXXXXXXXXXX".len();
        if ctl_len > 104 {
            return Err(at(format!(
                "the control directory {} is too long a path for a unix socket; use a shorter one",
                control_dir.display()
            )));
        }

        let mut builder = SessionBuilder::default();
        builder
            .known_hosts_check(KnownHosts::Strict)
            .connect_timeout(CONNECT_TIMEOUT)
            .server_alive_interval(SERVER_ALIVE_INTERVAL)
            .control_directory(control_dir);
        if let Some(idle) = std::num::NonZeroUsize::new(IDLE_PERSIST_SECS) {
            builder.control_persist(ControlPersist::IdleFor(idle));
        }
        if let Some(port) = spec.port {
            builder.port(port.0);
        }
        if let Some(identity) = &spec.identity {
            builder.keyfile(identity);
        }
        if let Some(known_hosts) = &spec.known_hosts {
            builder.user_known_hosts_file(known_hosts);
        }
        if let Some(config) = &spec.ssh_config {
            builder.config_file(config);
        }
        let session = builder
            .connect(&destination)
            .await
            .map_err(|e| at(connect_error_text(&e, side)))?;
        let ctl = session.control_socket().to_path_buf();
        let host = SshHost {
            role,
            destination,
            described: spec.describe(),
            sudo: spec.sudo,
            known_hosts: spec.known_hosts.clone(),
            session: Some(session),
            ctl,
            twlab: spec.twlab.clone(),
            exe: tokio::sync::OnceCell::new(),
            tool: AtomicU8::new(TOOL_NONE),
            pidfiles: Mutex::new(Vec::new()),
            pidfile_dir: std::sync::OnceLock::new(),
            pending: Arc::new(Mutex::new(Vec::new())),
            forwards: Mutex::new(Vec::new()),
        };
        host.probe().await?;
        Ok(host)
    }

    /// What the host has and allows, checked once at connect time.
    async fn probe(&self) -> Result<()> {
        let tool = self.run_as_user(&script(PROBE, "twlab-probe", &[])).await?;
        let tool = match tool.trim() {
            "ss" => TOOL_SS,
            "netstat" => TOOL_NETSTAT,
            _ => TOOL_NONE,
        };
        self.tool.store(tool, Ordering::Relaxed);
        // Programs run as this user (root with sudo): their pidfiles go
        // where only that user can write.
        let uid = self
            .run(&["id".to_string(), "-u".to_string()])
            .await
            .ok()
            .and_then(|out| out.trim().parse::<u32>().ok());
        if let Some(uid) = uid {
            let _ = self.pidfile_dir.set(pidfile_dir(uid));
        }
        if self.sudo
            && let Err(e) = self.run(&["true".to_string()]).await
        {
            return Err(Error::env(format!(
                "ssh {} ({}): the lab file sets sudo: true, but `sudo -n true` fails there; let this user run commands with sudo without a password (NOPASSWD) or connect as root\n  {e}",
                self.destination, self.role
            )));
        }
        Ok(())
    }

    /// `[user@]host` as the lab file gives it.
    pub fn destination(&self) -> &str {
        &self.destination
    }

    /// The control socket of the master connection.
    pub fn control_socket(&self) -> &Path {
        &self.ctl
    }

    /// The tool this host's sockets are counted with, for env.json: `ss`,
    /// `netstat`, or `none` (neither is installed).
    pub fn socket_tool(&self) -> &'static str {
        match self.tool.load(Ordering::Relaxed) {
            TOOL_SS => "ss",
            TOOL_NETSTAT => "netstat",
            _ => "none",
        }
    }

    /// The remote pidfiles of every program [`Host::spawn`] started on this
    /// host, oldest first. Each holds the program's PID while it runs and is
    /// removed when it ends; a cleanup after a crash signals what is left
    /// with [`SshHost::signal_pidfile`] (all of them match
    /// `DIR/twlab-*.pid` on the host, DIR from [`pidfile_dir`]).
    pub fn pidfiles(&self) -> Vec<String> {
        self.pidfiles.lock().map(|p| p.clone()).unwrap_or_default()
    }

    /// The pidfile of the program started last, if any.
    pub fn last_pidfile(&self) -> Option<String> {
        self.pidfiles.lock().ok().and_then(|p| p.last().cloned())
    }

    /// Which of `pidfiles` still exist on the host (their programs run).
    pub async fn present_pidfiles(&self, pidfiles: &[String]) -> Result<Vec<String>> {
        let files: Vec<&str> = pidfiles.iter().map(String::as_str).collect();
        let out = self
            .run_maybe_sudo(&script(PRESENT, "twlab-present", &files), self.sudo)
            .await?;
        Ok(out
            .lines()
            .filter(|l| pidfiles.iter().any(|f| f == l))
            .map(String::from)
            .collect())
    }

    /// Send `sig` to the program of a remote pidfile, and wait for the
    /// `kill` to be done. Nothing happens when the program has ended.
    pub async fn signal_pidfile(&self, pidfile: &str, sig: Signal) -> Result<()> {
        self.run_maybe_sudo(&kill_argv(pidfile, sig), self.sudo)
            .await
            .map(|_| ())
    }

    /// Forward the host's Docker socket to the local unix socket `local`,
    /// so the remote engine answers there (the SSH user needs access to
    /// /var/run/docker.sock on the host: root, or the `docker` group).
    pub async fn forward_docker_socket(&self, local: &Path) -> Result<()> {
        self.forward_unix_socket(local, Path::new(DOCKER_SOCKET))
            .await
    }

    /// Forward the local unix socket `local` (created by ssh; it must not
    /// exist yet) to the unix socket `remote` on the host. Cancelled on
    /// [`SshHost::close`].
    pub async fn forward_unix_socket(&self, local: &Path, remote: &Path) -> Result<()> {
        let what = format!(
            "forwarding the local socket {} to {} on the host",
            local.display(),
            remote.display()
        );
        for p in [local, remote] {
            // ssh splits a forward spec at ':'.
            if p.as_os_str().to_string_lossy().contains(':') {
                return Err(self.err(format!(
                    "{what}: a socket path with ':' cannot be forwarded"
                )));
            }
        }
        if local.exists() {
            return Err(self.err(format!(
                "{what}: {} exists already; ssh creates the socket itself",
                local.display()
            )));
        }
        self.session()?
            .request_port_forward(
                ForwardType::Local,
                Socket::UnixSocket {
                    path: Cow::Borrowed(local),
                },
                Socket::UnixSocket {
                    path: Cow::Borrowed(remote),
                },
            )
            .await
            .map_err(|e| self.err(format!("{what}: {}", ssh_error_text(&e))))?;
        if let Ok(mut f) = self.forwards.lock() {
            f.push((local.to_path_buf(), remote.to_path_buf()));
        }
        Ok(())
    }

    /// Close the SSH connection: let signals under way arrive, remove the
    /// pidfiles of programs that are gone, cancel the forwards (their local
    /// sockets go), stop the master.
    pub async fn close(mut self) {
        let pending = Arc::clone(&self.pending);
        let _ = tokio::task::spawn_blocking(move || settle(&pending, PENDING_SIGNALS_WAIT)).await;
        let pidfiles = self.pidfiles();
        if !pidfiles.is_empty() {
            let files: Vec<&str> = pidfiles.iter().map(String::as_str).collect();
            let _ = self
                .run_maybe_sudo(&script(TIDY, "twlab-tidy", &files), self.sudo)
                .await;
        }
        let forwards = self
            .forwards
            .lock()
            .map(|mut f| std::mem::take(&mut *f))
            .unwrap_or_default();
        if let Some(session) = self.session.take() {
            for (local, remote) in &forwards {
                let _ = session
                    .close_port_forward(
                        ForwardType::Local,
                        Socket::UnixSocket {
                            path: Cow::Borrowed(local.as_path()),
                        },
                        Socket::UnixSocket {
                            path: Cow::Borrowed(remote.as_path()),
                        },
                    )
                    .await;
            }
            let _ = session.close().await;
        }
        for (local, _) in &forwards {
            let _ = std::fs::remove_file(local);
        }
    }

    fn session(&self) -> Result<&Session> {
        self.session
            .as_ref()
            .ok_or_else(|| self.err("the SSH connection is closed".into()))
    }

    fn err(&self, msg: String) -> Error {
        Error::env(format!("ssh {} ({}): {msg}", self.destination, self.role))
    }

    fn shown(&self, argv: &[String], sudo: bool) -> Vec<String> {
        shown_argv(&self.destination, argv, sudo)
    }

    async fn run_maybe_sudo(&self, argv: &[String], sudo: bool) -> Result<String> {
        let cmd = mux_command(&self.ctl, &remote_line(argv, sudo));
        crate::process::output(cmd.into(), &self.shown(argv, sudo)).await
    }

    /// Run as the SSH user even on a sudo host (probes, the binary copy).
    async fn run_as_user(&self, argv: &[String]) -> Result<String> {
        self.run_maybe_sudo(argv, false).await
    }

    /// The signaller of the program whose PID is in `pidfile`: each signal
    /// starts an `ssh` client running [`KILL`] on the host and returns at
    /// once (a thread reaps the client); its stderr goes to the program's
    /// log.
    fn signaller(&self, pidfile: String, log: PathBuf) -> Signaller {
        let ctl = self.ctl.clone();
        let sudo = self.sudo;
        let pending = Arc::clone(&self.pending);
        Arc::new(move |sig: Signal| {
            let mut cmd = mux_command(&ctl, &remote_line(&kill_argv(&pidfile, sig), sudo));
            let stderr = std::fs::File::options()
                .append(true)
                .open(&log)
                .map(Stdio::from)
                .unwrap_or_else(|_| Stdio::null());
            // Its own process group: a Ctrl-C in the terminal must not cut
            // short the stop twlab is delivering.
            cmd.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr)
                .process_group(0);
            if let Ok(mut child) = cmd.spawn() {
                let waiter = std::thread::spawn(move || {
                    let _ = child.wait();
                });
                if let Ok(mut p) = pending.lock() {
                    p.retain(|h| !h.is_finished());
                    p.push(waiter);
                }
            }
        })
    }
}

impl Drop for SshHost {
    fn drop(&mut self) {
        // Kills under way need the master, which the session's own drop
        // stops right after this.
        if self.session.is_some() {
            settle(&self.pending, PENDING_SIGNALS_WAIT);
        }
    }
}

#[async_trait]
impl Host for SshHost {
    fn side(&self) -> Side {
        self.role.side
    }

    fn role(&self) -> HostRole {
        self.role
    }

    fn describe(&self) -> String {
        self.described.clone()
    }

    fn reached_how(&self) -> String {
        format!(
            "{} — BatchMode, host key checked against {}{}",
            self.described,
            self.known_hosts
                .as_ref()
                .map_or_else(|| "ssh's known_hosts".into(), |p| p.display().to_string()),
            if self.sudo { ", sudo -n works" } else { "" }
        )
    }

    fn socket_tool(&self) -> &'static str {
        SshHost::socket_tool(self)
    }

    /// Forwarded to `control_dir/docker.sock` over this host's connection.
    async fn docker_engine(&self, control_dir: &Path) -> Result<crate::docker::Engine> {
        let sock = control_dir.join("docker.sock");
        self.forward_docker_socket(&sock).await?;
        crate::docker::Engine::at_socket(&sock, format!("engine of {}", self.described)).await
    }

    async fn present_pidfiles(&self, pidfiles: &[String]) -> Result<Vec<String>> {
        SshHost::present_pidfiles(self, pidfiles).await
    }

    async fn close(self: Box<Self>) {
        SshHost::close(*self).await;
    }

    fn command(&self, argv: &[String]) -> (Command, Vec<String>) {
        let cmd = mux_command(&self.ctl, &remote_line(argv, self.sudo));
        (cmd.into(), self.shown(argv, self.sudo))
    }

    /// The program runs under a wrapper that keeps its PID in a fresh
    /// pidfile on the host; signals go there (see the module doc).
    fn spawn(&self, argv: &[String], log: &Path, capture_stdout: bool) -> Result<Supervised> {
        if argv.is_empty() {
            return Err(self.err("nothing to run (empty command)".into()));
        }
        let Some(dir) = self.pidfile_dir.get() else {
            return Err(self.err(
                "`id -u` did not answer there, so there is no directory of that user for the program's pidfile".into(),
            ));
        };
        let pidfile = new_pidfile(dir);
        let mut wrapped: Vec<String> = ["sh", "-c", WRAPPER, "twlab-remote", pidfile.as_str()]
            .iter()
            .map(|s| s.to_string())
            .collect();
        wrapped.extend(argv.iter().cloned());
        let cmd = mux_command(&self.ctl, &remote_line(&wrapped, self.sudo));
        let shown = self.shown(argv, self.sudo);
        let child = Supervised::spawn(cmd.into(), &shown, log, capture_stdout)?;
        if let Ok(mut p) = self.pidfiles.lock() {
            p.push(pidfile.clone());
        }
        Ok(child
            .with_signaller(self.signaller(pidfile.clone(), log.to_path_buf()))
            .with_remote_pidfile(pidfile))
    }

    async fn twlab_exe(&self, local: &Path) -> Result<PathBuf> {
        self.exe
            .get_or_try_init(|| self.install_twlab(local))
            .await
            .cloned()
    }

    fn sysctl_scope(&self) -> &'static str {
        "this host's own network namespace (machine-wide for its programs); restored by twlab"
    }

    async fn socket_counts(&self, endpoint: Endpoint) -> Result<Counts> {
        let side = self.role.side;
        if self.tool.load(Ordering::Relaxed) == TOOL_SS {
            match self.run(&sockets_text::ss_argv(endpoint, side)).await {
                Ok(out) => return Ok(sockets_text::parse_ss(&out, endpoint, side)),
                // Found by the probe but not where the command runs (sudo's
                // secure_path): try netstat before giving up.
                Err(Error::Command(e)) if e.status == Some(127) => {
                    self.tool.store(TOOL_NETSTAT, Ordering::Relaxed);
                }
                Err(e) => return Err(e),
            }
        }
        if self.tool.load(Ordering::Relaxed) == TOOL_NETSTAT {
            let out = self.run(&sockets_text::netstat_argv()).await?;
            return Ok(sockets_text::parse_netstat(&out, endpoint, side));
        }
        Err(self.err(
            "neither `ss` (iproute2) nor `netstat` (net-tools) is installed there; twlab counts the host's sockets with one of them: install iproute2".into(),
        ))
    }
}

#[cfg(test)]
mod tests;
