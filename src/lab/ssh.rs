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
//! wrapper that writes its PID to a pidfile under `/tmp` before `exec`ing it,
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

use super::Host;
use crate::common::counts::Counts;
use crate::common::endpoint::{Endpoint, Side};
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
/// Where remote pidfiles live; they are named `twlab-<16 hex>.pid`.
pub const PIDFILE_DIR: &str = "/tmp";
/// How long [`SshHost::close`] lets signals still being delivered finish.
const PENDING_SIGNALS_WAIT: Duration = Duration::from_secs(5);
/// The remote Docker engine's socket.
pub const DOCKER_SOCKET: &str = "/var/run/docker.sock";

/// The remote wrapper of a long-running program (`sh -c WRAPPER twlab-remote
/// PIDFILE ARGV...`). It claims the pidfile exclusively (`set -C`: a file of
/// the same name, or a symlink planted there, makes it fail rather than write
/// through it), then a child shell writes its own PID and `exec`s the program
/// in the foreground (a background job of a non-interactive shell would have
/// SIGINT ignored, and wrk stops on SIGINT). When the program ends, the
/// pidfile goes and its exit status is passed on.
const WRAPPER: &str = r#"f=$1; shift; (set -C; : > "$f") || exit 125; sh -c 'echo $$ > "$1"; shift; exec "$@"' twlab-remote "$f" "$@"; rc=$?; rm -f "$f"; exit $rc"#;

/// Deliver a signal to the program of a pidfile (`sh -c KILL twlab-kill
/// PIDFILE SIG`). A signal sent right after the start waits (2 s at most)
/// for the PID to be written; once the program has ended its pidfile is gone
/// and nothing is signalled. Always exits 0.
const KILL: &str = r#"f=$1; i=0; while [ ! -s "$f" ]; do [ "$i" -ge 20 ] && exit 0; i=$((i+1)); sleep 0.1 2>/dev/null || sleep 1; done; p=$(cat "$f" 2>/dev/null); case "$p" in ''|*[!0-9]*) exit 0;; esac; kill -s "$2" "$p" 2>/dev/null; exit 0"#;

/// Remove the pidfiles among `$@` whose program is gone (its wrapper was
/// killed with it and could not); those of running programs stay.
const TIDY: &str = r#"for f; do [ -f "$f" ] || continue; p=$(cat "$f" 2>/dev/null); case "$p" in ''|*[!0-9]*) continue;; esac; kill -0 "$p" 2>/dev/null || rm -f "$f"; done"#;

/// Which socket listing tool the host has: `ss` (iproute2) or `netstat`.
const PROBE: &str = r#"if command -v ss >/dev/null 2>&1; then echo ss; elif command -v netstat >/dev/null 2>&1; then echo netstat; else echo none; fi"#;

/// Is `$1` an executable file? Prints `yes` or `no`.
const CHECK_EXE: &str = r#"if [ -f "$1" ] && [ -x "$1" ]; then echo yes; else echo no; fi"#;

/// Is `$1` a copy of twlab we can use: executable, ours, `$2` bytes long?
const CHECK_COPY: &str = r#"if [ -f "$1" ] && [ -x "$1" ] && [ -O "$1" ] && [ "$(wc -c < "$1" | tr -d ' ')" = "$2" ]; then echo present; elif [ -e "$1" ] && [ ! -O "$1" ]; then echo foreign; else echo absent; fi"#;

/// Write stdin to `$1` through a temporary file, then make it executable and
/// give it its final name in one step.
const COPY: &str = r#"t=$(mktemp /tmp/twlab-copy.XXXXXXXX) || exit 1; if cat > "$t" && chmod 755 "$t" && mv -f "$t" "$1"; then exit 0; fi; rm -f "$t"; exit 1"#;

const TOOL_SS: u8 = 0;
const TOOL_NETSTAT: u8 = 1;
const TOOL_NONE: u8 = 2;

