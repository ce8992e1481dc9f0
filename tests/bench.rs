//! `twlab bench` for real, small: a population of TIME_WAIT sockets in a
//! lab namespace, counted by twlab and by the peers it is measured
//! against. The peers are the tools a person trusts (ss, netstat, the
//! seed's conntrack pipeline), so this is also the check that the
//! collector counts what they count; and nothing is left behind.

mod common;

use common::{require_root, twlab, twlab_namespaces};
use serde_json::Value;

/// The median TIME_WAIT a row's method saw, from its note.
fn seen(row: &Value) -> Option<u64> {
    let note = row["note"].as_str()?;
    let rest = note.split("saw ").nth(1)?;
    rest.split_whitespace().next()?.parse().ok()
}

#[test]
fn bench_counts_agree_with_ss_netstat_and_conntrack_and_leave_nothing() {
    if !require_root("bench_counts_agree_with_ss_netstat_and_conntrack_and_leave_nothing") {
        return;
    }
    let before = twlab_namespaces();
    let tmp = tempfile::tempdir().expect("tempdir");
    let out_dir = tmp.path().join("bench");
    let out = twlab()
        .args([
            "bench",
            "--only",
            "counting,lab",
            "--sizes",
            "3000",
            "--rounds",
            "2",
        ])
        .arg("--out")
        .arg(&out_dir)
        .output()
        .expect("twlab bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(out_dir.join("bench.json")).expect("bench.json");
    let json: Value = serde_json::from_str(&text).expect("bench.json is JSON");
    let rows = json["rows"].as_array().expect("rows");
    let find = |prefix: &str| {
        rows.iter()
            .find(|r| r["what"].as_str().is_some_and(|w| w.starts_with(prefix)))
            .unwrap_or_else(|| panic!("no row {prefix}: {text}"))
    };
    let sockets = seen(find("twlab sockets")).expect("twlab saw a count");
    assert!(
        sockets >= 2900,
        "3000 connections, {sockets} TIME_WAIT: {text}"
    );
    // Every installed peer saw what twlab saw (CI installs them all).
    for peer in ["ss -tanH", "ss -tan |", "netstat -antpl"] {
        let row = find(peer);
        let n = seen(row).unwrap_or_else(|| panic!("{peer} did not run: {row}"));
        assert_eq!(n, sockets, "{peer} and twlab disagree: {row}");
        assert!(row["ratio"].as_f64().is_some_and(|r| r > 0.0), "{row}");
        assert_eq!(
            row["vs"],
            "twlab sockets, lab namespace (socket gauge: BPF map + sockstat)"
        );
    }
    let ct = seen(find("twlab conntrack")).expect("twlab conntrack count");
    assert_eq!(ct, sockets, "one conntrack entry per connection: {text}");
    let ct_peer = seen(find("conntrack -L -p tcp")).expect("conntrack -L ran");
    assert_eq!(ct_peer, ct, "{text}");
    for phase in ["lab set-up: twlab", "lab teardown: twlab"] {
        assert!(find(phase)["median"].as_f64().is_some_and(|m| m > 0.0));
    }
    let md = std::fs::read_to_string(out_dir.join("bench.md")).expect("bench.md");
    assert!(
        md.contains("| twlab sockets (sock_diag) | 3k TIME_WAIT |"),
        "{md}"
    );
    assert!(stdout.contains("netstat -antpl"), "{stdout}");
    assert_eq!(twlab_namespaces(), before, "bench left a namespace behind");
}

#[test]
fn bench_refuses_bad_options_with_exit_2() {
    let out = twlab()
        .args(["bench", "--sizes", "0"])
        .output()
        .expect("twlab bench");
    assert_eq!(out.status.code(), Some(2));
    let out = twlab()
        .args(["bench", "--only", "nonsense"])
        .output()
        .expect("twlab bench");
    assert_eq!(out.status.code(), Some(2));
}
