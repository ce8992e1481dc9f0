//! Unit tests of the parent module (scenario).

use super::*;
use std::time::Duration;

const SEED: &str = include_str!("../../scenarios/tw_reuse.yaml");

/// Issue 23, item 7: an empty client value was the default (a 90 s
/// run for `--set client.duration=`); it is refused like the empty
/// value of any other key, at its line, in every place it is written.
#[test]
fn an_empty_client_value_is_refused_not_defaulted() {
    for empty in ["", "~", "null"] {
        for key in ["duration", "timeout", "path", "tool", "close_after"] {
            let o = format!("client.{key}={empty}");
            let e = Scenario::parse(SEED, "s.yaml", std::slice::from_ref(&o))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains(&format!("client.{key} has an empty value")),
                "{o}: {e}"
            );
        }
        let file = SEED.replace("duration: 90s", &format!("duration: {empty}"));
        let line = SEED
            .lines()
            .position(|l| l.contains("duration: 90s"))
            .unwrap()
            + 1;
        let e = Scenario::parse(&file, "s.yaml", &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!("s.yaml:{line}:"))
                && e.contains("client.duration has an empty value"),
            "{e}"
        );
        let variant = format!(
            "name: e\nvariants:\n  - name: a\n  - name: b\n    set:\n      client.duration: {empty}\n"
        );
        let e = Scenario::parse(&variant, "s.yaml", &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("s.yaml:6:") && e.contains("client.duration has an empty value"),
            "{e}"
        );
    }
}

#[test]
fn the_shipped_seed_scenario_is_valid() {
    let s = Scenario::parse(SEED, "tw_reuse.yaml", &[]).unwrap();
    assert_eq!(s.name.as_str(), "tw_reuse");
    assert_eq!(s.client.connections.get(), 100);
    assert_eq!(s.client.threads.get(), 2);
    assert_eq!(s.client.path, "/abc");
    assert_eq!(s.server.max_keepalive_requests, 100);
    assert_eq!(s.variants.len(), 2);
    assert_eq!(s.baseline().name.as_str(), "reuse-off");
}

#[test]
fn overrides_set_scalars_by_path_and_variant_name() {
    let s = Scenario::parse(
        SEED,
        "seed",
        &[
            "client.duration=10s".into(),
            "client.tool=wrk".into(),
            "variants.reuse-on.sysctls.client.net.ipv4.tcp_tw_reuse=2".into(),
            "description=short run".into(),
        ],
    )
    .unwrap();
    assert_eq!(s.client.duration.0, Duration::from_secs(10));
    assert_eq!(s.client.tool.as_str(), "wrk");
    let reuse = SysctlName::parse("net.ipv4.tcp_tw_reuse").unwrap();
    assert_eq!(s.variants[1].sysctls.client[&reuse].0, "2");
    assert_eq!(s.description.as_deref(), Some("short run"));
}

#[test]
fn a_bad_override_is_named_in_the_error() {
    let err = Scenario::parse(SEED, "seed.yaml", &["client.connections=0".into()]).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with("seed.yaml: --set client.connections=0:"),
        "{msg}"
    );
    assert_eq!(err.exit_code(), 2);
    let err = Scenario::parse(SEED, "seed.yaml", &["variants=3".into()]).unwrap_err();
    assert!(err.to_string().contains("not a scalar"), "{err}");
    let err = Scenario::parse(SEED, "seed.yaml", &["nonsense".into()]).unwrap_err();
    assert!(err.to_string().contains("key.path=value"), "{err}");
}

