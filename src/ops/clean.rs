//! `twlab clean`: remove what a killed run left behind.
//!
//! Every namespace twlab makes is named `twlab-<runid>-<role>`, like
//! containerlab's labels, so leftovers are found by name after a crash or a
//! `kill -9`. The processes inside them are twlab's own (server, client) and
//! are stopped before the namespace is deleted; the veth ends go with it.
//! A lab whose owner file (`/run/twlab/<runid>.pid`) names a live twlab
//! belongs to a run in progress and is left alone unless `--force`.
//!
//! A name that starts with `twlab-` proves nothing: anyone can
//! `ip netns add twlab-mine`, and deleting a namespace kills what runs in
//! it. So without `--force` a namespace is removed only when twlab can
//! prove it is a dead run's: its name is `twlab-<runid>-<role>` with a run
//! id as twlab makes them ([`run_id::is_run_id`]) AND the owner file of that
//! run exists and names a twlab that has ended (PID and start time). Every
//! twlab lab writes its owner file before it makes a namespace and leaves
//! it in place when it is killed or keeps its lab (`--keep`); it removes it
//! only with the lab. Anything else is left and said why; `--force`
//! removes it.
//!
//! Real hosts leave a restore journal instead ([`crate::lab::restore`]): for
//! each journal whose owner is dead, under the locks of its machines (by the
//! lab file's destination, then by identity once each host is connected,
//! so a live run reaching one by another name is left alone; one lock when
//! both roles are one machine), `clean` ends the processes it lists
//! (checking their start time, so a recycled PID is never hit), reconnects
//! to the hosts and puts every sysctl back, removes the containers labelled
//! with the journal's runs on each host's engine (server and client), and
//! deletes the journal once nothing is left.
//! Containers labelled `twlab.run` on this machine's engine whose run is not
//! live are removed too, and so are the Swarm services labelled so when
//! that engine is a Swarm manager (first: their containers, on every node,
//! go with them; an engine outside a swarm has none, which is no error).

use crate::common::endpoint::HostRole;
use crate::docker::Engine;
use crate::docker::swarm::Swarm;
use crate::error::Result;
use crate::lab::real::{self, RealHost};
use crate::lab::restore::{self, RestoreState};
use crate::lab::{self, lock, netns, run_id};
use crate::scenario::SysctlName;
use crate::scenario::labfile::HostSpec;
use std::path::Path;

/// What `clean` did.
#[derive(Debug, Default)]
pub struct Cleaned {
    pub removed: Vec<String>,
    /// What was left alone, and why.
    pub left: Vec<Left>,
    /// What could not be undone (kept in the journal for another try).
    pub failed: Vec<String>,
}

/// Something `clean` left in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Left {
    /// What it is: "netns twlab-…", "real lab …".
    pub what: String,
    /// Why it was left.
    pub why: String,
    /// Would `twlab clean --force` remove it? Not when a live run holds
    /// the machine's lock: `--force` does not take a lock from a live run.
    pub force_removes: bool,
}

impl Left {
    /// The line `twlab clean` prints for it. `--force` is suggested only
    /// when it was not given and would remove it; otherwise the reason
    /// stands alone.
    pub fn line(&self, forced: bool) -> String {
        if self.force_removes && !forced {
            format!(
                "left {} ({}); `twlab clean --force` removes it",
                self.what, self.why
            )
        } else {
            format!("left {}: {}", self.what, self.why)
        }
    }
}

/// Why a real lab held by a live run's lock is left, with or without
/// `--force`.
const LIVE_LOCK: &str = "`--force` does not take a machine from a live run: `twlab clean` undoes this journal once that run has ended";

/// Why a namespace cannot be proved a dead twlab run's, if it cannot.
fn not_provably_dead(name: &str) -> Option<String> {
    let Some(id) = netns::run_id_of(name).filter(|id| run_id::is_run_id(id)) else {
        return Some("not provably twlab's: not a twlab run id".into());
    };
    match run_id::owner_of(id) {
        run_id::Owner::Dead => None,
        run_id::Owner::Live(pid) => Some(format!("in use by twlab PID {pid}")),
        run_id::Owner::Missing => Some(format!(
            "not provably twlab's: no owner file {}",
            run_id::owner_file(id).display()
        )),
        run_id::Owner::Unreadable => Some(format!(
            "not provably twlab's: its owner file {} names no process",
            run_id::owner_file(id).display()
        )),
    }
}

