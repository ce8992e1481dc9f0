//! The run directory and its machine-readable contract.
//!
//! A run directory holds `samples.jsonl` (every sample, appended and flushed
//! as it is taken, so an interrupted run loses nothing), `env.json` (kernel,
//! versions, sysctls as they were), `scenario.yaml` (the resolved scenario),
//! `summary.json` (the figures below) and `report.md` (rendered from
//! `summary.json` alone, so `twlab report DIR` can re-render it). Tests, CI
//! gates and users read these files; the field names are the contract
//! documented in README and DESIGN.md.

use crate::analysis::statistics::{self, Direction, Stats, Verdict};
use crate::common::counts::{ClientStats, Counts};
use crate::common::endpoint::Side;
use crate::error::{Error, Result};
use crate::scenario::RoleSysctls;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

pub const SAMPLES_FILE: &str = "samples.jsonl";
pub const SUMMARY_FILE: &str = "summary.json";
pub const ENV_FILE: &str = "env.json";
pub const REPORT_FILE: &str = "report.md";
pub const SCENARIO_FILE: &str = "scenario.yaml";
/// The lab file of a run on real hosts, as resolved.
pub const LAB_FILE: &str = "lab.yaml";

/// Where a count comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// TCP sockets by kernel state (sock_diag).
    Sockets,
    /// conntrack entries by TCP state.
    Conntrack,
}

impl Source {
    pub fn as_str(&self) -> &'static str {
        match self {
            Source::Sockets => "sockets",
            Source::Conntrack => "conntrack",
        }
    }
}

/// One line of `samples.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Seconds since the load started.
    pub t: f64,
    pub variant: String,
    /// 1-based repeat number.
    pub repeat: u32,
    pub run_id: String,
    pub host: Side,
    pub source: Source,
    /// `true` for the snapshot taken right after the client stopped.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_final: bool,
    pub counts: Counts,
}

/// Appends samples to `samples.jsonl`, one flushed line each.
pub struct SampleWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

impl SampleWriter {
    pub fn create(dir: &Path) -> Result<Self> {
        let path = dir.join(SAMPLES_FILE);
        let file = File::options()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io(path.display(), e))?;
        Ok(SampleWriter {
            path,
            out: BufWriter::new(file),
        })
    }

    /// Write one sample and flush it to the file before returning.
    pub fn append(&mut self, sample: &Sample) -> Result<()> {
        let line = serde_json::to_string(sample)
            .map_err(|e| Error::env(format!("cannot encode sample: {e}")))?;
        writeln!(self.out, "{line}")
            .and_then(|_| self.out.flush())
            .map_err(|e| Error::io(self.path.display(), e))
    }
}

/// Read every sample of a run directory.
pub fn read_samples(dir: &Path) -> Result<Vec<Sample>> {
    let path = dir.join(SAMPLES_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(path.display(), e)),
    };
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map_err(|e| Error::invalid(format!("{}:{}: {e}", path.display(), i + 1)))
        })
        .collect()
}

/// A pair of values, one per side of the lab.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BySide<T> {
    pub server: T,
    pub client: T,
}

impl<T> BySide<T> {
    pub fn get(&self, side: Side) -> &T {
        match side {
            Side::Server => &self.server,
            Side::Client => &self.client,
        }
    }
}

/// Counts of one side and source over a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StateStats {
    /// The snapshot taken right after the client stopped.
    #[serde(rename = "final")]
    pub final_: Counts,
    /// The highest count of each state over the run.
    pub peak: Counts,
    /// The mean count of each state over the steady part of the run.
    pub steady_mean: BTreeMap<String, f64>,
}

