//! `twlab run`: one scenario from plan to report.
//!
//! The plan is every variant times `repeat`, interleaved (A B A B ...) so a
//! slow drift of the machine does not masquerade as an effect. Each run
//! builds a fresh lab, applies the variant's sysctls, starts the server,
//! samples while the client loads it, takes a final snapshot, stops
//! everything and tears the lab down — on success, on error and on Ctrl-C.
//! `summary.json`, `env.json` and `report.md` are rewritten after every run,
//! so an interrupted scenario still leaves a readable result.

pub mod sampler;

use crate::analysis::expect;
use crate::analysis::metrics;
use crate::common::counts::ClientStats;
use crate::common::counts::Source;
use crate::common::endpoint::Endpoint;
use crate::common::endpoint::Side;
use crate::error::{Error, Result};
use crate::lab::netns::{self, NetnsLab};
use crate::lab::real::RealLab;
use crate::lab::sysctl::Journal;
use crate::lab::{self, Host};
use crate::load::client::{ClientContext, RunningClient};
use crate::load::server;
use crate::load::shutdown::{Level, Shutdown};
use crate::measure::conntrack;
use crate::output::{charts, report};
use crate::results::env::{Env, HostEnv, RunEnv};
use crate::results::{
    self, BySide, RunInfo, RunSummary, Sample, SampleWriter, StateStats, Summary, VariantSummary,
};
use crate::run::sampler::Collector;
use crate::scenario::labfile::LabSpec;
use crate::scenario::{Allowance, ClientTool, ClientVia, Order, Scenario, ServerKind, Variant};
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// What `twlab run` was asked to do.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub scenario_path: PathBuf,
    pub overrides: Vec<String>,
    pub out: Option<PathBuf>,
    /// Leave the last run's lab up for inspection.
    pub keep: bool,
    /// A lab file of real hosts (`--lab`); overrides the scenario's `lab:`.
    pub lab: Option<PathBuf>,
}

/// How long before the end of the load the steady window closes: a sample
/// taken while the client is exiting counts its teardown, and a remote
/// client's clock starts a little before twlab's.
const LOAD_END_GUARD_SECS: f64 = 0.25;

const CONNTRACK_TIMEOUTS: [&str; 3] = [
    "net.netfilter.nf_conntrack_tcp_timeout_time_wait",
    "net.netfilter.nf_conntrack_tcp_timeout_established",
    "net.netfilter.nf_conntrack_tcp_timeout_close_wait",
];

/// Everything a run needs that does not change between runs.
struct Context<'a> {
    scenario: &'a Scenario,
    dir: PathBuf,
    exe: PathBuf,
    shutdown: Shutdown,
    /// The connected real lab, when the scenario runs on real hosts.
    real: Option<&'a RealLab>,
}

/// The lab of one run: a fresh pair of namespaces, or the real lab.
enum RunLab<'a> {
    Netns(NetnsLab),
    Real { lab: &'a RealLab, run_id: String },
}

impl RunLab<'_> {
    fn host(&self, side: Side) -> &dyn Host {
        match self {
            RunLab::Netns(l) => l.host(side),
            RunLab::Real { lab, .. } => lab.host(side),
        }
    }

    fn run_id(&self) -> &str {
        match self {
            RunLab::Netns(l) => &l.run_id,
            RunLab::Real { run_id, .. } => run_id,
        }
    }

    fn endpoint(&self, port: u16) -> Endpoint {
        match self {
            RunLab::Netns(l) => l.endpoint(port),
            RunLab::Real { lab, .. } => lab.endpoint(port),
        }
    }

    fn engine(&self) -> Option<&crate::docker::Engine> {
        match self {
            RunLab::Netns(_) => None,
            RunLab::Real { lab, .. } => lab.engine.as_ref(),
        }
    }

    fn client_engine(&self) -> Option<&crate::docker::Engine> {
        match self {
            RunLab::Netns(_) => None,
            RunLab::Real { lab, .. } => lab.client_engine.as_ref(),
        }
    }
}

/// The lab a scenario runs on: `--lab FILE`, else the scenario's `lab:`,
/// else none (the embedded namespaces).
pub fn resolve_lab(scenario: &Scenario, lab_file: Option<&Path>) -> Result<Option<LabSpec>> {
    match lab_file {
        Some(path) => LabSpec::load(path).map(Some),
        None => Ok(scenario.lab.clone()),
    }
}

