//! `client.via: docker`: wrk in a container (twlab/wrk:4.1, built by
//! docker/wrk/build.sh when missing) on this machine's engine, loading the
//! Tomcat container (twlab/tomcat:10.1) over loopback, both with host
//! networking, in a real lab of `local` hosts. A variant sets the client's
//! tcp_tw_reuse, which on a local host is this machine's: the test checks
//! it is put back.
//!
//! Needs root and a Docker engine: without them the run test says SKIPPED
//! and passes, except in CI (CI=true), where that is a failure. The
//! validation test needs neither.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Tomcat's port (its server.xml); the container shares this machine's network.
const PORT: u16 = 8080;

/// `docker ps -a` names (and a Go template) of the containers matching `filter`.
fn docker_ps(filter: &str, format: &str) -> Vec<String> {
    let out = Command::new("docker")
        .args(["ps", "-a", "--filter", filter, "--format", format])
        .output()
        .expect("docker ps runs");
    assert!(
        out.status.success(),
        "docker ps: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

/// The run ids in a run directory's summary.json (empty before the first run).
fn run_ids(out: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(out.join("summary.json")) else {
        return Vec::new();
    };
    let Ok(summary) = serde_json::from_str::<serde_json::Value>(&text) else {
        return Vec::new();
    };
    summary["variants"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|v| v["runs"].as_array().cloned().unwrap_or_default())
        .filter_map(|r| r["run_id"].as_str().map(String::from))
        .collect()
}

/// Removes the containers of the runs in `out`, also when an assertion
/// failed: the test leaves none behind either way. Only this test's runs,
/// never another twlab's.
struct RemoveRunContainers(PathBuf);

impl Drop for RemoveRunContainers {
    fn drop(&mut self) {
        for id in run_ids(&self.0) {
            for name in docker_ps(&format!("label=twlab.run={id}"), "{{.Names}}") {
                let _ = Command::new("docker").args(["rm", "-f", &name]).output();
            }
        }
    }
}

#[test]
fn wrk_in_a_container_loads_tomcat_and_the_client_sysctl_is_restored() {
    let test = "wrk_in_a_container_loads_tomcat_and_the_client_sysctl_is_restored";
    if !require_docker_wrk(test) {
        return;
    }
    assert!(
        std::net::TcpListener::bind(("127.0.0.1", PORT)).is_ok(),
        "port {PORT} (Tomcat's) is in use on this machine; this test runs Tomcat there with host networking \
         (find the listener with `ss -ltnp sport = :{PORT}`)"
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let state = tmp.path().join("state");
    let _restore = TwReuseGuard::new();
    let before = tw_reuse();
    let wanted = other_than(&before);
    let lab = write_lab(
        &tmp.path().join("lab.yaml"),
        &lab_of(
            loopback_server(true),
            vec![this_machine(true)],
            Some(Duration::from_secs(2)),
        ),
    );
    let scenario = tmp.path().join("client-container.yaml");
    std::fs::write(
        &scenario,
        format!(
            "name: client-container\n\
             server:\n  kind: docker\n  image: {TOMCAT_IMAGE}\n  pull: never\n\
             client:\n  tool: wrk\n  via: docker\n  image: {WRK_IMAGE}\n  connections: 10\n  threads: 1\n  duration: 4s\n\
             collect:\n  interval: 500ms\n  conntrack: false\n\
             variants:\n  - name: base\n  - name: client-reuse\n    sysctls:\n      client: {{ net.ipv4.tcp_tw_reuse: {wanted} }}\n"
        ),
    )
    .expect("scenario");
    let out = tmp.path().join("run");
    let _cleanup = RemoveRunContainers(out.clone());
    let stderr_path = tmp.path().join("twlab.stderr");
    let mut child = twlab()
        .env("TWLAB_STATE_DIR", &state)
        .arg("run")
        .arg(&scenario)
        .arg("--lab")
        .arg(&lab)
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).expect("stderr file"))
        .spawn()
        .expect("twlab run starts");

    // While it runs: the client containers, as the engine lists them (the
    // ones of this test's runs are picked by run id afterwards).
    let mut seen: Vec<String> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(180);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for twlab") {
            break status;
        }
        assert!(Instant::now() < deadline, "twlab run took over 180 s");
        for c in docker_ps(
            "label=twlab.role=client",
            "{{.Names}} {{.Label \"twlab.run\"}} {{.Image}}",
        ) {
            if !seen.contains(&c) {
                seen.push(c);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    assert_eq!(status.code(), Some(0), "twlab run failed:\n{stderr}");

    assert_eq!(
        tw_reuse(),
        before,
        "this machine's tcp_tw_reuse (the client host's) was not restored"
    );
    let ids = run_ids(&out);
    assert_eq!(ids.len(), 2, "two runs: {ids:?}");
    for id in &ids {
        assert_eq!(
            docker_ps(&format!("label=twlab.run={id}"), "{{.Names}}"),
            Vec::<String>::new(),
            "a container of run {id} is left"
        );
        let expected = format!("twlab-{id}-client {id} {WRK_IMAGE}");
        assert!(
            seen.contains(&expected),
            "the client of run {id} ran as container `{expected}`; seen: {seen:?}\n{stderr}"
        );
    }

    let summary = read_json(&out.join("summary.json"));
    assert!(
        summary["info"]["client"]
            .as_str()
            .is_some_and(|c| c.contains(&format!("in container `{WRK_IMAGE}`"))),
        "{}",
        summary["info"]
    );
    for v in summary["variants"].as_array().expect("variants") {
        let name = v["name"].as_str().expect("variant name");
        let run = &v["runs"][0];
        assert!(run["error"].is_null(), "{run}");
        let client = &run["client"];
        let requests = client["requests"].as_u64().unwrap_or(0);
        let server_tw = run["sockets"]["server"]["peak"]["TIME_WAIT"]
            .as_u64()
            .unwrap_or(0);
        eprintln!(
            "{name}: {requests} requests, {} req/s, cpu {} s, server TIME_WAIT peak {server_tw}, final {}, client TIME_WAIT peak {}",
            client["requests_per_sec"],
            client["cpu_secs"],
            run["sockets"]["server"]["final"]["TIME_WAIT"],
            run["sockets"]["client"]["peak"]["TIME_WAIT"]
        );
        assert_eq!(client["tool"], "wrk", "{client}");
        assert!(requests > 0, "no requests from the wrk container: {run}");
        assert!(
            server_tw > 0,
            "Tomcat closes after 100 requests on a connection, so the server side holds TIME_WAIT: {run}"
        );
        assert!(
            out.join(format!("{name}-r1-client.log")).is_file(),
            "the client log of `{name}` exists"
        );
    }

    let env = read_json(&out.join("env.json"));
    assert!(env["client_docker_engine"].is_string(), "{env}");
    for run in env["runs"].as_array().expect("runs") {
        assert!(
            run["client_image_id"]
                .as_str()
                .is_some_and(|i| i.starts_with("sha256:")),
            "{run}"
        );
    }
    let change = &env["runs"][1]["sysctls"][0];
    assert_eq!(change["name"], "net.ipv4.tcp_tw_reuse", "{change}");
    assert_eq!(change["before"], before.as_str(), "{change}");
    assert_eq!(change["after"], wanted, "{change}");
    // Everything undone: no restore journal left.
    let left: Vec<_> = std::fs::read_dir(state.join("restore"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "restore journal left: {left:?}");
}

#[test]
fn via_docker_is_refused_with_the_builtin_client_and_without_a_client_engine() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("run");
    let run = |scenario: &Path, lab: Option<&Path>| {
        let mut cmd = twlab();
        cmd.arg("run").arg(scenario).arg("--out").arg(&out);
        if let Some(lab) = lab {
            cmd.arg("--lab").arg(lab);
        }
        String::from_utf8_lossy(&run_expecting(&mut cmd, 2).stderr).into_owned()
    };

    let builtin = tmp.path().join("builtin.yaml");
    std::fs::write(
        &builtin,
        "name: v\nclient:\n  tool: builtin\n  connections: 10\n  via: docker\nvariants:\n  - name: a\n",
    )
    .expect("scenario");
    let said = run(&builtin, None);
    assert!(
        said.contains(&format!(
            "{}:5: client.via: docker runs the tool from a container image, and client.tool: builtin has none (the tools with one: wrk)",
            builtin.display()
        )),
        "{said}"
    );

    let wrk = tmp.path().join("wrk.yaml");
    std::fs::write(
        &wrk,
        "name: v\nclient:\n  tool: wrk\n  via: docker\n  connections: 10\nvariants:\n  - name: a\n",
    )
    .expect("scenario");
    let server_only = write_lab(
        &tmp.path().join("lab.yaml"),
        &lab_of(loopback_server(true), vec![this_machine(false)], None),
    );
    for lab in [None, Some(server_only.as_path())] {
        let said = run(&wrk, lab);
        assert!(
            said.contains(&format!(
                "{}:4: client.via: docker (variant `a`) needs a lab whose client host has a Docker engine",
                wrk.display()
            )) && said.contains("hosts.client has `docker: true`"),
            "{said}"
        );
    }
    assert!(!out.exists(), "nothing is started for an invalid scenario");
}

#[test]
fn ctrl_c_stops_the_wrk_container_with_sigint_and_keeps_what_it_measured() {
    let test = "ctrl_c_stops_the_wrk_container_with_sigint_and_keeps_what_it_measured";
    if !require_docker_wrk(test) {
        return;
    }
    assert!(
        std::net::TcpListener::bind(("127.0.0.1", PORT)).is_ok(),
        "port {PORT} (Tomcat's) is in use on this machine (find the listener with `ss -ltnp sport = :{PORT}`)"
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let state = tmp.path().join("state");
    let lab = write_lab(
        &tmp.path().join("lab.yaml"),
        &lab_of(
            loopback_server(true),
            vec![this_machine(true)],
            Some(Duration::from_secs(2)),
        ),
    );
    let scenario = tmp.path().join("long.yaml");
    std::fs::write(
        &scenario,
        format!(
            "name: client-container-ctrl-c\n\
             server: {{ kind: docker, image: {TOMCAT_IMAGE}, pull: never }}\n\
             client: {{ tool: wrk, via: docker, connections: 4, threads: 1, duration: 60s }}\n\
             collect: {{ interval: 200ms, conntrack: false }}\n\
             variants:\n  - name: long\n"
        ),
    )
    .expect("scenario");
    let out = tmp.path().join("run");
    let _cleanup = RemoveRunContainers(out.clone());
    let mut child = twlab()
        .env("TWLAB_STATE_DIR", &state)
        .arg("run")
        .arg(&scenario)
        .arg("--lab")
        .arg(&lab)
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("twlab run starts");
    // The load runs once samples are on disk and the client container is up.
    let deadline = Instant::now() + Duration::from_secs(90);
    let client = loop {
        let sampled = std::fs::read_to_string(out.join("samples.jsonl"))
            .is_ok_and(|s| s.lines().count() >= 10);
        let running = docker_ps("label=twlab.role=client", "{{.Names}} {{.Status}}");
        if let Some(c) = running
            .iter()
            .find(|c| c.contains(" Up "))
            .filter(|_| sampled)
        {
            break c.split(' ').next().unwrap_or_default().to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no sampled load with a running client container within 90 s: {running:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let signalled = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .expect("SIGINT to twlab");
    let status = child.wait().expect("twlab ends");
    eprintln!("twlab ended {:.1?} after SIGINT", signalled.elapsed());
    assert_eq!(status.code(), Some(130), "Ctrl-C exits 130");
    assert!(
        signalled.elapsed() < Duration::from_secs(20),
        "wrk stopped on SIGINT instead of running its 60 s"
    );
    assert_eq!(
        docker_ps(&format!("name={client}"), "{{.Names}}"),
        Vec::<String>::new(),
        "the client container is removed"
    );
    for id in run_ids(&out) {
        assert_eq!(
            docker_ps(&format!("label=twlab.run={id}"), "{{.Names}}"),
            Vec::<String>::new(),
            "a container of run {id} is left"
        );
    }
    let summary = read_json(&out.join("summary.json"));
    let run = &summary["variants"][0]["runs"][0];
    assert!(run["interrupted"].as_bool().unwrap_or(false), "{run}");
    let client = &run["client"];
    eprintln!(
        "after SIGINT: {} requests in {} s, {} req/s",
        client["requests"], client["duration_secs"], client["requests_per_sec"]
    );
    assert!(
        client["requests"].as_u64().unwrap_or(0) > 0,
        "wrk printed what it measured on SIGINT: {run}"
    );
    assert!(
        client["duration_secs"].as_f64().unwrap_or(60.0) < 30.0,
        "{run}"
    );
}
