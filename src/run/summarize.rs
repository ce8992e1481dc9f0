//! A run's figures, from what its steps gathered: the summary before
//! anything ran (ids, the steady window), each client's figures as the load
//! ends, the figures from the samples, and why a run did not happen as
//! planned. Apart from the steps so that each step only gathers, and one
//! place turns what was gathered into the summary.

use super::kept::RunSamples;
use super::one::Context;
use super::plan::VariantPlan;
use crate::analysis::completeness::{self, Observed, Planned};
use crate::analysis::validity::{conntrack_refusals, host_saturation, validity_problems};
use crate::common::counts::{ClientStats, Source};
use crate::common::endpoint::Side;
use crate::error::{Error, Result};
use crate::results::{self, BySide, ClientHostSummary, RunSummary};
use crate::shutdown::Level;
use std::ops::Range;

/// How long before the end of the load the steady window closes: a sample
/// taken while the client is exiting counts its teardown, and a remote
/// client's clock starts a little before twlab's.
pub(crate) const LOAD_END_GUARD_SECS: f64 = 0.25;

/// One client host of a run, for its entry in the summary.
pub(super) struct ClientHost {
    /// As the report names it.
    pub(super) host: String,
    pub(super) address: String,
    /// Which of the collector's client hosts counts it (the tasks of a
    /// Swarm load that share a node share that node's counts).
    pub(super) counted_as: usize,
}

/// The summary before anything ran: ids and the steady window's start.
pub(super) fn new_summary(
    ctx: &Context<'_>,
    plan: &VariantPlan<'_>,
    run_id: &str,
    repeat: u32,
) -> RunSummary {
    RunSummary {
        run_id: run_id.to_string(),
        repeat,
        steady_from_secs: match ctx.scenario.collect.steady_after {
            Some(d) => d.0.as_secs_f64(),
            // The variant's own duration: `set` may change it.
            None => results::steady_from(plan.load_secs()),
        },
        ..Default::default()
    }
}

/// The offsets the steady mean is taken over: from when the count is
/// steady to the end of the load, less a guard for the skew between the
/// client's clock and twlab's (a remote client starts through ssh).
pub(super) fn steady_window(plan: &VariantPlan<'_>, summary: &RunSummary) -> Range<f64> {
    summary.steady_from_secs..(plan.load_secs() - LOAD_END_GUARD_SECS)
}

/// Why a run that did not fail still did not happen as planned (see
/// [`crate::analysis::completeness`]): its load ended early by twlab's
/// clock or by a client's own, its lab vanished, its samples have gaps.
pub(super) fn completeness(
    ctx: &Context<'_>,
    plan: &VariantPlan<'_>,
    summary: &RunSummary,
    load_secs: Option<f64>,
    vanished: Vec<String>,
) -> Vec<String> {
    let collect = &ctx.scenario.collect;
    let planned = Planned {
        duration: std::time::Duration::from_secs_f64(plan.load_secs()),
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

/// The run's figures from its samples: final, peak and steady mean per
/// side and source, what was collected, and whether the run is valid.
pub(super) fn summarize(
    ctx: &Context<'_>,
    plan: &VariantPlan<'_>,
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
        summary.invalid = validity_problems(ctx.scenario, &plan.client, client);
    }
    summary.invalid.extend(host_saturation(
        ctx.scenario,
        &plan.client,
        &summary.clients,
    ));
    summary
        .invalid
        .extend(conntrack_refusals(ctx.scenario, &summary.kernel));
}

/// Each client's figures into the summary: the total in `client`, and with
/// several client hosts each one's in `clients`. The first client error,
/// if any, is returned after every figure that came in is recorded.
pub(super) fn record_client_outcomes(
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