impl StateStats {
    /// Summarize one series of samples (in time order). `steady` is the
    /// window of offsets (seconds) over which the count is taken as steady:
    /// from when TIME_WAIT has filled up to the end of the load (a tick that
    /// lands while the client is exiting would count its teardown).
    pub fn from_samples<'a>(
        samples: impl IntoIterator<Item = &'a Sample>,
        steady: std::ops::Range<f64>,
    ) -> Self {
        let mut stats = StateStats::default();
        let mut steady_sum: BTreeMap<String, f64> = BTreeMap::new();
        let mut steady_n = 0u64;
        let mut states = BTreeSet::new();
        let mut steady_samples: Vec<&Sample> = Vec::new();
        for s in samples {
            for (state, &n) in &s.counts {
                states.insert(state.clone());
                let peak = stats.peak.entry(state.clone()).or_insert(0);
                *peak = (*peak).max(n);
            }
            if s.is_final {
                stats.final_ = s.counts.clone();
            } else if steady.contains(&s.t) {
                steady_samples.push(s);
            }
        }
        for s in &steady_samples {
            steady_n += 1;
            for state in &states {
                *steady_sum.entry(state.clone()).or_insert(0.0) +=
                    s.counts.get(state).copied().unwrap_or(0) as f64;
            }
        }
        if steady_n > 0 {
            stats.steady_mean = steady_sum
                .into_iter()
                .map(|(k, v)| (k, round2(v / steady_n as f64)))
                .collect();
        }
        stats
    }
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// The offset (s) from which counts are steady: TIME_WAIT grows for 60 s,
/// so from 60 s when the load lasts over 70 s, else the second half.
pub fn steady_from(duration_secs: f64) -> f64 {
    if duration_secs > 70.0 {
        60.0
    } else {
        duration_secs / 2.0
    }
}

/// One run: a variant, one repeat, one fresh lab.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub run_id: String,
    pub repeat: u32,
    /// What the load client reported; absent when it never finished.
    pub client: Option<ClientStats>,
    pub sockets: BySide<StateStats>,
    pub conntrack: BySide<StateStats>,
    /// Number of periodic samples per side and source.
    pub samples: u64,
    /// Offset (s) from which `steady_mean` is computed.
    pub steady_from_secs: f64,
    /// The sources sampled in this run (`sockets`, `conntrack`). A state
    /// missing from a sampled source counts as zero; from an unsampled one it
    /// is unknown. Absent in files of older versions (then: zero).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collected: Option<Vec<Source>>,
    /// Periodic samples per side and source inside the steady window; with
    /// none, `steady_mean` is unknown rather than zero.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steady_samples: Option<u64>,
    /// Set when the run was stopped early by a signal.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub interrupted: bool,
    /// Why the run failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Why the run's figures cannot be trusted (the load generator was the
    /// bottleneck, the client ran out of ports), unless the scenario
    /// studies exactly that. Empty for a valid run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub invalid: Vec<String>,
}

/// A variant with its settings and runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariantSummary {
    pub name: String,
    pub sysctls: RoleSysctls,
    pub runs: Vec<RunSummary>,
}

/// One metric of one variant against the baseline, over all their runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// `side.source.STATE.stat` (e.g. `client.sockets.TIME_WAIT.steady_mean`)
    /// or a load metric (e.g. `client.requests_per_sec`).
    pub metric: String,
    pub variant: String,
    pub baseline: String,
    /// Mean over the baseline's completed runs.
    pub baseline_value: f64,
    /// Mean over the variant's completed runs.
    pub value: f64,
    /// `value - baseline_value`.
    pub change: f64,
    /// Percent change; `None` when the baseline is zero.
    pub change_pct: Option<f64>,
    pub baseline_stats: Stats,
    pub stats: Stats,
    /// 95% confidence interval of `change` (Welch); absent with fewer than
    /// two runs on either side.
    pub ci95: Option<[f64; 2]>,
    /// The same interval in percent of the baseline mean.
    pub ci95_pct: Option<[f64; 2]>,
    pub direction: Direction,
    pub verdict: Verdict,
}

/// An expectation of the scenario (`expect:`) and whether it held.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Expectation {
    /// The expectation as written, e.g.
    /// `client.sockets.TIME_WAIT steady_mean of reuse-on: change <= -20% (95% confidence)`.
    pub text: String,
    pub passed: bool,
    /// What was observed, e.g. `change -64.6% (95% CI -70.1% .. -59.0%)`.
    pub detail: String,
}

/// A chart written into the run directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chart {
    pub title: String,
    /// Path relative to the run directory, e.g. `charts/server-sockets-TIME_WAIT.svg`.
    pub path: String,
}