/// Remove every labelled leftover that is provably a dead twlab run's (see
/// the module doc); with `force`, every one, live or not.
pub async fn clean(force: bool) -> Result<Cleaned> {
    lab::require_privileges()?;
    let mut done = Cleaned::default();
    for name in netns::labelled_netns().await? {
        if !force && let Some(why) = not_provably_dead(&name) {
            done.left.push(Left {
                what: format!("netns {name}"),
                why,
                force_removes: true,
            });
            continue;
        }
        netns::remove_netns(&name).await;
        done.removed.push(format!("netns {name}"));
    }
    for (path, state) in restore::list() {
        if !force && restore::owner_alive(&state) {
            done.left.push(Left {
                what: format!("real lab {}", state.lab_id),
                why: format!("in use by twlab PID {}", state.owner_pid),
                force_removes: true,
            });
            continue;
        }
        // A live run on the same machines would have its own changes
        // undone by this journal's old values: wait until it ends. By
        // destination here; by identity once each host is connected (a
        // live run may name the machine another way). `--force` does not
        // override this: the lock's holder is alive by definition.
        let _locks = match crate::lab::lock::lock_destinations(&state.lab, "twlab clean") {
            Ok(locks) => locks,
            Err(e) => {
                done.left.push(Left {
                    what: format!("real lab {}", state.lab_id),
                    why: format!("{e}; {LIVE_LOCK}"),
                    force_removes: false,
                });
                continue;
            }
        };
        undo_journal(&path, state, &mut done).await;
    }
    if let Ok(engine) = Engine::local().await {
        remove_services(&engine, force, &mut done).await;
        match engine.labelled_runs().await {
            Ok(runs) => {
                for run in runs {
                    if !force && run_id::live_owner(&run).is_some() {
                        continue;
                    }
                    remove_containers(&engine, &run, &mut done).await;
                }
            }
            Err(e) => done.failed.push(format!("listing containers: {e}")),
        }
    }
    // Owner files of runs that died and whose namespaces are gone by now
    // (one that could not be deleted keeps its file, the proof for another
    // try); a live run's stays.
    let remaining: Vec<String> = netns::labelled_netns().await.unwrap_or_default();
    if let Ok(entries) = std::fs::read_dir(run_id::OWNER_DIR) {
        for path in entries.flatten().map(|e| e.path()) {
            let Some(run) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".pid"))
            else {
                continue;
            };
            let has_netns = remaining.iter().any(|n| netns::run_id_of(n) == Some(run));
            if !has_netns
                && run_id::live_owner(run).is_none()
                && std::fs::remove_file(&path).is_ok()
            {
                done.removed.push(format!("owner file {}", path.display()));
            }
        }
    }
    Ok(done)
}

