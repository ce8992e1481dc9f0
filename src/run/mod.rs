//! `twlab run`: one scenario from plan to report.
//!
//! The plan is every variant times `repeat`, interleaved (A B A B ...) so a
//! slow drift of the machine does not masquerade as an effect. Each run
//! builds a fresh lab, applies the variant's sysctls, starts the server,
//! samples while the client loads it, takes a final snapshot, stops
//! everything and tears the lab down — on success, on error and on Ctrl-C.
//! `summary.json`, `env.json` and `report.md` are rewritten after every run,
//! so an interrupted scenario still leaves a readable result.

mod capture;
mod drive;
mod kept;
mod one;
mod plan;
mod preflight;
mod run_lab;
pub mod sampler;
mod steps;
mod summarize;
mod write;

pub use capture::kernel_release;
use capture::*;
use one::*;
use plan::*;
use preflight::*;
use run_lab::{Embedded, Labs};
use write::*;

use crate::error::{Error, Result};
use crate::lab::real::RealLab;
use crate::lab::run_id;
use crate::results::{self, Sample, SampleWriter, Summary, VariantSummary};
use crate::scenario::{Loaded, Order, Scenario};
use crate::shutdown::{Level, Shutdown};
use std::path::PathBuf;

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

/// What a finished `twlab run` produced.
pub struct Outcome {
    pub summary: Summary,
    pub dir: PathBuf,
    /// A signal stopped the scenario early; what was measured is written.
    pub interrupted: bool,
    /// Runs that did not happen as planned (`variant repeat N: why`), left
    /// out of the comparisons and expectations: the result is not complete
    /// (exit 3).
    pub incomplete: Vec<String>,
}

/// Run a scenario; returns the summary (also written to the run directory).
pub async fn run(opts: &RunOptions) -> Result<Outcome> {
    // The step `twlab validate` takes too: what it accepts, run starts.
    let Loaded {
        mut scenario,
        lab: lab_spec,
    } = Loaded::load(&opts.scenario_path, &opts.overrides, opts.lab.as_deref())?;
    // A drawn seed is written into the resolved scenario and the reproduce
    // command, so a randomized order can be run again.
    let mut opts = opts.clone();
    if scenario.order == Order::Randomized && scenario.seed.is_none() {
        let seed = fastrand::u64(..);
        scenario.seed = Some(seed);
        opts.overrides.push(format!("seed={seed}"));
    }
    let opts = &opts;
    // Each variant's `set` applied once, for preflight and all its runs.
    let plans = VariantPlan::resolve_all(&scenario)?;
    preflight(&scenario, &plans, lab_spec.as_ref())?;
    if opts.keep && lab_spec.is_some() {
        return Err(Error::invalid(
            "--keep is for the embedded lab; on real hosts twlab always restores what it changed",
        ));
    }
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
    // The lab's id names its restore journal; reserved like a run's id so
    // two labs never share a journal, and released when the run ends.
    let lab_id = lab_spec.as_ref().map(|_| run_id::new_run_id());
    let real = match (&lab_spec, &lab_id) {
        (Some(spec), Some(id)) => match RealLab::connect(spec, id).await {
            Ok(real) => Some(real.with_shutdown(shutdown.clone())),
            Err(e) => {
                let _ = std::fs::remove_file(run_id::owner_file(id));
                return Err(e);
            }
        },
        _ => None,
    };
    let checked = match &real {
        Some(real) => require_remote_wrk(&plans, real).await,
        None => Ok(()),
    };
    let result = match checked {
        Ok(()) => run_plan(opts, &scenario, &plans, dir, exe, shutdown, real.as_ref()).await,
        Err(e) => Err(e),
    };
    if let Some(real) = real
        && let Err(e) = real.close().await
    {
        errln!("twlab: {e}");
    }
    if let Some(id) = &lab_id {
        let _ = std::fs::remove_file(run_id::owner_file(id));
    }
    result
}