/// What ran, where and when: the report's header.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    pub scenario_file: String,
    pub description: Option<String>,
    pub started_at: String,
    pub finished_at: String,
    pub kernel: String,
    pub twlab_version: String,
    /// e.g. "embedded: network namespaces joined by a veth pair".
    pub lab: String,
    pub server: String,
    pub client: String,
    pub endpoint: String,
    /// The command that reproduces this run.
    pub command: String,
    /// Whether every planned run completed.
    pub complete: bool,
    /// Order of the runs: `interleaved` or `randomized (seed N)`.
    #[serde(default)]
    pub order: String,
    /// Facts the reader needs to interpret the figures (conntrack timeouts,
    /// why a run stopped early, ...), one sentence each.
    #[serde(default)]
    pub notes: Vec<String>,
}

/// `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub scenario: String,
    pub info: RunInfo,
    pub variants: Vec<VariantSummary>,
    pub comparisons: Vec<Comparison>,
    pub expectations: Vec<Expectation>,
    /// Time-series charts in the run directory.
    #[serde(default)]
    pub charts: Vec<Chart>,
}

/// The metrics of one run, as (metric name, value). State metrics are
/// named `side.source.STATE.stat`; load metrics `client.<name>`.
pub fn run_metrics(run: &RunSummary) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    if let Some(c) = &run.client {
        out.push(("client.requests".into(), c.requests as f64));
        out.push(("client.requests_per_sec".into(), c.requests_per_sec));
        out.push(("client.errors".into(), c.errors.total() as f64));
        out.push(("client.errors.connect".into(), c.errors.connect as f64));
        out.push(("client.latency.p50_ms".into(), c.latency.p50_ms));
        out.push(("client.latency.p90_ms".into(), c.latency.p90_ms));
        out.push(("client.latency.p99_ms".into(), c.latency.p99_ms));
        out.push(("client.latency.max_ms".into(), c.latency.max_ms));
        if let Some(n) = c.connections_opened {
            out.push(("client.connections_opened".into(), n as f64));
        }
    }
    for (source, by_side) in [("sockets", &run.sockets), ("conntrack", &run.conntrack)] {
        for side in Side::BOTH {
            let st = by_side.get(side);
            let states: BTreeSet<&String> = st
                .final_
                .keys()
                .chain(st.peak.keys())
                .chain(st.steady_mean.keys())
                .collect();
            for state in states {
                let base = format!("{side}.{source}.{state}");
                out.push((
                    format!("{base}.final"),
                    st.final_.get(state).copied().unwrap_or(0) as f64,
                ));
                out.push((
                    format!("{base}.peak"),
                    st.peak.get(state).copied().unwrap_or(0) as f64,
                ));
                if !st.steady_mean.is_empty() {
                    out.push((
                        format!("{base}.steady_mean"),
                        st.steady_mean.get(state).copied().unwrap_or(0.0),
                    ));
                }
            }
        }
    }
    out
}

/// Is `metric` a state count (`side.source.STATE.stat`)? Returns its parts.
pub fn state_metric(metric: &str) -> Option<(Side, Source, &str, &str)> {
    let mut parts = metric.splitn(3, '.');
    let side = match parts.next()? {
        "server" => Side::Server,
        "client" => Side::Client,
        _ => return None,
    };
    let source = match parts.next()? {
        "sockets" => Source::Sockets,
        "conntrack" => Source::Conntrack,
        _ => return None,
    };
    let (state, stat) = parts.next()?.rsplit_once('.')?;
    Some((side, source, state, stat))
}

/// Which way is good for a metric: fewer TIME_WAIT, errors and latency;
/// more requests. ESTABLISHED and LISTEN are neither.
pub fn direction(metric: &str) -> Direction {
    if let Some((_, _, state, _)) = state_metric(metric) {
        return match state {
            "ESTABLISHED" | "LISTEN" => Direction::Neutral,
            _ => Direction::LowerIsBetter,
        };
    }
    match metric {
        "client.requests" | "client.requests_per_sec" => Direction::HigherIsBetter,
        "client.connections_opened" => Direction::Neutral,
        _ => Direction::LowerIsBetter,
    }
}

