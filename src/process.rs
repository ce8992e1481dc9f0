//! Child processes that are always stopped and reaped.
//!
//! Every long-lived process twlab starts (server, load client) gets its own
//! process group, so a Ctrl-C in the terminal reaches twlab alone and twlab
//! decides how to stop them, and so a stop reaches everything the child
//! spawned. Stopping follows cargo-nextest: a signal (SIGTERM, or SIGINT for
//! wrk, which prints its results on SIGINT), a grace period, then SIGKILL to
//! the group, then wait so no zombie is left. Dropping a [`Supervised`] that
//! was not stopped kills its group.

use crate::error::{CommandError, Error, Result, display_argv, ended_text, stderr_text};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};

/// How long a child gets to stop after the polite signal.
pub const GRACE: Duration = Duration::from_secs(3);

/// Delivers a signal to a process that is not a local child's group: the
/// program an `ssh` child runs on a remote host (signalling the local `ssh`
/// would not reach it). Called with every signal [`Supervised`] sends.
pub type Signaller = std::sync::Arc<dyn Fn(Signal) + Send + Sync>;

/// A running child in its own process group.
pub struct Supervised {
    child: Child,
    pgid: Option<Pid>,
    command: String,
    stderr_log: PathBuf,
    stdout: Option<tokio::task::JoinHandle<Vec<u8>>>,
    remote: Option<Signaller>,
    remote_pidfile: Option<String>,
}

