//! Real runs of the embedded lab (root; CI is root): a short two-variant
//! scenario with each client, and Ctrl-C in the middle. Each test checks the
//! results directory, that the machine's own sysctls are untouched, and that
//! no twlab namespace or process is left. These tests share the machine's
//! namespace list, so nextest runs them one at a time (.config/nextest.toml).

mod common;

use common::*;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `twlab run` of a scenario of tests/fixtures/scenarios/lab with `args`,
/// into `out`.
fn twlab_run(scenario: &str, args: &[&str], out: &Path) -> Command {
    let path = manifest_dir().join("tests/fixtures/scenarios/lab");
    let mut cmd = twlab();
    cmd.arg("run")
        .arg(path.join(scenario))
        .args(args)
        .arg("--out")
        .arg(out);
    cmd
}

fn tw(v: &Value, path: &[&str]) -> u64 {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_u64().unwrap_or(0)
}

fn assert_clean_machine(sysctls_before: &[(String, String)]) {
    assert_nothing_left(&twlab_namespaces(), lab_processes, Some(sysctls_before));
}

/// Run the short scenario with `tool` and check everything the issue asks.
fn two_variant_run(tool: &str) {
    let before = machine_sysctls();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("run");
    let tool_set = format!("client.tool={tool}");
    let out = run_expecting(&mut twlab_run("short.yaml", &["--set", &tool_set], &dir), 0);
    let stdout = String::from_utf8_lossy(&out.stdout);

    let summary = read_json(&dir.join("summary.json"));
    let variants = summary["variants"].as_array().expect("variants");
    let names: Vec<&str> = variants.iter().filter_map(|v| v["name"].as_str()).collect();
    assert_eq!(names, ["reuse-off", "reuse-on"]);
    for v in variants {
        let run = &v["runs"][0];
        assert!(run["error"].is_null(), "{run}");
        let server_tw = tw(run, &["sockets", "server", "final", "TIME_WAIT"]);
        assert!(server_tw > 0, "no server TIME_WAIT in {}: {run}", v["name"]);
        assert!(
            tw(run, &["sockets", "server", "peak", "ESTABLISHED"]) > 0,
            "{run}"
        );
        assert!(
            tw(run, &["conntrack", "server", "final", "TIME_WAIT"]) > 0,
            "{run}"
        );
        assert!(tw(run, &["client", "requests"]) > 0, "{run}");
        assert_eq!(run["client"]["tool"], tool);
    }
    assert!(
        summary["comparisons"]
            .as_array()
            .is_some_and(|c| !c.is_empty())
    );
    assert_eq!(summary["info"]["complete"], true);

    let env = read_json(&dir.join("env.json"));
    let applied = env["runs"][1]["sysctls"].to_string();
    assert!(
        applied.contains("40000\\t50999") || applied.contains("40000 50999"),
        "{applied}"
    );

    let report = std::fs::read_to_string(dir.join("report.md")).expect("report.md");
    for needle in ["reuse-off", "reuse-on", "TIME_WAIT", "twlab run"] {
        assert!(report.contains(needle), "report.md lacks {needle}");
    }
    let samples = std::fs::read_to_string(dir.join("samples.jsonl")).expect("samples");
    let lines: Vec<Value> = samples
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    for host in ["server", "client"] {
        for source in ["sockets", "conntrack"] {
            assert!(
                lines
                    .iter()
                    .any(|s| s["host"] == host && s["source"] == source),
                "no {host} {source} sample"
            );
        }
    }
    assert!(
        stdout.contains("reuse-on"),
        "terminal table lacks variants:\n{stdout}"
    );
    assert!(dir.join("scenario.yaml").exists());
    assert_clean_machine(&before);
}

#[test]
fn two_variants_with_the_builtin_client() {
    if require_root("two_variants_with_the_builtin_client") {
        two_variant_run("builtin");
    }
}

#[test]
fn two_variants_with_wrk() {
    if require_root("two_variants_with_wrk") {
        two_variant_run("wrk");
    }
}