/// The value a run gives a state metric it has no entry for: zero when
/// that source was sampled (and, for `steady_mean`, the steady window had
/// samples), otherwise unknown.
fn absent_state_value(run: &RunSummary, name: &str) -> Option<f64> {
    let (_, source, _, stat) = state_metric(name)?;
    let sampled = run.collected.as_ref().is_none_or(|c| c.contains(&source));
    let steady_known = stat != "steady_mean" || run.steady_samples.is_none_or(|n| n > 0);
    (sampled && steady_known).then_some(0.0)
}

/// One metric's values over a variant's completed runs (see
/// [`absent_state_value`] for runs without an entry).
pub fn metric_values(v: &VariantSummary, name: &str) -> Vec<f64> {
    v.runs
        .iter()
        .filter(|r| r.error.is_none())
        .filter_map(|run| {
            run_metrics(run)
                .into_iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v)
                .or_else(|| absent_state_value(run, name))
        })
        .collect()
}

/// Each metric's values over a variant's completed runs.
pub fn variant_values(v: &VariantSummary) -> BTreeMap<String, Vec<f64>> {
    let names: BTreeSet<String> = v
        .runs
        .iter()
        .filter(|r| r.error.is_none())
        .flat_map(run_metrics)
        .map(|(k, _)| k)
        .collect();
    names
        .into_iter()
        .map(|name| {
            let values = metric_values(v, &name);
            (name, values)
        })
        .collect()
}

/// The value of each metric for a variant: the mean over its completed runs.
pub fn variant_metrics(v: &VariantSummary) -> BTreeMap<String, f64> {
    variant_values(v)
        .into_iter()
        .filter(|(_, values)| !values.is_empty())
        .map(|(k, values)| (k, round2(statistics::describe(&values).mean)))
        .collect()
}

/// Every variant after the first against the first, per metric, with a 95%
/// interval and a verdict. A state present in one variant and absent in the
/// other counts as zero there; a variant without a completed run is left out.
pub fn compare(variants: &[VariantSummary]) -> Vec<Comparison> {
    let Some((baseline, rest)) = variants.split_first() else {
        return Vec::new();
    };
    let completed = |v: &VariantSummary| v.runs.iter().any(|r| r.error.is_none());
    if !completed(baseline) {
        return Vec::new();
    }
    let base = variant_values(baseline);
    let mut out = Vec::new();
    for v in rest.iter().filter(|v| completed(v)) {
        let m = variant_values(v);
        let names: BTreeSet<&String> = base.keys().chain(m.keys()).collect();
        for name in names {
            // A state one side never saw is zero there if it was sampled;
            // load metrics exist only when both ran a client.
            let (b, x) = (metric_values(baseline, name), metric_values(v, name));
            if b.is_empty() || x.is_empty() {
                continue;
            }
            out.push(comparison(name, &baseline.name, &v.name, &b, &x));
        }
    }
    out
}

/// Compare two sets of run values of one metric.
pub fn comparison(metric: &str, baseline: &str, variant: &str, b: &[f64], x: &[f64]) -> Comparison {
    let (bs, xs) = (statistics::describe(b), statistics::describe(x));
    let (bm, xm) = (round2(bs.mean), round2(xs.mean));
    let ci = statistics::diff_ci(b, x, 0.95);
    let direction = direction(metric);
    let pct = |v: f64| round2(v / bs.mean * 100.0);
    Comparison {
        metric: metric.to_string(),
        variant: variant.to_string(),
        baseline: baseline.to_string(),
        baseline_value: bm,
        value: xm,
        change: round2(xm - bm),
        change_pct: (bm != 0.0).then(|| round2((xm - bm) / bm * 100.0)),
        baseline_stats: bs,
        stats: xs,
        ci95: ci.map(|(lo, hi)| [round2(lo), round2(hi)]),
        ci95_pct: ci
            .filter(|_| bs.mean != 0.0)
            .map(|(lo, hi)| [pct(lo), pct(hi)]),
        direction,
        verdict: statistics::verdict(ci, direction),
    }
}

