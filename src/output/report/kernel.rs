//! "What the kernel did": the kernel's own TCP and conntrack counters of
//! each side over the load, and a model check of TIME_WAIT against them.
//!
//! The state tables say how many sockets sat in TIME_WAIT; this section says
//! why, from the counters `nstat`/`netstat -s`/`conntrack -S` show, read by
//! the sampler ([`crate::measure::kernel_counters`]) and kept per run in
//! `summary.json` (`runs[].kernel`). Only counters that moved in some run
//! are shown, per second, as the mean over a variant's completed runs, with
//! the change against the baseline. Runs of older twlab versions carry no
//! counters: then the section is left out.
//!
//! The model check closes the loop. Since Linux 4.1 `TcpExt.TW` counts
//! sockets as they *enter* TIME_WAIT for its full 60 s, and `TWKilled` those
//! that enter it for a short time (≤ 4 s): their sum per second is the rate
//! at which the side's sockets enter TIME_WAIT. A socket stays 60 s (fixed in
//! Linux), so after 60 s of load the live count should settle at rate × 60;
//! in a shorter load, at the end, every socket that entered should still be
//! there. The measured count (the steady mean of a long run, the final
//! snapshot of a short one) falls short by the sockets that left early:
//! `TWRecycled` (connect() took over a port still in TIME_WAIT, with
//! `tcp_tw_reuse`) is counted; a SYN that reuses a 4-tuple still in TIME_WAIT
//! on the server (a client port coming round again) has no counter, so it is
//! named as what is left. `TCPTimeWaitOverflow` counts sockets that skipped
//! TIME_WAIT because `tcp_max_tw_buckets` was full: they are not in the
//! rate at all. conntrack's TIME_WAIT entries follow the same model with
//! its own timeout (`nf_conntrack_tcp_timeout_time_wait`) and the side's
//! closed connections (opened minus still established) as the rate.

use super::headline::{alt_text, link_target};
use crate::analysis::statistics;
use crate::common::endpoint::Side;
use crate::measure::kernel_counters::{is_gauge, meaning};
use crate::output::markdown::{self, code, num, percent};
use crate::results::{RunSummary, Summary};
use std::collections::BTreeSet;
use std::fmt::Write as _;

/// Linux's TIME_WAIT length (`TCP_TIMEWAIT_LEN`), in seconds.
pub const TIME_WAIT_SECS: f64 = 60.0;
/// Within this share of the prediction, the counters account for the count.
const CLOSE_ENOUGH: f64 = 0.10;

/// The section, when any run carries kernel counters.
pub(super) fn kernel_section(out: &mut String, summary: &Summary) {
    let any = summary
        .variants
        .iter()
        .flat_map(|v| &v.runs)
        .any(|r| !r.kernel.server.is_empty() || !r.kernel.client.is_empty());
    if !any || summary.variants.is_empty() {
        return;
    }
    let baseline = summary.variants[0].name.as_str();
    let _ = write!(
        out,
        "## What the kernel did\n\n\
         The kernel's own counters of each side over the load (`/proc/net/netstat`, \
         `/proc/net/snmp`, conntrack's statistics: what `nstat`, `netstat -s` and \
         `conntrack -S` show), per second, the mean over a variant's completed runs; \
         *change* is against the baseline {}; with repeats, ± is the half-width of the \
         95% confidence interval of the mean. Only TCP's and conntrack's counters that moved are shown; \
         `summary.json` has them all (`runs[].kernel`) and `kernel.jsonl` every sample.\n\n",
        code(baseline)
    );
    if one_namespace(summary) {
        out.push_str(
            "The server and the client share one network namespace in this lab (one host), \
             so the kernel keeps one set of counters for both: the table below is both sides'.\n\n",
        );
        side_table(out, summary, Side::Server, "server and client");
        side_charts(out, summary, Side::Server);
    } else {
        for side in [Side::Server, Side::Client] {
            side_table(out, summary, side, side.as_str());
            side_charts(out, summary, side);
        }
    }
    model_check(out, summary);
}