async fn run_plan(
    opts: &RunOptions,
    scenario: &Scenario,
    plans: &[VariantPlan<'_>],
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
        labs: match real {
            Some(real) => real as &dyn Labs,
            None => &Embedded,
        },
    };

    let mut env = machine_env(scenario).await;
    let mut info = run_info(opts, scenario);
    if let Some(real) = real {
        real_lab_env(scenario, real, &mut env, &mut info).await;
    }
    let mut variants: Vec<VariantSummary> = scenario
        .variants
        .iter()
        .map(VariantSummary::empty)
        .collect();
    let mut writer = SampleWriter::create(&dir)?;

    let (plan, order) = plan_runs(scenario);
    info.order = order;
    let mut all_samples: Vec<Sample> = Vec::new();
    let total = plan.len();
    let mut failure = None;
    let mut started = 0;
    let mut incomplete = Vec::new();
    for (i, &(vi, repeat)) in plan.iter().enumerate() {
        if ctx.shutdown.level() >= Level::Graceful {
            info.notes.push(format!(
                "Stopped by a signal: {} of {total} planned runs were not started.",
                total - i
            ));
            break;
        }
        started += 1;
        let keep = opts.keep && i + 1 == total;
        let variant = &scenario.variants[vi];
        errln!(
            "twlab: run {}/{total}: variant `{}`, repeat {repeat}",
            i + 1,
            variant.name
        );
        let (summary, run_env, outcome) = run_one(
            &ctx,
            &plans[vi],
            repeat,
            &mut writer,
            keep,
            &mut all_samples,
        )
        .await;
        if !summary.incomplete.is_empty() {
            errln!(
                "twlab: run {}/{total} did not happen as planned: {}",
                i + 1,
                summary.incomplete.join("; ")
            );
            incomplete.push(format!(
                "variant `{}` repeat {repeat}: {}",
                variant.name,
                summary.incomplete.join("; ")
            ));
        }
        variants[vi].runs.push(summary);
        env.runs.push(run_env);
        info.finished_at = now();
        info.complete = i + 1 == total && outcome.is_ok() && incomplete.is_empty();
        write_results(&dir, scenario, &info, &variants, &env, &all_samples)?;
        if let Err(e) = outcome {
            failure = Some(e);
            break;
        }
    }
    let interrupted = ctx.shutdown.level() >= Level::Graceful;
    if interrupted {
        info.complete = false;
        info.notes.push(interruption_note(
            ctx.shutdown.level(),
            failure.as_ref(),
            started > 0,
        ));
    }
    let summary = write_results(&dir, scenario, &info, &variants, &env, &all_samples)?;
    match failure {
        Some(e) if !interrupted => Err(e),
        _ => Ok(Outcome {
            summary,
            dir,
            interrupted,
            incomplete,
        }),
    }
}

/// The report's note on why a scenario stopped early. `started`: whether
/// any run had begun (a signal before the first one stops nothing that ran).
fn interruption_note(level: Level, failure: Option<&Error>, started: bool) -> String {
    match failure {
        _ if !started => "Stopped by a signal before any run started: nothing was measured.".into(),
        Some(e) if level >= Level::Immediate => format!("Stopped at once by a second signal: {e}"),
        Some(e) => format!("Stopped by a signal; the run in progress did not complete: {e}"),
        None => "Stopped early by a signal: the last run did not last its planned duration and is left out of the figures.".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signal_before_any_run_does_not_speak_of_the_last_run() {
        let note = interruption_note(Level::Graceful, None, false);
        assert!(note.contains("before any run started"), "{note}");
        let failure = Error::env("stopped by a signal before the load started");
        let note = interruption_note(Level::Graceful, Some(&failure), false);
        assert!(note.contains("before any run started"), "{note}");
        let note = interruption_note(Level::Graceful, None, true);
        assert!(note.contains("left out of the figures"), "{note}");
    }
}
