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
use crate::common::endpoint::{Endpoint, HostRole, Side};
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
        role: impl Into<HostRole>,
        control_dir: &std::path::Path,
    ) -> Result<Self> {
        let role = role.into();
        Ok(match spec.ssh {
            None => RealHost::Local(LocalHost::new(role, spec.sudo)),
            Some(_) => RealHost::Ssh(Box::new(SshHost::connect(spec, role, control_dir).await?)),
        })
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

/// A held host lock (`/run/twlab/*.lock`), whose file is removed when it
/// is released: a lab file that named a host once (or a host that never
/// answered) leaves nothing behind in `/run/twlab`.
///
/// Removing a lock file is safe only under this protocol: the file is
/// unlinked while its lock is held, and a lock is taken only on the file
/// that still stands at the path (after `flock`, the path's inode must be
/// the one locked; else the path was released and made anew meanwhile,
/// and the lock is taken again). So two runs never hold locks on two
/// different files of one path. A `kill -9` leaves the file; the kernel
/// drops the lock, and the next run takes and removes it.
pub struct HostLock {
    lock: nix::fcntl::Flock<std::fs::File>,
    path: std::path::PathBuf,
}

impl Drop for HostLock {
    fn drop(&mut self) {
        use std::os::unix::fs::MetadataExt;
        // Only the file this lock holds: it still stands at the path, as
        // nobody else unlinks it without holding the lock.
        let same = match (self.lock.metadata(), std::fs::metadata(&self.path)) {
            (Ok(held), Ok(now)) => held.ino() == now.ino() && held.dev() == now.dev(),
            _ => false,
        };
        if same {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// A lock file's name part: what the key holds, with anything but
/// `[A-Za-z0-9.-]` as `_`.
fn lock_name(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Take the lock `/run/twlab/<file>` without waiting, and write `holder`
/// into it (for the message of a run it refuses). When it is held, the
/// error is the path, why, and what its holder wrote.
fn try_lock(file: &str, holder: &str) -> Result<std::result::Result<HostLock, LockBusy>> {
    use nix::fcntl::{Flock, FlockArg};
    use std::io::Write;
    use std::os::unix::fs::MetadataExt;
    let dir = std::path::Path::new(super::netns::OWNER_DIR);
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display(), e))?;
    let path = dir.join(file);
    // A few tries: each retry means another run released (and removed)
    // the file between our open and our lock.
    let mut tries = 0;
    let taken = loop {
        tries += 1;
        let f = std::fs::File::options()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(path.display(), e))?;
        match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => {
                let still_there = match (lock.metadata(), std::fs::metadata(&path)) {
                    (Ok(held), Ok(now)) => held.ino() == now.ino() && held.dev() == now.dev(),
                    _ => false,
                };
                if still_there {
                    break Ok(lock);
                }
                if tries >= 8 {
                    // Released and made anew eight times over: busy.
                    break Err(nix::errno::Errno::EAGAIN);
                }
            }
            Err((_, errno)) => break Err(errno),
        }
    };
    Ok(match taken {
        Ok(mut lock) => {
            // Only a note for the message of a run refused later: a
            // failure to write it costs nothing but that note.
            let _ = lock
                .set_len(0)
                .and_then(|()| writeln!(&mut *lock, "{holder}"));
            Ok(HostLock { lock, path })
        }
        Err(errno) => {
            let holder = std::fs::read_to_string(&path)
                .map(|t| t.trim().to_string())
                .unwrap_or_default();
            Err(LockBusy {
                path,
                errno,
                holder,
            })
        }
    })
}

/// A lock someone else holds.
struct LockBusy {
    path: std::path::PathBuf,
    errno: nix::errno::Errno,
    /// What its holder wrote in it ("ssh root@h (server, client), twlab
    /// PID 123"), empty when unknown.
    holder: String,
}

impl LockBusy {
    fn held_by(&self) -> String {
        if self.holder.is_empty() {
            String::new()
        } else {
            format!(" ({})", self.holder)
        }
    }
}

/// What a host lock says of its holder: the hosts of its lab on that
/// machine and the twlab that holds it.
fn holder_note(hosts: &[String], what: &str) -> String {
    format!("{} ({what} PID {})", hosts.join(", "), std::process::id())
}

/// Take the lock of each machine of the lab, by the lab file's
/// destination, before connecting (nothing is touched on a busy host): two
/// twlab runs on one host would each restore "their" old sysctl values and
/// leave the second run's changes in place. The kernel drops a lock when
/// its holder dies, even by `kill -9`, so a crash never leaves a host
/// locked. One machine named two ways (`root@h`, `root@10.0.0.5`, an
/// `ssh_config` alias) is caught once connected, by
/// [`lock_identities`].
pub fn lock_machines(spec: &LabSpec) -> Result<Vec<HostLock>> {
    lock_destinations(spec, "twlab")
}

/// [`lock_machines`], with `what` (twlab, twlab clean) in the note.
pub fn lock_destinations(spec: &LabSpec, what: &str) -> Result<Vec<HostLock>> {
    let hosts: Vec<(String, String)> = spec
        .hosts
        .roles()
        .into_iter()
        .map(|(_, h)| (h.machine_key(), h.describe()))
        .collect();
    let mut locks = Vec::new();
    for (key, names) in machines_of(&hosts) {
        let file = format!("host-{}.lock", lock_name(&key));
        match try_lock(&file, &holder_note(&names, what))? {
            Ok(lock) => locks.push(lock),
            Err(busy) => {
                return Err(Error::env(format!(
                    "another twlab run is using {key}{} ({}: {}); two runs on one host would undo each other's sysctls: wait for it to end",
                    busy.held_by(),
                    busy.path.display(),
                    busy.errno
                )));
            }
        }
    }
    Ok(locks)
}

/// `/proc/sys/kernel/random/boot_id`: one value per boot of a kernel.
const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";

/// Which machine a connected host is, as its kernel sees it: its boot id
/// and its network namespace. A lab file's destination does not say
/// (`root@h`, `root@10.0.0.5` and an `ssh_config` alias may be one host);
/// net.* sysctls are per network namespace, so two namespaces of one
/// kernel are two machines here. Read through the host, no shell.
pub async fn machine_identity(host: &dyn Host) -> Result<String> {
    let boot = host.run(&["cat".to_string(), BOOT_ID.to_string()]).await?;
    let net = host
        .run(&["readlink".to_string(), "/proc/self/ns/net".to_string()])
        .await?;
    identity_key(&boot, &net).ok_or_else(|| {
        Error::env(format!(
            "cannot tell which machine {} is (for the lock that keeps two twlab runs off one machine): {BOOT_ID} reads `{}`, /proc/self/ns/net links to `{}`",
            host.describe(),
            boot.trim().escape_default(),
            net.trim().escape_default()
        ))
    })
}

/// `boot-<boot id>-net-<inode>` from the boot id file's text and the
/// `net:[<inode>]` link of a network namespace; `None` when either is
/// not what Linux prints.
pub fn identity_key(boot_id: &str, netns_link: &str) -> Option<String> {
    let boot = boot_id.trim().to_ascii_lowercase();
    let uuid = boot.len() == 36
        && boot.char_indices().all(|(i, c)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        });
    let inode = netns_link.trim().strip_prefix("net:[")?.strip_suffix(']')?;
    let number =
        !inode.is_empty() && inode.len() <= 20 && inode.bytes().all(|b| b.is_ascii_digit());
    (uuid && number).then(|| format!("boot-{boot}-net-{inode}"))
}