#[test]
fn client_via_docker_needs_wrk_and_is_refused_at_the_via_line() {
    let text = "name: x\nclient:\n  connections: 10\n  via: docker\nvariants:\n  - name: a\n";
    let err = Scenario::parse(text, "s.yaml", &[]).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with("s.yaml:4: client.via: docker")
            && msg.contains("client.tool: builtin has none (the tools with one: wrk)"),
        "{msg}"
    );
    assert_eq!(err.exit_code(), 2);
    let ok = Scenario::parse(
        "name: x\nclient: { tool: wrk, via: docker }\nvariants:\n  - name: a\n",
        "s.yaml",
        &[],
    )
    .unwrap();
    assert_eq!(ok.client.via, ClientVia::Docker);
    assert_eq!(ok.client.image(), DEFAULT_CLIENT_IMAGE);
    let again = Scenario::parse(&ok.to_yaml(), "resolved", &[]).unwrap();
    assert_eq!(again, ok);
    let err = Scenario::parse(
        "name: x\nclient:\n  tool: wrk\n  via: docker\n  image: 'a b'\nvariants:\n  - name: a\n",
        "s.yaml",
        &[],
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("s.yaml:5: client.image `a b` is not an image reference"),
        "{err}"
    );
}

#[test]
fn a_client_check_points_at_the_first_key_the_block_holds() {
    let text = "name: x\nclient:\n  tool: wrk\n  linger_zero: true\nserver:\n  image: x\nvariants:\n  - name: a\n";
    let msg = Scenario::parse(text, "s.yaml", &[])
        .unwrap_err()
        .to_string();
    assert!(
        msg.starts_with("s.yaml:4: client.linger_zero is not supported by client.tool: wrk"),
        "{msg}"
    );
    // Errors serde places itself keep their line and column.
    let text = "name: x\nclient:\n  duration: 5\nvariants:\n  - name: a\n";
    let msg = Scenario::parse(text, "s.yaml", &[])
        .unwrap_err()
        .to_string();
    assert!(msg.starts_with("s.yaml:3:13: client.duration:"), "{msg}");
}

#[test]
fn check_lab_refuses_a_docker_client_without_a_client_engine() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.yaml");
    let text = "name: x\nclient:\n  tool: wrk\n  via: docker\nvariants:\n  - name: a\n";
    std::fs::write(&path, text).unwrap();
    let s = Scenario::load(&path, &[]).unwrap();
    let origin = path.display().to_string();
    let lab = |server: bool, client: bool| {
        let mut l: crate::scenario::labfile::LabSpec =
            serde_yaml_ng::from_str("hosts:\n  server: { address: 127.0.0.1 }\n  client: {}\n")
                .unwrap();
        l.hosts.server.docker = server;
        if let Some(c) = l.hosts.client.as_mut() {
            c.docker = client;
        }
        l
    };
    for l in [None, Some(lab(true, false))] {
        let err = s.check_lab(&origin, text, l.as_ref()).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!("{}:4: client.via: docker", path.display()))
                && msg.contains("hosts.client has `docker: true`"),
            "{msg}"
        );
        assert_eq!(err.exit_code(), 2);
    }
    s.check_lab(&origin, text, Some(&lab(false, true))).unwrap();
}

#[test]
fn check_lab_refuses_a_swarm_client_without_a_manager_or_with_client_sysctls() {
    let text = "name: x\nclient:\n  hosts: 3\n  via: swarm\nvariants:\n  - name: a\n";
    let s = Scenario::parse(text, "s.yaml", &[]).unwrap();
    assert_eq!(s.client.image(), crate::scenario::DEFAULT_TWLAB_IMAGE);
    let lab = |swarm: bool| {
        let client = if swarm {
            "{ docker: true, swarm: {} }"
        } else {
            "{ docker: true }"
        };
        let l: crate::scenario::labfile::LabSpec =
            serde_yaml_ng::from_str(&format!("hosts:\n  server: {{}}\n  client: {client}\n"))
                .unwrap();
        l
    };
    for l in [None, Some(lab(false))] {
        let err = s.check_lab("s.yaml", text, l.as_ref()).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("s.yaml:4: client.via: swarm"), "{msg}");
        assert_eq!(err.exit_code(), 2);
    }
    s.check_lab("s.yaml", text, Some(&lab(true))).unwrap();
    let text = "name: x\nclient:\n  via: swarm\nvariants:\n  - name: a\n    sysctls:\n      client: { net.ipv4.tcp_tw_reuse: 1 }\n";
    let s = Scenario::parse(text, "s.yaml", &[]).unwrap();
    let msg = s
        .check_lab("s.yaml", text, Some(&lab(true)))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("sets client sysctls"), "{msg}");
}

