//! Swarm services for real, on a single-node swarm made by the test.
//!
//! When this machine's engine is not in a swarm, each test runs `docker
//! swarm init --advertise-addr 127.0.0.1` and leaves it again at the end,
//! also when an assertion fails (a guard), removing the `docker_gwbridge`
//! network the first service made if it was not there before: the engine is
//! left as it was found. An engine that already is a manager is used as it
//! is and stays in its swarm. The image is twlab's own, built by
//! docker/twlab/build.sh from the test's twlab binary (`twlab/twlab:test`,
//! rebuilt when the binary changes). Traffic goes to twlab's builtin server
//! on 127.0.0.1, a child of the test; the services use host networking, so
//! they reach it and count its sockets.
//!
//! Needs root and a Docker engine: without them the tests say SKIPPED and
//! pass, except in CI (CI=true), where that is a failure.

mod common;

use common::cannot_run;
use std::collections::{BTreeSet, HashMap};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use twlab::common::counts::ClientStats;
use twlab::docker::Engine;
use twlab::docker::swarm::{Mode, ServiceRequest, Swarm};

const IMAGE: &str = "twlab/twlab:test";

/// The tests change the engine's swarm membership: one at a time, also as
/// threads of one process (`cargo test`).
static SWARM: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn docker(args: &[&str]) -> std::process::Output {
    Command::new("docker")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("docker {args:?}: {e}"))
}

/// The docker CLI's answer, one entry per line (an independent view of the
/// engine).
fn docker_lines(args: &[&str]) -> Vec<String> {
    let out = docker(args);
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .filter(|l| !l.is_empty())
        .collect()
}

fn swarm_state() -> String {
    docker_lines(&["info", "--format", "{{.Swarm.LocalNodeState}}"])
        .join("")
        .trim()
        .to_string()
}

fn has_network(name: &str) -> bool {
    docker_lines(&["network", "ls", "--format", "{{.Name}}"])
        .iter()
        .any(|n| n == name)
}

/// Leaves the swarm the test made, on every way out of the test.
struct SwarmGuard {
    made: bool,
    gwbridge_before: bool,
}