/// What a finished `twlab run` produced.
pub struct Outcome {
    pub summary: Summary,
    pub dir: PathBuf,
    /// A signal stopped the scenario early; what was measured is written.
    pub interrupted: bool,
}

/// Run a scenario; returns the summary (also written to the run directory).
pub async fn run(opts: &RunOptions) -> Result<Outcome> {
    let mut scenario = Scenario::load(&opts.scenario_path, &opts.overrides)?;
    let lab_spec = resolve_lab(&scenario, opts.lab.as_deref())?;
    scenario.check_lab(&opts.scenario_path, lab_spec.as_ref())?;
    preflight(&scenario, lab_spec.as_ref())?;
    if opts.keep && lab_spec.is_some() {
        return Err(Error::invalid(
            "--keep is for the embedded lab; on real hosts twlab always restores what it changed",
        ));
    }
    // A drawn seed is written into the resolved scenario and the reproduce
    // command, so a randomized order can be run again.
    let mut opts = opts.clone();
    if scenario.order == Order::Randomized && scenario.seed.is_none() {
        let seed = fastrand::u64(..);
        scenario.seed = Some(seed);
        opts.overrides.push(format!("seed={seed}"));
    }
    let opts = &opts;
    let dir = prepare_dir(opts, &scenario)?;
    if let Some(spec) = &lab_spec {
        // The lab as resolved, next to the scenario, so the run can be redone.
        let text = serde_yaml_ng::to_string(spec)
            .map_err(|e| Error::env(format!("cannot render the lab file: {e}")))?;
        results::write_text(&dir.join(results::LAB_FILE), &text)?;
    }
    let exe = std::env::current_exe()
        .map_err(|e| Error::env(format!("cannot find twlab's own executable: {e}")))?;
    let shutdown = Shutdown::install().map_err(|e| Error::env(format!("signal handlers: {e}")))?;
    let real = match &lab_spec {
        Some(spec) => Some(RealLab::connect(spec, &netns::new_run_id()).await?),
        None => None,
    };
    let checked = match &real {
        Some(real) => require_remote_wrk(&scenario, real).await,
        None => Ok(()),
    };
    let result = match checked {
        Ok(()) => run_plan(opts, &scenario, dir, exe, shutdown, real.as_ref()).await,
        Err(e) => Err(e),
    };
    if let Some(real) = real
        && let Err(e) = real.close().await
    {
        eprintln!("twlab: {e}");
    }
    result
}

/// An SSH client host must have wrk (unless it runs in a container) before
/// anything is changed there.
async fn require_remote_wrk(scenario: &Scenario, real: &RealLab) -> Result<()> {
    if !scenario.runs_wrk_on_host() || real.spec.hosts.client.is_local() {
        return Ok(());
    }
    let client = real.host(Side::Client);
    let found = client
        .run(&["sh".into(), "-c".into(), "command -v wrk".into()])
        .await;
    found.map(|_| ()).map_err(|_| {
        Error::env(format!(
            "wrk is not installed on the client host {} (client.tool: wrk); install it there (apt-get install wrk) or use client.via: docker",
            client.describe()
        ))
    })
}

