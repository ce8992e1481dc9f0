//! `twlab run`: one scenario from plan to report.
//!
//! The plan is every variant times `repeat`, interleaved (A B A B ...) so a
//! slow drift of the machine does not masquerade as an effect. Each run
//! builds a fresh lab, applies the variant's sysctls, starts the server,
//! samples while the client loads it, takes a final snapshot, stops
//! everything and tears the lab down — on success, on error and on Ctrl-C.
//! `summary.json`, `env.json` and `report.md` are rewritten after every run,
//! so an interrupted scenario still leaves a readable result.

use crate::client::RunningClient;
use crate::collect::Collector;
use crate::endpoint::Side;
use crate::error::{Error, Result};
use crate::lab::netns::{self, NetnsLab};
use crate::lab::{self, Host};
use crate::results::{
    self, BySide, RunInfo, RunSummary, Sample, SampleWriter, Source, StateStats, Summary,
    VariantSummary,
};
use crate::scenario::{Allowance, ClientTool, Order, Scenario, ServerKind, Variant};
use crate::shutdown::{Level, Shutdown};
use crate::stats::ClientStats;
use crate::sysctl::{Journal, SysctlChange};
use crate::{charts, conntrack, expect, report, server};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
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
}

/// `env.json`: what the machine and the lab were.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Env {
    pub twlab_version: String,
    pub kernel: String,
    pub os: String,
    pub tools: BTreeMap<String, String>,
    pub lab: String,
    /// The machine's own values of the sysctls the scenario touches, read
    /// (never written) for reference: the lab runs in its own namespaces.
    pub machine_sysctls: BTreeMap<String, String>,
    pub runs: Vec<RunEnv>,
}

