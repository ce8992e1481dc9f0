//! Charts of the kernel's counters that explain TIME_WAIT, as rates over
//! time: how fast each side's sockets entered TIME_WAIT (`TcpExt.TW`), how
//! often a connect() took over a port still in it (`TWRecycled`), when
//! `tcp_max_tw_buckets` started cutting it short (`TCPTimeWaitOverflow`),
//! when conntrack began refusing flows.
//!
//! The report's "What the kernel did" gives each counter's mean rate over
//! the load; a mean hides *when*: reuse that starts only once the port
//! range is used up, an overflow that begins at the cap, drops in one
//! burst. One chart per side and counter that moved, one line per run in
//! its variant's colour (the keys of the count charts, so a variant has
//! one colour everywhere). A point is the counter's change between two
//! consecutive samples of that run and side, divided by the time between
//! them, drawn at the later one. The final snapshot (taken after the load
//! stopped) is left out, as in the count charts.

use super::series::{Key, RunSeries};
use super::{CHARTS_DIR, Planned, YAxis, file_safe};
use crate::common::endpoint::Side;
use crate::measure::kernel_counters::CT_REFUSALS;
use crate::results::Chart;
use crate::results::kernel::KernelSample;
use std::collections::HashMap;

/// The counters charted, in this order, when they moved: TIME_WAIT's own
/// (entered, entered briefly, taken over by connect(), skipped at the cap,
/// segments refused by it) and conntrack's refusals.
pub(super) const CHARTED: [&str; 8] = [
    "TcpExt.TW",
    "TcpExt.TWKilled",
    "TcpExt.TWRecycled",
    "TcpExt.TCPTimeWaitOverflow",
    "TcpExt.PAWSTimewait",
    CT_REFUSALS[0],
    CT_REFUSALS[1],
    CT_REFUSALS[2],
];

/// The kernel charts of a run directory: for each side, then each counter
/// of [`CHARTED`] whose rate was above zero somewhere, one chart.
pub(super) fn plan(samples: &[KernelSample], keys: &[Key]) -> Vec<Planned> {
    let mut out = Vec::new();
    for side in Side::BOTH {
        for counter in CHARTED {
            let runs = rates(samples, side, counter, keys);
            if !runs.iter().any(|r| r.points.iter().any(|p| p.1 > 0.0)) {
                continue;
            }
            let file = format!("{side}-kernel-{}.svg", file_safe(counter));
            out.push(Planned {
                chart: Chart {
                    title: format!("{counter} per second on the {side}"),
                    path: format!("{CHARTS_DIR}/{file}"),
                    per_host: false,
                    counter: Some(counter.to_string()),
                },
                y_desc: "per second",
                y: YAxis::Rate,
                runs,
            });
        }
    }
    out
}

