//! The metrics of a run and the comparison of variants against the baseline.
//!
//! A run's figures in `summary.json` are maps of counts per side, source and
//! state; here they are flattened into named metrics
//! (`server.sockets.TIME_WAIT.steady_mean`, `client.requests_per_sec`), and
//! every variant is compared with the first one, metric by metric, with a
//! 95% interval and a verdict. Expectations, the report and `twlab compare`
//! all read metrics through these functions, so they name them alike.

use crate::analysis::statistics;
use crate::common::counts::{ClientStats, Source};
use crate::common::endpoint::Side;
use crate::common::names::{LoadMetric, STATE_STATS, state_metric, state_metric_name};
use crate::results::{Comparison, Direction, RunSummary, VariantSummary, round2};
use std::collections::{BTreeMap, BTreeSet};

/// The metrics of one run, as (metric name, value). State metrics are
/// named `side.source.STATE.stat`; load metrics `client.<name>`.
pub fn run_metrics(run: &RunSummary) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    if let Some(c) = &run.client {
        // A figure the tool does not report is no metric at all.
        out.extend(
            LoadMetric::ALL
                .into_iter()
                .filter(|m| c.measured(m.name()))
                .filter_map(|m| Some((m.name().to_string(), load_value(c, m)?))),
        );
    }
    let [final_, peak, steady_mean] = STATE_STATS;
    for (source, by_side) in [
        (Source::Sockets, &run.sockets),
        (Source::Conntrack, &run.conntrack),
    ] {
        for side in Side::BOTH {
            let st = by_side.get(side);
            let states: BTreeSet<&String> = st
                .final_
                .keys()
                .chain(st.peak.keys())
                .chain(st.steady_mean.keys())
                .collect();
            for state in states {
                let name = |stat| state_metric_name(side, source, state, stat);
                out.push((
                    name(final_),
                    st.final_.get(state).copied().unwrap_or(0) as f64,
                ));
                out.push((name(peak), st.peak.get(state).copied().unwrap_or(0) as f64));
                if !st.steady_mean.is_empty() {
                    out.push((
                        name(steady_mean),
                        st.steady_mean.get(state).copied().unwrap_or(0.0),
                    ));
                }
            }
        }
    }
    out
}

/// A load metric's value in the client's figures; `None` for a count the
/// tool does not keep (connections opened).
fn load_value(c: &ClientStats, metric: LoadMetric) -> Option<f64> {
    Some(match metric {
        LoadMetric::Requests => c.requests as f64,
        LoadMetric::RequestsPerSec => c.requests_per_sec,
        LoadMetric::Errors => c.errors.total() as f64,
        LoadMetric::ErrorsConnect => c.errors.connect as f64,
        LoadMetric::LatencyP50 => c.latency.p50_ms,
        LoadMetric::LatencyP90 => c.latency.p90_ms,
        LoadMetric::LatencyP99 => c.latency.p99_ms,
        LoadMetric::LatencyMax => c.latency.max_ms,
        LoadMetric::ConnectionsOpened => c.connections_opened? as f64,
    })
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
    match LoadMetric::parse(metric) {
        Some(LoadMetric::Requests | LoadMetric::RequestsPerSec) => Direction::HigherIsBetter,
        Some(LoadMetric::ConnectionsOpened) => Direction::Neutral,
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
        .filter(|r| r.is_complete())
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
        .filter(|r| r.is_complete())
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
    let completed = |v: &VariantSummary| v.runs.iter().any(|r| r.is_complete());
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{BySide, StateStats};
    use crate::scenario::RoleSysctls;

    #[test]
    fn a_figure_the_tool_does_not_report_is_no_metric() {
        use crate::common::counts::ClientStats;
        let run = RunSummary {
            client: Some(ClientStats {
                requests: 300,
                not_measured: vec!["client.latency.p99_ms".into()],
                ..Default::default()
            }),
            ..Default::default()
        };
        let names: Vec<String> = run_metrics(&run).into_iter().map(|(k, _)| k).collect();
        assert!(names.contains(&"client.requests".to_string()));
        assert!(names.contains(&"client.latency.p50_ms".to_string()));
        assert!(!names.contains(&"client.latency.p99_ms".to_string()));
        let v = VariantSummary {
            runs: vec![run],
            ..Default::default()
        };
        assert!(metric_values(&v, "client.latency.p99_ms").is_empty());
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
            params: Default::default(),
            kernel: Default::default(),
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
            params: Default::default(),
            kernel: Default::default(),
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
