//! One run: one variant, one repeat, one lab. It reads top to bottom as the
//! steps it takes; every step after the lab exists is undone by the
//! teardown at the end, on success, on error and on a signal.

use super::drive::{drive, progress_bar};
use super::kept::RunSamples;
use super::run_lab::{RunLab, forget_process, note_process};
use crate::analysis::completeness::{self, Observed, Planned};
use crate::analysis::validity::{conntrack_refusals, host_saturation, validity_problems};
use crate::common::counts::ClientStats;
use crate::common::counts::Source;
use crate::common::endpoint::{HostRole, Side};
use crate::error::{Error, Result};
use crate::lab::Host;
use crate::lab::netns::{self, NetnsLab};
use crate::lab::real::RealLab;
use crate::lab::sysctl::Journal;
use crate::load::client::ClientContext;
use crate::load::client::group::ClientGroup;
use crate::load::client::swarm::SwarmCounters;
use crate::load::server;
use crate::results::env::RunEnv;
use crate::results::{self, BySide, ClientHostSummary, RunSummary, Sample, SampleWriter};
use crate::run::sampler::Collector;
use crate::scenario::{ClientVia, Scenario, ServerKind, Variant};
use crate::shutdown::{Level, Shutdown};
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Instant;
use tokio::sync::watch;

/// How long before the end of the load the steady window closes: a sample
/// taken while the client is exiting counts its teardown, and a remote
/// client's clock starts a little before twlab's.
pub(crate) const LOAD_END_GUARD_SECS: f64 = 0.25;

pub(crate) const CONNTRACK_TIMEOUTS: [&str; 3] = [
    "net.netfilter.nf_conntrack_tcp_timeout_time_wait",
    "net.netfilter.nf_conntrack_tcp_timeout_established",
    "net.netfilter.nf_conntrack_tcp_timeout_close_wait",
];

/// Everything a run needs that does not change between runs.
pub(crate) struct Context<'a> {
    pub(crate) scenario: &'a Scenario,
    pub(crate) dir: PathBuf,
    pub(crate) exe: PathBuf,
    pub(crate) shutdown: Shutdown,
    /// The connected real lab, when the scenario runs on real hosts.
    pub(crate) real: Option<&'a RealLab>,
}

