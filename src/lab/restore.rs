//! The on-disk restore journal of a run on real hosts.
//!
//! In the embedded lab everything twlab changes lives in namespaces that are
//! deleted after each run. On a real host (this machine's own namespace, or
//! a machine reached over SSH) a sysctl written by twlab changes that
//! machine, a process twlab started keeps running if twlab is killed, and a
//! container stays up. So before twlab changes anything on a real host it
//! writes down, in a file on this machine, how to undo it: each sysctl's old
//! value (host and key), each process it started (PID and start time, or the
//! remote pidfile), the lab to reconnect to.
//!
//! A host is named by its role in the lab (the server, client host `i`),
//! never by its display text: two hosts may read alike (two roles on this
//! machine), and a display text may change between twlab versions while a
//! journal waits for `clean`. Which roles are one machine (their sysctls
//! are one) is the machine's identity as its kernel tells it, recorded once
//! the hosts are connected, else the lab file's destination
//! ([`HostSpec::machine_key`]). Journals written before this format named
//! the host of a sysctl by its display text (`host`); that field is ignored
//! when read, and `clean` restores them by role all the same. The file is rewritten and
//! fsynced before every change, entries are dropped as they are undone, and
//! the file is removed when the run ends cleanly. After a `kill -9`,
//! `twlab clean` finds the file (its owner PID is dead), reconnects to the
//! hosts, restores the sysctls, ends the processes, removes the labelled
//! containers, and deletes the file.
//!
//! The directory is `/var/lib/twlab/restore/` (a remote host's sysctls
//! outlive a reboot of this machine, so not `/run`); `TWLAB_STATE_DIR`
//! overrides it.

use crate::common::endpoint::{HostRole, Side};
use crate::error::{Error, Result};
use crate::scenario::labfile::{HostSpec, LabSpec};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Where restore journals live.
pub fn state_dir() -> PathBuf {
    std::env::var_os("TWLAB_STATE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/twlab"))
        .join("restore")
}

/// A sysctl twlab changed on a real host, with the value to put back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingSysctl {
    pub side: Side,
    /// Which client host (0-based in `hosts.clients`); 0 for the server
    /// and a lab with one client (and in journals older than the field).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub index: usize,
    pub name: String,
    pub before: String,
}

/// A process twlab started on a real host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingProcess {
    pub side: Side,
    /// Which client host, as [`PendingSysctl::index`].
    #[serde(default, skip_serializing_if = "is_zero")]
    pub index: usize,
    /// The local child (the program itself, or the `ssh` that runs it).
    pub pid: u32,
    /// Its start time in clock ticks since boot (`/proc/PID/stat` field
    /// 22), so a recycled PID is never signalled.
    pub start_ticks: u64,
    /// For a program on an SSH host: the remote file holding its PID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_pidfile: Option<String>,
    pub command: String,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl PendingSysctl {
    pub fn role(&self) -> HostRole {
        HostRole {
            side: self.side,
            index: self.index,
        }
    }
}

impl PendingProcess {
    pub fn role(&self) -> HostRole {
        HostRole {
            side: self.side,
            index: self.index,
        }
    }
}

/// The journal's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestoreState {
    /// The lab's id (also the `twlab.lab` of its owner file).
    pub lab_id: String,
    /// The twlab that owns this journal.
    pub owner_pid: u32,
    /// Its start time (clock ticks since boot), so a later process that got
    /// the same PID is not taken for the owner. Absent in older journals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_start_ticks: Option<u64>,
    pub started_at: String,
    /// How to reach the hosts again.
    pub lab: LabSpec,
    pub sysctls: Vec<PendingSysctl>,
    pub processes: Vec<PendingProcess>,
    /// Run ids whose containers carry the `twlab.run` label.
    pub runs: Vec<String>,
    /// The directory of the lab's SSH control sockets: after a crash its
    /// masters are told to exit and it is removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_dir: Option<PathBuf>,
    /// The lab's machines as their kernels name them (boot id and network
    /// namespace, [`crate::lab::lock::identity_key`]), once connected: a
    /// later lab naming one of them another way still sees this journal.
    /// Absent in older journals and before the hosts are connected.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub machines: Vec<String>,
    /// Each host's machine identity (one of `machines`) by its role, once
    /// connected: two roles of one identity are one machine. Absent in
    /// older journals and before the hosts are connected.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<RoleMachine>,
}

/// The machine identity of one host of the lab.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoleMachine {
    pub side: Side,
    /// Which client host, as [`PendingSysctl::index`].
    #[serde(default, skip_serializing_if = "is_zero")]
    pub index: usize,
    pub machine: String,
}

