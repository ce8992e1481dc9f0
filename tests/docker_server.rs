//! `server.kind: docker` against the real Docker engine of this machine,
//! with the Tomcat image built by docker/tomcat/build.sh (built here when
//! missing). The container uses host networking, so a `LocalHost` (this
//! machine's own namespace) sees its sockets.
//!
//! Needs root and a Docker engine: without them the tests say SKIPPED and
//! pass, except in CI (CI=true), where that is a failure.

mod common;

use common::cannot_run;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use twlab::common::endpoint::{Endpoint, Side};
use twlab::docker::{ContainerSpec, Engine, LABEL_ROLE, LABEL_RUN};
use twlab::error::Error;
use twlab::lab::Host;
use twlab::lab::local::LocalHost;
use twlab::load::server::{self, ServerContext};
use twlab::scenario::{Port, PullPolicy, ServerKind, ServerSpec};

const IMAGE: &str = "twlab/tomcat:10.1";

/// Tomcat's image listens on 8080 (its server.xml); the tests that run it
/// take turns also when run as threads of one process (`cargo test`).
static TOMCAT_PORT: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The local engine with the Tomcat image on it (built with
/// docker/tomcat/build.sh when missing), or `None` after saying why.
async fn require_docker(test: &str) -> Option<Engine> {
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
    match ensure_image(&engine).await {
        Ok(()) => Some(engine),
        Err(why) => {
            cannot_run(test, &why);
            None
        }
    }
}

/// Build the image once per test process when the engine lacks it.
async fn ensure_image(engine: &Engine) -> Result<(), String> {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    if engine
        .image_id(IMAGE)
        .await
        .map_err(|e| e.to_string())?
        .is_some()
    {
        return Ok(());
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("docker/tomcat/build.sh");
    tokio::task::spawn_blocking(move || {
        BUILT
            .get_or_init(|| {
                eprintln!("{IMAGE} is missing: building it with {}", script.display());
                let started = Instant::now();
                let out = Command::new(&script)
                    .arg(IMAGE)
                    .output()
                    .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
                if !out.status.success() {
                    return Err(format!(
                        "{IMAGE} is missing and {} failed ({}):\n{}{}",
                        script.display(),
                        out.status,
                        String::from_utf8_lossy(&out.stdout),
                        String::from_utf8_lossy(&out.stderr)
                    ));
                }
                eprintln!("built {IMAGE} in {:.0?}", started.elapsed());
                Ok(())
            })
            .clone()
    })
    .await
    .map_err(|e| format!("image build task: {e}"))?
}

/// A run id no other test (or run) uses.
fn run_id(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("t{test}{:x}{:x}", std::process::id(), nanos)
}

/// Names of the containers labelled with this run, from the docker CLI
/// (an independent view of the engine).
fn labelled(run_id: &str) -> Vec<String> {
    let out = Command::new("docker")
        .args([
            "ps",
            "-a",
            "--filter",
            &format!("label={LABEL_RUN}={run_id}"),
            "--format",
            "{{.Names}}",
        ])
        .output()
        .expect("docker ps runs");
    assert!(
        out.status.success(),
        "docker ps: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .filter(|l| !l.is_empty())
        .collect()
}

fn docker_spec(port: u16, args: &[&str], pull: PullPolicy, image: &str) -> ServerSpec {
    ServerSpec {
        kind: ServerKind::Docker,
        port: Port(port),
        image: Some(image.to_string()),
        args: args.iter().map(|s| s.to_string()).collect(),
        pull: Some(pull),
        ..ServerSpec::default()
    }
}

fn context<'a>(log: &'a Path, run_id: &'a str, engine: &'a Engine) -> ServerContext<'a> {
    ServerContext {
        // Not used by a docker server.
        exe: Path::new("/nonexistent/twlab"),
        log,
        run_id,
        engine: Some(engine),
    }
}

async fn listeners(host: &LocalHost, port: u16) -> u64 {
    let counts = host
        .socket_counts(Endpoint::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port))
        .await
        .expect("sock_diag counts");
    counts.get("LISTEN").copied().unwrap_or(0)
}

