//! The run directory: created (never over another run), and rewritten after
//! every run — env.json, charts, summary.json, report.md — from what has
//! been measured so far, so nothing waits for the end of the scenario.

use super::RunOptions;
use crate::analysis::expect;
use crate::analysis::metrics;
use crate::error::{Error, Result};
use crate::output::{self, charts};
use crate::results::env::Env;
use crate::results::{self, RunInfo, Sample, Summary, VariantSummary};
use crate::scenario::Scenario;
use std::path::{Path, PathBuf};

pub(crate) fn prepare_dir(opts: &RunOptions, scenario: &Scenario) -> Result<PathBuf> {
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

/// Write env.json, charts, summary.json and every format written on every
/// run ([`output::every_run`]: report.md) from what has been measured so far (called after every run, so nothing waits for the end).
pub(crate) fn write_results(
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
    for (format, path) in output::every_run(dir) {
        output::export(format, &summary, dir, &path)?;
    }
    Ok(summary)
}

/// The samples in the scenario's variant order (charts give colours in
/// order of appearance, so the baseline keeps the first colour even when
/// the runs were randomized).
pub(crate) fn baseline_first(scenario: &Scenario, samples: &[Sample]) -> Vec<Sample> {
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
