//! Real labs on this machine's own namespace (`local` hosts): the sysctls a
//! variant sets are this machine's, so these tests check that twlab puts
//! them back — after a clean run, and after a `kill -9` through
//! `twlab clean` and the on-disk restore journal. Traffic goes to loopback
//! only. Root is needed (CI is root); nextest runs these one at a time.

mod common;

use common::*;
use std::path::Path;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

const PORT: u16 = 18181;

fn write_local_lab(dir: &Path) -> std::path::PathBuf {
    write_lab(
        &dir.join("lab.yaml"),
        &lab_of(
            loopback_server(false),
            vec![this_machine(false)],
            Some(Duration::from_secs(3)),
        ),
    )
}

fn write_scenario(dir: &Path, duration: &str, value: &str) -> std::path::PathBuf {
    let path = dir.join("local.yaml");
    std::fs::write(
        &path,
        format!(
            "name: local\nserver:\n  kind: builtin\n  port: {PORT}\n  max_keepalive_requests: 100\nclient:\n  tool: builtin\n  connections: 10\n  threads: 1\n  duration: {duration}\ncollect:\n  interval: 500ms\n  conntrack: false\nvariants:\n  - name: base\n  - name: changed\n    sysctls:\n      server: {{ net.ipv4.tcp_tw_reuse: {value} }}\n      client: {{ net.ipv4.tcp_tw_reuse: {value} }}\n"
        ),
    )
    .expect("scenario");
    path
}

fn port_is_free() -> bool {
    std::net::TcpListener::bind(("127.0.0.1", PORT)).is_ok()
}

