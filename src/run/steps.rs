//! The steps of one run inside its lab, in the order they run: the hosts
//! prepared (conntrack, sysctls), the server started, the clients started
//! (and a Swarm load's counters), the load sampled, the server stopped.
//!
//! What a step starts goes into [`Started`], and [`Started::finish`] undoes
//! all of it, whichever step the run stopped at: the cleanup is written
//! once, not once per way out.

use super::drive::{ClientOutcomes, drive, progress_bar};
use super::one::{Context, RunState};
use super::run_lab::RunLab;
use super::sampler::{Collector, KernelSampling};
use super::summarize::{ClientHost, record_client_outcomes};
use crate::common::endpoint::{Endpoint, HostRole, Side};
use crate::error::{Error, Result};
use crate::lab::{Counter, HostCounter};
use crate::load::client::ClientContext;
use crate::load::client::group::ClientGroup;
use crate::load::client::swarm::{SwarmCounters, SwarmNodeHost};
use crate::load::server::{self, RunningServer};
use crate::results::{self, env::RunEnv};
use crate::scenario::{ClientVia, ServerKind, ServerSpec};
use crate::shutdown::Level;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tokio::sync::watch;

pub(crate) const CONNTRACK_TIMEOUTS: [&str; 3] = [
    "net.netfilter.nf_conntrack_tcp_timeout_time_wait",
    "net.netfilter.nf_conntrack_tcp_timeout_established",
    "net.netfilter.nf_conntrack_tcp_timeout_close_wait",
];

/// Steps 2 to 7, inside the lab: hosts prepared, server started, load
/// driven while sampling, final snapshot, everything started stopped.
pub(super) async fn run_in_lab(
    ctx: &Context<'_>,
    lab: &dyn RunLab,
    run: &mut RunState<'_>,
) -> Result<()> {
    let endpoint = lab.endpoint(run.plan.server.port.0);
    prepare_hosts(ctx, lab, endpoint, run).await?;
    let log = log_path(ctx, run, "server");
    let mut started = start_server(ctx, lab, &run.plan.server, &log, run.env).await?;
    let outcome = if ctx.shutdown.level() >= Level::Graceful {
        Err(Error::env("stopped by a signal before the load started"))
    } else {
        load_and_sample(ctx, lab, endpoint, run, &mut started).await
    };
    // A server that would not stop is the first thing said; the clients'
    // and the sampler's errors come after.
    started.finish(ctx, lab).await.and(outcome)
}

/// Everything a run started in its lab, undone by [`Started::finish`].
pub(super) struct Started {
    server: RunningServer,
    /// The server's entry in a real lab's restore journal.
    server_note: Option<u32>,
    /// A Swarm load's counter service.
    counters: Option<SwarmCounters>,
    client: Option<ClientGroup>,
    client_notes: Vec<Option<u32>>,
    /// The load ran to its end (or its stop): the clients are reaped, and
    /// the server is stopped gracefully rather than killed.
    loaded: bool,
}

impl Started {
    /// Undo what was started, on every way out of the run. After the load
    /// the server is stopped (one that would not stop stays in the restore
    /// journal for `twlab clean`); before it, everything is killed.
    async fn finish(self, ctx: &Context<'_>, lab: &dyn RunLab) -> Result<()> {
        let Started {
            server,
            server_note,
            counters,
            client,
            client_notes,
            loaded,
        } = self;
        if let (false, Some(mut client)) = (loaded, client) {
            client.kill_and_reap().await;
        }
        if let Some(c) = counters {
            c.remove().await;
        }
        if loaded {
            stop_server(ctx, server).await?;
        } else {
            server.kill().await;
        }
        for note in std::iter::once(server_note).chain(client_notes) {
            lab.forget_process(note);
        }
        Ok(())
    }
}

/// A log file of this run in the run directory.
fn log_path(ctx: &Context<'_>, run: &RunState<'_>, name: &str) -> PathBuf {
    let variant = &run.plan.variant.name;
    ctx.dir
        .join(format!("{variant}-r{}-{name}.log", run.repeat))
}