impl Supervised {
    /// Start `argv` via `cmd` (already carrying the argv, e.g. wrapped by a
    /// host), with stderr appended to `stderr_log` and stdout captured when
    /// `capture_stdout` (otherwise discarded).
    pub fn spawn(
        mut cmd: Command,
        argv_for_display: &[String],
        stderr_log: &Path,
        capture_stdout: bool,
    ) -> Result<Supervised> {
        let command = display_argv(argv_for_display);
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(stderr_log)
            .map_err(|e| Error::io(stderr_log.display(), e))?;
        cmd.process_group(0)
            .stdin(Stdio::null())
            .stdout(if capture_stdout {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| CommandError {
            command: command.clone(),
            status: None,
            stderr: format!("cannot start: {e}"),
        })?;
        let pgid = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .map(Pid::from_raw);
        let stdout = child.stdout.take().map(|mut out| {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                // A read error only truncates what we parse; the exit status still tells.
                let _ = out.read_to_end(&mut buf).await;
                buf
            })
        });
        Ok(Supervised {
            child,
            pgid,
            command,
            stderr_log: stderr_log.to_path_buf(),
            stdout,
            remote: None,
            remote_pidfile: None,
        })
    }

    /// Also deliver every signal through `signaller` (the remote program of
    /// an `ssh` child). The local group still gets SIGKILL, so the `ssh`
    /// process itself never outlives a stop.
    pub fn with_signaller(mut self, signaller: Signaller) -> Self {
        self.remote = Some(signaller);
        self
    }

    /// Note the remote file holding the remote program's PID (for
    /// `twlab clean` after a crash).
    pub fn with_remote_pidfile(mut self, path: String) -> Self {
        self.remote_pidfile = Some(path);
        self
    }

    /// Does the program run on another machine (through `ssh`)? Its CPU
    /// time is then not this machine's to read.
    pub fn is_remote(&self) -> bool {
        self.remote.is_some()
    }

    /// The remote file holding the remote program's PID, if remote.
    pub fn remote_pidfile(&self) -> Option<&str> {
        self.remote_pidfile.as_deref()
    }

    pub fn command(&self) -> &str {
        &self.command
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Has it exited already? Returns its status if so.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Send a signal to the whole group (for a remote program: to it,
    /// through its signaller; the local `ssh` gets SIGKILL only).
    pub fn signal(&self, sig: Signal) {
        if let Some(remote) = &self.remote {
            if self.pgid.is_some() {
                remote(sig);
            }
            if sig != Signal::SIGKILL {
                return;
            }
        }
        if let Some(pgid) = self.pgid {
            // ESRCH (already gone) is fine.
            let _ = killpg(pgid, sig);
        }
    }

    /// Wait for exit; returns the status and captured stdout.
    pub async fn wait(&mut self) -> Result<(ExitStatus, Vec<u8>)> {
        let status = self
            .child
            .wait()
            .await
            .map_err(|e| Error::env(format!("waiting for `{}`: {e}", self.command)))?;
        // Whatever the group leader left behind goes too (locally: a remote
        // program has ended when its ssh has).
        if let Some(pgid) = self.pgid.take() {
            let _ = killpg(pgid, Signal::SIGKILL);
        }
        // Await the reader in place and take it only once it is done, so a
        // caller that cancels this future (a select! loop) loses nothing.
        let out = match self.stdout.as_mut() {
            Some(h) => {
                let out = h.await.unwrap_or_default();
                self.stdout = None;
                out
            }
            None => Vec::new(),
        };
        Ok((status, out))
    }

    /// Stop politely with `first`, then SIGKILL after `grace`; always reaps.
    pub async fn stop(&mut self, first: Signal, grace: Duration) -> Result<(ExitStatus, Vec<u8>)> {
        if self.try_status().is_none() {
            self.signal(first);
            if tokio::time::timeout(grace, self.child.wait())
                .await
                .is_err()
            {
                self.signal(Signal::SIGKILL);
            }
        }
        self.wait().await
    }

    /// The last lines the child wrote on stderr, for error messages.
    pub fn stderr_tail(&self, lines: usize) -> String {
        tail(&self.stderr_log, lines)
    }

    /// An error for a child that ended when it should not have: how it
    /// ended (the signal that killed it, or its exit status) and the last
    /// lines of its log, named by path (the run directory's
    /// `<variant>-r<N>-server.log` / `-client.log`).
    pub fn died(&self, status: ExitStatus) -> Error {
        let how = match status.code() {
            Some(0) => "exited with status 0 while it should still have been running".to_string(),
            _ => ended_text(status),
        };
        Error::env(format!(
            "command failed: `{}` {how}{}",
            self.command,
            log_tail_text(&self.stderr_log, &self.stderr_tail(20))
        ))
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        if let Some(pgid) = self.pgid {
            if let Some(remote) = &self.remote {
                remote(Signal::SIGKILL);
            }
            let _ = killpg(pgid, Signal::SIGKILL);
        }
    }
}

/// Make the child of `cmd` die with twlab (PR_SET_PDEATHSIG, SIGKILL), for
/// programs that run on this machine: a `kill -9` of twlab then ends the
/// server or client it was starting or running, even one not journaled yet.
/// Not for the `ssh` of a program on another host: its death would not end
/// the remote program (that one is ended through its pidfile, by twlab or
/// by `twlab clean`), only cut twlab's view of it. The kernel sends the
/// signal when the *thread* that spawned the child ends: twlab spawns from
/// its runtime's threads, which live as long as twlab. Dropped by the
/// kernel across the exec of a set-user-ID program (`sudo`). Only the
/// child itself gets it: what it forked itself is ended through its
/// process group (by twlab or from the restore journal by `clean`).
pub fn die_with_twlab(cmd: &mut Command) {
    let parent = std::process::id();
    // SAFETY: between fork and exec only async-signal-safe system calls
    // (prctl, getppid), no allocation, no lock.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) == -1
            {
                return Err(std::io::Error::last_os_error());
            }
            // twlab died before the prctl: nobody would send the signal.
            if libc::getppid() as u32 != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

/// CPU time (user + system, all threads) a live process has used, from
/// `/proc/PID/stat`; `None` once it is gone.
pub fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at ") ".
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok()??;
    Some(ticks / hz as f64)
}

/// The tail of a child's log for a message: its lines indented under the
/// log's path, or that the log is empty.
fn log_tail_text(log: &Path, tail: &str) -> String {
    if tail.trim().is_empty() {
        format!("\n  its log {} is empty", log.display())
    } else {
        format!(
            "\n  last lines of {}:\n    {}",
            log.display(),
            tail.trim_end().replace('\n', "\n    ")
        )
    }
}

/// The last `lines` lines of a file (empty when unreadable).
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Run a short command to completion and return its stdout; a failure
/// carries the command line and its stderr.
pub async fn output(mut cmd: Command, argv_for_display: &[String]) -> Result<String> {
    let command = display_argv(argv_for_display);
    // Its own process group, like every child: a Ctrl-C in the terminal goes
    // to twlab alone, which decides what stops (a `conntrack -L` or an
    // `ip netns del` cut short by SIGINT would lose a sample or a cleanup).
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let child = cmd.spawn().map_err(|e| CommandError {
        command: command.clone(),
        status: None,
        stderr: format!("cannot start: {e}"),
    })?;
    // A caller that gives up (a sample's timeout, a Ctrl-C) drops this
    // future: kill_on_drop ends the child, the guard its whole group (a
    // wrapper's own children would outlive it otherwise).
    let group = GroupGuard(
        child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .map(Pid::from_raw),
    );
    let out = child.wait_with_output().await.map_err(|e| CommandError {
        command: command.clone(),
        status: None,
        stderr: format!("waiting for it: {e}"),
    });
    group.disarm();
    let out = out?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else if out.status.code().is_none() {
        // Killed by a signal: no exit status to carry, so the message
        // names the signal.
        Err(Error::env(format!(
            "command failed: `{command}` {}{}",
            ended_text(out.status),
            stderr_text(&String::from_utf8_lossy(&out.stderr))
        )))
    } else {
        Err(Error::Command(CommandError {
            command,
            status: out.status.code(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }))
    }
}

/// Run a command for what it prints, whatever its exit status (a tool's
/// `--version`), for at most `limit`: `None` when it cannot start or does
/// not end in time (then it and its process group are killed).
pub async fn output_within(mut cmd: Command, limit: Duration) -> Option<std::process::Output> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let child = cmd.spawn().ok()?;
    let group = GroupGuard(
        child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .map(Pid::from_raw),
    );
    let out = tokio::time::timeout(limit, child.wait_with_output()).await;
    match out {
        Ok(out) => {
            group.disarm();
            out.ok()
        }
        // The guard kills the group; kill_on_drop has killed the child.
        Err(_) => None,
    }
}

/// Kills a process group when dropped, unless disarmed first.
struct GroupGuard(Option<Pid>);

impl GroupGuard {
    /// The leader has been reaped: its group id may be reused, so it must
    /// not be signalled any more.
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            let _ = killpg(pgid, Signal::SIGKILL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stop_escalates_to_sigkill_and_reaps_the_group() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("err.log");
        // A shell that ignores SIGTERM and has a child of its own.
        let argv: Vec<String> = ["sh", "-c", "trap '' TERM; sleep 30 & wait"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]);
        let mut child = Supervised::spawn(cmd, &argv, &log, false).unwrap();
        let pgid = child.pid().unwrap() as i32;
        let started = std::time::Instant::now();
        let (status, _) = child
            .stop(Signal::SIGTERM, Duration::from_millis(300))
            .await
            .unwrap();
        assert!(!status.success());
        assert!(started.elapsed() < Duration::from_secs(5));
        // Nothing of the group is left (the orphaned `sleep` is reaped by
        // init, which may take a moment on a loaded machine).
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while killpg(Pid::from_raw(pgid), None).is_ok() {
            assert!(std::time::Instant::now() < deadline, "group still alive");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    #[tokio::test]
    async fn a_command_killed_by_a_signal_is_said_so() {
        let argv: Vec<String> = ["sh", "-c", "echo dying >&2; kill -KILL $$"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]);
        let err = output(cmd, &argv).await.unwrap_err().to_string();
        assert!(err.contains("was killed by signal 9 (SIGKILL)"), "{err}");
        assert!(err.contains("dying"), "{err}");
    }

    #[tokio::test]
    async fn a_supervised_child_killed_by_a_signal_names_it_and_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("x-r1-server.log");
        let argv: Vec<String> = ["sh", "-c", "echo up >&2; kill -TERM $$"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]);
        let mut child = Supervised::spawn(cmd, &argv, &log, false).unwrap();
        let (status, _) = child.wait().await.unwrap();
        let err = child.died(status).to_string();
        assert!(err.contains("was killed by signal 15 (SIGTERM)"), "{err}");
        assert!(!err.contains("status 0"), "{err}");
        assert!(
            err.contains(&format!("last lines of {}", log.display())),
            "{err}"
        );
        assert!(err.contains("\n    up"), "{err}");
    }

    #[tokio::test]
    async fn a_failing_command_carries_its_stderr() {
        let argv: Vec<String> = ["sh", "-c", "echo boom >&2; exit 7"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]);
        let err = output(cmd, &argv).await.unwrap_err().to_string();
        assert!(err.contains("exited with status 7"), "{err}");
        assert!(err.contains("boom"), "{err}");
        assert!(err.contains("sh -c 'echo boom >&2; exit 7'"), "{err}");
    }
}