/// One variant, one repeat, in a fresh lab. Always tears the lab down
/// (unless `keep`); the summary records what was measured even on error.
pub(crate) async fn run_one(
    ctx: &Context<'_>,
    variant: &Variant,
    repeat: u32,
    writer: &mut SampleWriter,
    keep: bool,
    all_samples: &mut Vec<Sample>,
) -> (RunSummary, RunEnv, Result<()>) {
    let run_id = netns::new_run_id();
    let mut summary = new_summary(ctx, variant, &run_id, repeat);
    let mut env = RunEnv {
        run_id: run_id.clone(),
        variant: variant.name.to_string(),
        repeat,
        server_address: netns::SERVER_ADDR.to_string(),
        client_address: netns::CLIENT_ADDR.to_string(),
        ..Default::default()
    };
    let mut journal = Journal::default();
    let lab = match open_lab(ctx, variant, &run_id, &mut env, &mut journal).await {
        Ok(lab) => lab,
        Err(e) => {
            // The run id was reserved by its owner file; with no lab made
            // (a signal in a real lab's drain, a namespace refused) nothing
            // of the run is left for `twlab clean` to prove it owns.
            netns::release_run_id(&run_id);
            summary.error = Some(e.to_string());
            return (summary, env, Err(e));
        }
    };
    let mut run = RunState {
        variant,
        repeat,
        writer,
        journal: &mut journal,
        samples: RunSamples::new(steady_window(ctx, variant, &summary)),
        summary: &mut summary,
        env: &mut env,
        client_hosts: Vec::new(),
        load_secs: None,
    };
    let outcome = run_in_lab(ctx, &lab, &mut run).await;
    let load_secs = run.load_secs;
    let samples = run.samples;
    let client_hosts = if run.client_hosts.is_empty() {
        lab.clients()
            .iter()
            .map(|h| h.describe())
            .zip(lab.client_addresses())
            .enumerate()
            .map(|(i, (host, address))| ClientHost {
                host,
                address,
                counted_as: i,
            })
            .collect()
    } else {
        run.client_hosts
    };
    env.sysctls = journal.changes.clone();
    // Looked at before the lab is closed: a namespace gone by now was
    // removed under the run, and its sysctls went with it (nothing to put
    // back there).
    let vanished: Vec<String> = lab
        .vanished()
        .into_iter()
        .map(|h| {
            journal
                .changes
                .retain(|c| !(c.side == h.side() && c.host == h.describe()));
            h.name().to_string()
        })
        .collect();
    // A kept lab keeps the variant's sysctls, for inspection; it was asked
    // for only when the run completed (not after an error or a signal).
    let keep = keep && outcome.is_ok() && ctx.shutdown.level() == Level::Running;
    let restore_errors = close_lab(&lab, &mut journal, keep).await;
    env.sysctls_changed_meanwhile = std::mem::take(&mut journal.changed_meanwhile);
    summarize(ctx, variant, &samples, &client_hosts, &mut summary);
    all_samples.extend(samples.into_chart_samples());
    let outcome = match (outcome, restore_errors.into_iter().next()) {
        (Err(e), _) | (Ok(()), Some(e)) => Err(e),
        (Ok(()), None) => Ok(()),
    };
    if let Err(e) = &outcome {
        summary.error = Some(e.to_string());
    }
    // Also for a failed run: what else went wrong is said beside the error.
    summary.incomplete = completeness(ctx, variant, &summary, load_secs, vanished);
    (summary, env, outcome)
}

/// Why a run that did not fail still did not happen as planned (see
/// [`crate::analysis::completeness`]): its load ended early by twlab's
/// clock or by a client's own, its lab vanished, its samples have gaps.
fn completeness(
    ctx: &Context<'_>,
    variant: &Variant,
    summary: &RunSummary,
    load_secs: Option<f64>,
    vanished: Vec<String>,
) -> Vec<String> {
    let collect = &ctx.scenario.collect;
    let planned = Planned {
        duration: std::time::Duration::from_secs_f64(load_secs_of(ctx.scenario, variant)),
        gap_threshold: crate::run::sampler::gap_threshold(collect.interval.0),
        sampled: collect.sockets || collect.conntrack,
    };
    let mut clients: Vec<(String, &ClientStats)> = Vec::new();
    if summary.clients.is_empty() {
        if let Some(c) = &summary.client {
            clients.push(("the load client".to_string(), c));
        }
    } else {
        for (i, h) in summary.clients.iter().enumerate() {
            if let Some(load) = &h.load {
                clients.push((format!("the load client of client host {}", i + 1), load));
            }
        }
    }
    let observed = Observed {
        load_secs,
        clients,
        vanished,
        missed_ticks: summary.missed_ticks,
        gap_secs: summary.sample_gap_secs,
    };
    completeness::problems(&planned, &observed)
}

/// What one run builds up while it goes, handed from step to step.
struct RunState<'r> {
    variant: &'r Variant,
    repeat: u32,
    writer: &'r mut SampleWriter,
    journal: &'r mut Journal,
    samples: RunSamples,
    summary: &'r mut RunSummary,
    env: &'r mut RunEnv,
    /// The client hosts of the load, when they are not the lab's own (the
    /// tasks of a Swarm load).
    client_hosts: Vec<ClientHost>,
    /// From the load's start until every client ended, by twlab's clock;
    /// `None` when no load started.
    load_secs: Option<f64>,
}

/// One client host of a run, for its entry in the summary.
struct ClientHost {
    /// As the report names it.
    host: String,
    address: String,
    /// Which of the collector's client hosts counts it (the tasks of a
    /// Swarm load that share a node share that node's counts).
    counted_as: usize,
}