impl Drop for SwarmGuard {
    fn drop(&mut self) {
        if !self.made {
            return;
        }
        let out = docker(&["swarm", "leave", "--force"]);
        if !out.status.success() {
            eprintln!(
                "docker swarm leave --force: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        // Swarm makes it for the first service's node and leaves it behind.
        if !self.gwbridge_before && has_network("docker_gwbridge") {
            let out = docker(&["network", "rm", "docker_gwbridge"]);
            if !out.status.success() {
                eprintln!(
                    "docker network rm docker_gwbridge: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        let state = swarm_state();
        if state != "inactive" && !std::thread::panicking() {
            panic!("the engine's swarm state is `{state}` after the test, not `inactive`");
        }
    }
}

/// The local engine in a swarm (made here when it was in none), with the
/// twlab image built; `None` after saying why the test cannot run.
async fn require_swarm(test: &str) -> Option<(Engine, Swarm, SwarmGuard)> {
    if !nix::unistd::geteuid().is_root() {
        cannot_run(test, "not root");
        return None;
    }
    let engine = match Engine::local().await {
        Ok(e) => e,
        Err(e) => {
            cannot_run(test, &format!("no Docker engine: {e}"));
            return None;
        }
    };
    let mut guard = SwarmGuard {
        made: false,
        gwbridge_before: has_network("docker_gwbridge"),
    };
    match swarm_state().as_str() {
        "inactive" => {
            let started = Instant::now();
            let out = docker(&[
                "swarm",
                "init",
                "--advertise-addr",
                "127.0.0.1",
                "--listen-addr",
                "127.0.0.1:2377",
            ]);
            assert!(
                out.status.success(),
                "docker swarm init: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            guard.made = true;
            eprintln!("swarm init took {:.2?}", started.elapsed());
        }
        "active" => eprintln!("the engine is already in a swarm: using it, leaving it in"),
        other => {
            cannot_run(test, &format!("the engine's swarm state is `{other}`"));
            return None;
        }
    }
    let swarm = match Swarm::connect(&engine).await {
        Ok(s) => s,
        Err(e) => {
            cannot_run(test, &e.to_string());
            return None;
        }
    };
    build_image();
    Some((engine, swarm, guard))
}

/// docker/twlab/build.sh with the test's twlab binary (kept when it holds
/// the same binary).
fn build_image() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("docker/twlab/build.sh");
    let started = Instant::now();
    let out = Command::new(&script)
        .arg(IMAGE)
        .env("TWLAB_BIN", env!("CARGO_BIN_EXE_twlab"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "{} failed ({}):\n{}{}",
        script.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "{} ({:.1?})",
        String::from_utf8_lossy(&out.stdout).trim(),
        started.elapsed()
    );
}

/// A run id no other test (or run) uses.
fn run_id(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("t{test}{:x}{:x}", std::process::id(), nanos)
}

/// twlab's builtin server on 127.0.0.1 (a free port), killed by PID when
/// dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn start() -> Server {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .expect("a free port on 127.0.0.1")
            .port();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let child = Command::new(env!("CARGO_BIN_EXE_twlab"))
            .args(["serve", "--listen", &addr.to_string(), "--threads", "1"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("twlab serve starts");
        let server = Server { child, addr };
        let started = Instant::now();
        while TcpStream::connect(addr).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "twlab serve does not listen on {addr}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn services_of(run: &str) -> Vec<String> {
    docker_lines(&[
        "service",
        "ls",
        "--filter",
        &format!("label=twlab.run={run}"),
        "--format",
        "{{.Name}}",
    ])
}

fn containers_of(run: &str) -> Vec<String> {
    docker_lines(&[
        "ps",
        "-a",
        "--filter",
        &format!("label=twlab.run={run}"),
        "--format",
        "{{.Names}}",
    ])
}

fn request(run: &str, suffix: &str, args: &[String]) -> ServiceRequest {
    ServiceRequest {
        run_id: run.to_string(),
        name_suffix: suffix.to_string(),
        image: IMAGE.to_string(),
        args: args.to_vec(),
        ..ServiceRequest::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_client_tasks_load_a_loopback_server_and_leave_nothing() {
    let test = "two_client_tasks_load_a_loopback_server_and_leave_nothing";
    let _one = SWARM.lock().await;
    let Some((engine, swarm, _guard)) = require_swarm(test).await else {
        return;
    };
    eprintln!(
        "engine: {}",
        engine.version().await.expect("engine version")
    );
    let server = Server::start();
    let run = run_id("c");
    let args: Vec<String> = [
        "load",
        "--target",
        &server.addr.to_string(),
        "--duration",
        "3s",
        "--connections",
        "4",
        "--threads",
        "1",
        "--json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut req = request(&run, "client", &args);
    req.labels = HashMap::from([("twlab.test".to_string(), test.to_string())]);

    let created = Instant::now();
    // Two tasks on the one node: no per-node limit (a lab of N client
    // machines asks for one per node).
    let service = swarm
        .start_replicated(&req, 2, None)
        .await
        .unwrap_or_else(|e| panic!("the client service starts: {e}"));
    assert_eq!(service.mode(), Mode::Replicated(2));
    assert_eq!(service.name(), format!("twlab-{run}-client"));
    assert_eq!(services_of(&run), vec![service.name().to_string()]);
    let running = service
        .wait_running(Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| panic!("both tasks run: {e}"));
    eprintln!(
        "create → {} task(s) running: {:.2?}",
        running.len(),
        created.elapsed()
    );
    let tasks = service
        .wait_complete(Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| panic!("both tasks end: {e}"));
    eprintln!("create → all ended: {:.2?}", created.elapsed());
    assert_eq!(tasks.len(), 2, "{tasks:?}");
    for t in &tasks {
        assert_eq!(
            t.state,
            Some(bollard::models::TaskState::COMPLETE),
            "{}",
            t.describe()
        );
        assert_eq!(t.node_id, swarm.node_id(), "{}", t.describe());
        assert!(t.hostname.is_some(), "{t:?}");
    }
    assert_eq!(
        containers_of(&run).len(),
        2,
        "each task's container carries the run's label"
    );

    let fetched = Instant::now();
    let outputs = service.task_outputs().await.expect("the tasks' logs");
    eprintln!("task logs read in {:.2?}", fetched.elapsed());
    assert_eq!(outputs.len(), 2);
    let ids: BTreeSet<&str> = outputs.iter().map(|o| o.task.id.as_str()).collect();
    assert_eq!(ids.len(), 2, "two tasks, not one log twice");
    for o in &outputs {
        let text = String::from_utf8_lossy(&o.stdout);
        let stats: ClientStats = serde_json::from_str(text.trim()).unwrap_or_else(|e| {
            panic!(
                "{}: stdout is not twlab load's JSON ({e}):\n{text}\nstderr:\n{}",
                o.task.describe(),
                String::from_utf8_lossy(&o.stderr)
            )
        });
        eprintln!(
            "{}: {} requests, {:.0} req/s, {} errors",
            o.task.describe(),
            stats.requests,
            stats.requests_per_sec,
            stats.errors.total()
        );
        assert_eq!(stats.tool, "builtin");
        assert!(stats.requests > 0, "{stats:?}");
        assert!(
            !o.stdout.is_empty() && !text.contains("twlab:"),
            "stdout holds the result only"
        );
    }

    let removing = Instant::now();
    let removed = swarm
        .remove_labelled(Some(&run))
        .await
        .expect("remove the run's services");
    eprintln!("removed {removed:?} in {:.2?}", removing.elapsed());
    assert_eq!(removed, vec![service.name().to_string()]);
    assert!(
        services_of(&run).is_empty(),
        "no service of the run is left"
    );
    assert!(
        containers_of(&run).is_empty(),
        "no container of the run is left: {:?}",
        containers_of(&run)
    );
    drop(service);
    assert!(
        swarm
            .remove_labelled(Some(&run))
            .await
            .expect("again")
            .is_empty(),
        "nothing left to remove"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_task_per_node_leaves_the_second_replica_pending_on_one_node() {
    let test = "one_task_per_node_leaves_the_second_replica_pending_on_one_node";
    let _one = SWARM.lock().await;
    let Some((_engine, swarm, _guard)) = require_swarm(test).await else {
        return;
    };
    let run = run_id("p");
    let args: Vec<String> = ["states", "127.0.0.1:9", "--watch", "1s", "--no-conntrack"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut service = swarm
        .start_replicated(&request(&run, "client", &args), 2, Some(1))
        .await
        .expect("the service is created");
    let err = service
        .wait_running(Duration::from_secs(5))
        .await
        .expect_err("a second task has no node to go to");
    let text = err.to_string();
    eprintln!("{text}");
    assert!(
        text.contains("1 of 2 task(s) running") && text.contains("pending"),
        "the error says how many run and what the other waits for: {text}"
    );
    assert!(
        text.contains(service.name()),
        "the error names the service: {text}"
    );
    service.remove().await.expect("remove the service");
    assert!(services_of(&run).is_empty());
    assert!(containers_of(&run).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_global_counter_streams_states_json_lines_per_node() {
    let test = "a_global_counter_streams_states_json_lines_per_node";
    let _one = SWARM.lock().await;
    let Some((_engine, swarm, _guard)) = require_swarm(test).await else {
        return;
    };
    let server = Server::start();
    let endpoint = server.addr.to_string();
    let run = run_id("g");
    let args: Vec<String> = ["states", &endpoint, "--watch", "500ms", "--json"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut req = request(&run, "counter", &args);
    req.cap_add = vec!["CAP_NET_ADMIN".to_string()];
    let created = Instant::now();
    let service = swarm
        .start_global(&req)
        .await
        .unwrap_or_else(|e| panic!("the counter service starts: {e}"));
    assert_eq!(service.mode(), Mode::Global);
    let tasks = service
        .wait_running(Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| panic!("the counter runs on every node: {e}"));
    eprintln!(
        "create → counter running on {} node(s): {:.2?}",
        tasks.len(),
        created.elapsed()
    );
    let nodes: BTreeSet<String> = tasks.iter().map(|t| t.node_id.clone()).collect();
    assert_eq!(nodes.len(), tasks.len(), "one task per node: {tasks:?}");

    // Some traffic, so the samples have more than the listener to count.
    for _ in 0..3 {
        let _ = TcpStream::connect(server.addr);
    }
    let (mut lines, follower) = service.follow_lines();
    // `twlab states --json` lines (ops::states::StatesSample).
    let mut seen: HashMap<String, serde_json::Value> = HashMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while seen.len() < nodes.len() {
        let line = match tokio::time::timeout_at(deadline, lines.recv()).await {
            Ok(Some(line)) => line.expect("the counter's log"),
            Ok(None) => panic!("the counter's log ended; seen {seen:?}"),
            Err(_) => panic!("no line from every node within 30s; seen {seen:?}"),
        };
        assert!(
            !line.stderr,
            "the counter printed on stderr on {:?}: {}",
            line.hostname, line.line
        );
        let sample: serde_json::Value = serde_json::from_str(&line.line)
            .unwrap_or_else(|e| panic!("not a states JSON line ({e}): {}", line.line));
        eprintln!(
            "{} ({}): {}",
            line.hostname.as_deref().unwrap_or("?"),
            line.node_id,
            line.line
        );
        seen.insert(line.node_id, sample);
    }
    follower.abort();
    eprintln!("create → a line from every node: {:.2?}", created.elapsed());
    for (node, sample) in &seen {
        assert!(nodes.contains(node));
        assert_eq!(sample["endpoint"], endpoint.as_str(), "{sample}");
        assert!(
            sample["server"]["LISTEN"].as_u64().unwrap_or(0) >= 1,
            "host networking: the counter sees the test's listener on {endpoint}: {sample}"
        );
        assert!(
            sample["conntrack"].is_object(),
            "NET_ADMIN: the counter reads conntrack: {sample}"
        );
    }

    let removing = Instant::now();
    let removed = swarm
        .remove_labelled(Some(&run))
        .await
        .expect("remove the counter");
    eprintln!("removed the running counter in {:.2?}", removing.elapsed());
    assert_eq!(removed, vec![service.name().to_string()]);
    assert!(services_of(&run).is_empty());
    assert!(containers_of(&run).is_empty());
}

/// A one-variant scenario `name` whose builtin server listens on a free
/// port of this machine and whose builtin client runs from the test's image
/// as a Swarm service (`client` keys added), and a lab file whose client
/// host is this machine's engine with `swarm` keys: (dir, scenario, lab).
fn swarm_run_files(
    name: &str,
    server: &str,
    client: &str,
    collect: &str,
    swarm: &str,
) -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let tmp = tempfile::tempdir().expect("tempdir");
    let scenario = tmp.path().join("swarm.yaml");
    std::fs::write(
        &scenario,
        format!(
            "name: {name}\n\
             server: {{ kind: builtin, port: {port}, {server} }}\n\
             client: {{ tool: builtin, via: swarm, image: \"{IMAGE}\", {client} }}\n\
             collect: {{ {collect} }}\n\
             variants:\n  - name: only\n"
        ),
    )
    .expect("scenario");
    let lab = tmp.path().join("lab.yaml");
    std::fs::write(
        &lab,
        format!(
            "hosts:\n  server: {{}}\n  client: {{ docker: true, swarm: {{ {swarm} }} }}\ncooldown: 1s\n"
        ),
    )
    .expect("lab");
    (tmp, scenario, lab)
}

/// `twlab run` with `client.via: swarm`: a lab file whose client host is
/// this machine's engine (the manager of the test's one-node swarm) and
/// whose server is twlab's builtin server on this machine's loopback. The
/// load runs as a service task, a second service counts on the node, the
/// figures come back through the task logs, and no service is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twlab_run_drives_a_swarm_load_counts_on_its_node_and_leaves_no_service() {
    let test = "twlab_run_drives_a_swarm_load_counts_on_its_node_and_leaves_no_service";
    let _one = SWARM.lock().await;
    let Some((_engine, _swarm, _guard)) = require_swarm(test).await else {
        return;
    };
    let (tmp, scenario, lab) = swarm_run_files(
        "swarm_run",
        "max_keepalive_requests: 100",
        "hosts: 2, connections: 8, threads: 1, duration: 4s",
        "interval: 500ms",
        // Two tasks on the test's one node.
        "one_per_node: false",
    );
    let dir = tmp.path().join("run");
    let out = Command::new(env!("CARGO_BIN_EXE_twlab"))
        .arg("run")
        .arg(&scenario)
        .arg("--lab")
        .arg(&lab)
        .arg("--out")
        .arg(&dir)
        .output()
        .expect("twlab runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr:\n{stderr}");

    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("summary.json")).expect("summary.json"),
    )
    .expect("json");
    let run = &summary["variants"][0]["runs"][0];
    assert!(run["error"].is_null(), "{run}");
    assert!(
        run["client"]["requests"].as_u64().unwrap_or(0) > 0,
        "the task's figures came back through its log: {run}"
    );
    assert_eq!(run["server_peers"].as_u64(), Some(1), "{run}");
    // Each task is a client host of the run, named by its node, with its
    // own figures; both share the one node's counts.
    let hosts = run["clients"].as_array().expect("two client hosts");
    assert_eq!(hosts.len(), 2, "{run}");
    for h in hosts {
        assert!(
            h["host"]
                .as_str()
                .is_some_and(|n| n.starts_with("swarm node ")),
            "{h}"
        );
        assert!(h["load"]["requests"].as_u64().unwrap_or(0) > 0, "{h}");
        assert_eq!(h["sockets"], run["sockets"]["client"], "{h}");
    }
    let one: u64 = hosts
        .iter()
        .map(|h| h["load"]["requests"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(
        run["client"]["requests"].as_u64(),
        Some(one),
        "the total is the tasks' sum"
    );
    // The node's counter saw the load's connections from the client side.
    let samples = std::fs::read_to_string(dir.join("samples.jsonl")).expect("samples");
    let established_on_node = samples
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|s| s["host"] == "client" && s["source"] == "sockets")
        .any(|s| s["counts"]["ESTABLISHED"].as_u64().unwrap_or(0) > 0);
    assert!(
        established_on_node,
        "no client-side count from the node:\n{samples}"
    );
    let services = docker_lines(&[
        "service",
        "ls",
        "--filter",
        "label=twlab.run",
        "--format",
        "{{.Name}}",
    ]);
    assert!(services.is_empty(), "services left: {services:?}");
}

/// Ctrl-C while a Swarm's services wait to be scheduled (here: a placement
/// no node matches, so they never would) ends the run at once, with the
/// services removed, instead of after the minute the wait allows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_while_swarm_services_wait_to_be_scheduled_stops_at_once_and_leaves_none() {
    let test = "ctrl_c_while_swarm_services_wait_to_be_scheduled_stops_at_once_and_leaves_none";
    let _one = SWARM.lock().await;
    let Some((_engine, _swarm, _guard)) = require_swarm(test).await else {
        return;
    };
    let (tmp, scenario, lab) = swarm_run_files(
        "swarm_stop",
        "max_keepalive_requests: 100",
        "connections: 4, threads: 1, duration: 30s",
        "conntrack: false",
        "constraint: node.labels.twlab.nowhere==x",
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_twlab"))
        .arg("run")
        .arg(&scenario)
        .arg("--lab")
        .arg(&lab)
        .arg("--out")
        .arg(tmp.path().join("run"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("twlab runs");
    // Until the counter service exists (it then waits for a node).
    let deadline = Instant::now() + Duration::from_secs(20);
    while docker_lines(&[
        "service",
        "ls",
        "--filter",
        "label=twlab.run",
        "--format",
        "{{.Name}}",
    ])
    .is_empty()
    {
        assert!(Instant::now() < deadline, "no service was created");
        std::thread::sleep(Duration::from_millis(100));
    }
    let signalled = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .expect("SIGINT");
    let status = child.wait().expect("twlab ends");
    let took = signalled.elapsed();
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut stderr);
    }
    assert_eq!(status.code(), Some(130), "stderr:\n{stderr}");
    assert!(
        took < Duration::from_secs(45),
        "twlab took {took:?} to stop (the wait allows 60 s)"
    );
    let services = docker_lines(&[
        "service",
        "ls",
        "--filter",
        "label=twlab.run",
        "--format",
        "{{.Name}}",
    ]);
    assert!(services.is_empty(), "services left: {services:?}");
}