/// Step 2: the hosts made ready: this run's peers only, conntrack on, the
/// variant's sysctls applied (journaled first).
async fn prepare_hosts(
    ctx: &Context<'_>,
    lab: &dyn RunLab,
    endpoint: Endpoint,
    run: &mut RunState<'_>,
) -> Result<()> {
    let server_host = lab.host(Side::Server);
    // A real lab's hosts stay connected from run to run (and the drain
    // counted): this run's client addresses are its own.
    server_host.reset_peers();
    if ctx.scenario.collect.sockets && ctx.scenario.collect.socket_gauge {
        run.env.socket_counting = lab.watch_sockets(endpoint).await;
    }
    prepare_conntrack(ctx, lab, endpoint, run.env).await?;
    let sysctls = &run.plan.variant.sysctls;
    run.journal.apply(server_host, &sysctls.server).await?;
    for client_host in lab.clients() {
        run.journal.apply(client_host, &sysctls.client).await?;
    }
    Ok(())
}

/// Make conntrack track connections where the lab lets twlab (see
/// [`RunLab::track_conntrack`]); note each side's conntrack timeouts for
/// the report.
async fn prepare_conntrack(
    ctx: &Context<'_>,
    lab: &dyn RunLab,
    endpoint: Endpoint,
    env: &mut RunEnv,
) -> Result<()> {
    if !ctx.scenario.collect.conntrack {
        return Ok(());
    }
    lab.track_conntrack(endpoint, ctx.scenario.collect.conntrack_events)
        .await?;
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

/// Step 3: the server, started and ready, noted in the restore journal on
/// a real host so `twlab clean` can end it after a `kill -9` of twlab.
async fn start_server(
    ctx: &Context<'_>,
    lab: &dyn RunLab,
    spec: &ServerSpec,
    log: &Path,
    env: &mut RunEnv,
) -> Result<Started> {
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
        let pid = lab.note_process(HostRole::SERVER, p)?;
        *noted.lock().map_err(|_| Error::env("journal note lock"))? = pid;
        Ok(())
    };
    let started = server::start_noted(spec, host, &server_ctx, &note).await;
    let server_note = noted.lock().ok().and_then(|n| *n);
    let server = started.inspect_err(|_| lab.forget_process(server_note))?;
    env.server_image_id = server.image_id.clone();
    Ok(Started {
        server,
        server_note,
        counters: None,
        client: None,
        client_notes: Vec::new(),
        loaded: false,
    })
}

/// Step 4: the clients, each noted in the restore journal on a real host;
/// a Swarm load's counters first, so that they see its first connection.
/// Returns when the load's clock started.
async fn start_clients(
    ctx: &Context<'_>,
    lab: &dyn RunLab,
    endpoint: Endpoint,
    run: &mut RunState<'_>,
    started: &mut Started,
) -> Result<Instant> {
    let client_hosts = lab.clients();
    let spec = &run.plan.client;
    let logs: Vec<PathBuf> = match client_hosts.len() {
        1 => vec![log_path(ctx, run, "client")],
        n => (1..=n)
            .map(|i| log_path(ctx, run, &format!("client{i}")))
            .collect(),
    };
    let mut exes = Vec::with_capacity(client_hosts.len());
    for host in &client_hosts {
        // A Swarm load runs from its image: no twlab on the manager's host.
        // Only a tool that runs twlab itself (no program of its own) needs
        // twlab's binary on the client host.
        let runs_twlab = spec.tool.get().runs_twlab() && spec.via == ClientVia::Host;
        exes.push(if runs_twlab {
            host.twlab_exe(&ctx.exe).await?
        } else {
            ctx.exe.clone()
        });
    }
    let client_ctxs: Vec<ClientContext<'_>> = exes
        .iter()
        .zip(&logs)
        .map(|(exe, log)| ClientContext {
            exe,
            log,
            run_id: lab.run_id(),
            engine: lab.client_engine(),
            swarm: lab.client_swarm(),
        })
        .collect();
    let swarm = spec.via == ClientVia::Swarm;
    if swarm {
        let collect = &ctx.scenario.collect;
        let counters = SwarmCounters::start(
            lab.client_engine(),
            lab.client_swarm(),
            spec,
            endpoint,
            collect.interval.0,
            collect.conntrack,
            lab.run_id(),
        );
        started.counters = Some(unless_stopped(ctx, counters).await?);
    }
    let starting = ClientGroup::start(spec, &client_hosts, endpoint, &client_ctxs);
    // Processes start at once; a stop reaches them once they run.
    let client = if swarm {
        unless_stopped(ctx, starting).await?
    } else {
        starting.await?
    };
    // The load's clock starts with the clients, before the journal's fsync.
    let start = Instant::now();
    let client = started.client.insert(client);
    run.env.client_image_id = client.image_id();
    // In host order: process `i` runs on client host `i`.
    for (i, p) in client.processes().into_iter().enumerate() {
        started
            .client_notes
            .push(lab.note_process(HostRole::client(i), p)?);
    }
    Ok(start)
}