/// Whether both sides of every run are one network namespace (a lab of
/// this machine alone), where a per-side table would show one namespace
/// twice as if it were two. The two sides are read one after the other,
/// so their figures differ a little even then: one namespace is the same
/// counters moving on both sides (in two, `Tcp.ActiveOpens` moves on the
/// client only and `Tcp.PassiveOpens` on the server only), each within 1%.
fn one_namespace(summary: &Summary) -> bool {
    let mut runs = summary
        .variants
        .iter()
        .flat_map(|v| &v.runs)
        .filter(|r| !r.kernel.server.is_empty())
        .peekable();
    let alike = |r: &RunSummary| {
        let moved = |side: Side| -> BTreeSet<&str> {
            r.kernel
                .get(side)
                .iter()
                .filter(|(k, d)| d.moved() && !is_gauge(k))
                .map(|(k, _)| k.as_str())
                .collect()
        };
        let keys = moved(Side::Server);
        !keys.is_empty()
            && keys == moved(Side::Client)
            && keys.iter().all(|k| {
                let (a, b) = (r.kernel.server[*k].delta(), r.kernel.client[*k].delta());
                (a - b).abs() as f64 <= 0.01 * a.abs().max(b.abs()) as f64 + 2.0
            })
    };
    runs.peek().is_some() && runs.all(alike)
}

/// The side's charts of counter rates over time (drawn from
/// `kernel.jsonl` by the run; see `charts::kernel`).
fn side_charts(out: &mut String, summary: &Summary, side: Side) {
    let prefix = format!("charts/{side}-kernel-");
    for c in summary
        .charts
        .iter()
        .filter(|c| c.counter.is_some() && c.path.starts_with(&prefix))
    {
        let _ = writeln!(out, "![{}]({})\n", alt_text(&c.title), link_target(&c.path));
    }
}

/// The completed runs of each variant.
fn completed(summary: &Summary) -> Vec<Vec<&RunSummary>> {
    summary
        .variants
        .iter()
        .map(|v| v.runs.iter().filter(|r| r.is_complete()).collect())
        .collect()
}

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| sum / n as f64)
}

/// A counter's figure in one run: its rate, or a gauge's level at the end.
fn figure(r: &RunSummary, side: Side, key: &str) -> f64 {
    match r.kernel.get(side).get(key) {
        Some(d) if is_gauge(key) => d.end as f64,
        Some(d) => d.per_sec,
        None => 0.0,
    }
}

/// Counters of the report: TCP's and conntrack's. IP, ICMP and UDP
/// packet counters (which only follow the request rate here) stay in
/// `summary.json`.
fn shown(key: &str) -> bool {
    ["Tcp.", "TcpExt.", "conntrack."]
        .iter()
        .any(|p| key.starts_with(p))
}

