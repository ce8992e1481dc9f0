//! The run directory: created (never over another run), and rewritten after
//! every run — env.json and summary.json first, then the charts and
//! report.md — from what has been measured so far, so nothing waits for the
//! end of the scenario, and a chart or a format that fails cannot take the
//! summary with it.

use super::RunOptions;
use crate::analysis::expect;
use crate::analysis::metrics;
use crate::error::{Error, Result};
use crate::output::{self, charts};
use crate::results::env::Env;
use crate::results::kernel::KernelSample;
use crate::results::{self, RunInfo, Sample, Summary, VariantSummary};
use crate::scenario::Scenario;
use std::path::{Path, PathBuf};

/// The run directory, claimed for this run alone before anything starts.
///
/// `--out DIR` must not exist yet or be an empty directory: a directory
/// holding a run is refused, and so is one holding anything else (a run
/// would write its files among someone's own, and `twlab clean` or a rerun
/// could not tell them apart). Without `--out`, the default
/// `runs/<time>-<name>` gets a `-2`, `-3`… suffix when another run took the
/// name in the same second. The claim is the exclusive creation of
/// `scenario.yaml` (`O_EXCL`): of two runs started into one directory at the
/// same moment, the second is refused.
pub(crate) fn prepare_dir(opts: &RunOptions, scenario: &Scenario) -> Result<PathBuf> {
    match &opts.out {
        Some(d) => {
            check_out_dir(d)?;
            std::fs::create_dir_all(d).map_err(|e| {
                use std::io::ErrorKind::{NotADirectory, PermissionDenied, ReadOnlyFilesystem};
                // Where the user asked for cannot hold a directory: their
                // input (exit 2), before anything has started.
                if matches!(
                    e.kind(),
                    PermissionDenied | ReadOnlyFilesystem | NotADirectory
                ) {
                    Error::invalid(format!("--out {}: cannot create it: {e}", d.display()))
                } else {
                    Error::io(d.display(), e)
                }
            })?;
            claim(d)?;
            finish_dir(d.clone(), scenario)
        }
        None => {
            let base = format!(
                "{}-{}",
                chrono::Local::now().format("%Y%m%d-%H%M%S"),
                scenario.name
            );
            let runs = PathBuf::from("runs");
            std::fs::create_dir_all(&runs).map_err(|e| Error::io(runs.display(), e))?;
            for n in 1..1000 {
                let dir = match n {
                    1 => runs.join(&base),
                    _ => runs.join(format!("{base}-{n}")),
                };
                // create_dir, not create_dir_all: an existing one is another run's.
                match std::fs::create_dir(&dir) {
                    Ok(()) => {
                        claim(&dir)?;
                        return finish_dir(dir, scenario);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                    Err(e) => return Err(Error::io(dir.display(), e)),
                }
            }
            Err(Error::env(format!(
                "runs/{base}: 999 run directories of this name exist already; use --out"
            )))
        }
    }
}

/// Refuse an `--out` that holds a run, or anything at all.
fn check_out_dir(dir: &Path) -> Result<()> {
    if dir.join(results::SUMMARY_FILE).exists() || dir.join(results::SAMPLES_FILE).exists() {
        return Err(Error::invalid(format!(
            "{} already holds a run; choose another --out",
            dir.display()
        )));
    }
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(Error::invalid(format!(
                    "--out {} is a directory that is not empty (and holds no twlab run): a run writes several files there; choose a new or an empty directory",
                    dir.display()
                )));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        // `FILE` itself, or a path under a file (`FILE/sub`): name the file.
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
            if std::fs::metadata(dir).is_ok() {
                Err(Error::invalid(format!(
                    "--out {} exists and is not a directory",
                    dir.display()
                )))
            } else {
                Err(output::paths::not_a_directory("--out", dir))
            }
        }
        Err(e) => Err(Error::io(dir.display(), e)),
    }
}

/// Create `scenario.yaml` exclusively: whoever does first owns the directory.
fn claim(dir: &Path) -> Result<()> {
    let path = dir.join(results::SCENARIO_FILE);
    match std::fs::File::options()
        .write(true)
        .create_new(true)
        .open(&path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(Error::invalid(format!(
            "{} is being used by another twlab run; choose another --out",
            dir.display()
        ))),
        Err(e) => Err(Error::io(path.display(), e)),
    }
}

fn finish_dir(dir: PathBuf, scenario: &Scenario) -> Result<PathBuf> {
    results::write_text(&dir.join(results::SCENARIO_FILE), &scenario.to_yaml())?;
    Ok(dir)
}