/// The hosts a Swarm load is counted on (its nodes, as its counter service
/// reports them), each task's node noted for the summary; none for any
/// other load, which is counted on the lab's client hosts.
async fn swarm_node_hosts(
    ctx: &Context<'_>,
    started: &Started,
    run: &mut RunState<'_>,
) -> Result<Vec<SwarmNodeHost>> {
    let (Some(counters), Some(load)) = (
        &started.counters,
        started.client.as_ref().and_then(ClientGroup::swarm),
    ) else {
        return Ok(Vec::new());
    };
    let node_hosts = unless_stopped(ctx, counters.hosts(load.nodes())).await?;
    if !node_hosts.is_empty() {
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
    Ok(node_hosts)
}

/// Steps 4 to 6: the clients started, the load sampled while it runs, the
/// final snapshot, each client's figures recorded.
async fn load_and_sample(
    ctx: &Context<'_>,
    lab: &dyn RunLab,
    endpoint: Endpoint,
    run: &mut RunState<'_>,
    started: &mut Started,
) -> Result<()> {
    let start = start_clients(ctx, lab, endpoint, run, started).await?;
    let node_hosts = swarm_node_hosts(ctx, started, run).await?;
    let server = HostCounter(lab.host(Side::Server));
    let client_hosts: Vec<HostCounter<'_>> = lab.clients().into_iter().map(HostCounter).collect();
    let counted: Vec<&dyn Counter> = if node_hosts.is_empty() {
        client_hosts.iter().map(|h| h as &dyn Counter).collect()
    } else {
        node_hosts.iter().map(|h| h as &dyn Counter).collect()
    };
    let collect = &ctx.scenario.collect;
    let collector = Collector {
        server: &server,
        clients: counted,
        endpoint,
        sockets: collect.sockets,
        conntrack: collect.conntrack,
        variant: run.plan.variant.name.to_string(),
        repeat: run.repeat,
        run_id: lab.run_id().to_string(),
        kernel: KernelSampling::new(collect.kernel_counters),
    };
    let Some(client) = started.client.as_mut() else {
        return Err(Error::env("the load's clients were not started"));
    };
    started.loaded = true;
    let load = Load {
        collector: &collector,
        client,
        server: &mut started.server,
        start,
        duration: run.plan.client.duration.0,
    };
    let (client_stats, sampled) = sample_while_loading(ctx, load, run).await;
    run.summary.kernel = collector.kernel.summary();
    // The clients' figures are kept whatever the server does next.
    let loads = client_stats.and_then(|outcomes| record_client_outcomes(outcomes, run.summary));
    loads.and(sampled)
}

/// `start`, unless a stop signal comes first: a Swarm's tasks may take up
/// to a minute to be scheduled, and Ctrl-C must not wait for that. A
/// service already made when the stop comes is removed as it is dropped.
pub(super) async fn unless_stopped<T>(
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

/// The running load of one run, as the sampling step needs it.
struct Load<'l, 'h> {
    collector: &'l Collector<'h>,
    client: &'l mut ClientGroup,
    server: &'l mut RunningServer,
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
) -> (Result<ClientOutcomes>, Result<()>) {
    let progress = progress_bar(
        &run.plan.variant.name.to_string(),
        run.repeat,
        load.duration,
    );
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
async fn stop_server(ctx: &Context<'_>, mut server: RunningServer) -> Result<()> {
    if ctx.shutdown.level() >= Level::Immediate {
        server.kill().await;
        return Ok(());
    }
    let alive = server.check_alive().await;
    server.stop().await?;
    alive
}