/// One side's counters that moved, one row each, under the heading `title`.
fn side_table(out: &mut String, summary: &Summary, side: Side, title: &str) {
    let runs = completed(summary);
    let moved: BTreeSet<&str> = runs
        .iter()
        .flatten()
        .flat_map(|r| r.kernel.get(side).iter())
        .filter(|(k, d)| d.moved() && shown(k))
        .map(|(k, _)| k.as_str())
        .collect();
    if moved.is_empty() {
        return;
    }
    // The counters with a meaning first (TIME_WAIT's and conntrack's), then
    // the rest by name.
    let mut keys: Vec<&str> = moved
        .iter()
        .copied()
        .filter(|k| meaning(k).is_some())
        .collect();
    keys.extend(moved.iter().copied().filter(|k| meaning(k).is_none()));
    let mut header = vec!["counter".to_string()];
    for (i, v) in summary.variants.iter().enumerate() {
        header.push(if i == 0 {
            format!("{} /s", v.name)
        } else {
            format!("{} /s (change)", v.name)
        });
    }
    header.push("meaning".into());
    let rows = keys
        .iter()
        .map(|k| {
            let per_run: Vec<Vec<f64>> = runs
                .iter()
                .map(|rs| rs.iter().map(|r| figure(r, side, k)).collect())
                .collect();
            let values: Vec<Option<f64>> =
                per_run.iter().map(|xs| mean(xs.iter().copied())).collect();
            let mut row = vec![if is_gauge(k) {
                format!("{} (level at the end)", code(k))
            } else {
                code(k)
            }];
            for (i, v) in values.iter().enumerate() {
                let figure = |v: f64| with_interval(v, &per_run[i]);
                row.push(match (i, v, values[0]) {
                    (_, None, _) => "-".into(),
                    (0, Some(v), _) => figure(*v),
                    (_, Some(v), Some(b)) => {
                        let pct = (b != 0.0).then(|| 100.0 * (v - b) / b);
                        format!("{} ({})", figure(*v), percent(pct))
                    }
                    (_, Some(v), None) => figure(*v),
                });
            }
            row.push(meaning(k).unwrap_or("").to_string());
            row
        })
        .collect();
    let last = header.len() - 1;
    let _ = writeln!(out, "### {title}\n");
    out.push_str(&markdown::table(&header, rows, &[0, last]));
}

/// A variant's mean, with ± the half-width of its 95% confidence interval
/// when it has several runs whose figures differ.
fn with_interval(mean: f64, runs: &[f64]) -> String {
    match statistics::mean_ci(runs, 0.95) {
        Some((lo, hi)) if hi > lo => format!("{} ± {}", num(mean), num((hi - lo) / 2.0)),
        _ => num(mean),
    }
}

/// The model check of one side, source and run.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Model {
    /// Entries into TIME_WAIT per second.
    pub rate: f64,
    /// Seconds an entry can have stayed by the time it is measured.
    pub horizon: f64,
    pub predicted: f64,
    pub measured: f64,
    /// What the counters say about the difference.
    pub why: String,
}

/// The sockets' model of one side of a run; `None` without counters or
/// without a load.
pub(super) fn socket_model(r: &RunSummary, side: Side) -> Option<Model> {
    let k = r.kernel.get(side);
    let secs = r.client.as_ref()?.duration_secs;
    if k.is_empty() || secs <= 0.0 {
        return None;
    }
    let delta = |key: &str| k.get(key).map_or(0.0, |d| d.delta() as f64);
    let entered = delta("TcpExt.TW") + delta("TcpExt.TWKilled");
    let rate = entered / secs;
    let horizon = secs.min(TIME_WAIT_SECS);
    let predicted = rate * horizon;
    let stats = r.sockets.get(side);
    let measured = measured_tw(r, TIME_WAIT_SECS, &stats.final_, &stats.steady_mean)?;
    // Over the horizon: the share of the run's counts that fall in it.
    let share = horizon / secs;
    let recycled = delta("TcpExt.TWRecycled") * share;
    let overflow = delta("TcpExt.TCPTimeWaitOverflow");
    let mut why = explain(
        predicted,
        measured,
        recycled,
        "`TWRecycled`: connect() took over ports still in TIME_WAIT",
    );
    if overflow > 0.0 {
        let _ = write!(
            why,
            "; `TCPTimeWaitOverflow`: {} sockets skipped TIME_WAIT (tcp_max_tw_buckets full), not in the rate",
            num(overflow)
        );
    }
    Some(Model {
        rate,
        horizon,
        predicted,
        measured,
        why,
    })
}

