//! The kernel's counters for real (root; CI is root): a short embedded-lab
//! run records each side's own TCP and conntrack counters (the server's
//! sockets entered TIME_WAIT, the client opened the connections) in
//! `kernel.jsonl` and `summary.json`, and the report explains the TIME_WAIT
//! count with them; `twlab states --counters --netns` reads the namespace's
//! counters, not this machine's (`/proc/net` follows the process, not the
//! thread that entered the namespace).

mod common;
#[path = "common/sshd.rs"]
mod sshd;

use common::*;
use serde_json::Value;
use twlab::common::endpoint::Side;
use twlab::lab::Host;

fn counter(run: &Value, side: &str, key: &str) -> (u64, u64) {
    let d = &run["kernel"][side][key];
    (
        d["start"].as_u64().unwrap_or(0),
        d["end"].as_u64().unwrap_or(0),
    )
}

#[test]
fn a_lab_run_records_each_sides_own_counters_and_checks_the_model() {
    if !require_root("a_lab_run_records_each_sides_own_counters_and_checks_the_model") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("run");
    let scenario = manifest_dir().join("tests/fixtures/scenarios/lab/short.yaml");
    run_expecting(
        twlab()
            .arg("run")
            .arg(&scenario)
            .args(["--set", "client.duration=3s"])
            .arg("--out")
            .arg(&dir),
        0,
    );
    let summary = read_json(&dir.join("summary.json"));
    for v in summary["variants"].as_array().expect("variants") {
        let run = &v["runs"][0];
        assert!(run["error"].is_null(), "{run}");
        // The server closes first (max_keepalive_requests): its sockets
        // enter TIME_WAIT, counted as they enter, in its own namespace.
        let (start, end) = counter(run, "server", "TcpExt.TW");
        assert!(
            end > start,
            "server TcpExt.TW did not move: {}",
            run["kernel"]
        );
        // Each side's own: the client opened, the server accepted, as many
        // (the namespaces are fresh, so the totals at the end compare; the
        // first read may come a connection after the load's first connect).
        let (a0, a1) = counter(run, "client", "Tcp.ActiveOpens");
        let (p0, p1) = counter(run, "server", "Tcp.PassiveOpens");
        assert!(a1 > a0 && a1 == p1, "{}", run["kernel"]);
        assert_eq!(counter(run, "server", "Tcp.ActiveOpens"), (0, 0));
        assert_eq!(counter(run, "client", "Tcp.PassiveOpens"), (0, 0));
        // A fresh namespace: its counters start at (near) zero, not at
        // this machine's totals.
        assert!(p0 < 100, "{}", run["kernel"]);
        let timeout = counter(run, "server", "conntrack.timeout.time_wait").1;
        assert!(timeout > 0, "{}", run["kernel"]);
        assert!(run["invalid"].is_null(), "{run}");
    }
    let lines = std::fs::read_to_string(dir.join("kernel.jsonl")).expect("kernel.jsonl");
    for side in ["\"host\":\"server\"", "\"host\":\"client\""] {
        assert!(
            lines.lines().filter(|l| l.contains(side)).count() >= 3,
            "{side}"
        );
    }
    assert!(lines.contains("\"is_final\":true"));
    let report = std::fs::read_to_string(dir.join("report.md")).expect("report.md");
    for needle in [
        "## What the kernel did",
        "`TcpExt.TW`",
        "### Model check: TIME_WAIT from the counters",
        // The rate of sockets entering TIME_WAIT over time, drawn from
        // kernel.jsonl, in this section rather than the count charts.
        "![TcpExt.TW per second on the server](charts/server-kernel-TcpExt_TW.svg)",
    ] {
        assert!(report.contains(needle), "report.md lacks {needle}");
    }
    let chart = std::fs::read_to_string(dir.join("charts/server-kernel-TcpExt_TW.svg"))
        .expect("the server's TcpExt.TW chart");
    assert!(chart.contains("per second"), "{chart}");
}

/// `collect.kernel_counters: false` reads none (what the bench's overhead
/// section compares against): no kernel.jsonl, no counters, no section.
#[test]
fn kernel_counters_off_reads_none() {
    if !require_root("kernel_counters_off_reads_none") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("run");
    let scenario = manifest_dir().join("tests/fixtures/scenarios/lab/short.yaml");
    run_expecting(
        twlab()
            .arg("run")
            .arg(&scenario)
            .args(["--set", "client.duration=2s"])
            .args(["--set", "collect.kernel_counters=false"])
            .arg("--out")
            .arg(&dir),
        0,
    );
    assert!(!dir.join("kernel.jsonl").exists());
    let summary = read_json(&dir.join("summary.json"));
    for v in summary["variants"].as_array().expect("variants") {
        assert!(
            v["runs"][0]["kernel"].is_null(),
            "{}",
            v["runs"][0]["kernel"]
        );
    }
    let report = std::fs::read_to_string(dir.join("report.md")).expect("report.md");
    assert!(!report.contains("## What the kernel did"));
}