/// Write env.json, summary.json, the charts and every format written on
/// every run ([`output::every_run`]: report.md) from what has been measured
/// so far (called after every run, so nothing waits for the end).
///
/// The order is the point: `summary.json` (the run directory's contract,
/// from which `twlab report` renders everything again) and `env.json` are
/// written first, so no later step can lose them; then the charts, then
/// each format. A step that fails does not stop the ones after it: every
/// file is tried, and the failures come back together as one error (the
/// first one's tier, each naming its file). A chart that could not be
/// written is left out of `summary.json` (written again without it), so the
/// summary, the report and the HTML page name only charts that exist.
pub(crate) fn write_results(
    dir: &Path,
    scenario: &Scenario,
    info: &RunInfo,
    variants: &[VariantSummary],
    env: &Env,
    samples: &[Sample],
) -> Result<Summary> {
    let ordered = baseline_first(scenario, samples);
    // The kernel's counters are charted from their file: a run keeps them
    // on disk only (a long run's are tens of MB), and a file that cannot be
    // read costs its charts, not the results.
    let kernel: Vec<KernelSample> =
        results::read_jsonl(dir, results::KERNEL_FILE).unwrap_or_else(|e| {
            errln!("twlab: the kernel counters' charts are left out: {e}");
            Vec::new()
        });
    let plan = charts::plan(&ordered, &kernel, &scenario.collect);
    let mut summary = Summary {
        scenario: scenario.name.to_string(),
        info: info.clone(),
        comparisons: metrics::compare(variants),
        variants: variants
            .iter()
            .map(|v| VariantSummary {
                kernel: crate::analysis::kernel::variant_counters(v),
                ..v.clone()
            })
            .collect(),
        expectations: Vec::new(),
        charts: plan.charts(),
    };
    summary.expectations = expect::evaluate_all(&scenario.expect, &summary);
    // A matrix's figures against its parameters, drawn from the summary.
    let sweep = charts::plan_sweep(&summary);
    summary.charts.extend(sweep.iter().map(|c| c.chart.clone()));
    let summary_file = dir.join(results::SUMMARY_FILE);
    let mut errors = Vec::new();
    errors.extend(results::write_json(&dir.join(results::ENV_FILE), env).err());
    errors.extend(results::write_json(&summary_file, &summary).err());

    let drawn = charts::write_planned(dir, &plan);
    let swept = charts::write_sweep(dir, &sweep);
    if !drawn.errors.is_empty() || !swept.errors.is_empty() {
        errors.extend(drawn.errors);
        errors.extend(swept.errors);
        summary.charts = drawn.charts;
        summary.charts.extend(swept.charts);
        errors.extend(results::write_json(&summary_file, &summary).err());
    }

    for (format, path) in output::every_run(dir) {
        errors.extend(output::export(format, &summary, dir, &path).err());
    }
    match one_error(errors) {
        Some(e) => Err(e),
        None => Ok(summary),
    }
}

