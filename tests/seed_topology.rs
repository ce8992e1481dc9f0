//! The seed's own topology, on real parts, in one command: Tomcat in a
//! Docker container with host networking on the server host (this machine),
//! wrk over SSH on the client host (a real sshd in a namespace joined to
//! this machine by a veth pair, addresses in 198.18.20.0/24), both sides
//! counted, `net.ipv4.tcp_tw_reuse` toggled on both hosts and restored.
//! Also: the Docker engine reached through that sshd (bollard on the
//! forwarded socket). Root and Docker are needed (CI has both); nextest
//! runs these one at a time.

mod common;
#[path = "common/sshd.rs"]
mod sshd;

use common::*;
use sshd::SshdHost;
use std::path::Path;

fn count(run: &serde_json::Value, path: &[&str]) -> u64 {
    let mut cur = run;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_u64().unwrap_or(0)
}

fn write_seed_lab(dir: &Path, sshd: &SshdHost) -> std::path::PathBuf {
    let server = HostSpec {
        address: Some(sshd.root_addr.into()),
        docker: true,
        ..HostSpec::default()
    };
    write_lab(
        &dir.join("lab.yaml"),
        &lab_of(
            server,
            vec![sshd.spec()],
            Some(std::time::Duration::from_secs(3)),
        ),
    )
}

