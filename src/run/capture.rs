//! Environment capture for `env.json` and the report header: kernel, OS,
//! tool versions, the machine's own values of the scenario's sysctls, each
//! real host's kernel and sysctls as found.

use super::RunOptions;
use crate::common::endpoint::Side;
use crate::lab;
use crate::lab::netns::{self};
use crate::lab::real::RealLab;
use crate::results::RunInfo;
use crate::results::env::{Env, HostEnv};
use crate::scenario::{ClientVia, Scenario, ServerKind};
use std::collections::BTreeMap;

pub(crate) fn now() -> String {
    chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}

pub(crate) fn run_info(opts: &RunOptions, scenario: &Scenario) -> RunInfo {
    let mut command = vec![
        "twlab".to_string(),
        "run".into(),
        opts.scenario_path.display().to_string(),
    ];
    for o in &opts.overrides {
        command.push("--set".into());
        command.push(o.clone());
    }
    if let Some(lab) = &opts.lab {
        command.push("--lab".into());
        command.push(lab.display().to_string());
    }
    RunInfo {
        scenario_file: opts.scenario_path.display().to_string(),
        description: scenario.description.clone(),
        started_at: now(),
        finished_at: now(),
        kernel: kernel_release(),
        twlab_version: env!("CARGO_PKG_VERSION").to_string(),
        lab: "embedded: two network namespaces joined by a veth pair".into(),
        server: match scenario.server.kind {
            ServerKind::Builtin => format!(
                "builtin (Tomcat-like; {}{}) on port {}",
                match scenario.server.max_keepalive_requests {
                    0 => "never closes a keep-alive connection".to_string(),
                    n => format!("closes a connection after {n} requests"),
                },
                if scenario.server.close_delay.0.is_zero() {
                    String::new()
                } else {
                    format!(
                        ", holding its FIN up to {} for the client's",
                        scenario.server.close_delay
                    )
                },
                scenario.server.port.0
            ),
            ServerKind::Command => format!(
                "command `{}` on port {}",
                crate::error::display_argv(&scenario.server.command),
                scenario.server.port.0
            ),
            ServerKind::Docker => format!(
                "container `{}` (host network) on port {}",
                scenario.server.image(),
                scenario.server.port.0
            ),
        },
        client: format!(
            "{}{}: {}{}, GET {}",
            scenario.client.tool.as_str(),
            match scenario.client.via {
                ClientVia::Host => String::new(),
                ClientVia::Docker =>
                    format!(" in container `{}` (host network)", scenario.client.image()),
                ClientVia::Swarm => format!(
                    " as a Swarm service of `{}`, {} task(s) (host network)",
                    scenario.client.image(),
                    scenario.client.hosts
                ),
            },
            client_shape(&scenario.client),
            scenario.client.duration,
            scenario.client.path
        ) + &client_controls(&scenario.client),
        endpoint: format!("{}:{}", netns::SERVER_ADDR, scenario.server.port.0),
        command: crate::error::display_argv(&command),
        complete: false,
        order: "interleaved".into(),
        notes: Vec::new(),
    }
}

/// `100 connections, 2 threads, ` as far as the tool has those notions
/// (httperf has neither: its shape is its rate).
fn client_shape(c: &crate::scenario::ClientSpec) -> String {
    use crate::load::client::tools::Key;
    let tool = c.tool.get();
    let mut out = String::new();
    if tool.supports(Key::Connections) {
        out.push_str(&format!("{} connections, ", c.connections));
    }
    if tool.supports(Key::Threads) {
        out.push_str(&format!("{} threads, ", c.threads));
    }
    out
}

/// What a client does beyond wrk's defaults, for the report's header:
/// ", 2000 requests/s (open loop), closes after 1 request, …".
fn client_controls(c: &crate::scenario::ClientSpec) -> String {
    let mut out = String::new();
    if let Some(rate) = c.rate {
        out.push_str(&format!(", {rate} requests/s (open loop)"));
    }
    if c.close_after > 0 {
        out.push_str(&format!(", closes after {} request(s)", c.close_after));
    }
    if !c.close_delay.0.is_zero() {
        out.push_str(&format!(
            ", waits {} before closing on Connection: close",
            c.close_delay
        ));
    }
    if c.linger_zero {
        out.push_str(", closes with RST");
    }
    out
}

pub fn kernel_release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_else(|_| "unknown".into())
}

/// How long a tool may take to print its version for env.json.
const TOOL_VERSION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