#[test]
fn check_lab_refuses_more_client_hosts_than_the_lab_lists_at_the_variant_line() {
    let lab: crate::scenario::labfile::LabSpec = serde_yaml_ng::from_str(
            "hosts:\n  server: { ssh: root@s, address: 198.18.1.1 }\n  clients:\n    - ssh: root@c1\n    - ssh: root@c2\n",
        )
        .unwrap();
    let text = "name: x\nvariants:\n  - name: one\n  - name: two\n    set: { client.hosts: 2 }\n  - name: three\n    set:\n      client.hosts: 3\n";
    let s = Scenario::parse(text, "s.yaml", &[]).unwrap();
    let err = s.check_lab("s.yaml", text, Some(&lab)).unwrap_err();
    assert_eq!(err.exit_code(), 2);
    let msg = err.to_string();
    assert!(
            msg.starts_with("s.yaml:8: variant `three` asks for client.hosts: 3, but the lab file lists 2 client hosts (hosts.clients)"),
            "{msg}"
        );
    // Two of two is fine; the base's `client.hosts` is named when no
    // variant sets it.
    let text = "name: x\nclient:\n  hosts: 2\nvariants:\n  - name: a\n";
    let s = Scenario::parse(text, "s.yaml", &[]).unwrap();
    s.check_lab("s.yaml", text, Some(&lab)).unwrap();
    let one: crate::scenario::labfile::LabSpec = serde_yaml_ng::from_str(
        "hosts:\n  server: { address: 198.18.1.1 }\n  client: { ssh: root@c }\n",
    )
    .unwrap();
    let msg = s
        .check_lab("s.yaml", text, Some(&one))
        .unwrap_err()
        .to_string();
    assert!(
            msg.starts_with("s.yaml:3: variant `a` asks for client.hosts: 2, but the lab file lists 1 client host (hosts.client)"),
            "{msg}"
        );
    // A client container runs on one host only.
    let text = "name: x\nclient:\n  tool: wrk\n  via: docker\n  hosts: 2\nvariants:\n  - name: a\n";
    let s = Scenario::parse(text, "s.yaml", &[]).unwrap();
    let mut lab = lab;
    lab.hosts.clients[0].docker = true;
    let msg = s
        .check_lab("s.yaml", text, Some(&lab))
        .unwrap_err()
        .to_string();
    assert!(
        msg.starts_with("s.yaml:5: variant `a` asks for client.hosts: 2 with client.via: docker"),
        "{msg}"
    );
}

#[test]
fn each_variant_is_checked_as_it_runs_at_its_own_line() {
    // The base is valid; variant `b` makes a command server with no
    // command, which `run` would only find at its second variant.
    let text = "name: x\nvariants:\n  - name: a\n    set: { client.duration: 5s }\n  - name: b\n    set:\n      client.duration: 5s\n      server.kind: command\n";
    let e = Scenario::parse(text, "s.yaml", &[]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "s.yaml:8: variant `b`: server.kind: command needs server.command, the program and its arguments"
    );
    assert_eq!(e.exit_code(), 2);
    // Flow style, and a docker key on a variant whose server is builtin.
    let text = "name: x\nserver: { kind: docker }\nvariants:\n  - { name: a }\n  - { name: b, set: { server.kind: builtin } }\nlab:\n  hosts:\n    server: { docker: true }\n    client: {}\n";
    assert!(Scenario::parse(text, "s.yaml", &[]).is_ok());
    let text = text.replace(
        "server: { kind: docker }",
        "server: { kind: docker, image: 'tomcat:9' }",
    );
    let e = Scenario::parse(&text, "s.yaml", &[])
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "s.yaml:5: variant `b`: server.image is only for server.kind: docker"
    );
}