/// Several failures as one error: the first one's tier (and exit code),
/// every message in order.
fn one_error(errors: Vec<Error>) -> Option<Error> {
    let mut errors = errors.into_iter();
    let first = errors.next()?;
    let others: Vec<String> = errors.map(|e| e.to_string()).collect();
    if others.is_empty() {
        return Some(first);
    }
    let count = others.len() + 1;
    Some(first.map_message(|m| {
        format!(
            "{count} failures writing the run directory: {m}; {}",
            others.join("; ")
        )
    }))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::counts::{Counts, Source};
    use crate::common::endpoint::Side;
    use crate::output::report;

    const SCENARIO: &str = "\
name: tw_reuse
server: { kind: builtin, port: 8080 }
client: { tool: builtin, duration: 2s }
variants:
  - name: reuse-off
  - name: reuse-on
    sysctls:
      client: { net.ipv4.tcp_tw_reuse: 1 }
";

    /// What one run of each variant leaves: TIME_WAIT on the server's
    /// sockets, so there is one chart to draw.
    fn measured() -> (Scenario, Vec<VariantSummary>, Vec<Sample>) {
        let scenario = Scenario::parse(SCENARIO, "tw_reuse.yaml", &[]).expect("scenario");
        let variants = scenario
            .variants
            .iter()
            .map(VariantSummary::empty)
            .collect();
        let mut samples = Vec::new();
        for (variant, level) in [("reuse-off", 100u64), ("reuse-on", 40)] {
            for t in 1..=3u64 {
                let counts: Counts = [("TIME_WAIT".to_string(), level * t)].into();
                samples.push(Sample {
                    t: t as f64,
                    variant: variant.into(),
                    repeat: 1,
                    run_id: format!("{variant}-1"),
                    host: Side::Server,
                    source: Source::Sockets,
                    is_final: false,
                    counts,
                    per_client: Vec::new(),
                    peers: None,
                });
            }
        }
        (scenario, variants, samples)
    }

    fn write(dir: &Path) -> Result<Summary> {
        let (scenario, variants, samples) = measured();
        let info = RunInfo::default();
        write_results(dir, &scenario, &info, &variants, &Env::default(), &samples)
    }

    #[test]
    fn writes_the_summary_the_charts_and_the_report() {
        let dir = tempfile::tempdir().expect("temp dir");
        let summary = write(dir.path()).expect("written");
        let chart = "charts/server-sockets-TIME_WAIT.svg";
        assert_eq!(
            summary
                .charts
                .iter()
                .map(|c| c.path.as_str())
                .collect::<Vec<_>>(),
            [chart]
        );
        assert!(dir.path().join(chart).is_file());
        assert!(dir.path().join(results::ENV_FILE).is_file());
        assert_eq!(
            results::read_summary(dir.path()).expect("summary.json"),
            summary
        );
        let md = std::fs::read_to_string(dir.path().join(results::REPORT_FILE)).expect("report");
        assert_eq!(md, report::render_markdown(&summary));
    }

    /// Issue 18, item 3: a matrix's variants carry their params into
    /// summary.json, and each figure some run measured is drawn against a
    /// numeric parameter into charts/, listed in the summary, from the
    /// summary alone (no samples here).
    #[test]
    fn a_sweep_writes_its_params_and_its_charts() {
        let text = "name: s\nmatrix:\n  client.rate: [100, 200]\n";
        let scenario = Scenario::parse(text, "s.yaml", &[]).expect("scenario");
        let variants: Vec<VariantSummary> = scenario
            .variants
            .iter()
            .map(|v| {
                let mut s = VariantSummary::empty(v);
                let mut run = crate::results::RunSummary {
                    run_id: format!("{}-1", v.name),
                    repeat: 1,
                    ..Default::default()
                };
                run.sockets.server.steady_mean = [("TIME_WAIT".to_string(), 60.0)].into();
                s.runs.push(run);
                s
            })
            .collect();
        let dir = tempfile::tempdir().expect("temp dir");
        let summary = write_results(
            dir.path(),
            &scenario,
            &RunInfo::default(),
            &variants,
            &Env::default(),
            &[],
        )
        .expect("written");
        let chart = "charts/sweep-client_rate-server-TIME_WAIT.svg";
        let paths: Vec<&str> = summary.charts.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(paths, [chart]);
        assert!(dir.path().join(chart).is_file());
        let json = std::fs::read_to_string(dir.path().join(results::SUMMARY_FILE)).expect("json");
        assert!(
            json.contains("\"params\": {\n        \"client.rate\": 200\n"),
            "{json}"
        );
        let md = std::fs::read_to_string(dir.path().join(results::REPORT_FILE)).expect("report");
        assert!(md.contains("## Sweep") && md.contains(chart), "{md}");
    }

    /// A regular file where the charts folder goes: the folder cannot be
    /// created, for real. summary.json, env.json and report.md are written
    /// all the same, name no chart, and the error names the folder.
    #[test]
    fn a_chart_failure_loses_neither_the_summary_nor_the_report() {
        let dir = tempfile::tempdir().expect("temp dir");
        let in_the_way = dir.path().join(charts::CHARTS_DIR);
        std::fs::write(&in_the_way, "not a folder").expect("a file named charts");

        let err = write(dir.path()).unwrap_err();
        assert!(
            err.to_string().contains(&in_the_way.display().to_string()),
            "{err}"
        );
        assert_eq!(err.exit_code(), crate::error::exit_code::ENVIRONMENT);

        assert!(dir.path().join(results::ENV_FILE).is_file());
        let summary = results::read_summary(dir.path()).expect("summary.json survives");
        assert!(summary.charts.is_empty(), "{:?}", summary.charts);
        assert_eq!(summary.variants.len(), 2);
        let md = std::fs::read_to_string(dir.path().join(results::REPORT_FILE))
            .expect("report.md survives");
        assert_eq!(md, report::render_markdown(&summary));
    }

    /// Two steps fail (the charts folder, and report.md, a folder in its
    /// place): both are tried, both are named, summary.json is written.
    #[test]
    fn every_failure_is_reported_together() {
        let dir = tempfile::tempdir().expect("temp dir");
        let charts = dir.path().join(charts::CHARTS_DIR);
        std::fs::write(&charts, "not a folder").expect("a file named charts");
        let report = dir.path().join(results::REPORT_FILE);
        std::fs::create_dir(&report).expect("a folder named report.md");

        let err = write(dir.path()).unwrap_err().to_string();
        assert!(
            err.starts_with("2 failures writing the run directory: "),
            "{err}"
        );
        let (at_charts, at_report) = (
            err.find(&charts.display().to_string()),
            err.find(&report.display().to_string()),
        );
        assert!(at_charts.is_some() && at_report.is_some(), "{err}");
        assert!(at_charts < at_report, "in the order tried: {err}");
        assert!(dir.path().join(results::SUMMARY_FILE).is_file());
    }
}