/// conntrack's model of one side of a run: closed connections per second
/// times its time_wait timeout.
pub(super) fn conntrack_model(r: &RunSummary, side: Side) -> Option<Model> {
    let k = r.kernel.get(side);
    let secs = r.client.as_ref()?.duration_secs;
    let timeout = k.get("conntrack.timeout.time_wait")?.end as f64;
    let stats = r.conntrack.get(side);
    if secs <= 0.0 || (stats.final_.is_empty() && stats.peak.is_empty()) {
        return None;
    }
    let opens = match side {
        Side::Server => "Tcp.PassiveOpens",
        Side::Client => "Tcp.ActiveOpens",
    };
    let opened = k.get(opens).map_or(0.0, |d| d.delta() as f64);
    let open_at_end = stats.final_.get("ESTABLISHED").copied().unwrap_or(0) as f64;
    // A connection reset instead of closed leaves its entry in CLOSE (10 s),
    // never in TIME_WAIT. Both sides' tables track the same flows, and the
    // side that reset counts it (`Tcp.EstabResets`), so the larger of the
    // two sides' counts is taken off.
    let resets = Side::BOTH
        .iter()
        .filter_map(|s| r.kernel.get(*s).get("Tcp.EstabResets"))
        .map(|d| d.delta().max(0) as f64)
        .fold(0.0, f64::max);
    let closed = (opened - open_at_end - resets).max(0.0);
    let rate = closed / secs;
    let horizon = secs.min(timeout);
    let predicted = rate * horizon;
    let measured = measured_tw(r, timeout, &stats.final_, &stats.steady_mean)?;
    let refused: f64 = crate::measure::kernel_counters::CT_REFUSALS
        .iter()
        .map(|key| k.get(*key).map_or(0.0, |d| d.delta() as f64))
        .sum();
    let why = if refused > 0.0 {
        format!(
            "the table refused {} flows (`drop`/`early_drop`/`insert_failed`)",
            num(refused)
        )
    } else {
        explain(predicted, measured, 0.0, "")
            .replace("a SYN on a 4-tuple still in TIME_WAIT took it over (a client port coming round again)", "a SYN on a 4-tuple whose entry was in TIME_WAIT reopened it (a client port coming round again)")
    };
    Some(Model {
        rate,
        horizon,
        predicted,
        measured,
        why,
    })
}

/// The measured TIME_WAIT: the steady mean when the count had settled
/// over the whole steady window (its start at least `hold` seconds into
/// the load, so what entered first has left), else the final snapshot
/// (everything that entered within the last `hold` seconds is there).
fn measured_tw(
    r: &RunSummary,
    hold: f64,
    final_: &crate::common::counts::Counts,
    steady: &std::collections::BTreeMap<String, f64>,
) -> Option<f64> {
    if settled(r, hold) {
        steady.get("TIME_WAIT").copied().or(Some(0.0))
    } else {
        Some(final_.get("TIME_WAIT").copied().unwrap_or(0) as f64)
    }
}

/// Had a count whose entries stay `hold` seconds settled by the start of
/// the steady window (and was there one)?
fn settled(r: &RunSummary, hold: f64) -> bool {
    hold <= r.steady_from_secs && r.steady_samples != Some(0)
}

/// What explains `predicted - measured`: within [`CLOSE_ENOUGH`] nothing
/// needs explaining; else `counted` of it by the counter `what`, the rest by
/// what has no counter.
fn explain(predicted: f64, measured: f64, counted: f64, what: &str) -> String {
    let gap = predicted - measured;
    let close = gap.abs() <= CLOSE_ENOUGH * predicted.max(1.0);
    if close && counted <= 0.0 {
        return format!(
            "within 10% (measured {}): the counters account for the count",
            markdown::signed(-gap)
        );
    }
    if gap < 0.0 {
        return "more than entered: sockets from before the load, or FIN_WAIT2 ones counted as entering".into();
    }
    let rest = gap - counted;
    let mut parts = Vec::new();
    if counted > 0.0 {
        parts.push(format!("{} by {what}", num(counted.min(gap))));
    }
    if rest > CLOSE_ENOUGH * predicted.max(1.0) || (counted <= 0.0 && rest > 0.0) {
        parts.push(format!(
            "{} without a counter: a SYN on a 4-tuple still in TIME_WAIT took it over (a client port coming round again)",
            num(rest)
        ));
    }
    if parts.is_empty() {
        parts.push("the counters account for the count".into());
    }
    format!("{} fewer: {}", num(gap), parts.join("; "))
}