impl RestoreState {
    /// The journal of a new lab, owned by this process, with nothing in it.
    pub fn new(lab_id: &str, lab: &LabSpec) -> RestoreState {
        RestoreState {
            lab_id: lab_id.to_string(),
            owner_pid: std::process::id(),
            owner_start_ticks: start_ticks(std::process::id()),
            started_at: chrono::Local::now().to_rfc3339(),
            lab: lab.clone(),
            sysctls: Vec::new(),
            processes: Vec::new(),
            runs: Vec::new(),
            control_dir: None,
            machines: Vec::new(),
            roles: Vec::new(),
        }
    }

    /// The machine the host of `role` is: its identity when recorded, else
    /// its destination in the lab file; `None` for a role the lab lacks.
    fn machine_of(&self, role: HostRole) -> Option<String> {
        self.roles
            .iter()
            .find(|r| r.side == role.side && r.index == role.index)
            .map(|r| r.machine.clone())
            .or_else(|| {
                self.lab
                    .hosts
                    .roles()
                    .into_iter()
                    .find(|(r, _)| *r == role)
                    .map(|(_, h): (_, &HostSpec)| h.machine_key())
            })
    }

    /// Are the hosts of roles `a` and `b` one machine (so one sysctl)?
    pub fn same_machine(&self, a: HostRole, b: HostRole) -> bool {
        a == b
            || self
                .machine_of(a)
                .is_some_and(|m| Some(m) == self.machine_of(b))
    }
}

/// A journal file being kept up to date by a live run. Cheap to clone.
#[derive(Clone)]
pub struct RestoreFile {
    inner: Arc<Mutex<(PathBuf, RestoreState)>>,
}