/// One run's lab and settings in `env.json`.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
#[serde(default)]
pub struct RunEnv {
    pub run_id: String,
    pub variant: String,
    pub repeat: u32,
    pub namespaces: Vec<String>,
    pub server_address: String,
    pub client_address: String,
    /// Each sysctl written: before, wanted, read back.
    pub sysctls: Vec<SysctlChange>,
    /// conntrack timeouts (seconds) per side, by TCP state.
    pub conntrack_timeouts: BTreeMap<String, BTreeMap<String, String>>,
}

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
    preflight(&scenario)?;
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
    let exe = std::env::current_exe()
        .map_err(|e| Error::env(format!("cannot find twlab's own executable: {e}")))?;
    let shutdown = Shutdown::install().map_err(|e| Error::env(format!("signal handlers: {e}")))?;
    let ctx = Context {
        scenario: &scenario,
        dir: dir.clone(),
        exe,
        shutdown,
    };

    let mut env = machine_env(&scenario).await;
    let mut info = run_info(opts, &scenario);
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

    let (plan, order) = plan_runs(&scenario);
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
        write_results(&dir, &scenario, &info, &variants, &env, &all_samples)?;
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
    let summary = write_results(&dir, &scenario, &info, &variants, &env, &all_samples)?;
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
fn preflight(scenario: &Scenario) -> Result<()> {
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
    let uses_wrk = scenario.variants.iter().any(|v| {
        scenario
            .effective(v)
            .is_ok_and(|(_, c)| c.tool == ClientTool::Wrk)
    });
    if uses_wrk {
        lab::require_tool("wrk", "as the scenario's client (client.tool: wrk)", "wrk")?;
    }
    Ok(())
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
            "{}: {} connections, {} threads, {}, GET {}",
            scenario.client.tool.as_str(),
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
        comparisons: results::compare(variants),
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
    let lab = match NetnsLab::create(&run_id).await {
        Ok(lab) => lab,
        Err(e) => {
            summary.error = Some(e.to_string());
            return (summary, env, Err(e));
        }
    };
    env.namespaces = vec![lab.server.name().to_string(), lab.client.name().to_string()];
    let mut journal = Journal::default();
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
    let restore_errors = if keep {
        eprintln!(
            "twlab: lab kept for inspection: `ip netns exec {} bash` (or {}); `twlab clean` removes it",
            lab.client.name(),
            lab.server.name()
        );
        lab.keep();
        Vec::new()
    } else {
        let hosts: [&dyn Host; 2] = [&lab.server, &lab.client];
        let errors = journal.restore(&hosts).await;
        lab.destroy().await;
        errors
    };

    let series = |side: Side, source: Source| -> Vec<&Sample> {
        samples
            .iter()
            .filter(|s| s.host == side && s.source == source)
            .collect()
    };
    let steady = summary.steady_from_secs;
    summary.sockets = BySide {
        server: StateStats::from_samples(series(Side::Server, Source::Sockets), steady),
        client: StateStats::from_samples(series(Side::Client, Source::Sockets), steady),
    };
    summary.conntrack = BySide {
        server: StateStats::from_samples(series(Side::Server, Source::Conntrack), steady),
        client: StateStats::from_samples(series(Side::Client, Source::Conntrack), steady),
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
            .filter(|s| !s.is_final && s.t >= steady && s.host == Side::Server)
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

#[allow(clippy::too_many_arguments)]
async fn run_in_lab(
    ctx: &Context<'_>,
    lab: &NetnsLab,
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
    if scenario.collect.conntrack {
        for host in [&lab.server, &lab.client] {
            for argv in conntrack::enable_argvs() {
                host.run(&argv).await?;
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
    journal.apply(&lab.server, &variant.sysctls.server).await?;
    journal.apply(&lab.client, &variant.sysctls.client).await?;

    let log = |name: &str| {
        ctx.dir
            .join(format!("{}-r{repeat}-{name}.log", variant.name))
    };
    let server_log = log("server");
    let server_ctx = server::ServerContext {
        exe: &ctx.exe,
        log: &server_log,
        run_id: &lab.run_id,
        engine: None,
    };
    let mut server = server::start(&server_spec, &lab.server, &server_ctx).await?;
    let collector = Collector {
        hosts: vec![&lab.server, &lab.client],
        endpoint,
        sockets: scenario.collect.sockets,
        conntrack: scenario.collect.conntrack,
        variant: variant.name.to_string(),
        repeat,
        run_id: lab.run_id.clone(),
    };
    let duration = client_spec.duration.0;
    let progress = progress_bar(&variant.name.to_string(), repeat, duration);
    if ctx.shutdown.level() >= Level::Graceful {
        server.kill().await;
        return Err(Error::env("stopped by a signal before the load started"));
    }
    let mut client = RunningClient::start(
        &client_spec,
        &lab.client,
        endpoint,
        &ctx.exe,
        &log("client"),
    )?;
    let start = Instant::now();

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
    let (mut stats, cpu) = client_stats?;
    if stats.cpu_secs.is_none() {
        stats.cpu_secs = cpu;
    }
    summary.client = Some(stats);
    sample_result
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
                client.request_stop();
                stop_sent = true;
            }
            _ = shutdown.reached(Level::Immediate), if !killed => {
                client.process.signal(nix::sys::signal::Signal::SIGKILL);
                killed = true;
            }
            _ = tick.tick() => {
                progress.set_position(start.elapsed().as_secs().min(duration.as_secs()));
                if let Some(pid) = client.process.pid() {
                    cpu = crate::process::cpu_secs(pid).or(cpu);
                }
                if let Err(e) = server.check_alive().await {
                    client.process.signal(nix::sys::signal::Signal::SIGKILL);
                    let _ = client.finish().await;
                    return Err(e);
                }
                if start.elapsed() > deadline {
                    client.process.signal(nix::sys::signal::Signal::SIGKILL);
                    let _ = client.finish().await;
                    return Err(Error::env(format!(
                        "the client `{}` ran {}s past its duration and was killed",
                        client.process.command(),
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