#[test]
fn tomcat_in_docker_with_wrk_over_ssh_counts_both_sides_and_restores_both_hosts() {
    let test = "tomcat_in_docker_with_wrk_over_ssh_counts_both_sides_and_restores_both_hosts";
    if !require_docker(test) {
        return;
    }
    assert!(
        std::net::TcpListener::bind(("0.0.0.0", 8080)).is_ok(),
        "port 8080 (Tomcat's) is in use on this machine"
    );
    let sshd = SshdHost::start("seed");
    // The client host tracks connections, as a host with a stateful
    // firewall does (a fresh namespace tracks nothing until a rule uses
    // conntrack); this machine's own namespace does already (Docker's NAT).
    twlab::lab::netns::sys::enable_conntrack(&sshd.netns).expect("conntrack on in the client host");
    let client_before = sshd.exec(&["sysctl", "-n", "net.ipv4.tcp_tw_reuse"]);
    let server_before = tw_reuse();
    let tmp = tempfile::tempdir().expect("tempdir");
    let state = tmp.path().join("state");
    let lab = write_seed_lab(tmp.path(), &sshd);
    let out = tmp.path().join("run");
    let ran = run_expecting(
        twlab()
            .env("TWLAB_STATE_DIR", &state)
            .arg("run")
            .arg(manifest_dir().join("scenarios/tw_reuse_tomcat.yaml"))
            .arg("--lab")
            .arg(&lab)
            .args([
                "--set",
                "client.duration=12s",
                "--set",
                "collect.steady_after=6s",
            ])
            .arg("--out")
            .arg(&out),
        0,
    );
    let stdout = String::from_utf8_lossy(&ran.stdout);

    // Both hosts are back as they were.
    assert_eq!(tw_reuse(), server_before, "this machine's tcp_tw_reuse");
    assert_eq!(
        sshd.exec(&["sysctl", "-n", "net.ipv4.tcp_tw_reuse"]),
        client_before,
        "the SSH host's tcp_tw_reuse"
    );
    assert_eq!(
        twlab_containers(),
        Vec::<String>::new(),
        "a container was left"
    );
    let journals: Vec<_> = std::fs::read_dir(state.join("restore"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(journals.is_empty(), "restore journal left: {journals:?}");
    assert!(
        sshd.exec(&["sh", "-c", "pgrep -x wrk || true"])
            .trim()
            .is_empty(),
        "wrk still runs on the SSH host"
    );

    let summary = read_json(&out.join("summary.json"));
    let variants = summary["variants"].as_array().expect("variants");
    assert_eq!(variants.len(), 2, "{stdout}");
    let (mut client_tw, mut server_tw_seen) = (0, 0);
    for v in variants {
        let run = &v["runs"][0];
        assert!(run["error"].is_null(), "{run}");
        assert_eq!(run["client"]["tool"], "wrk", "{run}");
        let requests = count(run, &["client", "requests"]);
        let server_tw = count(run, &["sockets", "server", "final", "TIME_WAIT"]);
        let client_tw_final = count(run, &["sockets", "client", "final", "TIME_WAIT"]);
        eprintln!(
            "{}: {requests} requests, TIME_WAIT server {server_tw}, client {client_tw_final}",
            v["name"]
        );
        assert!(requests > 1000, "{run}");
        // Tomcat answers the 100th request of a connection with
        // `Connection: close` and closes; wrk closes as soon as it reads
        // that answer. Whichever FIN goes first leaves the TIME_WAIT (both,
        // on a simultaneous close), and it lasts 60 s, longer than the load:
        // without reuse, about every close is still there at the end, on
        // one side or the other (which side wins varies with the load).
        let closes = requests / 100;
        if v["name"] == "reuse-off" {
            assert!(
                server_tw + client_tw_final >= closes / 2,
                "TIME_WAIT server {server_tw} + client {client_tw_final} after {closes} closes: {run}"
            );
        }
        server_tw_seen += count(run, &["sockets", "server", "peak", "TIME_WAIT"]);
        assert!(
            count(run, &["sockets", "client", "peak", "ESTABLISHED"]) > 0,
            "the client side is counted over SSH: {run}"
        );
        assert!(
            count(run, &["conntrack", "server", "final", "TIME_WAIT"]) > 0,
            "{run}"
        );
        assert!(
            count(run, &["conntrack", "client", "final", "TIME_WAIT"]) > 0,
            "{run}"
        );
        client_tw += count(run, &["sockets", "client", "peak", "TIME_WAIT"]);
    }
    assert!(client_tw > 0, "no client TIME_WAIT in either variant");
    assert!(server_tw_seen > 0, "no server TIME_WAIT in either variant");

    let env = read_json(&out.join("env.json"));
    assert_eq!(env["lab"], "real");
    assert!(
        env["runs"][0]["server_image_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("sha256:")),
        "{}",
        env["runs"][0]
    );
    assert!(env["docker_engine"].is_string(), "{env}");
    assert_eq!(
        env["hosts"]["client"]["host"],
        format!("ssh {}", sshd.destination()).as_str()
    );
    // The server's sysctl was this machine's: its old value is on record.
    let changes = env["runs"][1]["sysctls"].as_array().expect("sysctls");
    assert!(
        changes
            .iter()
            .any(|c| c["side"] == "server" && c["before"] == server_before.as_str()),
        "{changes:?}"
    );
    let report = std::fs::read_to_string(out.join("report.md")).expect("report");
    assert!(report.contains("real hosts"), "{report}");
    assert!(report.contains("restored by twlab"), "{report}");
    let server_log =
        std::fs::read_to_string(out.join("reuse-off-r1-server.log")).unwrap_or_default();
    assert!(
        server_log.contains("Server startup"),
        "Tomcat's log is kept: {server_log}"
    );
}

#[test]
fn the_docker_engine_is_reached_through_the_ssh_host() {
    if !require_docker("the_docker_engine_is_reached_through_the_ssh_host") {
        return;
    }
    let sshd = SshdHost::start("engine");
    let mut spec = sshd.spec();
    spec.docker = true;
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let control = tempfile::tempdir().expect("tempdir");
        let host = twlab::lab::real::RealHost::connect(
            &spec,
            twlab::common::endpoint::Side::Server,
            control.path(),
        )
        .await
        .expect("ssh connects");
        let engine = host
            .docker_engine(control.path())
            .await
            .expect("the engine answers through the forwarded socket");
        assert!(
            engine.describe.contains(&sshd.destination()),
            "{}",
            engine.describe
        );
        let version = engine.version().await.expect("version");
        let local = twlab::docker::Engine::local().await.expect("local engine");
        assert_eq!(version, local.version().await.expect("version"));
        // A labelled container made through SSH is found and removed
        // through SSH, as `twlab clean` does for a remote server host.
        let run_id = format!("sshtest{}", std::process::id());
        let name = format!("twlab-{run_id}-server");
        engine
            .create_container(&twlab::docker::ContainerSpec {
                name: name.clone(),
                image: TOMCAT_IMAGE.into(),
                labels: [(twlab::docker::LABEL_RUN.to_string(), run_id.clone())]
                    .into_iter()
                    .collect(),
                cmd: Some(vec!["sleep".into(), "30".into()]),
                ..Default::default()
            })
            .await
            .expect("create");
        assert_eq!(twlab_containers(), vec![name.clone()]);
        let removed = engine.remove_labelled(Some(&run_id)).await.expect("remove");
        assert_eq!(removed, vec![name]);
        assert_eq!(twlab_containers(), Vec::<String>::new());
        host.close().await;
    });
}