/// The machines of a lab, from each host's identity and description in
/// order: one entry per machine, with the hosts on it (both roles on one
/// machine take one lock, whatever names the lab file gives them).
pub fn machines_of(hosts: &[(String, String)]) -> Vec<(String, Vec<String>)> {
    let mut machines: Vec<(String, Vec<String>)> = Vec::new();
    for (identity, host) in hosts {
        match machines.iter_mut().find(|(id, _)| id == identity) {
            Some((_, names)) => {
                if !names.contains(host) {
                    names.push(host.clone());
                }
            }
            None => machines.push((identity.clone(), vec![host.clone()])),
        }
    }
    machines
}

/// Take the lock of each machine by its identity (see
/// [`machines_of`]; `/run/twlab/machine-<identity>.lock`), skipping the
/// ones in `held` (already this process's: a lock file opened twice by
/// one process is two locks, and the second would wait for the first).
/// A machine in use by another twlab is an error naming both sides.
pub fn lock_identities(
    hosts: &[(String, String)],
    held: &[String],
    what: &str,
) -> Result<Vec<(String, HostLock)>> {
    let mut locks = Vec::new();
    for (identity, names) in machines_of(hosts) {
        if held.contains(&identity) {
            continue;
        }
        let file = format!("machine-{}.lock", lock_name(&identity));
        match try_lock(&file, &holder_note(&names, what))? {
            Ok(lock) => locks.push((identity, lock)),
            Err(busy) => {
                let other = if busy.holder.is_empty() {
                    "another name".to_string()
                } else {
                    busy.holder.clone()
                };
                return Err(Error::env(format!(
                    "another twlab run is using this machine as {other}: {} is the same machine (same boot id and network namespace: {identity}; {}: {}); two runs on one host would undo each other's sysctls: wait for it to end",
                    names.join(", "),
                    busy.path.display(),
                    busy.errno
                )));
            }
        }
    }
    Ok(locks)
}

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
    restore.record_machines(&machines)?;
    Ok(locks.into_iter().map(|(_, l)| l).collect())
}

