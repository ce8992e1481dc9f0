//! `summary.json`: the figures of every run, the comparisons and the
//! expectations, as tests, CI gates and `twlab report` read them.
//!
//! These are data only; [`crate::analysis`] computes the comparisons and
//! verdicts that fill them.

use super::Sample;
use crate::common::counts::{ClientStats, Counts, Source};
use crate::common::endpoint::Side;
use crate::scenario::RoleSysctls;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Median, min, max, mean and sample standard deviation of a metric.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub n: usize,
    pub mean: f64,
    pub median: f64,
    pub min: f64,
    pub max: f64,
    /// Sample standard deviation (n - 1); 0 for a single value.
    pub stddev: f64,
}

/// Which way is good for a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    LowerIsBetter,
    HigherIsBetter,
    /// Neither way is better (e.g. ESTABLISHED): the verdict says higher or lower.
    Neutral,
}

/// The verdict on a change against the baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    #[serde(rename = "better")]
    Better,
    #[serde(rename = "worse")]
    Worse,
    /// A real rise of a metric that is neither good nor bad.
    #[serde(rename = "higher")]
    Higher,
    #[serde(rename = "lower")]
    Lower,
    /// The interval spans zero.
    #[serde(rename = "no clear change")]
    NoClearChange,
    /// Fewer than two runs on a side: no interval can be given.
    #[serde(rename = "needs repeats")]
    NeedsRepeats,
}

impl Verdict {
    pub fn as_str(&self) -> &'static str {
        match self {
            Verdict::Better => "better",
            Verdict::Worse => "worse",
            Verdict::Higher => "higher",
            Verdict::Lower => "lower",
            Verdict::NoClearChange => "no clear change",
            Verdict::NeedsRepeats => "needs repeats",
        }
    }
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
        let mut acc = StateStatsAcc::new(steady);
        for s in samples {
            acc.add(s);
        }
        acc.finish()
    }
}

/// [`StateStats`] built one sample at a time, in constant memory per state:
/// a run of any length is summarized without keeping its samples.
#[derive(Debug, Clone)]
pub struct StateStatsAcc {
    steady: std::ops::Range<f64>,
    stats: StateStats,
    /// Sums over the steady samples; a state absent from a sample adds 0.
    steady_sum: BTreeMap<String, f64>,
    steady_n: u64,
}

impl StateStatsAcc {
    pub fn new(steady: std::ops::Range<f64>) -> Self {
        StateStatsAcc {
            steady,
            stats: StateStats::default(),
            steady_sum: BTreeMap::new(),
            steady_n: 0,
        }
    }

    pub fn add(&mut self, s: &Sample) {
        self.add_counts(s.t, s.is_final, &s.counts);
    }

    /// Add the counts of a sample taken at offset `t` (one host's share of
    /// a client total, say).
    pub fn add_counts(&mut self, t: f64, is_final: bool, counts: &Counts) {
        for (state, &n) in counts {
            let peak = self.stats.peak.entry(state.clone()).or_insert(0);
            *peak = (*peak).max(n);
        }
        if is_final {
            self.stats.final_ = counts.clone();
        } else if self.steady.contains(&t) {
            self.steady_n += 1;
            for (state, &n) in counts {
                *self.steady_sum.entry(state.clone()).or_insert(0.0) += n as f64;
            }
        }
    }

    /// The figures: every state seen anywhere in the run gets a steady mean
    /// (0 when it never showed in the steady window), when there was one.
    pub fn finish(self) -> StateStats {
        let mut stats = self.stats;
        if self.steady_n > 0 {
            let n = self.steady_n as f64;
            stats.steady_mean = stats
                .peak
                .keys()
                .map(|k| {
                    let sum = self.steady_sum.get(k).copied().unwrap_or(0.0);
                    (k.clone(), round2(sum / n))
                })
                .collect();
        }
        stats
    }
}

pub(crate) fn round2(v: f64) -> f64 {
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
    /// Ticks of `collect.interval` skipped because the sample before them
    /// was still being taken (the collector could not keep the interval).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub missed_ticks: u64,
    /// Seconds of the load in stretches without a sample longer than four
    /// intervals (at least 2 s): see [`crate::analysis::completeness`].
    #[serde(default, skip_serializing_if = "is_zero_f64")]
    pub sample_gap_secs: f64,
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
    /// Why the run did not happen as planned (the load ended early, the
    /// lab vanished, the samples have gaps: see
    /// [`crate::analysis::completeness`]). Such a run, like one that failed
    /// or was stopped by a signal, is left out of the comparisons and the
    /// expectations. Empty when it ran as planned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub incomplete: Vec<String>,
    /// With several client hosts (`client.hosts`): each host's own load
    /// figures and counts (`client`, `sockets.client` and
    /// `conntrack.client` are then their totals). Empty with one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clients: Vec<ClientHostSummary>,
    /// How many distinct client addresses the server's socket counts saw
    /// connected to the endpoint during the run, where the server host can
    /// tell (sock_diag: the embedded lab and `local` hosts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_peers: Option<u64>,
    /// The kernel's TCP and conntrack counters of each side over the load
    /// (first sample to final snapshot): see [`super::kernel`]. Absent in
    /// files of older versions.
    #[serde(default, skip_serializing_if = "super::kernel::no_counters")]
    pub kernel: BySide<super::kernel::KernelDeltas>,
}

impl RunSummary {
    /// The run happened as planned: it did not fail, no signal stopped it,
    /// and nothing made it incomplete. Only such runs enter the
    /// comparisons and the expectations.
    pub fn is_complete(&self) -> bool {
        self.error.is_none() && !self.interrupted && self.incomplete.is_empty()
    }
}

/// One client host of a run with several.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClientHostSummary {
    /// The host as the report names it (`netns twlab-…-client2`).
    pub host: String,
    /// Its address towards the server.
    pub address: String,
    /// What its load client reported; absent when it never finished.
    pub load: Option<ClientStats>,
    pub sockets: StateStats,
    pub conntrack: StateStats,
    /// Why its load failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A variant with its settings and runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VariantSummary {
    pub name: String,
    pub sysctls: RoleSysctls,
    pub runs: Vec<RunSummary>,
    /// The parameter values of a variant a scenario's `matrix:` generated,
    /// in the matrix's order (`{"client.rate": 200}`); absent otherwise.
    #[serde(default, skip_serializing_if = "serde_yaml_ng::Mapping::is_empty")]
    pub params: serde_yaml_ng::Mapping,
    /// The kernel's counters that moved, per side, over the completed runs:
    /// mean rate and its interval (see [`super::kernel::CounterStats`]).
    #[serde(default, skip_serializing_if = "super::kernel::no_variant_counters")]
    pub kernel: BySide<super::kernel::VariantCounters>,
}

impl VariantSummary {
    /// A variant of the scenario before any of its runs.
    pub fn empty(v: &crate::scenario::Variant) -> Self {
        VariantSummary {
            name: v.name.to_string(),
            sysctls: v.sysctls.clone(),
            runs: Vec::new(),
            params: v.params.clone(),
            kernel: BySide::default(),
        }
    }
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
    /// Its lines are client hosts' of runs on several, not runs
    /// (`collect.client_lines: per_host`); written only then.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub per_host: bool,
    /// The kernel counter (`TcpExt.TWRecycled`) whose rate a chart of
    /// "What the kernel did" draws; `None` for a chart of counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counter: Option<String>,
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn is_zero_f64(n: &f64) -> bool {
    *n == 0.0
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
            per_client: Vec::new(),
            peers: None,
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
}