pub(crate) async fn machine_env(scenario: &Scenario) -> Env {
    let mut tools = BTreeMap::new();
    for (tool, args) in [
        ("ip", vec!["-V"]),
        ("nft", vec!["--version"]),
        ("conntrack", vec!["--version"]),
    ] {
        let mut cmd = tokio::process::Command::new(tool);
        cmd.args(&args);
        // A tool that hangs (even on `--version`) must not hold the run.
        if lab::which(tool).is_some()
            && let Some(out) = crate::process::output_within(cmd, TOOL_VERSION_TIMEOUT).await
        {
            let text = String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr);
            if let Some(line) = text.lines().find(|l| !l.trim().is_empty()) {
                tools.insert(tool.to_string(), line.trim().to_string());
            }
        }
    }
    // Every load tool installed here, by its program's name (wrk as
    // before), so a run says which version of the scenario's tool ran.
    for tool in crate::load::client::TOOLS {
        if let Some(program) = tool.program()
            && let Some(version) =
                crate::load::client::tools::local_version(*tool, TOOL_VERSION_TIMEOUT).await
        {
            tools.insert(program.to_string(), version);
        }
    }
    let mut machine_sysctls = BTreeMap::new();
    for v in &scenario.variants {
        for side in Side::BOTH {
            for name in v.sysctls.for_side(side).keys() {
                if let Ok(value) = std::fs::read_to_string(name.proc_path()) {
                    machine_sysctls.insert(name.to_string(), value.trim().to_string());
                }
            }
        }
    }
    let os = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_string())
        })
        .unwrap_or_default();
    Env {
        twlab_version: env!("CARGO_PKG_VERSION").into(),
        kernel: kernel_release(),
        os,
        tools,
        lab: "netns".into(),
        machine_sysctls,
        hosts: BTreeMap::new(),
        docker_engine: None,
        client_docker_engine: None,
        runs: Vec::new(),
    }
}

/// Record each real host in env.json and the report: where its sysctls
/// live, its kernel, its own values of the scenario's sysctls.
pub(crate) async fn real_lab_env(
    scenario: &Scenario,
    real: &RealLab,
    env: &mut Env,
    info: &mut RunInfo,
) {
    env.lab = "real".into();
    info.lab = real.describe();
    info.endpoint = real.endpoint(scenario.server.port.0).to_string();
    if let Some(engine) = &real.engine {
        env.docker_engine = engine.version().await.ok();
    }
    if let Some(engine) = &real.client_engine {
        env.client_docker_engine = engine.version().await.ok();
    }
    for side in Side::BOTH {
        let host = real.host(side);
        let mut before = BTreeMap::new();
        for v in &scenario.variants {
            for name in v.sysctls.for_side(side).keys() {
                if let Ok(value) = host.read_sysctl(name).await {
                    before.insert(name.to_string(), value);
                }
            }
        }
        let kernel = host
            .run(&["uname".into(), "-r".into()])
            .await
            .map(|k| k.trim().to_string())
            .unwrap_or_default();
        info.notes.push(format!(
            "The {side} host, {}, keeps its sysctls in {}.",
            host.describe(),
            host.sysctl_scope()
        ));
        env.hosts.insert(
            side.to_string(),
            HostEnv {
                host: host.describe(),
                kernel,
                sysctl_scope: host.sysctl_scope().to_string(),
                sysctls_before: before,
            },
        );
    }
    // The load tool's version where it runs: each SSH client host's own.
    let tool = scenario.client.tool.get();
    if scenario.client.via == ClientVia::Host
        && let (Some(program), Some(argv)) = (tool.program(), tool.version_argv())
    {
        let mut shell = vec![
            "sh".to_string(),
            "-c".into(),
            r#""$@" 2>&1; true"#.into(),
            "twlab-version".into(),
        ];
        shell.extend(argv);
        for (i, client) in real.clients.iter().enumerate() {
            let host = client.as_host();
            if let Ok(Ok(out)) = tokio::time::timeout(TOOL_VERSION_TIMEOUT, host.run(&shell)).await
                && let Some(version) = tool.version(&out)
            {
                let key = if real.clients.len() == 1 {
                    format!("{program} (client host)")
                } else {
                    format!("{program} (client host {})", i + 1)
                };
                env.tools.insert(key, version);
            }
        }
    }
    // The kernels that matter are the hosts', not this machine's.
    let kernel = |side: Side| env.hosts.get(side.as_str()).map(|h| h.kernel.clone());
    if let (Some(s), Some(c)) = (kernel(Side::Server), kernel(Side::Client)) {
        info.kernel = if s == c {
            s
        } else {
            format!("{s} (server), {c} (client)")
        };
    }
    info.notes.push(format!(
        "Real hosts are not made fresh per run: before each run twlab waited (at most {}) for the endpoint's sockets and conntrack entries of the previous run to drain.",
        humantime::format_duration(real.spec.cooldown())
    ));
}
