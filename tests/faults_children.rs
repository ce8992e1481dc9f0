//! A child of a run that dies of a signal is reported with that signal
//! (issue 23): real runs of the embedded lab with the builtin server, whose
//! `twlab serve` process the test signals itself mid-load (SIGKILL, SIGTERM:
//! both are what an OOM killer, an operator or a stray `pkill` send). The
//! run must end with exit 3, name the signal, never claim "exited with
//! status 0", and carry the last lines of the server's log with its path.
//! nextest runs these with the lab tests, one at a time.

mod common;

use common::*;
use nix::sys::signal::Signal;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Runs of this build's binary that name this test's directory.
struct Fixture {
    tmp: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture {
            tmp: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// `twlab run` of a 30 s builtin load into `run/`, stdout and stderr
    /// in files (a pipe nobody reads would block twlab).
    fn spawn(&self) -> (Child, PathBuf) {
        let scenario = self.path().join("load.yaml");
        std::fs::write(
            &scenario,
            "name: signal\nserver: { kind: builtin, port: 8080, max_keepalive_requests: 10 }\nclient: { tool: builtin, connections: 10, threads: 1, duration: 30s }\ncollect: { interval: 250ms, sockets: true, conntrack: false }\nvariants:\n  - name: default\n",
        )
        .expect("scenario");
        let out = self.path().join("run");
        let file = |n: &str| std::fs::File::create(self.path().join(n)).expect("log file");
        let child = twlab()
            .arg("run")
            .arg(&scenario)
            .arg("--out")
            .arg(&out)
            .stdin(Stdio::null())
            .stdout(file("stdout"))
            .stderr(file("stderr"))
            .spawn()
            .expect("twlab run starts");
        (child, out)
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.path().join("stderr")).unwrap_or_default()
    }
}

/// The `twlab serve` that the run `parent` started (`ip netns exec` execs
/// it in place, so it is twlab's own child).
fn server_of(parent: u32) -> Option<i32> {
    let exe = env!("CARGO_BIN_EXE_twlab");
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = raw.split(|b| *b == 0).collect();
        if args.first() != Some(&exe.as_bytes()) || args.get(1) != Some(&&b"serve"[..]) {
            continue;
        }
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // The parent PID is the second field after the command name.
        let ppid = stat
            .rfind(')')
            .and_then(|i| stat[i + 2..].split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(parent) {
            return Some(pid);
        }
    }
    None
}

fn sample_lines(out: &Path) -> usize {
    std::fs::read_to_string(out.join("samples.jsonl"))
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

fn wait_exit(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("twlab did not end within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Start a run, send `sig` to its server once samples flow, and return
/// twlab's stderr after checking exit 3, that it `said` how the server
/// died, a quick end, the server's log named with its last line, and no
/// namespace of the run left.
fn server_signalled_mid_load(sig: Signal, said: &str) -> String {
    let fx = Fixture::new();
    let (mut child, out) = fx.spawn();
    let deadline = Instant::now() + Duration::from_secs(30);
    let server = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            panic!("twlab ended ({status}) before the load: {}", fx.stderr());
        }
        if sample_lines(&out) >= 8
            && let Some(pid) = server_of(child.id())
        {
            break pid;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("no load within 30 s: {}", fx.stderr());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let namespaces = namespaces_owned_by(child.id());
    assert_eq!(namespaces.len(), 2, "{namespaces:?}");
    let signalled = Instant::now();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(server), sig).expect("signal the server");
    let status = wait_exit(&mut child, Duration::from_secs(30));
    let stderr = fx.stderr();
    assert_eq!(status.code(), Some(3), "{stderr}");
    assert!(stderr.contains(said), "the signal is not named: {stderr}");
    assert!(
        signalled.elapsed() < Duration::from_secs(20),
        "the load ran on after the server died: {:?}",
        signalled.elapsed()
    );
    assert!(
        !stderr.contains("exited with status 0"),
        "a signal death told as a clean exit: {stderr}"
    );
    let log = out.join("default-r1-server.log");
    assert!(
        stderr.contains(&format!("last lines of {}", log.display())),
        "the server's log is not named: {stderr}"
    );
    assert!(
        stderr.contains("twlab serve: listening on"),
        "the server's last output is missing: {stderr}"
    );
    assert_nothing_left(&namespaces, Vec::new, None);
    stderr
}

#[test]
fn a_server_killed_by_sigkill_mid_load_is_reported_with_the_signal() {
    if !require_root("a_server_killed_by_sigkill_mid_load_is_reported_with_the_signal") {
        return;
    }
    server_signalled_mid_load(Signal::SIGKILL, "was killed by signal 9 (SIGKILL)");
}

#[test]
fn a_server_stopped_by_sigterm_mid_load_is_reported_with_the_signal() {
    if !require_root("a_server_stopped_by_sigterm_mid_load_is_reported_with_the_signal") {
        return;
    }
    let stderr = server_signalled_mid_load(Signal::SIGTERM, "was killed by signal 15 (SIGTERM)");
    assert!(
        stderr.contains("twlab serve: stopped by SIGTERM"),
        "the server's own last word is missing: {stderr}"
    );
}