/// "… and … are the same machine" for two client hosts (identity,
/// description) that are one, `None` when all are distinct.
pub fn same_machine_clients(clients: &[(String, String)]) -> Option<String> {
    for (i, (id, name)) in clients.iter().enumerate() {
        if let Some((_, first)) = clients[..i].iter().find(|(other, _)| other == id) {
            return Some(format!(
                "client hosts {first} and {name} are the same machine (same boot id and network namespace: {id}): each client host must be its own machine, or its ports and counts are counted twice"
            ));
        }
    }
    None
}

impl RealHost {
    /// Close an SSH host's connection (a local host has none).
    pub async fn close(self) {
        if let RealHost::Ssh(h) = self {
            h.close().await;
        }
    }
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
            stop_requested: std::sync::Arc::new(|| false),
        })
    }

    /// Let the waits between runs end once `stop` says a stop signal came
    /// (a cooldown may be hours long; Ctrl-C must not wait for it).
    pub fn with_stop_check(mut self, stop: StopCheck) -> RealLab {
        self.stop_requested = stop;
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
        for host in self.all_hosts() {
            let RealHost::Ssh(h) = host else {
                continue;
            };
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

#[cfg(test)]
mod tests {
    use super::*;

    const BOOT: &str = "0f5e4bd4-2f1c-4a0e-9c53-7d1e6a3b9c21\n";

    #[test]
    fn two_client_hosts_that_are_one_machine_are_named() {
        let id = |k: &str, n: &str| (k.to_string(), n.to_string());
        assert_eq!(
            same_machine_clients(&[id("a", "ssh root@c1"), id("b", "ssh root@c2")]),
            None
        );
        let msg = same_machine_clients(&[
            id("a", "ssh root@c1"),
            id("b", "ssh root@c2"),
            id("a", "ssh root@198.18.0.9"),
        ])
        .expect("refused");
        assert!(
            msg.starts_with(
                "client hosts ssh root@c1 and ssh root@198.18.0.9 are the same machine"
            ),
            "{msg}"
        );
    }

    #[test]
    fn the_identity_is_the_boot_id_and_the_network_namespace() {
        assert_eq!(
            identity_key(BOOT, "net:[4026531840]\n").as_deref(),
            Some("boot-0f5e4bd4-2f1c-4a0e-9c53-7d1e6a3b9c21-net-4026531840")
        );
        // Upper-case hex is the same boot.
        assert_eq!(
            identity_key(&BOOT.to_uppercase(), "net:[4026531840]"),
            identity_key(BOOT, "net:[4026531840]")
        );
        // Another namespace of the same kernel is another machine.
        assert_ne!(
            identity_key(BOOT, "net:[4026531840]"),
            identity_key(BOOT, "net:[4026532301]")
        );
        // Whatever is not what Linux prints is no identity.
        for (boot, net) in [
            ("", "net:[4026531840]"),
            ("not-a-boot-id", "net:[4026531840]"),
            ("0f5e4bd4-2f1c-4a0e-9c53-7d1e6a3b9c2g", "net:[4026531840]"),
            ("0f5e4bd42f1c-4a0e-9c53-7d1e6a3b9c21-", "net:[4026531840]"),
            (BOOT, ""),
            (BOOT, "net:[]"),
            (BOOT, "mnt:[4026531840]"),
            (BOOT, "net:[40265/../1840]"),
            (BOOT, "net:[4026531840"),
        ] {
            assert_eq!(identity_key(boot, net), None, "{boot:?} {net:?}");
        }
    }

    #[test]
    fn both_roles_on_one_machine_are_one_lock_whatever_their_names() {
        let a = identity_key(BOOT, "net:[1]").unwrap();
        let b = identity_key(BOOT, "net:[2]").unwrap();
        let hosts = |pairs: &[(&String, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(id, name)| ((*id).clone(), name.to_string()))
                .collect()
        };
        // Two names of one machine: one lock naming both.
        assert_eq!(
            machines_of(&hosts(&[(&a, "ssh root@h"), (&a, "ssh twlab-alias")])),
            vec![(
                a.clone(),
                vec!["ssh root@h".into(), "ssh twlab-alias".into()]
            )]
        );
        // One name for both roles: named once.
        assert_eq!(
            machines_of(&hosts(&[(&a, "ssh root@h"), (&a, "ssh root@h")])),
            vec![(a.clone(), vec!["ssh root@h".into()])]
        );
        // Two namespaces: two locks, server first.
        assert_eq!(
            machines_of(&hosts(&[(&b, "local (this machine)"), (&a, "ssh root@h")])),
            vec![
                (b.clone(), vec!["local (this machine)".into()]),
                (a.clone(), vec!["ssh root@h".into()]),
            ]
        );
    }

    #[test]
    fn lock_names_keep_only_safe_characters() {
        assert_eq!(lock_name("ssh-root@10.0.0.5-22"), "ssh-root_10.0.0.5-22");
        assert_eq!(lock_name("ssh-[::1]/../x"), "ssh-___1__.._x");
    }
}