/// The summary before anything ran: ids and the steady window's start.
fn new_summary(ctx: &Context<'_>, variant: &Variant, run_id: &str, repeat: u32) -> RunSummary {
    RunSummary {
        run_id: run_id.to_string(),
        repeat,
        steady_from_secs: match ctx.scenario.collect.steady_after {
            Some(d) => d.0.as_secs_f64(),
            // The variant's own duration: `set` may change it.
            None => results::steady_from(load_secs_of(ctx.scenario, variant)),
        },
        ..Default::default()
    }
}

/// The variant's load duration in seconds (`set` may change it).
/// The offsets the steady mean is taken over: from when the count is
/// steady to the end of the load, less a guard for the skew between the
/// client's clock and twlab's (a remote client starts through ssh).
fn steady_window(ctx: &Context<'_>, variant: &Variant, summary: &RunSummary) -> Range<f64> {
    summary.steady_from_secs..(load_secs_of(ctx.scenario, variant) - LOAD_END_GUARD_SECS)
}

fn load_secs_of(scenario: &Scenario, variant: &Variant) -> f64 {
    scenario
        .effective(variant)
        .map_or(scenario.client.duration, |(_, c)| c.duration)
        .0
        .as_secs_f64()
}

/// Step 1: the lab — a fresh pair of namespaces, or the real lab made ready
/// for this run (drained, the run noted in its restore journal).
async fn open_lab<'a>(
    ctx: &Context<'a>,
    variant: &Variant,
    run_id: &str,
    env: &mut RunEnv,
    journal: &mut Journal,
) -> Result<RunLab<'a>> {
    match ctx.real {
        Some(real) => {
            prepare_real_run(ctx, real, variant, run_id).await?;
            env.server_address = real.spec.server_address().to_string();
            let (_, client) = ctx.scenario.effective(variant).map_err(Error::invalid)?;
            let clients = client.hosts.get() as usize;
            let addresses: Vec<String> = real
                .spec
                .hosts
                .client_hosts()
                .iter()
                .take(clients)
                .map(|h| h.address.map(|a| a.to_string()).unwrap_or_default())
                .collect();
            env.client_address = addresses.first().cloned().unwrap_or_default();
            if clients > 1 {
                env.client_addresses = addresses;
            }
            journal.disk = Some(real.restore.clone());
            Ok(RunLab::Real {
                lab: real,
                run_id: run_id.to_string(),
                clients,
            })
        }
        None => {
            let (_, client) = ctx.scenario.effective(variant).map_err(Error::invalid)?;
            let lab = NetnsLab::create_with_clients(run_id, client.hosts.get()).await?;
            env.namespaces = lab.hosts().map(|h| h.name().to_string()).collect();
            if client.hosts.get() > 1 {
                env.client_addresses = lab
                    .client_addresses()
                    .iter()
                    .map(ToString::to_string)
                    .collect();
            }
            Ok(RunLab::Netns(Box::new(lab)))
        }
    }
}