#[test]
fn states_counters_reads_the_namespace_it_is_given() {
    if !require_root("states_counters_reads_the_namespace_it_is_given") {
        return;
    }
    // This machine has opened connections; a namespace made here has not.
    let host = run_expecting(twlab().args(["states", "--counters", "--json"]), 0);
    let host: Value = serde_json::from_slice(&host.stdout).expect("json");
    let ns = format!("kctest{}", std::process::id());
    let added = std::process::Command::new("ip")
        .args(["netns", "add", &ns])
        .status()
        .expect("ip netns add");
    assert!(added.success());
    let out = twlab()
        .args(["states", "--counters", "--json", "--netns", &ns])
        .output()
        .expect("twlab runs");
    let _ = std::process::Command::new("ip")
        .args(["netns", "del", &ns])
        .status();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let inside: Value = serde_json::from_slice(&out.stdout).expect("json");
    let opens = |v: &Value| v["counters"]["Tcp.ActiveOpens"].as_u64();
    assert_eq!(opens(&inside), Some(0), "{inside}");
    assert!(opens(&host).is_some_and(|n| n > 0), "{host}");
    // Rates with --watch: a second sample carries them.
    let watched = run_expecting(
        twlab().args([
            "states",
            "--counters",
            "--json",
            "--watch",
            "200ms",
            "--count",
            "2",
        ]),
        0,
    );
    let text = String::from_utf8_lossy(&watched.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(!lines[0].contains("\"rates\""));
    assert!(lines[1].contains("\"rates\""));
    // A namespace that does not exist is bad input: exit 2.
    run_expecting(
        twlab().args(["states", "--counters", "--netns", "no-such-ns-kctest"]),
        2,
    );
}

/// Over SSH the counters are the host's own (the sshd namespace here): the
/// same script's text parsed as an SSH host gives it, and it agrees with an
/// in-process read of that namespace.
#[test]
fn an_ssh_host_gives_its_own_counters() {
    if !require_root("an_ssh_host_gives_its_own_counters") {
        return;
    }
    let fx = sshd::SshdHost::start("kcount");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let remote = rt.block_on(async {
        let ctl = tempfile::tempdir().expect("control dir");
        let host = twlab::lab::ssh::SshHost::connect(&fx.spec(), Side::Server, ctl.path())
            .await
            .unwrap_or_else(|e| panic!("connect: {e}\nsshd log:\n{}", fx.sshd_log()));
        let c = host.kernel_counters().await;
        host.close().await;
        c
    });
    let remote = remote.expect("kernel counters over ssh");
    let local = twlab::ops::states::read_counters(Some(&fx.netns)).expect("in-process read");
    // sshd accepted our connection in its namespace: a handful of opens,
    // not this machine's total.
    let accepted = remote.get("Tcp.PassiveOpens").copied().unwrap_or(0);
    assert!(accepted >= 1, "{remote:?}");
    assert_eq!(Some(&accepted), local.get("Tcp.PassiveOpens"));
    assert!(remote.contains_key("TcpExt.TW"));
    assert_eq!(
        remote.get("conntrack.timeout.time_wait"),
        local.get("conntrack.timeout.time_wait")
    );
}

/// `twlab states --counters --lab FILE --host server` reads that host over
/// SSH: the sshd namespace's own counters (the SSH connection it accepted),
/// with rates from the second sample; a role the lab file does not have is
/// bad input naming the roles it has.
#[test]
fn states_counters_reads_a_lab_host_over_ssh() {
    if !require_root("states_counters_reads_a_lab_host_over_ssh") {
        return;
    }
    let fx = sshd::SshdHost::start("kcstates");
    let tmp = tempfile::tempdir().expect("tempdir");
    let lab = write_lab(
        &tmp.path().join("lab.yaml"),
        &lab_of(fx.spec(), vec![this_machine(false)], None),
    );
    let out = twlab()
        .args([
            "states",
            "--counters",
            "--json",
            "--watch",
            "200ms",
            "--count",
            "2",
        ])
        .arg("--lab")
        .arg(&lab)
        .args(["--host", "server"])
        .output()
        .expect("twlab runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\nsshd log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        fx.sshd_log()
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    let local = twlab::ops::states::read_counters(Some(&fx.netns)).expect("in-process read");
    // The sshd namespace accepted our SSH connections, a handful; not this
    // machine's total.
    let accepted = lines[0]["counters"]["Tcp.PassiveOpens"]
        .as_u64()
        .unwrap_or(0);
    assert!(accepted >= 1, "{}", lines[0]);
    assert!(
        accepted <= local.get("Tcp.PassiveOpens").copied().unwrap_or(0),
        "{local:?}"
    );
    assert!(
        lines[0]["place"]
            .as_str()
            .unwrap_or("")
            .starts_with("server")
    );
    assert!(lines[1].get("rates").is_some(), "{}", lines[1]);
    let bad = twlab()
        .args(["states", "--counters"])
        .arg("--lab")
        .arg(&lab)
        .args(["--host", "client3"])
        .output()
        .expect("twlab runs");
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("client3") && err.contains("server, client"),
        "{err}"
    );
}
