//! The run directory and its machine-readable contract.
//!
//! A run directory holds `samples.jsonl` (every sample, appended and flushed
//! as it is taken, so an interrupted run loses nothing), `env.json` (kernel,
//! versions, sysctls as they were), `scenario.yaml` (the resolved scenario),
//! `summary.json` (the figures below) and `report.md` (rendered from
//! `summary.json` alone, so `twlab report DIR` can re-render it). Tests, CI
//! gates and users read these files; the field names are the contract
//! documented in README and DESIGN.md.

use crate::endpoint::Side;
use crate::error::{Error, Result};
use crate::scenario::RoleSysctls;
use crate::stats::{ClientStats, Counts};
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
    /// Summarize one series of samples (in time order). `steady_from` is the
    /// offset in seconds from which the count is taken as steady.
    pub fn from_samples<'a>(
        samples: impl IntoIterator<Item = &'a Sample>,
        steady_from: f64,
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
            } else if s.t >= steady_from {
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
    /// Set when the run was stopped early by a signal.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub interrupted: bool,
    /// Why the run failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A variant with its settings and runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariantSummary {
    pub name: String,
    pub sysctls: RoleSysctls,
    pub runs: Vec<RunSummary>,
}

/// One metric of one variant against the baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// e.g. `sockets.server.TIME_WAIT.steady_mean` or `client.requests_per_sec`.
    pub metric: String,
    pub variant: String,
    pub baseline: String,
    pub baseline_value: f64,
    pub value: f64,
    /// `value - baseline_value`.
    pub change: f64,
    /// Percent change; `None` when the baseline is zero.
    pub change_pct: Option<f64>,
}

/// An expectation of the scenario and whether it held (filled by a later
/// version; always present so CI readers can rely on the key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Expectation {
    pub text: String,
    pub passed: bool,
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
}

/// The metrics compared across variants, as (metric name, value of a run).
fn run_metrics(run: &RunSummary) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    if let Some(c) = &run.client {
        out.push(("client.requests".into(), c.requests as f64));
        out.push(("client.requests_per_sec".into(), c.requests_per_sec));
        out.push(("client.errors".into(), c.errors.total() as f64));
        out.push(("client.latency.p50_ms".into(), c.latency.p50_ms));
        out.push(("client.latency.p99_ms".into(), c.latency.p99_ms));
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
                let base = format!("{source}.{side}.{state}");
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

/// The value of each metric for a variant: the mean over its completed runs.
pub fn variant_metrics(v: &VariantSummary) -> BTreeMap<String, f64> {
    let mut sums: BTreeMap<String, (f64, u32)> = BTreeMap::new();
    for run in v.runs.iter().filter(|r| r.error.is_none()) {
        for (metric, value) in run_metrics(run) {
            let e = sums.entry(metric).or_insert((0.0, 0));
            e.0 += value;
            e.1 += 1;
        }
    }
    sums.into_iter()
        .map(|(k, (sum, n))| (k, round2(sum / f64::from(n))))
        .collect()
}

/// Every variant after the first against the first, per metric. A state
/// present in one variant and absent in the other counts as zero there.
pub fn compare(variants: &[VariantSummary]) -> Vec<Comparison> {
    let Some((baseline, rest)) = variants.split_first() else {
        return Vec::new();
    };
    let base = variant_metrics(baseline);
    let mut out = Vec::new();
    let completed = |v: &VariantSummary| v.runs.iter().any(|r| r.error.is_none());
    if !completed(baseline) {
        return out;
    }
    for v in rest.iter().filter(|v| completed(v)) {
        let m = variant_metrics(v);
        let names: BTreeSet<&String> = base.keys().chain(m.keys()).collect();
        for name in names {
            // Client metrics exist only when both ran a client.
            let (b, x) = match (base.get(name), m.get(name)) {
                (Some(b), Some(x)) => (*b, *x),
                (None, Some(x)) if !name.starts_with("client.") => (0.0, *x),
                (Some(b), None) if !name.starts_with("client.") => (*b, 0.0),
                _ => continue,
            };
            out.push(Comparison {
                metric: name.clone(),
                variant: v.name.clone(),
                baseline: baseline.name.clone(),
                baseline_value: b,
                value: x,
                change: round2(x - b),
                change_pct: (b != 0.0).then(|| round2((x - b) / b * 100.0)),
            });
        }
    }
    out
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
        let st = StateStats::from_samples(&samples, 2.5);
        assert_eq!(st.final_["TIME_WAIT"], 20);
        assert_eq!(st.peak["TIME_WAIT"], 50);
        assert_eq!(st.steady_mean["TIME_WAIT"], 45.0);
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
            .find(|c| c.metric == "sockets.server.TIME_WAIT.final")
            .unwrap();
        assert_eq!(c.change, -4848.0);
        assert_eq!(c.change_pct, Some(-40.4));
    }
}