/// One line per run of `side`: the rate of `counter` between consecutive
/// periodic samples. Runs whose variant has no key (no count sample at
/// all) are left out, as they would have no colour of their own.
fn rates(samples: &[KernelSample], side: Side, counter: &str, keys: &[Key]) -> Vec<RunSeries> {
    let key_of = |variant: &str| {
        keys.iter()
            .position(|k| k.variant == variant && k.host.is_none())
    };
    // (variant, run id) -> index in `lines`, in the order runs first appear.
    let mut index: HashMap<(&str, &str), usize> = HashMap::new();
    let mut lines: Vec<(usize, Vec<(f64, u64)>)> = Vec::new();
    for s in samples
        .iter()
        .filter(|s| s.host == side && !s.is_final && s.t.is_finite())
    {
        let Some(key) = key_of(&s.variant) else {
            continue;
        };
        let i = *index
            .entry((s.variant.as_str(), s.run_id.as_str()))
            .or_insert_with(|| {
                lines.push((key, Vec::new()));
                lines.len() - 1
            });
        let value = s.counters.get(counter).copied().unwrap_or(0);
        lines[i].1.push((s.t.max(0.0), value));
    }
    lines
        .into_iter()
        .map(|(key, mut values)| {
            values.sort_by(|a, b| a.0.total_cmp(&b.0));
            let points = values
                .windows(2)
                .filter_map(|w| {
                    let ((t0, v0), (t1, v1)) = (w[0], w[1]);
                    // A counter never goes down; one that did was reset
                    // (a namespace made again): no rate across it.
                    (t1 > t0 && v1 >= v0).then(|| (t1, (v1 - v0) as f64 / (t1 - t0)))
                })
                .collect();
            RunSeries { key, points }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::kernel_counters::KernelCounters;

    fn sample(
        variant: &str,
        run: &str,
        side: Side,
        t: f64,
        tw: u64,
        recycled: u64,
    ) -> KernelSample {
        let mut counters = KernelCounters::new();
        counters.insert("TcpExt.TW".into(), tw);
        if recycled > 0 {
            counters.insert("TcpExt.TWRecycled".into(), recycled);
        }
        counters.insert("conntrack.count".into(), 5_000);
        KernelSample {
            t,
            variant: variant.into(),
            repeat: 1,
            run_id: run.into(),
            host: side,
            is_final: false,
            counters,
        }
    }

    fn keys() -> Vec<Key<'static>> {
        ["off", "on"]
            .into_iter()
            .map(|variant| Key {
                variant,
                host: None,
            })
            .collect()
    }

    #[test]
    fn rates_are_changes_over_time_per_run_and_only_moving_counters_get_a_chart() {
        let mut samples = Vec::new();
        for step in 0..=10u64 {
            let t = step as f64 * 0.5;
            // 300 entered a second on both; reuse on recycles 150 a second
            // on the client, after its first 2 s.
            samples.push(sample("off", "a", Side::Client, t, step * 150, 0));
            let recycled = step.saturating_sub(4) * 75;
            samples.push(sample("on", "b", Side::Client, t, step * 150, recycled));
            samples.push(sample("on", "b", Side::Server, t, 7, 0));
        }
        let mut last = sample("on", "b", Side::Client, 6.0, 99_999, 99_999);
        last.is_final = true;
        samples.push(last);
        let plan = plan(&samples, &keys());
        let titles: Vec<&str> = plan.iter().map(|p| p.chart.title.as_str()).collect();
        // The server's TW never moved; conntrack.count is a level, not charted.
        assert_eq!(
            titles,
            [
                "TcpExt.TW per second on the client",
                "TcpExt.TWRecycled per second on the client"
            ]
        );
        assert_eq!(
            plan[1].chart.path,
            "charts/client-kernel-TcpExt_TWRecycled.svg"
        );
        assert_eq!(plan[1].chart.counter.as_deref(), Some("TcpExt.TWRecycled"));
        let tw = &plan[0].runs;
        assert_eq!(tw.len(), 2);
        assert_eq!(tw[0].key, 0);
        assert_eq!(tw[1].key, 1);
        assert_eq!(
            tw[0].points.len(),
            10,
            "11 samples, 10 rates; final left out"
        );
        assert!(tw[0].points.iter().all(|p| (p.1 - 300.0).abs() < 1e-9));
        let on = &plan[1].runs[1].points;
        assert_eq!(on[0], (0.5, 0.0));
        assert_eq!(on[9], (5.0, 150.0));
    }

    #[test]
    fn a_counter_that_went_down_gives_no_rate_across_the_reset() {
        let samples = vec![
            sample("off", "a", Side::Server, 1.0, 1_000, 0),
            sample("off", "a", Side::Server, 2.0, 10, 0),
            sample("off", "a", Side::Server, 3.0, 40, 0),
        ];
        let runs = rates(&samples, Side::Server, "TcpExt.TW", &keys());
        assert_eq!(runs[0].points, vec![(3.0, 30.0)]);
    }
}