/// Last step: restore the sysctls and remove the lab (or keep it for
/// inspection). Returns what could not be restored.
async fn close_lab(lab: &RunLab<'_>, journal: &mut Journal, keep: bool) -> Vec<Error> {
    let hosts: Vec<&dyn Host> = std::iter::once(lab.host(Side::Server))
        .chain(lab.clients())
        .collect();
    match lab {
        RunLab::Netns(netns_lab) if keep => {
            errln!(
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
    }
}

/// The run's figures from its samples: final, peak and steady mean per
/// side and source, what was collected, and whether the run is valid.
fn summarize(
    ctx: &Context<'_>,
    variant: &Variant,
    samples: &RunSamples,
    client_hosts: &[ClientHost],
    summary: &mut RunSummary,
) {
    summary.sockets = BySide {
        server: samples.stats(Side::Server, Source::Sockets),
        client: samples.stats(Side::Client, Source::Sockets),
    };
    summary.conntrack = BySide {
        server: samples.stats(Side::Server, Source::Conntrack),
        client: samples.stats(Side::Client, Source::Conntrack),
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
    let first_source = summary.collected.as_ref().and_then(|c| c.first()).copied();
    summary.samples = first_source.map_or(0, |s| samples.periodic(Side::Server, s));
    summary.steady_samples = Some(first_source.map_or(0, |s| samples.steady(Side::Server, s)));
    summary.interrupted = ctx.shutdown.level() >= Level::Graceful;
    summary.server_peers = samples.server_peers();
    if client_hosts.len() > 1 {
        // One counted host for several (tasks on one node): its counts are
        // the client side's own, without a per-host breakdown.
        let counted = client_hosts.iter().map(|c| c.counted_as).max().unwrap_or(0) + 1;
        let stats = |i: usize, source| {
            if counted > 1 {
                samples.client_stats(i, source).unwrap_or_default()
            } else {
                samples.stats(Side::Client, source)
            }
        };
        for (i, c) in client_hosts.iter().enumerate() {
            let entry = match summary.clients.get_mut(i) {
                Some(e) => e,
                None => {
                    summary.clients.push(ClientHostSummary::default());
                    let last = summary.clients.len() - 1;
                    &mut summary.clients[last]
                }
            };
            entry.host = c.host.clone();
            entry.address = c.address.clone();
            entry.sockets = stats(c.counted_as, Source::Sockets);
            entry.conntrack = stats(c.counted_as, Source::Conntrack);
        }
    }
    if let Some(client) = &summary.client {
        summary.invalid = validity_problems(ctx.scenario, variant, client);
    }
    summary
        .invalid
        .extend(host_saturation(ctx.scenario, variant, &summary.clients));
    summary
        .invalid
        .extend(conntrack_refusals(ctx.scenario, &summary.kernel));
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
        errln!(
            "twlab: the endpoint {endpoint} did not drain within {}: {} left; the run starts anyway",
            humantime::format_duration(real.spec.cooldown()),
            left.join(", ")
        );
    }
    netns::write_owner_file(run_id)?;
    real.restore.record_run(run_id)
}

/// Steps 2 to 7, inside the lab: conntrack on, sysctls applied, server
/// started, load driven while sampling, final snapshot, server stopped.
async fn run_in_lab(ctx: &Context<'_>, lab: &RunLab<'_>, run: &mut RunState<'_>) -> Result<()> {
    let (server_spec, client_spec) = ctx
        .scenario
        .effective(run.variant)
        .map_err(Error::invalid)?;
    let endpoint = lab.endpoint(server_spec.port.0);
    let (server_host, client_hosts) = (lab.host(Side::Server), lab.clients());
    // A real lab's hosts stay connected from run to run (and the drain
    // counted): this run's client addresses are its own.
    server_host.reset_peers();
    prepare_conntrack(ctx, lab, endpoint, run.env).await?;
    run.journal
        .apply(server_host, &run.variant.sysctls.server)
        .await?;
    for client_host in &client_hosts {
        run.journal
            .apply(*client_host, &run.variant.sysctls.client)
            .await?;
    }

    let log = |name: &str| {
        ctx.dir
            .join(format!("{}-r{}-{name}.log", run.variant.name, run.repeat))
    };
    let client_logs: Vec<PathBuf> = if client_hosts.len() == 1 {
        vec![log("client")]
    } else {
        (1..=client_hosts.len())
            .map(|i| log(&format!("client{i}")))
            .collect()
    };
    let (mut server, server_note) =
        start_server(ctx, lab, &server_spec, &log("server"), run.env).await?;
    if ctx.shutdown.level() >= Level::Graceful {
        server.kill().await;
        forget_process(lab, server_note);
        return Err(Error::env("stopped by a signal before the load started"));
    }
    let mut client_exes = Vec::with_capacity(client_hosts.len());
    for host in &client_hosts {
        // A Swarm load runs from its image: no twlab on the manager's host.
        // Only a tool that runs twlab itself (no program of its own) needs
        // twlab's binary on the client host.
        let runs_twlab = client_spec.tool.get().runs_twlab() && client_spec.via == ClientVia::Host;
        client_exes.push(if runs_twlab {
            host.twlab_exe(&ctx.exe).await?
        } else {
            ctx.exe.clone()
        });
    }
    let client_ctxs: Vec<ClientContext<'_>> = client_exes
        .iter()
        .zip(&client_logs)
        .map(|(exe, log)| ClientContext {
            exe,
            log,
            run_id: lab.run_id(),
            engine: lab.client_engine(),
            swarm: lab.client_swarm(),
        })
        .collect();
    // A Swarm load is counted on its nodes by a service of its own, started
    // first so that it sees the load from its first connection.
    let counters = match client_spec.via {
        ClientVia::Swarm => match unless_stopped(
            ctx,
            SwarmCounters::start(
                lab.client_engine(),
                lab.client_swarm(),
                &client_spec,
                endpoint,
                ctx.scenario.collect.interval.0,
                ctx.scenario.collect.conntrack,
                lab.run_id(),
            ),
        )
        .await
        {
            Ok(c) => Some(c),
            Err(e) => {
                server.kill().await;
                forget_process(lab, server_note);
                return Err(e);
            }
        },
        _ => None,
    };
    let starting = ClientGroup::start(&client_spec, &client_hosts, endpoint, &client_ctxs);
    let started = if client_spec.via == ClientVia::Swarm {
        unless_stopped(ctx, starting).await
    } else {
        // Processes start at once; a stop reaches them once they run.
        starting.await
    };
    let mut client = match started {
        Ok(c) => c,
        Err(e) => {
            server.kill().await;
            forget_process(lab, server_note);
            if let Some(c) = counters {
                c.remove().await;
            }
            return Err(e);
        }
    };
    // The load's clock starts with the clients, before the journal's fsync.
    let start = Instant::now();
    run.env.client_image_id = client.image_id();
    let mut client_notes = Vec::new();
    // In host order: process `i` runs on client host `i`.
    for (i, p) in client.processes().into_iter().enumerate() {
        client_notes.push(note_process(lab, HostRole::client(i), p)?);
    }
    let node_hosts = match (&counters, client.swarm()) {
        (Some(c), Some(load)) => match unless_stopped(ctx, c.hosts(load.nodes())).await {
            Ok(hosts) => hosts,
            Err(e) => {
                client.kill_and_reap().await;
                server.kill().await;
                forget_process(lab, server_note);
                if let Some(c) = counters {
                    c.remove().await;
                }
                return Err(e);
            }
        },
        _ => Vec::new(),
    };
    let counted: Vec<&dyn Host> = if node_hosts.is_empty() {
        client_hosts.clone()
    } else {
        if let Some(load) = client.swarm() {
            run.client_hosts = load
                .nodes()
                .iter()
                .map(|(node, hostname)| ClientHost {
                    host: format!("swarm node {hostname}"),
                    address: hostname.clone(),
                    counted_as: node_hosts
                        .iter()
                        .position(|h| h.node_id() == node)
                        .unwrap_or(0),
                })
                .collect();
        }
        node_hosts.iter().map(|h| h as &dyn Host).collect()
    };
    let collector = Collector {
        server: server_host,
        clients: counted,
        endpoint,
        sockets: ctx.scenario.collect.sockets,
        conntrack: ctx.scenario.collect.conntrack,
        variant: run.variant.name.to_string(),
        repeat: run.repeat,
        run_id: lab.run_id().to_string(),
        kernel: super::sampler::KernelSampling::new(ctx.scenario.collect.kernel_counters),
    };
    let load = Load {
        collector: &collector,
        client: &mut client,
        server: &mut server,
        start,
        duration: client_spec.duration.0,
    };
    let (client_stats, sampled) = sample_while_loading(ctx, load, run).await;
    run.summary.kernel = collector.kernel.summary();
    if let Some(c) = counters {
        c.remove().await;
    }
    // The clients' figures are kept whatever the server does next.
    let loads = client_stats.and_then(|outcomes| record_client_outcomes(outcomes, run.summary));
    // A server that would not stop stays in the restore journal for `clean`.
    stop_server(ctx, server).await?;
    forget_process(lab, server_note);
    for note in client_notes {
        forget_process(lab, note);
    }
    loads?;
    sampled
}

/// Each client's figures into the summary: the total in `client`, and with
/// several client hosts each one's in `clients`. The first client error,
/// if any, is returned after every figure that came in is recorded.
fn record_client_outcomes(
    outcomes: super::drive::ClientOutcomes,
    summary: &mut RunSummary,
) -> Result<()> {
    let several = outcomes.len() > 1;
    let mut first_error = None;
    let mut loads = Vec::new();
    for (i, (stats, cpu)) in outcomes.into_iter().enumerate() {
        let (load, error) = match stats {
            Ok(mut s) => {
                if s.cpu_secs.is_none() {
                    s.cpu_secs = cpu;
                }
                loads.push(s.clone());
                (Some(s), None)
            }
            Err(e) => {
                let text = e.to_string();
                let e = if several {
                    Error::env(format!("client host {}: {text}", i + 1))
                } else {
                    e
                };
                first_error.get_or_insert(e);
                (None, Some(text))
            }
        };
        if several {
            summary.clients.push(ClientHostSummary {
                load,
                error,
                ..Default::default()
            });
        }
    }
    // A total only of every client: one missing would make it a part.
    if first_error.is_none() {
        summary.client = ClientStats::merged(&loads);
    }
    first_error.map_or(Ok(()), Err)
}

/// `start`, unless a stop signal comes first: a Swarm's tasks may take up
/// to a minute to be scheduled, and Ctrl-C must not wait for that. A
/// service already made when the stop comes is removed as it is dropped.
async fn unless_stopped<T>(
    ctx: &Context<'_>,
    start: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    tokio::select! {
        r = start => r,
        _ = ctx.shutdown.reached(Level::Graceful) => Err(Error::env(
            "stopped by a signal while the Swarm services started",
        )),
    }
}

/// Step 4: the server, started and ready, noted in the restore journal on
/// a real host so `twlab clean` can end it after a `kill -9` of twlab.
async fn start_server(
    ctx: &Context<'_>,
    lab: &RunLab<'_>,
    spec: &crate::scenario::ServerSpec,
    log: &std::path::Path,
    env: &mut RunEnv,
) -> Result<(server::RunningServer, Option<u32>)> {
    let host = lab.host(Side::Server);
    let exe = match spec.kind {
        ServerKind::Builtin => host.twlab_exe(&ctx.exe).await?,
        _ => ctx.exe.clone(),
    };
    let server_ctx = server::ServerContext {
        exe: &exe,
        log,
        run_id: lab.run_id(),
        engine: lab.engine(),
    };
    // Journaled once spawned, not once it listens.
    let noted = std::sync::Mutex::new(None);
    let note = |p: &crate::process::Supervised| {
        let pid = note_process(lab, HostRole::SERVER, p)?;
        *noted.lock().map_err(|_| Error::env("journal note lock"))? = pid;
        Ok(())
    };
    let started = server::start_noted(spec, host, &server_ctx, &note).await;
    let note = noted.lock().ok().and_then(|n| *n);
    let server = started.inspect_err(|_| forget_process(lab, note))?;
    env.server_image_id = server.image_id.clone();
    Ok((server, note))
}

/// Step 2: in a lab namespace, make conntrack track connections and start
/// listening to its events (a real host is counted as it is: twlab adds
/// no rule there, and dumps its table); note each side's
/// conntrack timeouts for the report.
async fn prepare_conntrack(
    ctx: &Context<'_>,
    lab: &RunLab<'_>,
    endpoint: crate::common::endpoint::Endpoint,
    env: &mut RunEnv,
) -> Result<()> {
    if !ctx.scenario.collect.conntrack {
        return Ok(());
    }
    if let RunLab::Netns(netns_lab) = lab {
        for host in netns_lab.hosts() {
            host.enable_conntrack().await?;
            if ctx.scenario.collect.conntrack_events {
                host.watch_conntrack(endpoint).await;
            }
        }
    }
    for host in [lab.host(Side::Server), lab.host(Side::Client)] {
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
    Ok(())
}

/// The running load of one run, as the sampling step needs it.
struct Load<'l, 'h> {
    collector: &'l Collector<'h>,
    client: &'l mut ClientGroup,
    server: &'l mut server::RunningServer,
    start: Instant,
    duration: std::time::Duration,
}

/// Steps 5 and 6: sample on the interval while the client runs, then take
/// the final snapshot (skipped after a second signal or a failure). Returns
/// the client's figures and the sampling outcome.
async fn sample_while_loading(
    ctx: &Context<'_>,
    load: Load<'_, '_>,
    run: &mut RunState<'_>,
) -> (Result<super::drive::ClientOutcomes>, Result<()>) {
    let progress = progress_bar(&run.variant.name.to_string(), run.repeat, load.duration);
    let (stop_tx, stop_rx) = watch::channel(false);
    // A sampler that fails (a full disk, a hung collector) stops the load
    // as a Ctrl-C would: a run nobody measures any more is not run to its end.
    let (failed_tx, failed_rx) = watch::channel(false);
    let sampler = async {
        let out = load
            .collector
            .run(
                ctx.scenario.collect.interval.0,
                load.start,
                run.writer,
                &mut run.samples,
                stop_rx,
                Some(&progress),
            )
            .await;
        if out.is_err() {
            let _ = failed_tx.send(true);
        }
        out
    };
    let driver = async {
        let out = drive(
            load.client,
            load.server,
            &ctx.shutdown,
            failed_rx,
            &progress,
            load.start,
            load.duration,
        )
        .await;
        let _ = stop_tx.send(true);
        out
    };
    let (sampled, client_stats) = tokio::join!(sampler, driver);
    run.load_secs = Some(load.start.elapsed().as_secs_f64());
    progress.finish_and_clear();
    let mut sampled = sampled.map(|s| {
        run.summary.missed_ticks = s.missed_ticks;
        run.summary.sample_gap_secs = results::summary::round2(s.gap_secs);
    });
    let immediate = ctx.shutdown.level() >= Level::Immediate;
    if !immediate && client_stats.is_ok() && sampled.is_ok() {
        sampled = final_snapshot(load.collector, load.start, run).await;
    }
    (client_stats, sampled)
}

/// Step 6: counts right after the client stopped, when TIME_WAIT is at its
/// height (the last periodic tick may be up to one interval older).
async fn final_snapshot(
    collector: &Collector<'_>,
    start: Instant,
    run: &mut RunState<'_>,
) -> Result<()> {
    let last = collector
        .snapshot(start.elapsed().as_secs_f64(), true)
        .await?;
    for s in &last {
        run.writer.append(s)?;
        run.samples.add(s);
    }
    Ok(())
}

/// Step 7: stop the server (killed at once after a second signal); an
/// early exit of the server during the run is reported here.
async fn stop_server(ctx: &Context<'_>, mut server: server::RunningServer) -> Result<()> {
    if ctx.shutdown.level() >= Level::Immediate {
        server.kill().await;
        return Ok(());
    }
    let alive = server.check_alive().await;
    server.stop().await?;
    alive
}
