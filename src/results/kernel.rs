//! The kernel's counters in the run directory: every sample in
//! `kernel.jsonl` (one line per side and tick), and in `summary.json` each
//! run's change per counter over the load ([`CounterDelta`]).
//!
//! They live in a file of their own rather than in `samples.jsonl` so that
//! a samples file keeps one shape (state counts) for every reader, old and
//! new. A sample lists only the counters that are not zero: a fresh lab
//! namespace starts with most of its few hundred counters at zero, and a
//! counter missing from a line is zero (or not in that kernel).

use crate::common::endpoint::Side;
use crate::measure::kernel_counters::{KernelCounters, is_gauge};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One line of `kernel.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KernelSample {
    /// Seconds since the load started.
    pub t: f64,
    pub variant: String,
    pub repeat: u32,
    pub run_id: String,
    pub host: Side,
    /// `true` for the snapshot taken right after the client stopped.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_final: bool,
    /// Counters that are not zero (with several client hosts, their sum).
    pub counters: KernelCounters,
}

/// One counter over a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct CounterDelta {
    /// At the first sample (the load's start).
    pub start: u64,
    /// At the final snapshot (or the last sample).
    pub end: u64,
    /// Per second over the time between them; 0 for a level (a gauge such
    /// as `conntrack.count`), whose change is `end - start`.
    pub per_sec: f64,
}

impl CounterDelta {
    pub fn delta(&self) -> i128 {
        i128::from(self.end) - i128::from(self.start)
    }

    pub fn moved(&self) -> bool {
        self.start != self.end
    }
}

/// The counters of one side by key.
pub type KernelDeltas = BTreeMap<String, CounterDelta>;

/// One counter over a variant's completed runs (`variants[].kernel`): the
/// mean of the runs' rates (a level's end value for a gauge), and with two
/// runs or more the 95% confidence interval of that mean.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct CounterStats {
    /// Completed runs that read the counter.
    pub runs: u32,
    /// Per second (a gauge: its level at the end), the mean over the runs.
    pub mean: f64,
    /// The 95% interval of the mean, from two runs on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci95: Option<(f64, f64)>,
}

/// A variant's counters of one side by key: those that moved in a run.
pub type VariantCounters = BTreeMap<String, CounterStats>;

/// For `skip_serializing_if`: no counter on either side.
pub fn no_variant_counters(k: &super::BySide<VariantCounters>) -> bool {
    k.server.is_empty() && k.client.is_empty()
}

/// For `skip_serializing_if`: no counter on either side.
pub fn no_counters(k: &super::BySide<KernelDeltas>) -> bool {
    k.server.is_empty() && k.client.is_empty()
}

/// Each counter from `first` (at `t0`) to `last` (at `t1`); a counter
/// seen in only one of them is 0 in the other.
pub fn deltas(first: (f64, &KernelCounters), last: (f64, &KernelCounters)) -> KernelDeltas {
    let secs = last.0 - first.0;
    first
        .1
        .keys()
        .chain(last.1.keys())
        .map(|k| {
            let start = first.1.get(k).copied().unwrap_or(0);
            let end = last.1.get(k).copied().unwrap_or(0);
            let per_sec = if is_gauge(k) || secs <= 0.0 || end < start {
                0.0
            } else {
                ((end - start) as f64 / secs * 100.0).round() / 100.0
            };
            (
                k.clone(),
                CounterDelta {
                    start,
                    end,
                    per_sec,
                },
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_are_rates_for_counters_and_levels_for_gauges() {
        let a: KernelCounters =
            [("TcpExt.TW".to_string(), 10), ("conntrack.count".into(), 5)].into();
        let b: KernelCounters = [
            ("TcpExt.TW".to_string(), 110),
            ("conntrack.count".into(), 50),
            ("TcpExt.TWRecycled".into(), 20),
        ]
        .into();
        let d = deltas((0.5, &a), (10.5, &b));
        assert_eq!(d["TcpExt.TW"].per_sec, 10.0);
        assert_eq!(d["TcpExt.TWRecycled"].per_sec, 2.0);
        assert_eq!(d["TcpExt.TWRecycled"].start, 0);
        assert_eq!(d["conntrack.count"].per_sec, 0.0);
        assert_eq!(d["conntrack.count"].delta(), 45);
    }
}