impl RestoreFile {
    /// Create the journal of a new lab (before anything is changed).
    pub fn create(lab_id: &str, lab: &LabSpec) -> Result<RestoreFile> {
        let dir = state_dir();
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(dir.display(), e))?;
        let path = dir.join(format!("{lab_id}.json"));
        let state = RestoreState::new(lab_id, lab);
        write_state(&path, &state)?;
        Ok(RestoreFile {
            inner: Arc::new(Mutex::new((path, state))),
        })
    }

    fn update(&self, f: impl FnOnce(&mut RestoreState)) -> Result<()> {
        let mut guard = self
            .inner
            .lock()
            .map_err(|_| Error::env("restore journal lock poisoned"))?;
        let (path, state) = &mut *guard;
        f(state);
        write_state(path, state)
    }

    /// Note a sysctl's old value; written to disk before the caller changes it.
    /// The first old value of a key on a machine is kept (it is the
    /// machine's own), whichever side changes it next: when server and
    /// client are one machine and both set a key, the client's "old" value
    /// is the server's written one, which `clean` must not put back.
    pub fn record_sysctl(&self, entry: PendingSysctl) -> Result<()> {
        self.update(|s| {
            let known = s
                .sysctls
                .iter()
                .any(|p| p.name == entry.name && s.same_machine(p.role(), entry.role()));
            if !known {
                s.sysctls.push(entry);
            }
        })
    }

    /// A sysctl of the machine of `role` is back to its old value.
    pub fn forget_sysctl(&self, role: HostRole, name: &str) -> Result<()> {
        self.update(|s| {
            let kept = std::mem::take(&mut s.sysctls)
                .into_iter()
                .filter(|p| !(p.name == name && s.same_machine(p.role(), role)))
                .collect();
            s.sysctls = kept;
        })
    }

    /// Are the hosts of roles `a` and `b` one machine (see
    /// [`RestoreState::same_machine`])?
    pub fn same_machine(&self, a: HostRole, b: HostRole) -> bool {
        self.inner
            .lock()
            .map(|g| g.1.same_machine(a, b))
            .unwrap_or(a == b)
    }

    /// Note a process started on a real host.
    pub fn record_process(&self, entry: PendingProcess) -> Result<()> {
        self.update(|s| s.processes.push(entry))
    }

    /// A process has been stopped and reaped. A program on an SSH host is
    /// kept: its local `ssh` ending says nothing about it when the
    /// connection dropped (the program runs on); [`RestoreFile::forget_remote`]
    /// drops it once its pidfile is seen gone on the host.
    pub fn forget_process(&self, pid: u32) -> Result<()> {
        self.update(|s| {
            s.processes
                .retain(|p| p.pid != pid || p.remote_pidfile.is_some())
        })
    }

    /// The pidfiles of the programs noted on the host of `role`.
    pub fn remote_pidfiles(&self, role: HostRole) -> Vec<String> {
        self.inner
            .lock()
            .map(|g| {
                g.1.processes
                    .iter()
                    .filter(|p| p.role() == role)
                    .filter_map(|p| p.remote_pidfile.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Programs whose pidfiles are gone from their host have ended.
    pub fn forget_remote(&self, role: HostRole, gone: &[String]) -> Result<()> {
        self.update(|s| {
            s.processes.retain(|p| {
                !(p.role() == role && p.remote_pidfile.as_ref().is_some_and(|f| gone.contains(f)))
            })
        })
    }

    /// Note a run id (its containers carry it as a label).
    pub fn record_run(&self, run_id: &str) -> Result<()> {
        self.update(|s| s.runs.push(run_id.to_string()))
    }

    /// Note the identities of the lab's machines (locked by this run), and
    /// which role is which machine.
    pub fn record_machines(&self, machines: &[String], roles: &[(HostRole, String)]) -> Result<()> {
        self.update(|s| {
            s.machines = machines.to_vec();
            s.roles = roles
                .iter()
                .map(|(role, machine)| RoleMachine {
                    side: role.side,
                    index: role.index,
                    machine: machine.clone(),
                })
                .collect();
        })
    }

    /// Note the directory of the lab's SSH control sockets.
    pub fn record_control_dir(&self, dir: &Path) -> Result<()> {
        self.update(|s| s.control_dir = Some(dir.to_path_buf()))
    }

    /// The run is over: local processes that are gone are dropped, and
    /// the file is removed when nothing is left to undo (else it stays for
    /// `twlab clean`).
    pub fn finish(&self) -> Result<()> {
        let mut guard = self
            .inner
            .lock()
            .map_err(|_| Error::env("restore journal lock poisoned"))?;
        let (path, state) = &mut *guard;
        state
            .processes
            .retain(|p| p.remote_pidfile.is_some() || start_ticks(p.pid) == Some(p.start_ticks));
        save_or_remove(path, state)
    }

    pub fn path(&self) -> PathBuf {
        self.inner.lock().map(|g| g.0.clone()).unwrap_or_default()
    }
}

/// Write `state` to `path` atomically (temp file, fsync, rename).
fn write_state(path: &Path, state: &RestoreState) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_vec_pretty(state)
        .map_err(|e| Error::env(format!("cannot encode the restore journal: {e}")))?;
    let mut f = std::fs::File::create(&tmp).map_err(|e| Error::io(tmp.display(), e))?;
    f.write_all(&text)
        .and_then(|_| f.sync_all())
        .map_err(|e| Error::io(tmp.display(), e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path.display(), e))
}

/// Journals left on this machine, with their paths.
pub fn list() -> Vec<(PathBuf, RestoreState)> {
    let Ok(entries) = std::fs::read_dir(state_dir()) else {
        return Vec::new();
    };
    let mut out: Vec<(PathBuf, RestoreState)> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .filter_map(|p| {
            let text = std::fs::read_to_string(&p).ok()?;
            let state = serde_json::from_str(&text).ok()?;
            Some((p, state))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Refuse a new lab on a machine where a run that died (its owner is gone,
/// `twlab clean` was not run) left changes not undone: the new run would
/// read the dead run's values as the machine's own and "restore" them at
/// its end. `clean` puts them back first.
pub fn refuse_dead_journals(spec: &LabSpec) -> Result<()> {
    let machines: Vec<String> = spec
        .hosts
        .roles()
        .iter()
        .map(|(_, h)| h.machine_key())
        .collect();
    for (path, state) in list() {
        if owner_alive(&state) {
            // A live run on one of these machines holds its lock already.
            continue;
        }
        let shared: Vec<String> = state
            .lab
            .hosts
            .roles()
            .into_iter()
            .map(|(_, h)| h)
            .filter(|h| machines.contains(&h.machine_key()))
            .map(|h| h.describe())
            .collect();
        if let Some(host) = shared.first() {
            return Err(dead_journal_error(&path, &state, host));
        }
    }
    Ok(())
}

/// [`refuse_dead_journals`] by identity, once the hosts are connected: a
/// dead run's journal on one of `machines` (it may have named the machine
/// another way) is refused too. The journal of the lab `own` is skipped.
pub fn refuse_dead_journals_on(machines: &[String], own: &str) -> Result<()> {
    for (path, state) in list() {
        if state.lab_id == own || owner_alive(&state) {
            continue;
        }
        if let Some(machine) = state.machines.iter().find(|m| machines.contains(m)) {
            let host = format!("the machine {machine}");
            return Err(dead_journal_error(&path, &state, &host));
        }
    }
    Ok(())
}

fn dead_journal_error(path: &Path, state: &RestoreState, host: &str) -> Error {
    Error::env(format!(
        "a twlab run that was killed (PID {}, started {}) left changes on {host} that are not undone yet ({} sysctl(s), {} process(es) in the restore journal {}); a new run would take its values for the machine's own: run `twlab clean` first",
        state.owner_pid,
        state.started_at,
        state.sysctls.len(),
        state.processes.len(),
        path.display()
    ))
}

/// Rewrite a journal after `clean` undid part of it, or remove it when
/// nothing is left.
pub fn save_or_remove(path: &Path, state: &RestoreState) -> Result<()> {
    if state.sysctls.is_empty() && state.processes.is_empty() {
        std::fs::remove_file(path).map_err(|e| Error::io(path.display(), e))
    } else {
        write_state(path, state)
    }
}

/// Is the owner of a journal a live process (other than this one), and the
/// same process that wrote it (its start time, when recorded)?
pub fn owner_alive(state: &RestoreState) -> bool {
    let pid = state.owner_pid;
    if pid == 0 || pid > i32::MAX as u32 || pid == std::process::id() {
        return false;
    }
    let started = start_ticks(pid);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None).is_ok()
        && started.is_some()
        && state.owner_start_ticks.is_none_or(|t| Some(t) == started)
}

/// Start time of a process in clock ticks since boot (`/proc/PID/stat`
/// field 22), `None` when it is gone.
pub fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    // Field 3 (state) is the first after ") "; field 22 is index 19 here.
    rest.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_journal_survives_on_disk_until_everything_is_undone() {
        let dir = tempfile::tempdir().unwrap();
        // SAFETY-free: tests in this module are the only users of the variable
        // in this process and run the whole cycle in one test.
        unsafe { std::env::set_var("TWLAB_STATE_DIR", dir.path()) };
        let lab: LabSpec = serde_yaml_ng::from_str("hosts:\n  server: {}\n  client: {}\n").unwrap();
        let file = RestoreFile::create("abc123", &lab).unwrap();
        file.record_sysctl(PendingSysctl {
            side: Side::Server,
            index: 0,
            name: "net.ipv4.tcp_tw_reuse".into(),
            before: "2".into(),
        })
        .unwrap();
        // A second change of the same key on that machine, by either side,
        // keeps the machine's own value.
        file.record_sysctl(PendingSysctl {
            side: Side::Client,
            index: 0,
            name: "net.ipv4.tcp_tw_reuse".into(),
            before: "1".into(),
        })
        .unwrap();
        let listed = list();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].1.sysctls.len(), 1);
        assert_eq!(listed[0].1.sysctls[0].before, "2");
        assert!(
            !owner_alive(&listed[0].1),
            "our own journal is not another live owner"
        );
        file.finish().unwrap();
        assert_eq!(list().len(), 1, "kept while a sysctl is not restored");
        file.forget_sysctl(HostRole::client(0), "net.ipv4.tcp_tw_reuse")
            .unwrap();
        file.finish().unwrap();
        assert!(list().is_empty());
        unsafe { std::env::remove_var("TWLAB_STATE_DIR") };
    }

    fn state(lab: &str) -> RestoreState {
        RestoreState::new("abc123", &serde_yaml_ng::from_str(lab).unwrap())
    }

    /// Two roles are one machine by their identities once recorded (a lab
    /// file may name one machine two ways), else by their destinations.
    #[test]
    fn roles_are_one_machine_by_identity_else_by_destination() {
        let two_names = "hosts:\n  server: { ssh: root@a }\n  client: { ssh: root@alias-of-a }\n";
        let mut s = state(two_names);
        assert!(!s.same_machine(HostRole::SERVER, HostRole::client(0)));
        s.roles = vec![
            RoleMachine {
                side: Side::Server,
                index: 0,
                machine: "boot-x-net-1".into(),
            },
            RoleMachine {
                side: Side::Client,
                index: 0,
                machine: "boot-x-net-1".into(),
            },
        ];
        assert!(s.same_machine(HostRole::SERVER, HostRole::client(0)));
        s.roles[1].machine = "boot-y-net-1".into();
        assert!(!s.same_machine(HostRole::SERVER, HostRole::client(0)));
        let local = state("hosts:\n  server: {}\n  client: {}\n");
        assert!(local.same_machine(HostRole::SERVER, HostRole::client(0)));
        assert!(
            !local.same_machine(HostRole::SERVER, HostRole::client(3)),
            "no such host"
        );
    }

    /// A journal written before hosts were named by role (each sysctl with
    /// the host's display text, no index) still reads, by role.
    #[test]
    fn a_journal_of_the_old_format_reads_by_role() {
        let path = format!(
            "{}/tests/fixtures/restore/display_text_journal.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap();
        let old: RestoreState = serde_json::from_str(&text).unwrap();
        let roles: Vec<HostRole> = old.sysctls.iter().map(PendingSysctl::role).collect();
        assert_eq!(roles, [HostRole::SERVER, HostRole::client(0)]);
        assert!(old.roles.is_empty());
        assert!(old.same_machine(HostRole::SERVER, HostRole::client(0)));
    }

    #[test]
    fn start_ticks_reads_this_process() {
        assert!(start_ticks(std::process::id()).is_some());
        assert!(start_ticks(u32::MAX).is_none());
    }
}
