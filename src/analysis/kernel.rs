//! A variant's kernel counters over its runs: what `summary.json` keeps
//! per variant (`variants[].kernel`) beside each run's own change.
//!
//! A run's counters say what its kernel did; with repeats, a reader (or a
//! script gating on `summary.json`) wants the variant's figure and how sure
//! it is, as the report shows it: the mean of the completed runs' rates
//! (a gauge's level at the end) with the 95% interval of that mean. Only
//! counters that moved in some run are kept; the runs keep them all.

use crate::analysis::statistics;
use crate::common::endpoint::Side;
use crate::measure::kernel_counters::is_gauge;
use crate::results::kernel::{CounterStats, VariantCounters};
use crate::results::{BySide, VariantSummary};
use std::collections::BTreeSet;

/// Each side's counters that moved in a completed run of `v`, over those runs.
pub fn variant_counters(v: &VariantSummary) -> BySide<VariantCounters> {
    let runs: Vec<_> = v.runs.iter().filter(|r| r.is_complete()).collect();
    let side = |side: Side| -> VariantCounters {
        let moved: BTreeSet<&String> = runs
            .iter()
            .flat_map(|r| r.kernel.get(side).iter())
            .filter(|(_, d)| d.moved())
            .map(|(k, _)| k)
            .collect();
        moved
            .into_iter()
            .map(|key| {
                let values: Vec<f64> = runs
                    .iter()
                    .filter_map(|r| r.kernel.get(side).get(key))
                    .map(|d| {
                        if is_gauge(key) {
                            d.end as f64
                        } else {
                            d.per_sec
                        }
                    })
                    .collect();
                let stats = CounterStats {
                    runs: values.len() as u32,
                    mean: statistics::describe(&values).mean,
                    ci95: statistics::mean_ci(&values, 0.95),
                };
                (key.clone(), stats)
            })
            .collect()
    };
    BySide {
        server: side(Side::Server),
        client: side(Side::Client),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::RunSummary;
    use crate::results::kernel::CounterDelta;

    #[test]
    fn moved_counters_get_a_mean_and_an_interval_from_two_runs() {
        let run = |per_sec: f64, end: u64| {
            let mut r = RunSummary::default();
            r.kernel.client.insert(
                "TcpExt.TW".into(),
                CounterDelta {
                    start: 0,
                    end,
                    per_sec,
                },
            );
            r.kernel.client.insert(
                "TcpExt.TWKilled".into(),
                CounterDelta {
                    start: 4,
                    end: 4,
                    per_sec: 0.0,
                },
            );
            r.kernel.client.insert(
                "conntrack.count".into(),
                CounterDelta {
                    start: 10,
                    end: end / 10,
                    per_sec: 0.0,
                },
            );
            r
        };
        let mut v = VariantSummary {
            runs: vec![run(100.0, 1000)],
            ..Default::default()
        };
        let k = variant_counters(&v);
        assert!(k.server.is_empty());
        assert!(!k.client.contains_key("TcpExt.TWKilled"), "did not move");
        assert_eq!(k.client["TcpExt.TW"].mean, 100.0);
        assert_eq!(k.client["TcpExt.TW"].ci95, None);
        v.runs.push(run(120.0, 1200));
        let k = variant_counters(&v);
        let tw = k.client["TcpExt.TW"];
        assert_eq!((tw.runs, tw.mean), (2, 110.0));
        let (lo, hi) = tw.ci95.expect("two runs give an interval");
        assert!(lo < 110.0 && hi > 110.0);
        // A level: its end, not a rate.
        assert_eq!(k.client["conntrack.count"].mean, 110.0);
    }
}