/// One HTTP/1.1 request with `Connection: close`; the whole response.
fn http_get(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect("connect to Tomcat");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).expect("read the response");
    response
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_tomcat_serves_and_leaves_time_wait_on_the_server() {
    let test = "docker_tomcat_serves_and_leaves_time_wait_on_the_server";
    let Some(engine) = require_docker(test).await else {
        return;
    };
    eprintln!(
        "engine: {}",
        engine.version().await.expect("engine version")
    );
    let _port = TOMCAT_PORT.lock().await;
    let host = LocalHost::new(Side::Server, false);
    let port = 8080;
    assert_eq!(
        listeners(&host, port).await,
        0,
        "port {port} is in use on this machine (see `ss -ltnp sport = :{port}`); this test runs Tomcat there with host networking"
    );
    let id = run_id("a");
    let dir = tempfile::tempdir().unwrap();
    let log: PathBuf = dir.path().join("server.log");
    let spec = docker_spec(port, &[], PullPolicy::Never, IMAGE);

    let started = Instant::now();
    let mut running = server::start(&spec, &host, &context(&log, &id, &engine))
        .await
        .unwrap_or_else(|e| panic!("the Tomcat container starts: {e}"));
    eprintln!("Tomcat listened after {:.2?}", started.elapsed());
    let name = format!("twlab-{id}-server");
    assert_eq!(labelled(&id), vec![name.clone()]);
    assert!(
        running.description.contains(&name)
            && running.description.contains(IMAGE)
            && running.description.contains("host network"),
        "{}",
        running.description
    );
    let image_id = running.image_id.clone().expect("an image id");
    assert!(image_id.starts_with("sha256:"), "{image_id}");
    assert!(listeners(&host, port).await > 0);

    let requests = 5;
    let responses = tokio::task::spawn_blocking(move || {
        (0..requests)
            .map(|_| http_get(port, "/abc"))
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    for r in &responses {
        assert!(r.starts_with("HTTP/1.1 404"), "not a 404 from Tomcat:\n{r}");
    }
    let counts = host
        .socket_counts(Endpoint::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port))
        .await
        .unwrap();
    eprintln!("server side of 127.0.0.1:{port} after {requests} requests: {counts:?}");
    let time_wait = counts.get("TIME_WAIT").copied().unwrap_or(0);
    assert!(
        time_wait >= requests,
        "Tomcat closes first on Connection: close, so the server side holds TIME_WAIT: {counts:?}"
    );
    running.check_alive().await.expect("Tomcat is still up");

    let stopping = Instant::now();
    running.stop().await.expect("stop and remove");
    eprintln!("stopped and removed in {:.2?}", stopping.elapsed());
    assert!(labelled(&id).is_empty(), "the container is removed");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("Starting ProtocolHandler") && text.contains("Server startup"),
        "Tomcat's startup lines are in the log:\n{text}"
    );
    assert_eq!(
        text.matches("Server startup in").count(),
        1,
        "the log is written once, not followed and fetched twice:\n{text}"
    );
    assert!(
        text.contains("Stopping ProtocolHandler") || text.contains("Pausing ProtocolHandler"),
        "the log also holds the shutdown that followed the stop:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_container_that_exits_at_once_is_reported_and_removed() {
    let test = "docker_container_that_exits_at_once_is_reported_and_removed";
    let Some(engine) = require_docker(test).await else {
        return;
    };
    let host = LocalHost::new(Side::Server, false);
    let id = run_id("b");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");
    // A port nothing listens on: the container never will.
    let spec = docker_spec(18097, &["/bin/false"], PullPolicy::Never, IMAGE);
    let started = Instant::now();
    let err = match server::start(&spec, &host, &context(&log, &id, &engine)).await {
        Ok(_) => panic!("/bin/false cannot be a server"),
        Err(e) => e,
    };
    let text = err.to_string();
    eprintln!("after {:.2?}: {text}", started.elapsed());
    assert!(matches!(err, Error::Environment(_)), "{err:?}");
    assert!(
        text.contains(&format!("twlab-{id}-server"))
            && text.contains("exited with code 1")
            && text.contains("before listening")
            && text.contains("last log lines"),
        "{text}"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(labelled(&id).is_empty(), "the container is removed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_container_that_dies_before_listening_leaves_its_output() {
    let test = "docker_container_that_dies_before_listening_leaves_its_output";
    let Some(engine) = require_docker(test).await else {
        return;
    };
    let host = LocalHost::new(Side::Server, false);
    let id = run_id("b2");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");
    let script = "echo starting up; echo 'cannot bind 0.0.0.0:18096' >&2; exit 7";
    let spec = docker_spec(18096, &["/bin/sh", "-c", script], PullPolicy::Never, IMAGE);
    let err = match server::start(&spec, &host, &context(&log, &id, &engine)).await {
        Ok(_) => panic!("the script exits"),
        Err(e) => e,
    };
    let text = err.to_string();
    eprintln!("{text}");
    assert!(
        text.contains("exited with code 7") && text.contains("cannot bind 0.0.0.0:18096"),
        "{text}"
    );
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("starting up") && logged.contains("cannot bind 0.0.0.0:18096"),
        "stdout and stderr are in the server log:\n{logged}"
    );
    assert!(labelled(&id).is_empty(), "the container is removed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_server_killed_behind_twlab_is_caught_by_check_alive() {
    let test = "docker_server_killed_behind_twlab_is_caught_by_check_alive";
    let Some(engine) = require_docker(test).await else {
        return;
    };
    let _port = TOMCAT_PORT.lock().await;
    let host = LocalHost::new(Side::Server, false);
    assert_eq!(
        listeners(&host, 8080).await,
        0,
        "port 8080 is in use on this machine (see `ss -ltnp sport = :8080`); this test runs Tomcat there with host networking"
    );
    let id = run_id("e");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");
    let spec = docker_spec(8080, &[], PullPolicy::Never, IMAGE);
    let mut running = server::start(&spec, &host, &context(&log, &id, &engine))
        .await
        .unwrap_or_else(|e| panic!("the Tomcat container starts: {e}"));
    let name = format!("twlab-{id}-server");
    let out = Command::new("docker")
        .args(["kill", &name])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = running
        .check_alive()
        .await
        .expect_err("the container is dead");
    let text = err.to_string();
    eprintln!("{text}");
    assert!(matches!(err, Error::Environment(_)), "{err:?}");
    assert!(
        text.contains(&name)
            && text.contains("exited with code 137")
            && text.contains("while the load ran")
            // Tomcat binds (and so is ready) while it initializes, before "Server startup".
            && text.contains("Initializing ProtocolHandler"),
        "{text}"
    );
    running
        .stop()
        .await
        .expect("stopping a dead container still removes it");
    assert!(labelled(&id).is_empty(), "the container is removed");
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("Initializing ProtocolHandler"), "{logged}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_server_dropped_without_a_stop_is_removed_all_the_same() {
    let test = "docker_server_dropped_without_a_stop_is_removed_all_the_same";
    let Some(engine) = require_docker(test).await else {
        return;
    };
    let _port = TOMCAT_PORT.lock().await;
    let host = LocalHost::new(Side::Server, false);
    assert_eq!(
        listeners(&host, 8080).await,
        0,
        "port 8080 is in use on this machine (see `ss -ltnp sport = :8080`); this test runs Tomcat there with host networking"
    );
    let id = run_id("f");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");
    let spec = docker_spec(8080, &[], PullPolicy::Never, IMAGE);
    let running = server::start(&spec, &host, &context(&log, &id, &engine))
        .await
        .unwrap_or_else(|e| panic!("the Tomcat container starts: {e}"));
    assert_eq!(labelled(&id).len(), 1);
    // An error path between start and stop: the server goes out of scope.
    let dropping = Instant::now();
    drop(running);
    eprintln!("removed on drop in {:.2?}", dropping.elapsed());
    assert!(labelled(&id).is_empty(), "the container is removed on drop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_pull_never_with_a_missing_image_creates_nothing() {
    let test = "docker_pull_never_with_a_missing_image_creates_nothing";
    let Some(engine) = require_docker(test).await else {
        return;
    };
    let host = LocalHost::new(Side::Server, false);
    let id = run_id("c");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");
    let image = "twlab/no-such-image:never";
    assert_eq!(engine.image_id(image).await.unwrap(), None);
    let spec = docker_spec(18098, &[], PullPolicy::Never, image);
    let err = match server::start(&spec, &host, &context(&log, &id, &engine)).await {
        Ok(_) => panic!("a missing image with pull: never cannot start"),
        Err(e) => e,
    };
    let text = err.to_string();
    eprintln!("{text}");
    assert!(matches!(err, Error::Environment(_)), "{err:?}");
    assert!(
        text.contains(image)
            && text.contains("pull is never")
            && text.contains("docker/tomcat/build.sh")
            && text.contains("docker load"),
        "{text}"
    );
    assert!(labelled(&id).is_empty());
    assert_eq!(
        engine.image_id(image).await.unwrap(),
        None,
        "nothing pulled"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_pull_missing_of_an_image_no_registry_has_fails_with_the_engines_reason() {
    let test = "docker_pull_missing_of_an_image_no_registry_has_fails_with_the_engines_reason";
    let Some(engine) = require_docker(test).await else {
        return;
    };
    let host = LocalHost::new(Side::Server, false);
    let id = run_id("c2");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");
    // No registry has it: unreachable here, "not found" or "denied" where one is.
    let image = "twlab/no-such-image:missing";
    let spec = docker_spec(18098, &[], PullPolicy::Missing, image);
    let err = match server::start(&spec, &host, &context(&log, &id, &engine)).await {
        Ok(_) => panic!("nothing to pull"),
        Err(e) => e,
    };
    let text = err.to_string();
    eprintln!("{text}");
    assert!(matches!(err, Error::Environment(_)), "{err:?}");
    assert!(
        text.contains(&format!("pulling image `{image}` failed"))
            && text.contains("docker/tomcat/build.sh"),
        "{text}"
    );
    assert!(labelled(&id).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_server_without_an_engine_says_the_lab_needs_docker_true() {
    let host = LocalHost::new(Side::Server, false);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");
    let spec = docker_spec(18099, &[], PullPolicy::Never, IMAGE);
    let ctx = ServerContext {
        exe: Path::new("/nonexistent/twlab"),
        log: &log,
        run_id: "noengine",
        engine: None,
    };
    let err = match server::start(&spec, &host, &ctx).await {
        Ok(_) => panic!("no engine, no container"),
        Err(e) => e,
    };
    assert!(matches!(err, Error::Environment(_)), "{err:?}");
    assert!(err.to_string().contains("docker: true"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_remove_labelled_removes_a_running_container_of_its_run_only() {
    let test = "docker_remove_labelled_removes_a_running_container_of_its_run_only";
    let Some(engine) = require_docker(test).await else {
        return;
    };
    let id = run_id("d");
    let name = format!("twlab-{id}-server");
    let spec = ContainerSpec {
        name: name.clone(),
        image: IMAGE.into(),
        labels: [
            (LABEL_RUN.to_string(), id.clone()),
            (LABEL_ROLE.to_string(), "server".to_string()),
        ]
        .into(),
        cmd: Some(vec!["sleep".into(), "60".into()]),
        ..ContainerSpec::default()
    };
    engine.create_container(&spec).await.unwrap();
    // From here on, remove it even when an assertion fails.
    struct Cleanup(String);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = Command::new("docker").args(["rm", "-f", &self.0]).output();
        }
    }
    let _cleanup = Cleanup(name.clone());
    engine.start_container(&name).await.unwrap();
    let status = engine.container_status(&name).await.unwrap().unwrap();
    assert!(status.running, "{status:?}");

    let other = engine
        .remove_labelled(Some(&format!("{id}-other")))
        .await
        .unwrap();
    assert!(other.is_empty(), "{other:?}");
    assert_eq!(
        labelled(&id),
        vec![name.clone()],
        "another run's clean left it"
    );

    let started = Instant::now();
    let removed = engine.remove_labelled(Some(&id)).await.unwrap();
    eprintln!("removed {removed:?} in {:.2?}", started.elapsed());
    assert_eq!(removed, vec![name.clone()]);
    assert!(labelled(&id).is_empty());
    assert_eq!(engine.container_status(&name).await.unwrap(), None);
}
