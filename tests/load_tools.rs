//! Every load tool runs the seed's shape for real in the embedded lab (root;
//! CI is root): the builtin server (closing after 100 requests, as Tomcat),
//! 100 connections where the tool has that notion, the 404 path, 3 s. Each
//! run must be complete, and the tool's figures non-zero and plausible
//! against what the server's kernel counted: every connection leaves a
//! conntrack entry (TIME_WAIT or CLOSE, longer than the run), so the
//! requests the tool reports must fit the connections made, at the
//! requests per connection the server (100) or the client sets.
//!
//! A new tool also runs on an SSH client host (an sshd in a namespace):
//! the same argv goes through the host.
//!
//! A tool that is not installed makes its test say SKIPPED and pass, except
//! in CI (CI=true: scripts/test.sh installs every one), where that is a
//! failure.

mod common;
#[path = "common/sshd.rs"]
mod sshd;

use common::*;
use serde_json::Value;

/// Is `program` on PATH? Missing: SKIPPED here, a failure in CI.
fn require_tool(test: &str, program: &str) -> bool {
    let found = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()));
    if found {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "{test}: CI=true but `{program}` is not installed: scripts/test.sh installs every load tool"
        );
    }
    eprintln!("SKIPPED {test}: `{program}` is not installed");
    false
}

/// Who closes the connections of a run, and after how many requests.
#[derive(Clone, Copy)]
enum Closer {
    /// The builtin server, after 100 requests (keep-alive tools).
    Server,
    /// The client, after this many (httperf's `--num-calls`).
    Client(u64),
    /// Nobody during the load: the server keeps every connection open.
    /// For h2load, whose duration mode over HTTP/1.1 may never end when the
    /// server closes connections (nghttp2#2250, fixed after Debian 12's
    /// 1.52; README "Load tools").
    Nobody,
}