#[test]
fn an_inline_lab_gets_the_lab_file_checks() {
    let text = "name: x\nvariants:\n  - name: a\nlab:\n  hosts:\n    server:\n      identity: /k\n    client: {}\n";
    let e = Scenario::parse(text, "s.yaml", &[]).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("s.yaml:7: lab.hosts.server.identity is only for an SSH host"),
        "{e}"
    );
    let text = "name: x\nvariants:\n  - name: a\nlab:\n  hosts:\n    server: { ssh: a@h }\n    client: {}\n";
    let e = Scenario::parse(text, "s.yaml", &[])
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("s.yaml:6: lab.hosts.server.address is needed"),
        "{e}"
    );
}

#[test]
fn counts_are_capped_where_they_are_written() {
    for (text, want) in [
        (
            "name: x\nrepeat: 1001\nvariants:\n  - name: a\n",
            "s.yaml:2:9: repeat: repeat 1001 is more than the 1000",
        ),
        (
            "name: x\nclient: { connections: 65536 }\nvariants:\n  - name: a\n",
            "s.yaml:2:24: client.connections: client.connections 65536 is more than the 65535",
        ),
        (
            "name: x\nclient: { connections: 9000, threads: 1025 }\nvariants:\n  - name: a\n",
            "s.yaml:2:39: client.threads: client.threads 1025 is more than the 1024",
        ),
    ] {
        let e = Scenario::parse(text, "s.yaml", &[])
            .unwrap_err()
            .to_string();
        assert!(e.starts_with(want), "{e}");
    }
    let ok = "name: x\nrepeat: 1000\nclient: { connections: 65535, threads: 1024 }\nvariants:\n  - name: a\n";
    Scenario::parse(ok, "s.yaml", &[]).unwrap();
    let e = Scenario::parse(ok, "s.yaml", &["repeat=4294967295".into()]).unwrap_err();
    assert!(
        e.to_string()
            .contains("repeat 4294967295 is more than the 1000"),
        "{e}"
    );
}

#[test]
fn image_references_follow_dockers_grammar() {
    for ok in [
        "tomcat",
        "tomcat:8.5-alpine",
        "twlab/wrk:4.1",
        "localhost:5000/a/b:c",
        "registry.example.com/x_y__z/a-b.c:1_0",
        "nginx@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    ] {
        assert_eq!(image_problem(ok), None, "{ok}");
    }
    for bad in [
        "",
        "tomcat:",
        "Tomcat",
        "a b",
        "-v/:/h",
        "../x",
        "x;y",
        "$(id)",
        "x:@sha256:1",
        "a//b",
        "a:.x",
    ] {
        assert!(image_problem(bad).is_some(), "{bad}");
    }
}

/// `collect.client_lines` is `total` unless chosen, and only a choice
/// is written into a resolved scenario (old runs' stay as they were).
#[test]
fn client_lines_default_to_total_and_are_written_only_when_chosen() {
    let s = Scenario::parse(SEED, "seed", &[]).unwrap();
    assert_eq!(s.collect.client_lines, ClientLines::Total);
    assert!(!s.to_yaml().contains("client_lines"), "{}", s.to_yaml());
    let set = ["collect.client_lines=per_host".to_string()];
    let s = Scenario::parse(SEED, "seed", &set).unwrap();
    assert_eq!(s.collect.client_lines, ClientLines::PerHost);
    assert!(
        s.to_yaml().contains("client_lines: per_host"),
        "{}",
        s.to_yaml()
    );
    assert_eq!(Scenario::parse(&s.to_yaml(), "resolved", &[]).unwrap(), s);
    let bad = ["collect.client_lines=each".to_string()];
    let err = Scenario::parse(SEED, "seed", &bad).unwrap_err().to_string();
    assert!(err.contains("total") && err.contains("per_host"), "{err}");
}

#[test]
fn resolved_yaml_round_trips() {
    let s = Scenario::parse(SEED, "seed", &[]).unwrap();
    let again = Scenario::parse(&s.to_yaml(), "resolved", &[]).unwrap();
    assert_eq!(s, again);
}