/// A host reached over one multiplexed SSH connection.
pub struct SshHost {
    side: Side,
    destination: String,
    sudo: bool,
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
    /// Threads waiting for `kill` commands still under way.
    pending: Arc<Mutex<Vec<std::thread::JoinHandle<()>>>>,
    /// Unix socket forwards (local, remote), cancelled on close.
    forwards: Mutex<Vec<(PathBuf, PathBuf)>>,
}

impl SshHost {
    /// Connect (BatchMode, strict host key check) with a control socket in
    /// `control_dir`, then look at the host: which socket tool it has, and
    /// that `sudo -n` works when the lab file asks for sudo.
    pub async fn connect(spec: &HostSpec, side: Side, control_dir: &Path) -> Result<SshHost> {
        let destination =
            spec.ssh.as_ref().map(|d| d.0.clone()).ok_or_else(|| {
                Error::env(format!("hosts.{side} is not an SSH host (no `ssh:`)"))
            })?;
        let at = |msg: String| Error::env(format!("ssh {destination} ({side}): {msg}"));
        for (key, path) in [
            ("identity", &spec.identity),
            ("known_hosts", &spec.known_hosts),
            ("ssh_config", &spec.ssh_config),
        ] {
            if let Some(p) = path
                && !p.is_file()
            {
                return Err(at(format!(
                    "hosts.{side}.{key} {} is not a readable file",
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
            side,
            destination,
            sudo: spec.sudo,
            session: Some(session),
            ctl,
            twlab: spec.twlab.clone(),
            exe: tokio::sync::OnceCell::new(),
            tool: AtomicU8::new(TOOL_NONE),
            pidfiles: Mutex::new(Vec::new()),
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
        if self.sudo
            && let Err(e) = self.run(&["true".to_string()]).await
        {
            return Err(Error::env(format!(
                "ssh {} ({}): the lab file sets sudo: true, but `sudo -n true` fails there; let this user run commands with sudo without a password (NOPASSWD) or connect as root\n  {e}",
                self.destination, self.side
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
    /// `/tmp/twlab-*.pid` on the host).
    pub fn pidfiles(&self) -> Vec<String> {
        self.pidfiles.lock().map(|p| p.clone()).unwrap_or_default()
    }

    /// The pidfile of the program started last, if any.
    pub fn last_pidfile(&self) -> Option<String> {
        self.pidfiles.lock().ok().and_then(|p| p.last().cloned())
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
        Error::env(format!("ssh {} ({}): {msg}", self.destination, self.side))
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

    /// Copy `local` to the host unless a same-content copy is there.
    async fn install_twlab(&self, local: &Path) -> Result<PathBuf> {
        if let Some(path) = &self.twlab {
            let ok = self
                .run_as_user(&script(CHECK_EXE, "twlab-check", &[path.as_str()]))
                .await?;
            if ok.trim() != "yes" {
                return Err(self.err(format!(
                    "hosts.{}.twlab is {path}, which is not an executable file on that host",
                    self.side
                )));
            }
            return Ok(PathBuf::from(path));
        }
        let (hash, size) = {
            let owned = local.to_path_buf();
            tokio::task::spawn_blocking(move || content_hash(&owned))
                .await
                .map_err(|e| Error::env(format!("hashing the twlab binary: {e}")))?
                .map_err(|e| Error::io(local.display(), e))?
        };
        let remote = remote_copy_path(hash);
        let size = size.to_string();
        let check = script(CHECK_COPY, "twlab-check", &[remote.as_str(), size.as_str()]);
        match self.run_as_user(&check).await?.trim() {
            "present" => return Ok(PathBuf::from(remote)),
            "foreign" => {
                return Err(self.err(format!(
                    "{remote} exists on the host but belongs to another user, so it cannot be trusted as this twlab; remove it, or name a twlab in the lab file (hosts.{}.twlab)",
                    self.side
                )));
            }
            _ => {}
        }
        self.copy_file(local, &remote).await?;
        if self.run_as_user(&check).await?.trim() != "present" {
            return Err(self.err(format!(
                "copied twlab to {remote}, but the copy is not there as it should be (full disk?)"
            )));
        }
        Ok(PathBuf::from(remote))
    }

    /// Stream `local` into [`COPY`] on the host.
    async fn copy_file(&self, local: &Path, remote: &str) -> Result<()> {
        let what = format!(
            "copying {} to {}:{remote}",
            local.display(),
            self.destination
        );
        let mut file = tokio::fs::File::open(local)
            .await
            .map_err(|e| Error::io(local.display(), e))?;
        let session = self.session()?;
        let mut child = session
            .command("sh")
            .arg("-c")
            .arg(COPY)
            .arg("twlab-copy")
            .arg(remote)
            .stdin(openssh::Stdio::piped())
            .stdout(openssh::Stdio::null())
            .stderr(openssh::Stdio::piped())
            .spawn()
            .await
            .map_err(|e| self.err(format!("{what}: {}", ssh_error_text(&e))))?;
        let copied = match child.stdin().take() {
            Some(mut stdin) => {
                let r = tokio::io::copy(&mut file, &mut stdin).await;
                // Closing stdin is the end of file for `cat`.
                drop(stdin);
                r.map(|_| ())
            }
            None => Err(std::io::Error::other("no stdin")),
        };
        let out = child
            .wait_with_output()
            .await
            .map_err(|e| self.err(format!("{what}: {}", ssh_error_text(&e))))?;
        if !out.status.success() || copied.is_err() {
            let mut stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            if let Err(e) = copied {
                stderr.push_str(&format!("\nwriting to ssh: {e}"));
            }
            return Err(Error::Command(CommandError {
                command: what,
                status: out.status.code(),
                stderr,
            }));
        }
        Ok(())
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
        self.side
    }

    fn describe(&self) -> String {
        format!("ssh {}", self.destination)
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
        let pidfile = new_pidfile();
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
        let side = self.side;
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

const SUDO: [&str; 3] = ["sudo", "-n", "--"];

/// The command line the remote login shell runs for `argv`: each argument
/// quoted on its own, `sudo -n --` first when `sudo`.
pub fn remote_line(argv: &[String], sudo: bool) -> String {
    let prefix = if sudo { &SUDO[..] } else { &[] };
    prefix
        .iter()
        .copied()
        .chain(argv.iter().map(String::as_str))
        .map(|a| shell_escape::unix::escape(Cow::Borrowed(a)).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// An `ssh` client of the master at `ctl` running `line`, in the form the
/// openssh crate uses for its own commands: the host name is a placeholder
/// (the control socket decides), and port 9 (discard) makes sure that a
/// dead master never leads to a fresh connection. `ControlMaster=no` keeps a
/// user's `ControlMaster yes` from turning the client into a master.
pub fn mux_command(ctl: &Path, line: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new("ssh");
    cmd.arg("-S")
        .arg(ctl)
        .args([
            "-o",
            "BatchMode=yes",
            "-o",
            "ControlMaster=no",
            "-T",
            "-p",
            "9",
        ])
        .args(["none", "--", line]);
    cmd
}

/// `sh -c SCRIPT NAME ARGS...` as an argv.
fn script(body: &str, name: &str, args: &[&str]) -> Vec<String> {
    ["sh", "-c", body, name]
        .iter()
        .chain(args.iter())
        .map(|s| s.to_string())
        .collect()
}

fn kill_argv(pidfile: &str, sig: Signal) -> Vec<String> {
    let name = sig.as_str();
    let name = name.strip_prefix("SIG").unwrap_or(name);
    script(KILL, "twlab-kill", &[pidfile, name])
}

/// A fresh pidfile name: `/tmp/twlab-<16 hex>.pid`.
fn new_pidfile() -> String {
    format!("{PIDFILE_DIR}/twlab-{:016x}.pid", fastrand::u64(..))
}

/// Where a copy of this twlab goes on a host.
pub fn remote_copy_path(hash: u64) -> String {
    format!("/tmp/twlab-{}-{hash:016x}", env!("CARGO_PKG_VERSION"))
}

/// A cheap content hash of a file (FNV-1a over 64-bit words, then the
/// length) and its size. Not a defence against a forged file — ownership
/// on the host is checked for that — only a name that changes with the build.
pub fn content_hash(path: &Path) -> std::io::Result<(u64, u64)> {
    use std::io::Read;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut file = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 16];
    let mut size: u64 = 0;
    // Words are taken from the stream, not per read, so the hash does not
    // depend on how reads happen to split the file.
    let mut carry: Vec<u8> = Vec::with_capacity(8);
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        let mut data = &buf[..n];
        if !carry.is_empty() {
            let take = (8 - carry.len()).min(data.len());
            carry.extend_from_slice(&data[..take]);
            data = &data[take..];
            if carry.len() < 8 {
                continue;
            }
            let mut w = [0u8; 8];
            w.copy_from_slice(&carry);
            hash = (hash ^ u64::from_le_bytes(w)).wrapping_mul(PRIME);
            carry.clear();
        }
        let mut words = data.chunks_exact(8);
        for chunk in &mut words {
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            hash = (hash ^ u64::from_le_bytes(w)).wrapping_mul(PRIME);
        }
        carry.extend_from_slice(words.remainder());
    }
    for b in carry {
        hash = (hash ^ u64::from(b)).wrapping_mul(PRIME);
    }
    hash = (hash ^ size).wrapping_mul(PRIME);
    Ok((hash, size))
}

/// Wait (at most `limit`) for the kill commands under way to end.
fn settle(pending: &Mutex<Vec<std::thread::JoinHandle<()>>>, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let busy = match pending.lock() {
            Ok(mut p) => {
                p.retain(|h| !h.is_finished());
                !p.is_empty()
            }
            Err(_) => false,
        };
        if !busy || Instant::now() >= deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An openssh error with its sources, ssh's own words in it (`ssh -E` log
/// of the master), one line per message line.
fn ssh_error_text(e: &openssh::Error) -> String {
    use std::error::Error as _;
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let msg = s.to_string();
        let lines: Vec<&str> = msg
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        if !lines.is_empty() {
            text.push_str(":\n  ");
            text.push_str(&lines.join("\n  "));
        }
        source = s.source();
    }
    text
}

/// The connection failure, with a hint for the usual causes.
fn connect_error_text(e: &openssh::Error, side: Side) -> String {
    let text = ssh_error_text(e);
    let hint = if text.contains("Host key verification failed")
        || text.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
    {
        format!(
            "\n  hint: the host key is not in known_hosts, or differs from it; twlab never accepts a host key itself: check the host's key fingerprint and add it to known_hosts (or name the file with hosts.{side}.known_hosts)"
        )
    } else if text.contains("Permission denied") {
        format!(
            "\n  hint: no key was accepted (BatchMode: no password is asked): set hosts.{side}.identity, or load the key into ssh-agent"
        )
    } else {
        String::new()
    };
    format!("cannot connect: {text}{hint}")
}

/// What messages show for `argv` run on `destination`:
/// `ssh admin@host -- [sudo -n --] ARGV`.
pub fn shown_argv(destination: &str, argv: &[String], sudo: bool) -> Vec<String> {
    let mut shown = vec!["ssh".to_string(), destination.to_string(), "--".into()];
    if sudo {
        shown.extend(SUDO.iter().map(|s| s.to_string()));
    }
    shown.extend(argv.iter().cloned());
    shown
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::display_argv;

    fn v(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn every_argument_is_quoted_on_its_own() {
        let line = remote_line(&v(&["printf", "%s", "a b 'c' $(id)"]), false);
        assert_eq!(line, r#"printf '%s' 'a b '\''c'\'' $(id)'"#);
        let out = std::process::Command::new("sh")
            .args(["-c", &line])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "a b 'c' $(id)");
    }

    #[test]
    fn sudo_comes_first_and_empty_arguments_survive() {
        assert_eq!(
            remote_line(&v(&["sysctl", "-n", "net.ipv4.tcp_tw_reuse"]), true),
            "sudo -n -- sysctl -n net.ipv4.tcp_tw_reuse"
        );
        assert_eq!(remote_line(&v(&["printf", ""]), false), "printf ''");
    }

    #[test]
    fn the_mux_client_only_names_the_control_socket() {
        let cmd = mux_command(Path::new("/run/x/master"), "uname -r");
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(cmd.get_program(), "ssh");
        assert_eq!(
            args.join(" "),
            "-S /run/x/master -o BatchMode=yes -o ControlMaster=no -T -p 9 none -- uname -r"
        );
    }

    #[test]
    fn the_wrapper_keeps_the_pid_while_the_program_runs() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("p.pid").display().to_string();
        let argv = script(
            WRAPPER,
            "twlab-remote",
            &[&pidfile, "sh", "-c", "cat \"$0\"; exit 3", &pidfile],
        );
        let out = std::process::Command::new(&argv[0])
            .args(&argv[1..])
            .output()
            .unwrap();
        // The program saw its own PID in the file, and the file is gone after.
        let pid: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        assert!(pid > 1);
        assert_eq!(out.status.code(), Some(3));
        assert!(!Path::new(&pidfile).exists());
        // A pidfile name that is taken is not written through.
        std::fs::write(&pidfile, "keep").unwrap();
        let status = std::process::Command::new(&argv[0])
            .args(&argv[1..])
            .status()
            .unwrap();
        assert_eq!(status.code(), Some(125));
        assert_eq!(std::fs::read_to_string(&pidfile).unwrap(), "keep");
    }

    #[test]
    fn tidying_removes_only_the_pidfiles_of_programs_that_are_gone() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("gone.pid");
        let alive = dir.path().join("alive.pid");
        std::fs::write(&gone, "999999999\n").unwrap();
        std::fs::write(&alive, format!("{}\n", std::process::id())).unwrap();
        let (g, a) = (gone.display().to_string(), alive.display().to_string());
        let argv = script(TIDY, "twlab-tidy", &[&g, &a, "/nonexistent/x.pid"]);
        let status = std::process::Command::new(&argv[0])
            .args(&argv[1..])
            .status()
            .unwrap();
        assert!(status.success());
        assert!(!gone.exists());
        assert!(alive.exists());
    }

    #[test]
    fn a_kill_without_a_pidfile_is_harmless() {
        let argv = kill_argv("/nonexistent/twlab-x.pid", Signal::SIGKILL);
        assert_eq!(argv[5], "KILL");
        let started = Instant::now();
        let status = std::process::Command::new(&argv[0])
            .args(&argv[1..])
            .status()
            .unwrap();
        assert!(status.success());
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn the_content_hash_does_not_depend_on_read_sizes() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let data: Vec<u8> = (0..200_003u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&a, &data).unwrap();
        let (h1, n) = content_hash(&a).unwrap();
        assert_eq!(n, data.len() as u64);
        let mut other = data.clone();
        other[100_000] ^= 1;
        let b = dir.path().join("b");
        std::fs::write(&b, &other).unwrap();
        assert_ne!(content_hash(&b).unwrap().0, h1);
        assert_eq!(content_hash(&a).unwrap().0, h1);
        assert!(remote_copy_path(h1).starts_with("/tmp/twlab-"));
    }

    #[test]
    fn shown_commands_read_like_ssh() {
        let argv = v(&["sysctl", "-n", "net.ipv4.tcp_tw_reuse"]);
        assert_eq!(
            display_argv(&shown_argv("admin@host", &argv, false)),
            "ssh admin@host -- sysctl -n net.ipv4.tcp_tw_reuse"
        );
        assert_eq!(
            display_argv(&shown_argv("admin@host", &argv, true)),
            "ssh admin@host -- sudo -n -- sysctl -n net.ipv4.tcp_tw_reuse"
        );
    }
}