/// Tell every SSH control master whose socket is in `dir` to exit (a
/// killed twlab leaves them running until their idle timeout).
fn stop_ssh_masters(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        // Control sockets may sit one level down (one directory per master).
        if kind.is_dir() {
            stop_ssh_masters(&path);
        } else if std::os::unix::fs::FileTypeExt::is_socket(&kind) {
            let _ = std::process::Command::new("ssh")
                .arg("-S")
                .arg(&path)
                .args(["-O", "exit", "twlab-lab"])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

/// Remove the labelled Swarm services of runs that are not live (all with
/// `force`) when `engine` is a Swarm manager.
async fn remove_services(engine: &Engine, force: bool, done: &mut Cleaned) {
    let swarm = match Swarm::if_manager(engine).await {
        Ok(Some(swarm)) => swarm,
        Ok(None) => return,
        Err(e) => {
            done.failed.push(format!("swarm services: {e}"));
            return;
        }
    };
    let runs = match swarm.labelled_runs().await {
        Ok(runs) => runs,
        Err(e) => {
            done.failed.push(format!("listing services: {e}"));
            return;
        }
    };
    for run in runs {
        if !force && run_id::live_owner(&run).is_some() {
            continue;
        }
        match swarm.remove_labelled(Some(&run)).await {
            Ok(names) => done.removed.extend(
                names
                    .into_iter()
                    .map(|n| format!("service {n} (swarm of the {})", engine.describe)),
            ),
            Err(e) => done.failed.push(format!("services of run {run}: {e}")),
        }
    }
}

async fn remove_containers(engine: &Engine, run: &str, done: &mut Cleaned) {
    match engine.remove_labelled(Some(run)).await {
        Ok(names) => done.removed.extend(
            names
                .into_iter()
                .map(|n| format!("container {n} ({})", engine.describe)),
        ),
        Err(e) => done.failed.push(format!("containers of run {run}: {e}")),
    }
}

/// Undo what one journal lists; rewrite it with what is left.
async fn undo_journal(path: &Path, mut state: RestoreState, done: &mut Cleaned) {
    // Local children first: the server, the client, the ssh of a remote one.
    state.processes.retain(|p| {
        // A PID from a file: positive and a single process, never a group.
        let single = p.pid > 0 && p.pid <= i32::MAX as u32;
        if single && restore::start_ticks(p.pid) == Some(p.start_ticks) {
            let pid = nix::unistd::Pid::from_raw(p.pid as i32);
            let _ = nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGKILL);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            done.removed
                .push(format!("process {} `{}`", p.pid, p.command));
        }
        p.remote_pidfile.is_some()
    });
    let control_dir = match tempfile::Builder::new().prefix("twlab-ssh-").tempdir() {
        Ok(d) => d,
        Err(e) => {
            done.failed.push(format!("{}: {e}", path.display()));
            return;
        }
    };
    // Held until the journal is undone.
    let mut machine_locks: Vec<(String, lock::HostLock)> = Vec::new();
    // Each host by its role (the server, client host i): a journal entry
    // names the host it was made on. Undone newest first, as a run undoes
    // them: the role whose last entry is newest goes first. Two roles may
    // be one machine under two names (`root@h`, an alias) and both set one
    // key; then the later role's old value is the earlier one's written
    // value, and only the earlier role's restore, last, gives the machine
    // its own value back.
    let mut roles: Vec<(HostRole, HostSpec)> = state
        .lab
        .hosts
        .roles()
        .into_iter()
        .map(|(role, h)| (role, h.clone()))
        .collect();
    let newest = |role: HostRole| state.sysctls.iter().rposition(|s| s.role() == role);
    roles.sort_by_key(|(role, _)| std::cmp::Reverse(newest(*role)));
    for (role, spec) in roles {
        let side = role;
        let needs_host = state.sysctls.iter().any(|s| s.role() == role)
            || state.processes.iter().any(|p| p.role() == role)
            || spec.docker;
        if !needs_host {
            continue;
        }
        let host = match RealHost::connect(&spec, side, control_dir.path()).await {
            Ok(h) => h,
            Err(e) => {
                done.failed
                    .push(format!("{side} host {}: {e}", spec.describe()));
                continue;
            }
        };
        let h = host.as_host();
        // This journal's other host may be the same machine: its lock is
        // held already (by this process), and taking it again would fail.
        let held: Vec<String> = machine_locks.iter().map(|(id, _)| id.clone()).collect();
        let locked = match real::identities(&[&host]).await {
            Ok(ids) => lock::lock_identities(&ids, &held, "twlab clean"),
            Err(e) => Err(e),
        };
        match locked {
            Ok(locks) => machine_locks.extend(locks),
            Err(e) => {
                done.left.push(Left {
                    what: format!("real lab {}, {side} host {}", state.lab_id, h.describe()),
                    why: format!("{e}; {LIVE_LOCK}"),
                    force_removes: false,
                });
                host.close().await;
                continue;
            }
        }
        let mut kept = Vec::new();
        for p in std::mem::take(&mut state.processes) {
            let Some(pidfile) = p.remote_pidfile.as_deref().filter(|_| p.role() == role) else {
                kept.push(p);
                continue;
            };
            // Root signals the PID in that file: CLEAN_KILL acts only on a
            // positive PID in a file of its own user (never `-1` or `0`).
            let argv = crate::lab::ssh::clean_kill_argv(pidfile);
            match h.run(&argv).await {
                Ok(_) => done
                    .removed
                    .push(format!("process `{}` on {}", p.command, h.describe())),
                Err(e) => {
                    done.failed.push(format!("{}: {e}", p.command));
                    kept.push(p);
                }
            }
        }
        state.processes = kept;
        let mut kept = Vec::new();
        for s in std::mem::take(&mut state.sysctls) {
            if s.role() != role {
                kept.push(s);
                continue;
            }
            let written = match SysctlName::parse(&s.name) {
                Ok(name) => h.write_sysctl(&name, &s.before).await,
                Err(e) => Err(crate::error::Error::env(e)),
            };
            match written {
                Ok(()) => done.removed.push(format!(
                    "sysctl {} on {} restored to `{}`",
                    s.name,
                    h.describe(),
                    s.before
                )),
                Err(e) => {
                    done.failed
                        .push(format!("sysctl {} on {}: {e}", s.name, h.describe()));
                    kept.push(s);
                }
            }
        }
        state.sysctls = kept;
        // The server container, a client container (`client.via: docker`).
        if spec.docker {
            match host.docker_engine(control_dir.path()).await {
                Ok(engine) => {
                    for run in &state.runs {
                        remove_containers(&engine, run, done).await;
                    }
                }
                Err(e) => done.failed.push(format!("docker on {}: {e}", h.describe())),
            }
        }
        host.close().await;
    }
    if let Some(dir) = state.control_dir.take() {
        stop_ssh_masters(&dir);
        if std::fs::remove_dir_all(&dir).is_ok() {
            done.removed
                .push(format!("SSH control directory {}", dir.display()));
        }
    }
    match restore::save_or_remove(path, &state) {
        Ok(()) if state.sysctls.is_empty() && state.processes.is_empty() => done
            .removed
            .push(format!("restore journal {}", path.display())),
        Ok(()) => {}
        Err(e) => done.failed.push(e.to_string()),
    }
}

#[cfg(test)]
mod tests;