async fn run_plan(
    opts: &RunOptions,
    scenario: &Scenario,
    dir: PathBuf,
    exe: PathBuf,
    shutdown: Shutdown,
    real: Option<&RealLab>,
) -> Result<Outcome> {
    let ctx = Context {
        scenario,
        dir: dir.clone(),
        exe,
        shutdown,
        real,
    };

    let mut env = machine_env(scenario).await;
    let mut info = run_info(opts, scenario);
    if let Some(real) = real {
        real_lab_env(scenario, real, &mut env, &mut info).await;
    }
    let mut variants: Vec<VariantSummary> = scenario
        .variants
        .iter()
        .map(|v| VariantSummary {
            name: v.name.to_string(),
            sysctls: v.sysctls.clone(),
            runs: Vec::new(),
        })
        .collect();
    let mut writer = SampleWriter::create(&dir)?;

    let (plan, order) = plan_runs(scenario);
    info.order = order;
    let mut all_samples: Vec<Sample> = Vec::new();
    let total = plan.len();
    let mut failure = None;
    for (i, &(vi, repeat)) in plan.iter().enumerate() {
        if ctx.shutdown.level() >= Level::Graceful {
            info.notes.push(format!(
                "Stopped by a signal: {} of {total} planned runs were not started.",
                total - i
            ));
            break;
        }
        let keep = opts.keep && i + 1 == total;
        let variant = &scenario.variants[vi];
        eprintln!(
            "twlab: run {}/{total}: variant `{}`, repeat {repeat}",
            i + 1,
            variant.name
        );
        let (summary, run_env, outcome) =
            run_one(&ctx, variant, repeat, &mut writer, keep, &mut all_samples).await;
        variants[vi].runs.push(summary);
        env.runs.push(run_env);
        info.finished_at = now();
        info.complete = i + 1 == total && outcome.is_ok();
        write_results(&dir, scenario, &info, &variants, &env, &all_samples)?;
        if let Err(e) = outcome {
            failure = Some(e);
            break;
        }
    }
    let interrupted = ctx.shutdown.level() >= Level::Graceful;
    if interrupted {
        info.complete = false;
        info.notes.push(match &failure {
            Some(e) if ctx.shutdown.level() >= Level::Immediate => {
                format!("Stopped at once by a second signal: {e}")
            }
            Some(e) => format!("Stopped by a signal; the run in progress did not complete: {e}"),
            None => "Stopped early by a signal: the last run's figures cover only the time it ran."
                .to_string(),
        });
    }
    let summary = write_results(&dir, scenario, &info, &variants, &env, &all_samples)?;
    match failure {
        Some(e) if !interrupted => Err(e),
        _ => Ok(Outcome {
            summary,
            dir,
            interrupted,
        }),
    }
}

/// Refuse before anything is created when the plan is wrong or the machine
/// cannot run it.
fn preflight(scenario: &Scenario, lab_spec: Option<&LabSpec>) -> Result<()> {
    if let Some(spec) = lab_spec {
        return preflight_real(scenario, spec);
    }
    lab::require_privileges()?;
    lab::require_tool("ip", "to build the lab's namespaces", "iproute2")?;
    lab::require_tool("sysctl", "to apply and verify sysctls", "procps")?;
    if scenario.collect.conntrack {
        lab::require_tool(
            "nft",
            "to make conntrack track the lab's namespaces",
            "nftables",
        )?;
        lab::require_tool("conntrack", "to count conntrack entries", "conntrack")?;
    }
    for v in &scenario.variants {
        if let Ok((server, _)) = scenario.effective(v)
            && server.kind == ServerKind::Command
            && let Some(program) = server.command.first()
        {
            let found = if program.contains('/') {
                Path::new(program).is_file()
            } else {
                lab::which(program).is_some()
            };
            if !found {
                return Err(Error::env(format!(
                    "the server command `{program}` (server.command) is not installed or not on PATH"
                )));
            }
        }
    }
    if scenario.runs_wrk_on_host() {
        lab::require_tool("wrk", "as the scenario's client (client.tool: wrk)", "wrk")?;
    }
    Ok(())
}

/// A real lab: this machine needs what its local hosts run (the SSH hosts
/// are checked when twlab connects to them).
fn preflight_real(scenario: &Scenario, spec: &LabSpec) -> Result<()> {
    let hosts = [&spec.hosts.server, &spec.hosts.client];
    if hosts.iter().any(|h| !h.is_local()) {
        lab::require_tool("ssh", "to reach the lab's SSH hosts", "openssh-client")?;
    }
    let local_needs_root = hosts.iter().any(|h| h.is_local() && !h.sudo);
    if local_needs_root && !nix::unistd::geteuid().is_root() {
        return Err(Error::env(
            "a local host of the lab changes sysctls and reads conntrack: run twlab as root, or set `sudo: true` for it in the lab file",
        ));
    }
    for (side, h) in [
        (Side::Server, &spec.hosts.server),
        (Side::Client, &spec.hosts.client),
    ] {
        if !h.is_local() {
            continue;
        }
        lab::require_tool("sysctl", "to apply and verify sysctls", "procps")?;
        if scenario.collect.conntrack {
            lab::require_tool("conntrack", "to count conntrack entries", "conntrack")?;
        }
        // A wrk in a container needs none on the host.
        if side == Side::Client && scenario.runs_wrk_on_host() {
            lab::require_tool("wrk", "as the scenario's client (client.tool: wrk)", "wrk")?;
        }
    }
    Ok(())
}