/// Write a JSON file atomically enough for readers: write then rename.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::env(format!("cannot encode {}: {e}", path.display())))?;
    write_text(path, &(text + "\n"))
}

/// Write a text file via a temporary file and a rename, so a reader never
/// sees half a file even if twlab is killed while writing.
pub fn write_text(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| Error::io(path.display(), e))
}

/// Read `summary.json` of a run directory.
pub fn read_summary(dir: &Path) -> Result<Summary> {
    let path = dir.join(SUMMARY_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        Error::invalid(format!(
            "{}: cannot read ({e}); is this a twlab run directory?",
            path.display()
        ))
    })?;
    serde_json::from_str(&text).map_err(|e| Error::invalid(format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t: f64, tw: u64, is_final: bool) -> Sample {
        Sample {
            t,
            variant: "v".into(),
            repeat: 1,
            run_id: "r".into(),
            host: Side::Server,
            source: Source::Sockets,
            is_final,
            counts: [("TIME_WAIT".to_string(), tw)].into_iter().collect(),
        }
    }

    #[test]
    fn state_stats_take_final_peak_and_steady_mean() {
        let samples = vec![
            sample(1.0, 10, false),
            sample(2.0, 30, false),
            sample(3.0, 50, false),
            sample(4.0, 40, false),
            sample(4.1, 20, true),
        ];
        let st = StateStats::from_samples(&samples, 2.5..f64::INFINITY);
        assert_eq!(st.final_["TIME_WAIT"], 20);
        assert_eq!(st.peak["TIME_WAIT"], 50);
        assert_eq!(st.steady_mean["TIME_WAIT"], 45.0);
        // A tick after the load ended is not steady.
        let st = StateStats::from_samples(&samples, 2.5..3.5);
        assert_eq!(st.steady_mean["TIME_WAIT"], 50.0);
    }

    #[test]
    fn steady_window_follows_the_time_wait_minute() {
        assert_eq!(steady_from(90.0), 60.0);
        assert_eq!(steady_from(10.0), 5.0);
    }

    #[test]
    fn comparisons_give_absolute_and_percent_change() {
        let run = |tw: u64| RunSummary {
            sockets: BySide {
                server: StateStats {
                    final_: [("TIME_WAIT".to_string(), tw)].into_iter().collect(),
                    ..Default::default()
                },
                client: StateStats::default(),
            },
            ..Default::default()
        };
        let v = |name: &str, tw| VariantSummary {
            name: name.into(),
            sysctls: RoleSysctls::default(),
            runs: vec![run(tw)],
        };
        let cmp = compare(&[v("off", 12000), v("on", 7152)]);
        let c = cmp
            .iter()
            .find(|c| c.metric == "server.sockets.TIME_WAIT.final")
            .unwrap();
        assert_eq!(c.change, -4848.0);
        assert_eq!(c.change_pct, Some(-40.4));
    }

    #[test]
    fn an_absent_state_is_zero_only_where_it_was_sampled() {
        let run = |tw: Option<u64>, collected: Vec<Source>, steady: u64| RunSummary {
            sockets: BySide {
                server: StateStats {
                    final_: tw
                        .map(|n| [("TIME_WAIT".to_string(), n)].into_iter().collect())
                        .unwrap_or_default(),
                    ..Default::default()
                },
                client: StateStats::default(),
            },
            collected: Some(collected),
            steady_samples: Some(steady),
            ..Default::default()
        };
        let v = VariantSummary {
            name: "v".into(),
            sysctls: RoleSysctls::default(),
            runs: vec![
                run(Some(40), vec![Source::Sockets], 5),
                run(None, vec![Source::Sockets], 0),
            ],
        };
        // Sampled but not seen: zero.
        assert_eq!(
            metric_values(&v, "server.sockets.TIME_WAIT.final"),
            [40.0, 0.0]
        );
        // Not sampled at all: unknown, not zero.
        assert!(metric_values(&v, "server.conntrack.TIME_WAIT.final").is_empty());
        // No sample in the steady window: unknown for the second run.
        assert_eq!(
            metric_values(&v, "server.sockets.TIME_WAIT.steady_mean"),
            [0.0]
        );
    }
}
