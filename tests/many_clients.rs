//! Several client hosts on the embedded lab (`client.hosts`), for real
//! (root; CI is root): scenarios/many_clients.yaml, shortened. Each client
//! namespace gets its own address, sysctls and counts; the client total is
//! the sum of the hosts; the server sees each address; nothing is left.

mod common;

use common::*;
use serde_json::Value;
use std::collections::BTreeSet;

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

#[test]
fn four_client_hosts_each_load_count_and_leave_nothing() {
    if !require_root("four_client_hosts_each_load_count_and_leave_nothing") {
        return;
    }
    let before = machine_sysctls();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("run");
    let mut cmd = twlab();
    cmd.arg("run")
        .arg(manifest_dir().join("scenarios/many_clients.yaml"))
        .args(["--set", "client.duration=4s", "--out"])
        .arg(&dir);
    let out = run_expecting(&mut cmd, 0);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("four-clients"), "{stdout}");

    let summary = read_json(&dir.join("summary.json"));
    let one = &summary["variants"][0]["runs"][0];
    let four = &summary["variants"][1]["runs"][0];
    assert!(
        one["error"].is_null() && four["error"].is_null(),
        "{summary}"
    );
    assert!(
        one.get("clients").is_none(),
        "one client host has no per-host list: {one}"
    );
    assert_eq!(u(&one["server_peers"]), 1, "{one}");
    assert_eq!(
        u(&four["server_peers"]),
        4,
        "the server saw four addresses: {four}"
    );

    let clients = four["clients"].as_array().expect("four clients");
    assert_eq!(clients.len(), 4);
    let addresses: BTreeSet<&str> = clients
        .iter()
        .filter_map(|c| c["address"].as_str())
        .collect();
    assert_eq!(
        addresses,
        BTreeSet::from(["198.18.0.2", "198.18.0.3", "198.18.0.4", "198.18.0.5"])
    );
    let mut rps_sum = 0.0;
    let mut requests_sum = 0;
    for c in clients {
        let load = &c["load"];
        assert!(
            u(&load["requests"]) > 0,
            "a client host did no requests: {c}"
        );
        assert!(
            u(&c["sockets"]["final"]["TIME_WAIT"]) > 0,
            "each client closes, so each holds TIME_WAIT: {c}"
        );
        assert!(u(&c["conntrack"]["final"]["TIME_WAIT"]) > 0, "{c}");
        rps_sum += load["requests_per_sec"].as_f64().unwrap_or(0.0);
        requests_sum += u(&load["requests"]);
    }
    assert_eq!(
        u(&four["client"]["requests"]),
        requests_sum,
        "the total is the sum"
    );
    let total_rps = four["client"]["requests_per_sec"].as_f64().unwrap_or(0.0);
    assert!((total_rps - rps_sum).abs() < 1e-6 * rps_sum.max(1.0));
    let host_tw: u64 = clients
        .iter()
        .map(|c| u(&c["sockets"]["final"]["TIME_WAIT"]))
        .sum();
    assert_eq!(u(&four["sockets"]["client"]["final"]["TIME_WAIT"]), host_tw);

    // Every sample of the client side with four hosts carries each one's
    // counts, and its counts are their sum.
    let samples = std::fs::read_to_string(dir.join("samples.jsonl")).expect("samples");
    let mut checked = 0;
    for line in samples.lines() {
        let s: Value = serde_json::from_str(line).expect("json line");
        if s["variant"] != "four-clients" || s["host"] != "client" {
            assert!(s.get("per_client").is_none(), "{s}");
            continue;
        }
        let per = s["per_client"].as_array().expect("per_client");
        assert_eq!(per.len(), 4, "{s}");
        for (state, n) in s["counts"].as_object().expect("counts") {
            let sum: u64 = per.iter().map(|c| u(&c[state])).sum();
            assert_eq!(sum, u(n), "{state} in {s}");
        }
        checked += 1;
    }
    assert!(checked >= 4, "too few client samples: {checked}");

    // Each client namespace got the variant's client sysctls.
    let env = read_json(&dir.join("env.json"));
    let run = &env["runs"][1];
    let names: Vec<&str> = run["namespaces"]
        .as_array()
        .expect("ns")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(names.len(), 5, "{names:?}");
    assert!(
        names[1].ends_with("-client1") && names[4].ends_with("-client4"),
        "{names:?}"
    );
    let hosts_set: BTreeSet<&str> = run["sysctls"]
        .as_array()
        .expect("sysctls")
        .iter()
        .filter(|c| c["name"] == "net.ipv4.ip_local_port_range")
        .filter_map(|c| c["host"].as_str())
        .collect();
    assert_eq!(hosts_set.len(), 4, "{hosts_set:?}");

    let report = std::fs::read_to_string(dir.join("report.md")).expect("report.md");
    assert!(
        report.contains("## Client hosts") && report.contains("`198.18.0.5`"),
        "{report}"
    );
    for i in 1..=4 {
        assert!(dir.join(format!("four-clients-r1-client{i}.log")).exists());
    }

    assert_eq!(
        machine_sysctls(),
        before,
        "the machine's own sysctls changed"
    );
    assert_eq!(twlab_namespaces(), Vec::<String>::new(), "namespaces left");
    assert_eq!(lab_processes(), Vec::<String>::new(), "processes left");
}

#[test]
fn client_hosts_are_bounded_and_a_lab_file_refuses_more_than_it_lists() {
    let scenario = manifest_dir().join("scenarios/many_clients.yaml");
    let out = run_expecting(
        twlab()
            .arg("validate")
            .arg(&scenario)
            .args(["--set", "client.hosts=65"]),
        2,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("client.hosts") && err.contains("64"), "{err}");

    // A lab of this machine only (no SSH host is ever contacted).
    let tmp = tempfile::tempdir().expect("tempdir");
    let lab = tmp.path().join("local.yaml");
    write_lab(
        &lab,
        &lab_of(this_machine(false), vec![this_machine(false)], None),
    );
    let out = run_expecting(
        twlab()
            .arg("run")
            .arg(&scenario)
            .arg("--lab")
            .arg(&lab)
            .arg("--out")
            .arg(tmp.path().join("run")),
        2,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("client.hosts: 4") && err.contains("four-clients"),
        "{err}"
    );
    assert!(!tmp.path().join("run").join("samples.jsonl").exists());
}