/// Record each real host in env.json and the report: where its sysctls
/// live, its kernel, its own values of the scenario's sysctls.
async fn real_lab_env(scenario: &Scenario, real: &RealLab, env: &mut Env, info: &mut RunInfo) {
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

fn prepare_dir(opts: &RunOptions, scenario: &Scenario) -> Result<PathBuf> {
    let dir = match &opts.out {
        Some(d) => d.clone(),
        None => PathBuf::from("runs").join(format!(
            "{}-{}",
            chrono::Local::now().format("%Y%m%d-%H%M%S"),
            scenario.name
        )),
    };
    if dir.join(results::SUMMARY_FILE).exists() || dir.join(results::SAMPLES_FILE).exists() {
        return Err(Error::invalid(format!(
            "{} already holds a run; choose another --out",
            dir.display()
        )));
    }
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(dir.display(), e))?;
    results::write_text(&dir.join(results::SCENARIO_FILE), &scenario.to_yaml())?;
    Ok(dir)
}

fn now() -> String {
    chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}

fn run_info(opts: &RunOptions, scenario: &Scenario) -> RunInfo {
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
                "builtin (Tomcat-like; closes a connection after {} requests) on port {}",
                scenario.server.max_keepalive_requests, scenario.server.port.0
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
            "{}{}: {} connections, {} threads, {}, GET {}",
            scenario.client.tool.as_str(),
            match scenario.client.via {
                ClientVia::Host => String::new(),
                ClientVia::Docker =>
                    format!(" in container `{}` (host network)", scenario.client.image()),
            },
            scenario.client.connections,
            scenario.client.threads,
            scenario.client.duration,
            scenario.client.path
        ),
        endpoint: format!("{}:{}", netns::SERVER_ADDR, scenario.server.port.0),
        command: crate::error::display_argv(&command),
        complete: false,
        order: "interleaved".into(),
        notes: Vec::new(),
    }
}

pub fn kernel_release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_else(|_| "unknown".into())
}

