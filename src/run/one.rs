//! One run: one variant, one repeat, one lab. It reads top to bottom as the
//! steps it takes; every step after the lab exists is undone by the
//! teardown at the end, on success, on error and on a signal.

use super::kept::RunSamples;
use super::plan::VariantPlan;
use super::run_lab::{Labs, RunLab};
use super::steps::run_in_lab;
use super::summarize::{ClientHost, completeness, new_summary, steady_window, summarize};
use crate::error::Result;
use crate::lab::netns;
use crate::lab::run_id;
use crate::lab::sysctl::Journal;
use crate::results::env::RunEnv;
use crate::results::{RunSummary, Sample, SampleWriter};
use crate::scenario::Scenario;
use crate::shutdown::{Level, Shutdown};
use std::path::PathBuf;

/// Everything a run needs that does not change between runs.
pub(crate) struct Context<'a> {
    pub(crate) scenario: &'a Scenario,
    pub(crate) dir: PathBuf,
    pub(crate) exe: PathBuf,
    pub(crate) shutdown: Shutdown,
    /// Where each run gets its lab: the embedded lab, or the connected
    /// real lab when the scenario runs on real hosts.
    pub(crate) labs: &'a dyn Labs,
}

/// One variant, one repeat, in a fresh lab. Always tears the lab down
/// (unless `keep`); the summary records what was measured even on error.
pub(crate) async fn run_one(
    ctx: &Context<'_>,
    plan: &VariantPlan<'_>,
    repeat: u32,
    writer: &mut SampleWriter,
    keep: bool,
    all_samples: &mut Vec<Sample>,
) -> (RunSummary, RunEnv, Result<()>) {
    let run_id = run_id::new_run_id();
    let mut summary = new_summary(ctx, plan, &run_id, repeat);
    let mut env = RunEnv {
        run_id: run_id.clone(),
        variant: plan.variant.name.to_string(),
        repeat,
        server_address: netns::SERVER_ADDR.to_string(),
        client_address: netns::CLIENT_ADDR.to_string(),
        ..Default::default()
    };
    let mut journal = Journal::default();
    let conntrack = ctx.scenario.collect.conntrack;
    let opened = ctx
        .labs
        .open(plan, &run_id, conntrack, &mut env, &mut journal)
        .await;
    let lab = match opened {
        Ok(lab) => lab,
        Err(e) => {
            // The run id was reserved by its owner file; with no lab made
            // (a signal in a real lab's drain, a namespace refused) nothing
            // of the run is left for `twlab clean` to prove it owns.
            run_id::release_run_id(&run_id);
            summary.error = Some(e.to_string());
            return (summary, env, Err(e));
        }
    };
    let mut run = RunState {
        plan,
        repeat,
        writer,
        journal: &mut journal,
        samples: RunSamples::new(steady_window(plan, &summary)),
        summary: &mut summary,
        env: &mut env,
        client_hosts: Vec::new(),
        load_secs: None,
    };
    let outcome = run_in_lab(ctx, &*lab, &mut run).await;
    let load_secs = run.load_secs;
    let samples = run.samples;
    let client_hosts = summary_client_hosts(&*lab, run.client_hosts);
    env.sysctls = journal.changes();
    let vanished = forget_vanished(&*lab, &mut journal);
    // A kept lab keeps the variant's sysctls, for inspection; it was asked
    // for only when the run completed (not after an error or a signal).
    let keep = keep && outcome.is_ok() && ctx.shutdown.level() == Level::Running;
    let restore_errors = lab.close(&mut journal, keep).await;
    env.sysctls_changed_meanwhile = std::mem::take(&mut journal.changed_meanwhile);
    summarize(ctx, plan, &samples, &client_hosts, &mut summary);
    all_samples.extend(samples.into_chart_samples());
    let outcome = match (outcome, restore_errors.into_iter().next()) {
        (Err(e), _) | (Ok(()), Some(e)) => Err(e),
        (Ok(()), None) => Ok(()),
    };
    if let Err(e) = &outcome {
        summary.error = Some(e.to_string());
    }
    // Also for a failed run: what else went wrong is said beside the error.
    summary.incomplete = completeness(ctx, plan, &summary, load_secs, vanished);
    (summary, env, outcome)
}

/// What one run builds up while it goes, handed from step to step.
pub(super) struct RunState<'r> {
    pub(super) plan: &'r VariantPlan<'r>,
    pub(super) repeat: u32,
    pub(super) writer: &'r mut SampleWriter,
    pub(super) journal: &'r mut Journal,
    pub(super) samples: RunSamples,
    pub(super) summary: &'r mut RunSummary,
    pub(super) env: &'r mut RunEnv,
    /// The client hosts of the load, when they are not the lab's own (the
    /// tasks of a Swarm load).
    pub(super) client_hosts: Vec<ClientHost>,
    /// From the load's start until every client ended, by twlab's clock;
    /// `None` when no load started.
    pub(super) load_secs: Option<f64>,
}

/// The client hosts the summary names: a Swarm load's own (`swarm`, its
/// tasks' nodes), or else the lab's, each counted as itself.
fn summary_client_hosts(lab: &dyn RunLab, swarm: Vec<ClientHost>) -> Vec<ClientHost> {
    if !swarm.is_empty() {
        return swarm;
    }
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
}

/// The lab's hosts that vanished under the run, each one's sysctl changes
/// dropped from the journal. Looked at before the lab is closed: a
/// namespace gone by now was removed under the run, and its sysctls went
/// with it (nothing to put back there).
fn forget_vanished(lab: &dyn RunLab, journal: &mut Journal) -> Vec<String> {
    lab.vanished()
        .into_iter()
        .map(|h| {
            journal.forget_host(h.role);
            h.name
        })
        .collect()
}

#[cfg(test)]
mod tests;