/// Run the seed's shape with `client` (the `client:` block's flow keys)
/// and check the run and the tool's figures.
fn seed_run(tool: &str, client: &str, closer: Closer) -> Value {
    let keepalive = match closer {
        Closer::Nobody => 0,
        _ => 100,
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let scenario = tmp.path().join(format!("{tool}.yaml"));
    std::fs::write(
        &scenario,
        format!(
            "name: {tool}-seed\n\
             server: {{ kind: builtin, port: 8080, max_keepalive_requests: {keepalive} }}\n\
             client: {{ tool: {tool}, duration: 3s, path: /abc{client} }}\n\
             collect: {{ interval: 500ms }}\n\
             variants:\n  - name: base\n"
        ),
    )
    .expect("scenario");
    let out = tmp.path().join("run");
    run_expecting(twlab().arg("run").arg(&scenario).arg("--out").arg(&out), 0);
    let summary = read_json(&out.join("summary.json"));
    assert_eq!(summary["info"]["complete"], true, "{}", summary["info"]);
    let run = &summary["variants"][0]["runs"][0];
    assert!(run["error"].is_null(), "{run}");
    let c = &run["client"];
    assert_eq!(c["tool"], tool, "{c}");
    let requests = c["requests"].as_u64().unwrap_or(0);
    let rps = c["requests_per_sec"].as_f64().unwrap_or(0.0);
    let secs = c["duration_secs"].as_f64().unwrap_or(0.0);
    assert!(requests > 0 && rps > 0.0, "no figures from {tool}: {c}");
    assert!(
        (2.5..=5.0).contains(&secs),
        "{tool} ran {secs} s of 3 s: {c}"
    );
    // Requests per second and requests over the duration agree (5%).
    let ratio = requests as f64 / secs / rps;
    assert!(
        (0.95..=1.05).contains(&ratio),
        "{tool}: {requests} in {secs} s is not {rps}/s: {c}"
    );
    assert_eq!(
        c["non_2xx_3xx"].as_u64(),
        Some(requests),
        "the 404 path: {c}"
    );

    // What the server's kernel saw: its conntrack entries for the
    // endpoint, one per connection of the run (closed ones stay as
    // TIME_WAIT for 120 s or CLOSE for 10 s, longer than the run, also
    // when a tool resets its connections and leaves no TIME_WAIT socket).
    let entries: u64 = run["conntrack"]["server"]["final"]
        .as_object()
        .map(|m| m.values().filter_map(Value::as_u64).sum())
        .unwrap_or(0);
    let tw = |side: &str| {
        run["sockets"][side]["final"]["TIME_WAIT"]
            .as_u64()
            .unwrap_or(0)
    };
    eprintln!(
        "{tool}: {requests} requests in {secs} s ({rps}/s); conntrack entries {entries}; TIME_WAIT server {}, client {}",
        tw("server"),
        tw("client")
    );
    assert!(entries > 0, "no conntrack entry for the endpoint: {run}");
    let (per_conn, closer_tw) = match closer {
        Closer::Server => (100, tw("server")),
        Closer::Client(n) => (n, tw("client")),
        // Every connection stays open for the whole load: no bound per
        // connection, and no TIME_WAIT from the load.
        Closer::Nobody => return summary,
    };
    // Every connection its closer closed (its TIME_WAIT, when the close
    // was a FIN) served `per_conn` requests…
    assert!(
        requests + per_conn >= per_conn * closer_tw * 95 / 100,
        "{tool} reports {requests} requests, but {closer_tw} connections were closed after {per_conn} requests: {c}"
    );
    // …and none served more.
    assert!(
        requests <= per_conn * entries * 105 / 100 + per_conn,
        "{tool} reports {requests} requests, more than {entries} connections serve at {per_conn} each: {c}"
    );
    summary
}

#[test]
fn builtin_runs_the_seed_shape() {
    if require_root("builtin_runs_the_seed_shape") {
        seed_run("builtin", ", connections: 100", Closer::Server);
    }
}

#[test]
fn wrk_runs_the_seed_shape() {
    let test = "wrk_runs_the_seed_shape";
    if require_root(test) && require_tool(test, "wrk") {
        seed_run("wrk", ", connections: 100", Closer::Server);
    }
}

#[test]
fn httperf_runs_the_seed_shape_as_a_connection_rate() {
    let test = "httperf_runs_the_seed_shape_as_a_connection_rate";
    if require_root(test) && require_tool(test, "httperf") {
        let s = seed_run(
            "httperf",
            ", rate: 2000, close_after: 10",
            Closer::Client(10),
        );
        let c = &s["variants"][0]["runs"][0]["client"];
        // 200 connections a second for 3 s, each counted by httperf.
        let opened = c["connections_opened"].as_u64().unwrap_or(0);
        assert!((570..=600).contains(&opened), "{c}");
        assert!(c["cpu_secs"].as_f64().is_some_and(|v| v > 0.0), "{c}");
    }
}

#[test]
fn ab_runs_the_seed_shape_with_keep_alive() {
    let test = "ab_runs_the_seed_shape_with_keep_alive";
    if require_root(test) && require_tool(test, "ab") {
        seed_run("ab", ", connections: 100", Closer::Server);
    }
}

#[test]
fn hey_runs_the_seed_shape() {
    let test = "hey_runs_the_seed_shape";
    if require_root(test) && require_tool(test, "hey") {
        seed_run("hey", ", connections: 100", Closer::Server);
    }
}

/// The seed's load over HTTP/1.1, against a server that keeps its
/// connections: see [`Closer::Nobody`].
#[test]
fn h2load_runs_the_seed_shape_over_http1() {
    let test = "h2load_runs_the_seed_shape_over_http1";
    if require_root(test) && require_tool(test, "h2load") {
        seed_run("h2load", ", connections: 100", Closer::Nobody);
    }
}

#[test]
fn oha_runs_the_seed_shape() {
    let test = "oha_runs_the_seed_shape";
    if require_root(test) && require_tool(test, "oha") {
        seed_run("oha", ", connections: 100", Closer::Server);
    }
}

#[test]
fn a_command_with_a_json_result_has_figures() {
    let test = "a_command_with_a_json_result_has_figures";
    if require_root(test) && require_tool(test, "python3") {
        let script = manifest_dir().join("tests/fixtures/command/load.py");
        let client = format!(
            ", connections: 20, command: [python3, '{}', '{{address}}', '{{port}}', '{{path}}', '{{connections}}', '{{duration_secs}}']",
            script.display()
        );
        let s = seed_run("command", &client, Closer::Server);
        let c = &s["variants"][0]["runs"][0]["client"];
        assert!(
            c["latency"]["p99_ms"].as_f64().is_some_and(|v| v > 0.0),
            "{c}"
        );
    }
}

#[test]
fn a_command_without_a_result_has_counts_and_says_it_has_no_figures() {
    let test = "a_command_without_a_result_has_counts_and_says_it_has_no_figures";
    if !(require_root(test) && require_tool(test, "wrk")) {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let scenario = tmp.path().join("command.yaml");
    std::fs::write(
        &scenario,
        "name: command-wrk\n\
         server: { kind: builtin, port: 8080 }\n\
         client: { tool: command, connections: 50, duration: 3s, command: [wrk, -c, '{connections}', -t, '1', -d, '{duration_secs}s', '{url}'] }\n\
         collect: { interval: 500ms }\n\
         variants:\n  - name: base\n",
    )
    .expect("scenario");
    let out = tmp.path().join("run");
    run_expecting(twlab().arg("run").arg(&scenario).arg("--out").arg(&out), 0);
    let summary = read_json(&out.join("summary.json"));
    assert_eq!(summary["info"]["complete"], true, "{}", summary["info"]);
    let run = &summary["variants"][0]["runs"][0];
    let c = &run["client"];
    assert_eq!(
        (c["tool"].as_str(), c["requests"].as_u64()),
        (Some("command"), Some(0)),
        "{c}"
    );
    assert!(
        c["duration_secs"].as_f64().is_some_and(|d| d >= 2.9),
        "twlab's clock: {c}"
    );
    // The load happened: the server closed connections after 100 requests.
    assert!(
        run["sockets"]["server"]["final"]["TIME_WAIT"]
            .as_u64()
            .unwrap_or(0)
            > 0,
        "{run}"
    );
    let report = std::fs::read_to_string(out.join("report.md")).expect("report");
    assert!(report.contains("no client figures"), "{report}");
}

/// hey on an SSH client host: the seam's argv through the SSH host, its
/// output read back by the same parser; the builtin server on this machine.
/// 10 s, not 3: one count over SSH can take seconds on a busy machine, and
/// a short load would then be refused for its sampling gaps.
#[test]
fn hey_runs_on_an_ssh_client_host() {
    let test = "hey_runs_on_an_ssh_client_host";
    if !(require_root(test) && require_tool(test, "hey")) {
        return;
    }
    const PORT: u16 = 18097;
    assert!(
        std::net::TcpListener::bind(("0.0.0.0", PORT)).is_ok(),
        "port {PORT} is in use on this machine"
    );
    let client = sshd::SshdHost::start("lt");
    let tmp = tempfile::tempdir().expect("tempdir");
    let lab = tmp.path().join("lab.yaml");
    std::fs::write(
        &lab,
        format!(
            "hosts:\n  server:\n    address: {server}\n  client:\n    ssh: {dest}\n    identity: {id}\n    known_hosts: {kh}\n    address: {addr}\ncooldown: 2s\n",
            server = client.root_addr,
            dest = client.destination(),
            id = client.identity.display(),
            kh = client.known_hosts.display(),
            addr = client.addr,
        ),
    )
    .expect("lab file");
    let scenario = tmp.path().join("hey-ssh.yaml");
    std::fs::write(
        &scenario,
        format!(
            "name: hey-ssh\nserver: {{ kind: builtin, port: {PORT} }}\nclient: {{ tool: hey, connections: 10, duration: 10s, path: /abc }}\ncollect: {{ interval: 1s, conntrack: false }}\nvariants:\n  - name: base\n"
        ),
    )
    .expect("scenario");
    let out = tmp.path().join("run");
    run_expecting(
        twlab()
            .env("TWLAB_STATE_DIR", tmp.path().join("state"))
            .arg("run")
            .arg(&scenario)
            .arg("--lab")
            .arg(&lab)
            .arg("--out")
            .arg(&out),
        0,
    );
    let summary = read_json(&out.join("summary.json"));
    assert_eq!(summary["info"]["complete"], true, "{}", summary["info"]);
    let run = &summary["variants"][0]["runs"][0];
    let c = &run["client"];
    assert_eq!(c["tool"], "hey", "{c}");
    let requests = c["requests"].as_u64().unwrap_or(0);
    assert!(requests > 0, "{c}");
    assert_eq!(c["non_2xx_3xx"].as_u64(), Some(requests), "{c}");
    // env.json has the version of the hey that ran, the client host's.
    let env = read_json(&out.join("env.json"));
    assert!(
        env["tools"]["hey (client host)"]
            .as_str()
            .is_some_and(|v| v.starts_with("hey ")),
        "{}",
        env["tools"]
    );
    // The server closed a connection after each 100 requests it served.
    let server_tw = run["sockets"]["server"]["final"]["TIME_WAIT"]
        .as_u64()
        .unwrap_or(0);
    assert!(
        requests + 100 >= 100 * server_tw * 95 / 100 && server_tw > 0,
        "{requests} requests, server TIME_WAIT {server_tw}: {run}"
    );
}

/// ab on two embedded client namespaces (`client.hosts: 2`): one ab each,
/// each one's figures kept, their sum the run's.
#[test]
fn ab_runs_on_two_client_namespaces() {
    let test = "ab_runs_on_two_client_namespaces";
    if require_root(test) && require_tool(test, "ab") {
        let s = seed_run("ab", ", connections: 50, hosts: 2", Closer::Server);
        let run = &s["variants"][0]["runs"][0];
        let hosts = run["clients"].as_array().expect("per-host figures");
        assert_eq!(hosts.len(), 2, "{run}");
        let each: Vec<u64> = hosts
            .iter()
            .map(|h| h["load"]["requests"].as_u64().unwrap_or(0))
            .collect();
        assert!(each.iter().all(|r| *r > 0), "{each:?}");
        assert_eq!(
            each.iter().sum::<u64>(),
            run["client"]["requests"].as_u64().unwrap_or(0)
        );
    }
}

/// `twlab schema --client-result` prints the schema a command's JSON
/// result follows (no root needed).
#[test]
fn the_client_result_schema_is_published() {
    let out = run_expecting(twlab().args(["schema", "--client-result"]), 0);
    let schema: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(schema["title"], "ClientResult", "{schema}");
    assert_eq!(
        schema["required"],
        serde_json::json!(["requests", "duration_secs"])
    );
    for key in [
        "responses_by_class",
        "errors",
        "latency_ms",
        "connections_opened",
    ] {
        assert!(
            schema["properties"].get(key).is_some(),
            "no `{key}`: {schema}"
        );
    }
}