async fn machine_env(scenario: &Scenario) -> Env {
    let mut tools = BTreeMap::new();
    for (tool, args) in [
        ("ip", vec!["-V"]),
        ("nft", vec!["--version"]),
        ("conntrack", vec!["--version"]),
        ("wrk", vec!["--version"]),
    ] {
        if lab::which(tool).is_some()
            && let Ok(out) = tokio::process::Command::new(tool)
                .args(&args)
                .output()
                .await
        {
            let text = String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr);
            if let Some(line) = text.lines().find(|l| !l.trim().is_empty()) {
                tools.insert(tool.to_string(), line.trim().to_string());
            }
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

/// Write env.json, charts, summary.json and report.md from what has been
/// measured so far (called after every run, so nothing waits for the end).
fn write_results(
    dir: &Path,
    scenario: &Scenario,
    info: &RunInfo,
    variants: &[VariantSummary],
    env: &Env,
    samples: &[Sample],
) -> Result<Summary> {
    let mut summary = Summary {
        scenario: scenario.name.to_string(),
        info: info.clone(),
        comparisons: metrics::compare(variants),
        variants: variants.to_vec(),
        expectations: Vec::new(),
        charts: charts::write_charts(
            dir,
            &baseline_first(scenario, samples),
            &scenario.collect.states,
        )?,
    };
    summary.expectations = expect::evaluate_all(&scenario.expect, &summary);
    results::write_json(&dir.join(results::ENV_FILE), env)?;
    results::write_json(&dir.join(results::SUMMARY_FILE), &summary)?;
    results::write_text(
        &dir.join(results::REPORT_FILE),
        &report::render_markdown(&summary),
    )?;
    Ok(summary)
}

/// The samples in the scenario's variant order (charts give colours in
/// order of appearance, so the baseline keeps the first colour even when
/// the runs were randomized).
fn baseline_first(scenario: &Scenario, samples: &[Sample]) -> Vec<Sample> {
    let rank = |name: &str| {
        scenario
            .variants
            .iter()
            .position(|v| v.name.as_str() == name)
            .unwrap_or(usize::MAX)
    };
    let mut sorted = samples.to_vec();
    sorted.sort_by_key(|s| rank(&s.variant));
    sorted
}

/// One variant, one repeat, in a fresh lab. Always tears the lab down
/// (unless `keep`); the summary records what was measured even on error.
async fn run_one(
    ctx: &Context<'_>,
    variant: &Variant,
    repeat: u32,
    writer: &mut SampleWriter,
    keep: bool,
    all_samples: &mut Vec<Sample>,
) -> (RunSummary, RunEnv, Result<()>) {
    let run_id = netns::new_run_id();
    let mut summary = RunSummary {
        run_id: run_id.clone(),
        repeat,
        steady_from_secs: match ctx.scenario.collect.steady_after {
            Some(d) => d.0.as_secs_f64(),
            None => {
                // The variant's own duration: `set` may change it.
                let duration = ctx
                    .scenario
                    .effective(variant)
                    .map_or(ctx.scenario.client.duration, |(_, c)| c.duration);
                results::steady_from(duration.0.as_secs_f64())
            }
        },
        ..Default::default()
    };
    let mut env = RunEnv {
        run_id: run_id.clone(),
        variant: variant.name.to_string(),
        repeat,
        server_address: netns::SERVER_ADDR.to_string(),
        client_address: netns::CLIENT_ADDR.to_string(),
        ..Default::default()
    };
    let mut journal = Journal::default();
    let lab = match ctx.real {
        Some(real) => match prepare_real_run(ctx, real, variant, &run_id).await {
            Ok(()) => {
                env.server_address = real.spec.server_address().to_string();
                env.client_address = real
                    .spec
                    .hosts
                    .client
                    .address
                    .map(|a| a.to_string())
                    .unwrap_or_default();
                journal.disk = Some(real.restore.clone());
                RunLab::Real {
                    lab: real,
                    run_id: run_id.clone(),
                }
            }
            Err(e) => {
                summary.error = Some(e.to_string());
                return (summary, env, Err(e));
            }
        },
        None => match NetnsLab::create(&run_id).await {
            Ok(lab) => {
                env.namespaces = vec![lab.server.name().to_string(), lab.client.name().to_string()];
                RunLab::Netns(lab)
            }
            Err(e) => {
                summary.error = Some(e.to_string());
                return (summary, env, Err(e));
            }
        },
    };
    let mut samples = Vec::new();
    let outcome = run_in_lab(
        ctx,
        &lab,
        variant,
        repeat,
        writer,
        &mut journal,
        &mut samples,
        &mut summary,
        &mut env,
    )
    .await;
    env.sysctls = journal.changes.clone();
    // A kept lab keeps the variant's sysctls, for inspection; it was asked
    // for only when the run completed (not after an error or a signal).
    let keep = keep && outcome.is_ok() && ctx.shutdown.level() == Level::Running;
    let hosts: [&dyn Host; 2] = [lab.host(Side::Server), lab.host(Side::Client)];
    let restore_errors = match &lab {
        RunLab::Netns(netns_lab) if keep => {
            eprintln!(
                "twlab: lab kept for inspection: `ip netns exec {} bash` (or {}); `twlab clean` removes it",
                netns_lab.client.name(),
                netns_lab.server.name()
            );
            netns_lab.keep();
            Vec::new()
        }
        RunLab::Netns(netns_lab) => {
            let errors = journal.restore(&hosts).await;
            netns_lab.destroy().await;
            errors
        }
        RunLab::Real { run_id, .. } => {
            let errors = journal.restore(&hosts).await;
            let _ = std::fs::remove_file(netns::owner_file(run_id));
            errors
        }
    };

    let series = |side: Side, source: Source| -> Vec<&Sample> {
        samples
            .iter()
            .filter(|s| s.host == side && s.source == source)
            .collect()
    };
    // Up to the end of the load, less a guard for the skew between the
    // client's clock and twlab's (a remote client starts through ssh).
    let load_secs = ctx
        .scenario
        .effective(variant)
        .map_or(ctx.scenario.client.duration, |(_, c)| c.duration)
        .0
        .as_secs_f64();
    let steady = summary.steady_from_secs..(load_secs - LOAD_END_GUARD_SECS);
    summary.sockets = BySide {
        server: StateStats::from_samples(series(Side::Server, Source::Sockets), steady.clone()),
        client: StateStats::from_samples(series(Side::Client, Source::Sockets), steady.clone()),
    };
    summary.conntrack = BySide {
        server: StateStats::from_samples(series(Side::Server, Source::Conntrack), steady.clone()),
        client: StateStats::from_samples(series(Side::Client, Source::Conntrack), steady.clone()),
    };
    summary.collected = Some(
        [
            (ctx.scenario.collect.sockets, Source::Sockets),
            (ctx.scenario.collect.conntrack, Source::Conntrack),
        ]
        .into_iter()
        .filter_map(|(on, source)| on.then_some(source))
        .collect(),
    );
    summary.steady_samples = Some(
        samples
            .iter()
            .filter(|s| !s.is_final && steady.contains(&s.t) && s.host == Side::Server)
            .filter(|s| Some(&s.source) == summary.collected.as_ref().and_then(|c| c.first()))
            .count() as u64,
    );
    summary.interrupted = ctx.shutdown.level() >= Level::Graceful;
    if let Some(client) = &summary.client {
        summary.invalid = validity_problems(ctx.scenario, variant, client);
    }
    all_samples.extend(samples);
    let outcome = match (outcome, restore_errors.into_iter().next()) {
        (Err(e), _) | (Ok(()), Some(e)) => Err(e),
        (Ok(()), None) => Ok(()),
    };
    if let Err(e) = &outcome {
        summary.error = Some(e.to_string());
    }
    (summary, env, outcome)
}

/// Before a run on real hosts: wait for the previous run's sockets and
/// conntrack entries to drain, and note the run as twlab's (owner file,
/// restore journal) so `twlab clean` can tell live runs from leftovers.
async fn prepare_real_run(
    ctx: &Context<'_>,
    real: &RealLab,
    variant: &Variant,
    run_id: &str,
) -> Result<()> {
    let (server_spec, _) = ctx.scenario.effective(variant).map_err(Error::invalid)?;
    let endpoint = real.endpoint(server_spec.port.0);
    let left = real.drain(endpoint, ctx.scenario.collect.conntrack).await?;
    if !left.is_empty() {
        eprintln!(
            "twlab: the endpoint {endpoint} did not drain within {}: {} left; the run starts anyway",
            humantime::format_duration(real.spec.cooldown()),
            left.join(", ")
        );
    }
    netns::write_owner_file(run_id)?;
    real.restore.record_run(run_id)
}

#[allow(clippy::too_many_arguments)]
async fn run_in_lab(
    ctx: &Context<'_>,
    lab: &RunLab<'_>,
    variant: &Variant,
    repeat: u32,
    writer: &mut SampleWriter,
    journal: &mut Journal,
    samples: &mut Vec<Sample>,
    summary: &mut RunSummary,
    env: &mut RunEnv,
) -> Result<()> {
    let scenario = ctx.scenario;
    let (server_spec, client_spec) = scenario.effective(variant).map_err(Error::invalid)?;
    let endpoint = lab.endpoint(server_spec.port.0);
    let (server_host, client_host) = (lab.host(Side::Server), lab.host(Side::Client));
    if scenario.collect.conntrack {
        for host in [server_host, client_host] {
            // A lab namespace tracks nothing until a rule uses conntrack; a
            // real host is counted as it is (twlab adds no rule there).
            if matches!(lab, RunLab::Netns(_)) {
                for argv in conntrack::enable_argvs() {
                    host.run(&argv).await?;
                }
            }
            let mut timeouts = BTreeMap::new();
            for key in CONNTRACK_TIMEOUTS {
                if let Ok(name) = crate::scenario::SysctlName::parse(key)
                    && let Ok(v) = host.read_sysctl(&name).await
                {
                    timeouts.insert(key.to_string(), v);
                }
            }
            env.conntrack_timeouts
                .insert(host.side().to_string(), timeouts);
        }
    }
    journal.apply(server_host, &variant.sysctls.server).await?;
    journal.apply(client_host, &variant.sysctls.client).await?;

    let log = |name: &str| {
        ctx.dir
            .join(format!("{}-r{repeat}-{name}.log", variant.name))
    };
    let server_log = log("server");
    let server_exe = if server_spec.kind == ServerKind::Builtin {
        server_host.twlab_exe(&ctx.exe).await?
    } else {
        ctx.exe.clone()
    };
    let client_exe = if client_spec.tool == ClientTool::Builtin {
        client_host.twlab_exe(&ctx.exe).await?
    } else {
        ctx.exe.clone()
    };
    let server_ctx = server::ServerContext {
        exe: &server_exe,
        log: &server_log,
        run_id: lab.run_id(),
        engine: lab.engine(),
    };
    let mut server = server::start(&server_spec, server_host, &server_ctx).await?;
    env.server_image_id = server.image_id.clone();
    let server_note = match server.process() {
        Some(p) => note_process(lab, Side::Server, p)?,
        None => None,
    };
    let collector = Collector {
        hosts: vec![server_host, client_host],
        endpoint,
        sockets: scenario.collect.sockets,
        conntrack: scenario.collect.conntrack,
        variant: variant.name.to_string(),
        repeat,
        run_id: lab.run_id().to_string(),
    };
    let duration = client_spec.duration.0;
    let progress = progress_bar(&variant.name.to_string(), repeat, duration);
    if ctx.shutdown.level() >= Level::Graceful {
        server.kill().await;
        return Err(Error::env("stopped by a signal before the load started"));
    }
    let client_log = log("client");
    let client_ctx = ClientContext {
        exe: &client_exe,
        log: &client_log,
        run_id: lab.run_id(),
        engine: lab.client_engine(),
    };
    let mut client =
        match RunningClient::start(&client_spec, client_host, endpoint, &client_ctx).await {
            Ok(c) => c,
            Err(e) => {
                server.kill().await;
                forget_process(lab, server_note);
                return Err(e);
            }
        };
    // The load's clock starts with the client, before the journal's fsync.
    let start = Instant::now();
    env.client_image_id = client.image_id.clone();
    let client_note = match client.process() {
        Some(p) => note_process(lab, Side::Client, p)?,
        None => None,
    };

    let (stop_tx, stop_rx) = watch::channel(false);
    let sampler = collector.run(
        scenario.collect.interval.0,
        start,
        writer,
        stop_rx,
        Some(&progress),
    );
    let driver = async {
        let out = drive(
            &mut client,
            &mut server,
            &ctx.shutdown,
            &progress,
            start,
            duration,
        )
        .await;
        let _ = stop_tx.send(true);
        out
    };
    let (sampled, client_stats) = tokio::join!(sampler, driver);
    progress.finish_and_clear();
    let sample_result = sampled.map(|s| samples.extend(s));

    let immediate = ctx.shutdown.level() >= Level::Immediate;
    if !immediate && client_stats.is_ok() && sample_result.is_ok() {
        let last = collector
            .snapshot(start.elapsed().as_secs_f64(), true)
            .await?;
        for s in &last {
            writer.append(s)?;
        }
        samples.extend(last);
    }
    summary.samples = samples
        .iter()
        .filter(|s| !s.is_final && s.host == Side::Server && s.source == Source::Sockets)
        .count() as u64;
    if immediate {
        server.kill().await;
    } else {
        let alive = server.check_alive().await;
        server.stop().await?;
        alive?;
    }
    forget_process(lab, server_note);
    forget_process(lab, client_note);
    let (mut stats, cpu) = client_stats?;
    if stats.cpu_secs.is_none() {
        stats.cpu_secs = cpu;
    }
    summary.client = Some(stats);
    sample_result
}

/// On a real host, note a process in the restore journal so `twlab clean`
/// can end it after a `kill -9` of twlab (processes in a lab namespace die
/// with it). Returns the PID to forget once the process is reaped.
fn note_process(
    lab: &RunLab<'_>,
    side: Side,
    process: &crate::process::Supervised,
) -> Result<Option<u32>> {
    let (RunLab::Real { lab, .. }, Some(pid)) = (lab, process.pid()) else {
        return Ok(None);
    };
    lab.restore
        .record_process(crate::lab::restore::PendingProcess {
            side,
            pid,
            start_ticks: crate::lab::restore::start_ticks(pid).unwrap_or_default(),
            remote_pidfile: process.remote_pidfile().map(String::from),
            command: process.command().to_string(),
        })?;
    Ok(Some(pid))
}

fn forget_process(lab: &RunLab<'_>, pid: Option<u32>) {
    if let (RunLab::Real { lab, .. }, Some(pid)) = (lab, pid)
        && let Err(e) = lab.restore.forget_process(pid)
    {
        eprintln!("twlab: {e}");
    }
}

/// The order of the runs: every (variant index, repeat), interleaved
/// A B A B ... or shuffled with a seed; and how to describe it.
fn plan_runs(scenario: &Scenario) -> (Vec<(usize, u32)>, String) {
    let mut plan: Vec<(usize, u32)> = (1..=scenario.repeat.get())
        .flat_map(|r| (0..scenario.variants.len()).map(move |v| (v, r)))
        .collect();
    match scenario.order {
        Order::Interleaved => (plan, "interleaved".into()),
        Order::Randomized => {
            let seed = scenario.seed.unwrap_or_default();
            fastrand::Rng::with_seed(seed).shuffle(&mut plan);
            (plan, format!("randomized (seed {seed})"))
        }
    }
}

/// Why a run's figures cannot be trusted, unless the scenario studies it:
/// the client ran out of local ports, or the load generator used all the
/// CPU its threads could (it, not the server, set the pace).
fn validity_problems(scenario: &Scenario, variant: &Variant, client: &ClientStats) -> Vec<String> {
    let mut out = Vec::new();
    let allowed = |a| scenario.allow.contains(&a);
    if !allowed(Allowance::PortExhaustion) {
        let eaddrnotavail = client
            .errors
            .connect_by_errno
            .as_ref()
            .and_then(|m| m.get("EADDRNOTAVAIL"))
            .copied()
            .unwrap_or(0);
        if eaddrnotavail > 0 {
            out.push(format!(
                "the client ran out of local ports: {eaddrnotavail} connects failed with EADDRNOTAVAIL (add `allow: [port_exhaustion]` if that is what you study)"
            ));
        } else if client.errors.connect_by_errno.is_none() && client.errors.connect > 0 {
            out.push(format!(
                "{} connects failed (wrk does not say why; port exhaustion is likely) and wrk lost those connection slots",
                client.errors.connect
            ));
        }
    }
    if !allowed(Allowance::ClientSaturation)
        && let Some(cpu) = client.cpu_secs
        && client.duration_secs > 0.0
    {
        let threads = scenario
            .effective(variant)
            .map(|(_, c)| c.threads.get())
            .unwrap_or(1) as f64;
        let cores = std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64);
        let usable = threads.min(cores);
        let used = cpu / client.duration_secs;
        if used >= 0.9 * usable {
            out.push(format!(
                "the load generator was CPU-bound: it used {used:.2} of the {usable} core(s) its threads can use, so it may have set the pace (add `allow: [client_saturation]` if that is what you study)"
            ));
        }
    }
    out
}

/// Wait for the client while ticking the progress bar, watching the server
/// and the stop signals.
async fn drive(
    client: &mut RunningClient,
    server: &mut server::RunningServer,
    shutdown: &Shutdown,
    progress: &ProgressBar,
    start: Instant,
    duration: Duration,
) -> Result<(ClientStats, Option<f64>)> {
    let deadline = duration + Duration::from_secs(30);
    let mut cpu = None;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut stop_sent = false;
    let mut killed = false;
    loop {
        tokio::select! {
            stats = client.finish() => {
                return stats.map(|s| (s, cpu));
            }
            _ = shutdown.reached(Level::Graceful), if !stop_sent => {
                client.request_stop().await;
                stop_sent = true;
            }
            _ = shutdown.reached(Level::Immediate), if !killed => {
                client.signal_kill().await;
                killed = true;
            }
            _ = tick.tick() => {
                progress.set_position(start.elapsed().as_secs().min(duration.as_secs()));
                // None for a client on an SSH host: the saturation check then has none.
                cpu = client.cpu_secs().or(cpu);
                if let Err(e) = server.check_alive().await {
                    client.signal_kill().await;
                    let _ = client.finish().await;
                    return Err(e);
                }
                if start.elapsed() > deadline {
                    client.signal_kill().await;
                    let _ = client.finish().await;
                    return Err(Error::env(format!(
                        "the client `{}` ran {}s past its duration and was killed",
                        client.command(),
                        (deadline - duration).as_secs()
                    )));
                }
            }
        }
    }
}

fn progress_bar(variant: &str, repeat: u32, duration: Duration) -> ProgressBar {
    let pb = ProgressBar::new(duration.as_secs().max(1));
    let style =
        ProgressStyle::with_template("{prefix:>18} [{bar:30.cyan/blue}] {pos:>4}/{len}s {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
    pb.set_style(style);
    pb.set_prefix(format!("{variant} #{repeat}"));
    pb
}