#[test]
fn a_local_lab_runs_both_variants_and_restores_the_machines_sysctls() {
    if !require_root("a_local_lab_runs_both_variants_and_restores_the_machines_sysctls") {
        return;
    }
    assert!(port_is_free(), "port {PORT} is in use on this machine");
    let tmp = tempfile::tempdir().expect("tempdir");
    let state = tmp.path().join("state");
    let _restore = TwReuseGuard::new();
    let before = tw_reuse();
    let lab = write_local_lab(tmp.path());
    let scenario = write_scenario(tmp.path(), "3s", other_than(&before));
    let out = tmp.path().join("run");
    run_expecting(
        twlab()
            .env("TWLAB_STATE_DIR", &state)
            .arg("run")
            .arg(&scenario)
            .arg("--lab")
            .arg(&lab)
            .arg("--out")
            .arg(&out),
        0,
    );
    assert_eq!(
        tw_reuse(),
        before,
        "this machine's tcp_tw_reuse was not restored"
    );
    let summary = read_json(&out.join("summary.json"));
    for v in summary["variants"].as_array().expect("variants") {
        let run = &v["runs"][0];
        assert!(run["error"].is_null(), "{run}");
        let server_tw = run["sockets"]["server"]["final"]["TIME_WAIT"]
            .as_u64()
            .unwrap_or(0);
        assert!(server_tw > 0, "no server TIME_WAIT on loopback: {run}");
    }
    let saved =
        std::fs::read_to_string(out.join("lab.yaml")).expect("lab.yaml in the run directory");
    assert!(saved.contains("127.0.0.1"), "{saved}");
    let env = read_json(&out.join("env.json"));
    assert_eq!(env["lab"], "real");
    assert_eq!(
        env["hosts"]["server"]["sysctls_before"]["net.ipv4.tcp_tw_reuse"],
        before.as_str()
    );
    let change = &env["runs"][1]["sysctls"][0];
    assert_eq!(change["before"], before.as_str(), "{change}");
    assert_eq!(change["after"], other_than(&before), "{change}");
    let report = std::fs::read_to_string(out.join("report.md")).expect("report");
    assert!(
        report.contains("this machine's own network namespace"),
        "{report}"
    );
    // Everything undone: no journal left.
    let left: Vec<_> = std::fs::read_dir(state.join("restore"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "restore journal left: {left:?}");
    assert_eq!(lab_processes(), Vec::<String>::new());
}

/// `twlab run SCENARIO --lab LAB` with its own state directory, sent
/// `signal` once samples are on disk (server and client are up then), after
/// checking that the variant's `tcp_tw_reuse` is in force and that the
/// restore journal names it. Returns the journal's path and twlab's exit
/// status.
fn run_and_signal(
    state: &Path,
    scenario: &Path,
    lab: &Path,
    wanted: &str,
    signal: nix::sys::signal::Signal,
) -> (PathBuf, std::process::ExitStatus) {
    let out = state.with_file_name("run");
    let mut child = twlab()
        .env("TWLAB_STATE_DIR", state)
        .arg("run")
        .arg(scenario)
        .arg("--lab")
        .arg(lab)
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("twlab run starts");
    let deadline = Instant::now() + Duration::from_secs(90);
    while std::fs::read_to_string(out.join("samples.jsonl"))
        .map(|s| s.lines().count() < 4)
        .unwrap_or(true)
    {
        assert!(Instant::now() < deadline, "no samples within 90 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        tw_reuse(),
        wanted,
        "the variant's sysctl is in force mid-run"
    );
    let journal: Vec<_> = std::fs::read_dir(state.join("restore"))
        .expect("a restore journal exists during the run")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(journal.len(), 1, "{journal:?}");
    let text = std::fs::read_to_string(&journal[0]).expect("journal");
    assert!(text.contains("net.ipv4.tcp_tw_reuse"), "{text}");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal)
        .expect("signal twlab");
    let status = child.wait().expect("twlab ends");
    (journal[0].clone(), status)
}

/// As [`run_and_signal`] with SIGKILL: the sysctl twlab set is still in
/// force afterwards.
fn run_and_kill_9(state: &Path, scenario: &Path, lab: &Path, wanted: &str) -> PathBuf {
    let (journal, _) = run_and_signal(
        state,
        scenario,
        lab,
        wanted,
        nix::sys::signal::Signal::SIGKILL,
    );
    assert_eq!(tw_reuse(), wanted);
    journal
}

/// `twlab clean` with `state` as state directory; what it printed.
fn clean(state: &Path) -> String {
    let out = run_expecting(twlab().env("TWLAB_STATE_DIR", state).arg("clean"), 0);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn assert_no_lab_processes_soon() {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !lab_processes().is_empty() {
        assert!(Instant::now() < deadline, "left: {:?}", lab_processes());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A one-variant scenario that sets the server's tcp_tw_reuse to `wanted`
/// and loads for a minute (it is killed long before), with `server` keys.
fn write_kill_scenario(dir: &Path, server: &str, wanted: &str) -> PathBuf {
    let path = dir.join("kill.yaml");
    std::fs::write(
        &path,
        format!(
            "name: kill\nserver:\n{server}client:\n  connections: 4\n  threads: 1\n  duration: 60s\ncollect:\n  interval: 200ms\n  conntrack: false\nvariants:\n  - name: changed\n    sysctls:\n      server: {{ net.ipv4.tcp_tw_reuse: {wanted} }}\n"
        ),
    )
    .expect("scenario");
    path
}

#[test]
fn after_kill_9_clean_restores_the_sysctls_and_ends_the_processes() {
    if !require_root("after_kill_9_clean_restores_the_sysctls_and_ends_the_processes") {
        return;
    }
    assert!(port_is_free(), "port {PORT} is in use on this machine");
    let tmp = tempfile::tempdir().expect("tempdir");
    let state = tmp.path().join("state");
    let _restore = TwReuseGuard::new();
    let before = tw_reuse();
    let wanted = other_than(&before);
    let lab = write_local_lab(tmp.path());
    let scenario = write_kill_scenario(tmp.path(), &format!("  port: {PORT}\n"), wanted);
    let journal = run_and_kill_9(&state, &scenario, &lab, wanted);
    // The server and the client die with twlab (PR_SET_PDEATHSIG), and the
    // sysctl it set is still in force until `clean`.
    assert_no_lab_processes_soon();
    let said = clean(&state);
    assert!(said.contains("sysctl net.ipv4.tcp_tw_reuse"), "{said}");
    assert_eq!(tw_reuse(), before, "clean did not restore tcp_tw_reuse");
    assert_no_lab_processes_soon();
    assert!(!journal.exists(), "the journal is removed once undone");
}

/// A lab of this machine with Docker, and a one-variant scenario with the
/// Tomcat container that sets the server's tcp_tw_reuse to `wanted`.
struct TomcatLab {
    /// Holds the files below for the test's lifetime.
    _tmp: tempfile::TempDir,
    /// Puts tcp_tw_reuse back should the test fail half way.
    _restore: TwReuseGuard,
    state: PathBuf,
    before: String,
    wanted: &'static str,
    lab: PathBuf,
    scenario: PathBuf,
}

impl TomcatLab {
    fn new() -> TomcatLab {
        assert!(
            std::net::TcpListener::bind(("127.0.0.1", 8080)).is_ok(),
            "port 8080 (Tomcat's) is in use on this machine"
        );
        let tmp = tempfile::tempdir().expect("tempdir");
        let _restore = TwReuseGuard::new();
        let before = tw_reuse();
        let wanted = other_than(&before);
        let lab = write_lab(
            &tmp.path().join("lab.yaml"),
            &lab_of(
                loopback_server(true),
                vec![this_machine(false)],
                Some(Duration::from_secs(2)),
            ),
        );
        let server = format!("  kind: docker\n  image: {TOMCAT_IMAGE}\n  pull: never\n");
        let scenario = write_kill_scenario(tmp.path(), &server, wanted);
        TomcatLab {
            state: tmp.path().join("state"),
            _tmp: tmp,
            _restore,
            before,
            wanted,
            lab,
            scenario,
        }
    }
}

#[test]
fn after_kill_9_clean_removes_the_tomcat_container_and_restores_the_sysctls() {
    let test = "after_kill_9_clean_removes_the_tomcat_container_and_restores_the_sysctls";
    if !require_docker(test) {
        return;
    }
    let t = TomcatLab::new();
    let (state, before, wanted) = (&t.state, t.before.as_str(), t.wanted);
    let journal = run_and_kill_9(state, &t.scenario, &t.lab, wanted);
    let containers = twlab_containers();
    assert_eq!(
        containers.len(),
        1,
        "the container outlives a kill -9: {containers:?}"
    );
    let said = clean(state);
    assert!(
        said.contains(&format!("container {}", containers[0])),
        "{said}"
    );
    assert_eq!(twlab_containers(), Vec::<String>::new(), "{said}");
    assert_eq!(
        tw_reuse(),
        before,
        "clean did not restore tcp_tw_reuse: {said}"
    );
    assert_no_lab_processes_soon();
    assert!(!journal.exists(), "the journal is removed once undone");
}

#[test]
fn ctrl_c_on_a_real_lab_restores_and_removes_everything_itself() {
    let test = "ctrl_c_on_a_real_lab_restores_and_removes_everything_itself";
    if !require_docker(test) {
        return;
    }
    let t = TomcatLab::new();
    let (state, before, wanted) = (&t.state, t.before.as_str(), t.wanted);
    let (journal, status) = run_and_signal(
        state,
        &t.scenario,
        &t.lab,
        wanted,
        nix::sys::signal::Signal::SIGINT,
    );
    assert_eq!(status.code(), Some(130), "Ctrl-C exits 130");
    assert_eq!(tw_reuse(), before, "tcp_tw_reuse restored by twlab itself");
    assert_eq!(
        twlab_containers(),
        Vec::<String>::new(),
        "container removed"
    );
    assert_no_lab_processes_soon();
    assert!(
        !journal.exists(),
        "nothing left to undo: the journal is gone"
    );
    let summary = read_json(&state.with_file_name("run").join("summary.json"));
    let run = &summary["variants"][0]["runs"][0];
    assert!(run["interrupted"].as_bool().unwrap_or(false), "{run}");
    assert!(run["samples"].as_u64().unwrap_or(0) > 0, "{run}");
}

#[test]
fn a_second_run_on_a_host_in_use_is_refused_before_it_changes_anything() {
    if !require_root("a_second_run_on_a_host_in_use_is_refused_before_it_changes_anything") {
        return;
    }
    assert!(port_is_free(), "port {PORT} is in use on this machine");
    let tmp = tempfile::tempdir().expect("tempdir");
    let state = tmp.path().join("state");
    let _restore = TwReuseGuard::new();
    let before = tw_reuse();
    let wanted = other_than(&before);
    let lab = write_local_lab(tmp.path());
    let scenario = write_kill_scenario(tmp.path(), &format!("  port: {PORT}\n"), wanted);
    let first_out = tmp.path().join("first");
    let mut first = twlab()
        .env("TWLAB_STATE_DIR", &state)
        .args(["run", "--lab"])
        .arg(&lab)
        .arg(&scenario)
        .arg("--out")
        .arg(&first_out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("first run starts");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !first_out.join("samples.jsonl").exists() {
        assert!(Instant::now() < deadline, "first run has no samples");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The second run would read the first's value as "before" and put it
    // back after the first has restored the machine's own.
    let second = run_expecting(
        twlab()
            .env("TWLAB_STATE_DIR", &state)
            .args(["run", "--lab"])
            .arg(&lab)
            .arg(&scenario)
            .arg("--out")
            .arg(tmp.path().join("second")),
        3,
    );
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("another twlab run is using local"),
        "{stderr}"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .expect("stop the first run");
    assert_eq!(first.wait().expect("first ends").code(), Some(130));
    assert_eq!(tw_reuse(), before, "the machine's own value is back");
}