fn count_lines(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

/// Start a long run, signal it `signals` times once samples flow, and check
/// that it ends quickly, keeps its samples and leaves nothing behind.
fn interrupted_run(signals: usize, signal: nix::sys::signal::Signal) {
    let before = machine_sysctls();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("run");
    let mut child = twlab_run("short.yaml", &["--set", "client.duration=60s"], &dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("twlab starts");
    let samples = dir.join("samples.jsonl");
    let started = Instant::now();
    while count_lines(&samples) < 12 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no samples after 30 s"
        );
        assert!(
            child.try_wait().expect("wait").is_none(),
            "twlab ended early"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // `twlab clean` leaves the lab of a live run alone.
    let live = twlab_namespaces();
    assert_eq!(live.len(), 2, "{live:?}");
    let clean = twlab().arg("clean").output().expect("twlab clean");
    let text = String::from_utf8_lossy(&clean.stdout);
    assert!(text.contains("in use by twlab PID"), "{text}");
    assert_eq!(twlab_namespaces(), live, "clean removed a live run's lab");
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    for _ in 0..signals {
        nix::sys::signal::kill(pid, signal).expect("signal twlab");
        std::thread::sleep(Duration::from_millis(200));
    }
    let seen = count_lines(&samples);
    let stopped = Instant::now();
    let out = loop {
        if let Some(_status) = child.try_wait().expect("wait") {
            break child.wait_with_output().expect("output");
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(30),
            "twlab did not stop within 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "stderr:\n{stderr}");
    assert!(count_lines(&samples) >= seen, "samples were lost");
    let summary = read_json(&dir.join("summary.json"));
    assert_eq!(summary["info"]["complete"], false);
    let first = &summary["variants"][0]["runs"][0];
    assert_eq!(first["interrupted"], true, "{first}");
    assert!(
        summary["variants"][1]["runs"]
            .as_array()
            .is_some_and(|r| r.is_empty()),
        "a second run started"
    );
    if signals == 1 {
        // A graceful stop still gets the client's figures and a final snapshot.
        assert!(tw(first, &["client", "requests"]) > 0, "{first}");
        let text = std::fs::read_to_string(&samples).expect("samples");
        assert!(text.contains("\"is_final\":true"), "no final snapshot");
    }
    assert!(dir.join("report.md").exists());
    assert_clean_machine(&before);
}

#[test]
fn ctrl_c_stops_gracefully_keeps_samples_and_cleans_up() {
    if require_root("ctrl_c_stops_gracefully_keeps_samples_and_cleans_up") {
        interrupted_run(1, nix::sys::signal::Signal::SIGINT);
    }
}

#[test]
fn a_second_signal_stops_at_once_and_still_cleans_up() {
    if require_root("a_second_signal_stops_at_once_and_still_cleans_up") {
        interrupted_run(2, nix::sys::signal::Signal::SIGTERM);
    }
}

#[test]
fn keep_leaves_the_lab_and_clean_removes_it() {
    if !require_root("keep_leaves_the_lab_and_clean_removes_it") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let args = [
        "--set",
        "client.duration=1s",
        "--set",
        "collect.conntrack=false",
        "--keep",
    ];
    run_expecting(
        &mut twlab_run("short.yaml", &args, &tmp.path().join("run")),
        0,
    );
    let kept = twlab_namespaces();
    assert_eq!(
        kept.len(),
        2,
        "the last run's two namespaces stay: {kept:?}"
    );
    let clean = run_expecting(twlab().arg("clean"), 0);
    let text = String::from_utf8_lossy(&clean.stdout);
    for ns in &kept {
        assert!(
            text.contains(ns.as_str()),
            "clean did not report {ns}: {text}"
        );
    }
    assert_eq!(twlab_namespaces(), Vec::<String>::new());
    let again = twlab().arg("clean").output().expect("clean");
    assert!(String::from_utf8_lossy(&again.stdout).contains("nothing to clean"));
}

#[test]
fn failed_expectations_exit_1_with_a_junit_file() {
    if !require_root("failed_expectations_exit_1_with_a_junit_file") {
        return;
    }
    let before = machine_sysctls();
    let tmp = tempfile::tempdir().expect("tempdir");
    let junit = tmp.path().join("junit.xml");
    let mut run = twlab_run("gates.yaml", &[], &tmp.path().join("run"));
    let out = run_expecting(run.arg("--junit").arg(&junit), 1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("expectation failed"), "{stderr}");
    let summary = read_json(&tmp.path().join("run/summary.json"));
    let passed: Vec<bool> = summary["expectations"]
        .as_array()
        .expect("expectations")
        .iter()
        .map(|e| e["passed"].as_bool().expect("passed"))
        .collect();
    assert_eq!(passed, [true, false]);
    let xml = std::fs::read_to_string(&junit).expect("junit written");
    assert!(
        xml.contains("tests=\"2\"") && xml.contains("failures=\"1\""),
        "{xml}"
    );
    assert_clean_machine(&before);
}

/// TIME_WAIT of a run of `variant` on `side`, at the final snapshot.
fn final_tw(summary: &Value, variant: &str, side: &str) -> u64 {
    let v = summary["variants"]
        .as_array()
        .expect("variants")
        .iter()
        .find(|v| v["name"] == variant)
        .expect("variant present");
    tw(&v["runs"][0], &["sockets", side, "final", "TIME_WAIT"])
}

#[test]
fn time_wait_follows_the_active_closer_and_rst_leaves_none() {
    if !require_root("time_wait_follows_the_active_closer_and_rst_leaves_none") {
        return;
    }
    let before = machine_sysctls();
    let tmp = tempfile::tempdir().expect("tempdir");
    run_expecting(
        &mut twlab_run("closers.yaml", &[], &tmp.path().join("run")),
        0,
    );
    let s = read_json(&tmp.path().join("run/summary.json"));
    // The server closes: the server carries TIME_WAIT.
    assert!(final_tw(&s, "server-closes", "server") > 10 * final_tw(&s, "server-closes", "client"));
    // The client closes: the client carries it, the server has (almost) none.
    assert!(
        final_tw(&s, "client-closes", "client")
            > 10 * final_tw(&s, "client-closes", "server").max(1)
    );
    // RST closes leave no TIME_WAIT on the closer.
    assert_eq!(final_tw(&s, "server-rst", "server"), 0);
    assert_eq!(final_tw(&s, "client-rst", "client"), 0);
    assert!(final_tw(&s, "server-closes", "server") > 0);
    assert_clean_machine(&before);
}

#[test]
fn any_program_can_be_the_server() {
    if !require_root("any_program_can_be_the_server") {
        return;
    }
    let before = machine_sysctls();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("run");
    let out = twlab_run("python_server.yaml", &[], &dir)
        .output()
        .expect("twlab runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = read_json(&dir.join("summary.json"));
    let run = &s["variants"][0]["runs"][0];
    assert!(tw(run, &["client", "requests"]) > 0, "{run}");
    assert!(
        tw(run, &["client", "responses_by_class", "4xx"]) > 0,
        "{run}"
    );
    // Python closes every connection: TIME_WAIT on its (v4-mapped) sockets.
    assert!(
        tw(run, &["sockets", "server", "final", "TIME_WAIT"]) > 0,
        "{run}"
    );
    assert!(
        s["info"]["server"]
            .as_str()
            .is_some_and(|d| d.contains("http.server"))
    );
    assert_clean_machine(&before);
}

/// The embedded lab needs no program besides twlab: with a PATH that holds
/// none of `ip`, `nft`, `conntrack`, `sysctl`, a run still builds its lab,
/// applies the variant's sysctls and counts real sockets and conntrack
/// entries, and leaves nothing behind.
#[test]
fn the_embedded_lab_runs_with_no_external_program() {
    if !require_root("the_embedded_lab_runs_with_no_external_program") {
        return;
    }
    let before = machine_sysctls();
    let tmp = tempfile::tempdir().expect("tempdir");
    let empty = tmp.path().join("empty-bin");
    std::fs::create_dir(&empty).expect("empty PATH dir");
    let dir = tmp.path().join("run");
    let mut cmd = twlab_run("short.yaml", &[], &dir);
    cmd.env("PATH", &empty);
    run_expecting(&mut cmd, 0);
    let summary = read_json(&dir.join("summary.json"));
    for v in summary["variants"].as_array().expect("variants") {
        let run = &v["runs"][0];
        assert!(run["error"].is_null(), "{run}");
        assert!(
            tw(run, &["sockets", "server", "final", "TIME_WAIT"]) > 0,
            "{run}"
        );
        assert!(
            tw(run, &["conntrack", "server", "final", "TIME_WAIT"]) > 0,
            "{run}"
        );
        assert!(
            tw(run, &["conntrack", "client", "final", "TIME_WAIT"]) > 0,
            "{run}"
        );
    }
    let env = read_json(&dir.join("env.json"));
    let applied = env["runs"][1]["sysctls"].to_string();
    assert!(
        applied.contains("40000\\t50999") || applied.contains("40000 50999"),
        "the variant's sysctl was not applied: {applied}"
    );
    assert_clean_machine(&before);
}

/// A tmpfs of `size` mounted on a fresh directory, unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> SmallDisk {
        let dir = tempfile::tempdir().expect("tempdir");
        nix::mount::mount(
            Some("tmpfs"),
            dir.path(),
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            Some(format!("size={size}").as_str()),
        )
        .expect("mount a small tmpfs");
        SmallDisk { dir }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(self.dir.path(), nix::mount::MntFlags::MNT_DETACH);
    }
}

/// Fault: the run directory's disk fills during the load. The sampler's
/// write fails, the load is stopped at once (not run to its end), the lab
/// is removed, the error names the file and exit code 3; the samples
/// written before the disk filled stay.
#[test]
fn a_full_disk_stops_the_run_and_leaves_nothing() {
    if !require_root("a_full_disk_stops_the_run_and_leaves_nothing") {
        return;
    }
    let before = machine_sysctls();
    let disk = SmallDisk::mount("24k");
    let dir = disk.dir.path().join("run");
    let started = Instant::now();
    let out = twlab_run(
        "short.yaml",
        &[
            "--set",
            "client.duration=40s",
            "--set",
            "collect.interval=50ms",
        ],
        &dir,
    )
    .output()
    .expect("twlab runs");
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "stderr:\n{stderr}");
    assert!(
        stderr.contains("No space left on device"),
        "stderr:\n{stderr}"
    );
    assert!(
        took < Duration::from_secs(30),
        "the load ran on after sampling failed: {took:?}\n{stderr}"
    );
    let samples = count_lines(&dir.join("samples.jsonl"));
    assert!(samples > 0, "the samples before the fault were lost");
    // No debris (issue 23): no temporary file of a write that failed, and
    // samples.jsonl ends in a complete line, every line of it JSON.
    let debris: Vec<String> = [disk.dir.path().to_path_buf(), dir.clone()]
        .iter()
        .flat_map(|d| std::fs::read_dir(d).into_iter().flatten().flatten())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp") || n.starts_with(".tmp"))
        .collect();
    assert!(
        debris.is_empty(),
        "temporary files left: {debris:?}\n{stderr}"
    );
    let bytes = std::fs::read(dir.join("samples.jsonl")).expect("samples.jsonl");
    assert_eq!(
        bytes.last(),
        Some(&b'\n'),
        "samples.jsonl ends in a cut line"
    );
    for (i, line) in String::from_utf8_lossy(&bytes).lines().enumerate() {
        serde_json::from_str::<Value>(line)
            .unwrap_or_else(|e| panic!("samples.jsonl:{}: {e}: {line}", i + 1));
    }
    drop(disk);
    assert_clean_machine(&before);
}

/// A fixed rate and the FIN order, in the embedded lab: at 400 requests/s
/// for 4 s (a connection each) about 1600 TIME_WAIT sockets, all on the
/// side whose FIN goes first: the client when the server holds its FIN
/// back, the server when the client does.
#[test]
fn a_fixed_rate_and_a_close_delay_set_the_count_and_its_side() {
    if !require_root("a_fixed_rate_and_a_close_delay_set_the_count_and_its_side") {
        return;
    }
    let before = machine_sysctls();
    let tmp = tempfile::tempdir().expect("tempdir");
    run_expecting(
        &mut twlab_run("controlled.yaml", &[], &tmp.path().join("run")),
        0,
    );
    let s = read_json(&tmp.path().join("run/summary.json"));
    for (variant, first, second) in [
        ("client-first", "client", "server"),
        ("server-first", "server", "client"),
    ] {
        let run = &s["variants"]
            .as_array()
            .expect("variants")
            .iter()
            .find(|v| v["name"] == variant)
            .expect("variant")["runs"][0];
        let client = &run["client"];
        assert_eq!(client["schedule"]["rate"], 400.0, "{client}");
        let rps = client["requests_per_sec"].as_f64().unwrap_or(0.0);
        assert!(
            (380.0..=402.0).contains(&rps),
            "the rate was not kept: {client}"
        );
        let (a, b) = (final_tw(&s, variant, first), final_tw(&s, variant, second));
        let requests = client["requests"].as_u64().unwrap_or(0);
        assert!(
            a + b >= requests * 9 / 10,
            "{variant}: {a} + {b} of {requests}"
        );
        assert!(b * 20 <= a, "{variant}: {first} {a}, {second} {b}");
    }
    assert_clean_machine(&before);
}