/// The model check table: per side and variant, sockets and conntrack.
fn model_check(out: &mut String, summary: &Summary) {
    let runs = completed(summary);
    let mut rows = Vec::new();
    for side in [Side::Server, Side::Client] {
        for (what, model) in [
            (
                "sockets",
                socket_model as fn(&RunSummary, Side) -> Option<Model>,
            ),
            ("conntrack", conntrack_model),
        ] {
            for (v, rs) in summary.variants.iter().zip(&runs) {
                // Each run's model; the figures of the variant are their
                // means, the explanation that of its first run.
                let models: Vec<Model> = rs.iter().filter_map(|r| model(r, side)).collect();
                let Some(first) = models.first() else {
                    continue;
                };
                let m = |f: fn(&Model) -> f64| mean(models.iter().map(f)).unwrap_or(0.0);
                rows.push(vec![
                    side.to_string(),
                    what.to_string(),
                    v.name.clone(),
                    num(m(|x| x.rate)),
                    num(m(|x| x.horizon)),
                    num(m(|x| x.predicted)),
                    num(m(|x| x.measured)),
                    first.why.clone(),
                ]);
            }
        }
    }
    if rows.is_empty() {
        return;
    }
    out.push_str(
        "### Model check: TIME_WAIT from the counters\n\n\
         *entered /s*: sockets entering TIME_WAIT per second (`TW` + `TWKilled`, counted as they enter \
         since Linux 4.1); for conntrack, the side's closed connections per second. *predicted*: what \
         stays, entered /s × *held s* (60 s for sockets, conntrack's time_wait timeout; the load's \
         length when shorter). *measured*: the steady mean TIME_WAIT when the steady window starts \
         after *held s* (the count had settled), else the final snapshot. The last column says which counter explains the difference.\n\n",
    );
    out.push_str(&markdown::table(
        &[
            "side",
            "count",
            "variant",
            "entered /s",
            "held s",
            "predicted",
            "measured",
            "what explains the difference",
        ],
        rows,
        &[0, 1, 2, 7],
    ));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::counts::ClientStats;
    use crate::results::kernel::CounterDelta;

    fn run(secs: f64, tw: u64, recycled: u64, final_tw: u64) -> RunSummary {
        let mut r = RunSummary {
            client: Some(ClientStats {
                duration_secs: secs,
                ..Default::default()
            }),
            ..Default::default()
        };
        let d = |end| CounterDelta {
            start: 0,
            end,
            per_sec: end as f64 / secs,
        };
        r.kernel.client.insert("TcpExt.TW".into(), d(tw));
        r.kernel
            .client
            .insert("TcpExt.TWRecycled".into(), d(recycled));
        r.sockets.client.final_.insert("TIME_WAIT".into(), final_tw);
        r
    }

    #[test]
    fn the_model_names_the_counter_that_explains_the_gap() {
        // Everything that entered is still there: nothing to explain.
        let m = socket_model(&run(10.0, 1000, 0, 990), Side::Client).unwrap();
        assert_eq!(m.predicted, 1000.0);
        assert!(m.why.starts_with("within 10% (measured -10)"), "{}", m.why);
        // 400 left early, all by reuse.
        let m = socket_model(&run(10.0, 1000, 400, 600), Side::Client).unwrap();
        assert!(m.why.contains("400 by `TWRecycled`"), "{}", m.why);
        assert!(!m.why.contains("without a counter"), "{}", m.why);
        // 400 left early, none counted: ports coming round again.
        let m = socket_model(&run(10.0, 1000, 0, 600), Side::Client).unwrap();
        assert!(m.why.contains("without a counter"), "{}", m.why);
        // A long load: the steady mean against 60 s of entries, and the
        // reuse over those 60 s (a share of the run's).
        let mut long = run(90.0, 9000, 900, 0);
        long.steady_from_secs = 60.0;
        long.sockets
            .client
            .steady_mean
            .insert("TIME_WAIT".into(), 5400.0);
        let m = socket_model(&long, Side::Client).unwrap();
        assert_eq!((m.horizon, m.predicted, m.measured), (60.0, 6000.0, 5400.0));
        assert_eq!(
            m.why,
            "600 fewer: 600 by `TWRecycled`: connect() took over ports still in TIME_WAIT"
        );
        // conntrack: closed connections × its time_wait timeout.
        let mut ct = run(10.0, 0, 0, 0);
        let d = |end| CounterDelta {
            start: 0,
            end,
            per_sec: 0.0,
        };
        ct.kernel.client.insert("Tcp.ActiveOpens".into(), d(1000));
        ct.kernel
            .client
            .insert("conntrack.timeout.time_wait".into(), d(5));
        ct.conntrack.client.final_.insert("TIME_WAIT".into(), 500);
        let m = conntrack_model(&ct, Side::Client).unwrap();
        assert_eq!((m.rate, m.horizon, m.predicted), (100.0, 5.0, 500.0));
        ct.kernel
            .client
            .insert("conntrack.insert_failed".into(), d(7));
        let m = conntrack_model(&ct, Side::Client).unwrap();
        assert!(m.why.contains("refused 7 flows"), "{}", m.why);
        ct.kernel.client.remove("conntrack.insert_failed");
        // Connections the other side reset (SO_LINGER 0) never enter
        // conntrack's TIME_WAIT: 600 of the 1000 here.
        ct.kernel.server.insert("Tcp.EstabResets".into(), d(600));
        let m = conntrack_model(&ct, Side::Client).unwrap();
        assert_eq!((m.rate, m.predicted), (40.0, 200.0));
        // No counters: no model.
        assert!(socket_model(&run(10.0, 0, 0, 0), Side::Server).is_none());
    }

    #[test]
    fn one_namespace_is_the_same_counters_moving_on_both_sides() {
        use crate::results::VariantSummary;
        let d = |end| CounterDelta {
            start: 0,
            end,
            per_sec: 0.0,
        };
        let mut r = RunSummary::default();
        for (k, v) in [("Tcp.ActiveOpens", 1000), ("Tcp.PassiveOpens", 1000)] {
            r.kernel.server.insert(k.into(), d(v));
        }
        for (k, v) in [("Tcp.ActiveOpens", 1003), ("Tcp.PassiveOpens", 1004)] {
            r.kernel.client.insert(k.into(), d(v));
        }
        let summary = |r: &RunSummary| Summary {
            variants: vec![VariantSummary {
                name: "v".into(),
                runs: vec![r.clone()],
                ..Default::default()
            }],
            ..Default::default()
        };
        assert!(one_namespace(&summary(&r)));
        // Two namespaces: each side's opens move on that side only.
        let mut two = r.clone();
        two.kernel.server.remove("Tcp.ActiveOpens");
        two.kernel.client.remove("Tcp.PassiveOpens");
        assert!(!one_namespace(&summary(&two)));
        // The same keys, but not the same figures.
        let mut apart = r.clone();
        apart
            .kernel
            .client
            .insert("Tcp.ActiveOpens".into(), d(1500));
        assert!(!one_namespace(&summary(&apart)));
        let mut out = String::new();
        kernel_section(&mut out, &summary(&r));
        assert!(out.contains("share one network namespace"), "{out}");
        assert!(out.contains("### server and client"), "{out}");
        assert!(!out.contains("### client"), "{out}");
    }

    #[test]
    fn repeats_get_an_interval_and_a_lone_run_does_not() {
        assert_eq!(with_interval(10.0, &[10.0]), "10");
        assert_eq!(with_interval(10.0, &[10.0, 10.0]), "10");
        let s = with_interval(10.0, &[9.0, 11.0]);
        assert!(s.starts_with("10 ± 12.7"), "{s}");
    }
}
