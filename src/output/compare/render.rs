//! The comparison of two run directories as text: markdown for a file or a
//! PR comment, a table for the terminal; the differences in how the runs
//! were taken come first, so a figure is never read without them.

use super::*;
use crate::common::names::LoadMetric;

// ---------------------------------------------------------------------------
// Rendering

/// Metrics shown on the terminal: the headline of each variant.
pub(super) const KEY_METRICS: [&str; 9] = [
    "server.sockets.TIME_WAIT.steady_mean",
    "client.sockets.TIME_WAIT.steady_mean",
    "client.sockets.TIME_WAIT.peak",
    "server.conntrack.TIME_WAIT.steady_mean",
    "client.conntrack.TIME_WAIT.steady_mean",
    "server.sockets.ESTABLISHED.steady_mean",
    LoadMetric::RequestsPerSec.name(),
    LoadMetric::LatencyP99.name(),
    LoadMetric::Errors.name(),
];
/// The client's figures, in the order of the markdown tables.
pub(super) const CLIENT_METRICS: [&str; 9] = names::load_metric_names([
    LoadMetric::RequestsPerSec,
    LoadMetric::Requests,
    LoadMetric::ConnectionsOpened,
    LoadMetric::LatencyP50,
    LoadMetric::LatencyP90,
    LoadMetric::LatencyP99,
    LoadMetric::LatencyMax,
    LoadMetric::Errors,
    LoadMetric::ErrorsConnect,
]);
pub(super) const WARNING_TITLE: &str = "These differ besides what you are comparing";
/// The comparison as markdown: the runs, what differs besides the figures,
/// then per variant a table of metric, A, B, change, 95% CI and verdict.
pub fn render_markdown(c: &RunCompare) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# twlab compare: {}\n", inline(&c.scenario));
    let _ = writeln!(
        out,
        "Run B against run A, variant by variant: the same statistics as between the variants \
         of a run (means over completed runs, Welch's 95% interval of the change, a verdict), \
         with A as the baseline.\n"
    );
    for (label, h) in [("A", &c.a_header), ("B", &c.b_header)] {
        let _ = writeln!(
            out,
            "- **{label}:** {} — kernel {}, twlab {}, started {}{}",
            code(&h.dir.display().to_string()),
            code(&h.kernel),
            inline(&h.info.twlab_version),
            inline(&h.info.started_at),
            if h.info.complete {
                ""
            } else {
                " (**incomplete**)"
            }
        );
    }
    out.push('\n');

    let _ = writeln!(out, "## {WARNING_TITLE}\n");
    if c.differences.is_empty() {
        out.push_str(
            "Nothing that twlab records: same kernel, twlab, OS, tools, scenario and sysctls.\n\n",
        );
    } else {
        let rows = c
            .differences
            .iter()
            .map(|d| {
                let what = if d.severity == Severity::Refuse {
                    format!("**{}** (cannot compare)", d.what)
                } else {
                    d.what.clone()
                };
                vec![what, code(&d.a), code(&d.b)]
            })
            .collect();
        out.push_str(&markdown::table(&["what", "A", "B"], rows, &[0, 1, 2]));
    }

    if !c.notes.is_empty() {
        out.push_str("Notes:\n\n");
        for n in &c.notes {
            let _ = writeln!(out, "- {}", inline(n));
        }
        out.push('\n');
    }

    for v in &c.variants {
        let _ = writeln!(out, "## Variant {}\n", code(&v.name));
        let _ = writeln!(
            out,
            "{} in A, {} in B. *change* is B - A (absolute, then percent of A); \
             the 95% interval is of the change, in percent of A where A is not zero.\n",
            runs_text(v.runs_a),
            runs_text(v.runs_b)
        );
        let (shown, hidden): (Vec<&Comparison>, Vec<&Comparison>) = sorted(c, &v.name)
            .into_iter()
            .filter(|x| x.baseline_value != 0.0 || x.value != 0.0)
            .partition(|x| always_shown(&x.metric) || is_change(x.verdict));
        if shown.is_empty() {
            out.push_str("No figure to compare.\n\n");
        } else {
            let rows = shown.into_iter().map(|x| row(x, true)).collect();
            out.push_str(&markdown::table(&COLUMNS, rows, &[0]));
        }
        if !hidden.is_empty() {
            let _ = writeln!(
                out,
                "{} other figure{} (states other than TIME_WAIT and ESTABLISHED, other statistics) show no clear change.\n",
                hidden.len(),
                if hidden.len() == 1 { "" } else { "s" }
            );
        }
    }
    out
}
/// A real change, in either direction.
pub(super) fn is_change(v: Verdict) -> bool {
    matches!(
        v,
        Verdict::Better | Verdict::Worse | Verdict::Higher | Verdict::Lower
    )
}
/// TIME_WAIT in every statistic, ESTABLISHED's steady mean and the
/// client's figures are shown even when they do not change: that is the
/// answer. Other states and statistics only when they do.
pub(super) fn always_shown(metric: &str) -> bool {
    match names::state_metric(metric) {
        Some((_, _, state, stat)) => {
            state == "TIME_WAIT" || (state == "ESTABLISHED" && stat == "steady_mean")
        }
        None => true,
    }
}
/// The comparison for the terminal: the differences, then per variant the
/// headline metrics in a compact table.
pub fn render_terminal(c: &RunCompare) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: B {} against A {}",
        c.scenario,
        c.b.display(),
        c.a.display()
    );
    if c.differences.is_empty() {
        out.push_str("Nothing else differs that twlab records.\n");
    } else {
        let _ = writeln!(out, "{WARNING_TITLE}:");
        for d in &c.differences {
            let _ = writeln!(
                out,
                "  {} {}: {} vs {}",
                if d.severity == Severity::Refuse {
                    "x"
                } else {
                    "!"
                },
                d.what,
                d.a,
                d.b
            );
        }
    }
    for n in &c.notes {
        let _ = writeln!(out, "note: {n}");
    }
    for v in &c.variants {
        let _ = writeln!(
            out,
            "\n{}: {} completed run(s) in A, {} in B",
            v.name, v.runs_a, v.runs_b
        );
        let rows: Vec<Vec<String>> = KEY_METRICS
            .iter()
            .filter_map(|m| {
                c.comparisons
                    .iter()
                    .find(|x| x.variant == v.name && x.metric == *m)
            })
            .map(|x| row(x, false))
            .collect();
        if rows.is_empty() {
            out.push_str("no figure to compare\n");
            continue;
        }
        out.push_str(&markdown::terminal_table(&COLUMNS, rows, &[0, 5]));
    }
    out
}
/// The columns of a variant's table, in markdown and on the terminal.
pub(super) const COLUMNS: [&str; 6] = ["metric", "A", "B", "change", "95% CI", "verdict"];
/// A comparison as a table row: metric, A, B, change, 95% CI, verdict.
pub(super) fn row(x: &Comparison, for_markdown: bool) -> Vec<String> {
    let ci = match (x.ci95_pct, x.ci95) {
        (Some([lo, hi]), _) => format!("{} .. {}", percent(Some(lo)), percent(Some(hi))),
        (None, Some([lo, hi])) => format!("{} .. {}", signed(lo), signed(hi)),
        (None, None) => "—".into(),
    };
    vec![
        metric_label(&x.metric),
        num(x.baseline_value),
        num(x.value),
        markdown::change(x.change, x.change_pct),
        ci,
        verdict_text(x.verdict, for_markdown),
    ]
}
/// The verdict; in markdown a real change (better or worse) is in bold.
pub(super) fn verdict_text(v: Verdict, markdown: bool) -> String {
    match v {
        Verdict::Better | Verdict::Worse if markdown => format!("**{}**", v.as_str()),
        _ => v.as_str().to_string(),
    }
}
/// The comparisons of a variant in reading order: state counts by source,
/// side, state (TIME_WAIT and ESTABLISHED first) and statistic, then the
/// client's figures.
pub(super) fn sorted<'a>(c: &'a RunCompare, variant: &str) -> Vec<&'a Comparison> {
    let mut v: Vec<&Comparison> = c
        .comparisons
        .iter()
        .filter(|x| x.variant == variant)
        .collect();
    v.sort_by_key(|x| sort_key(&x.metric));
    v
}
pub(super) fn sort_key(metric: &str) -> (u8, u8, u8, u8, String, u8) {
    if let Some((side, source, state, stat)) = names::state_metric(metric) {
        let state_rank = match state {
            "TIME_WAIT" => 0,
            "ESTABLISHED" => 1,
            _ => 2,
        };
        let stat_rank = match stat {
            "steady_mean" => 0,
            "peak" => 1,
            _ => 2,
        };
        (
            0,
            source as u8,
            side as u8,
            state_rank,
            state.to_string(),
            stat_rank,
        )
    } else {
        let rank = CLIENT_METRICS
            .iter()
            .position(|m| *m == metric)
            .unwrap_or(CLIENT_METRICS.len());
        (1, 0, 0, 0, format!("{rank:02}{metric}"), 0)
    }
}
/// `server.sockets.TIME_WAIT.steady_mean` → `server sockets TIME_WAIT, steady mean`.
pub(super) fn metric_label(metric: &str) -> String {
    if let Some((side, source, state, stat)) = names::state_metric(metric) {
        return format!(
            "{side} {} {state}, {}",
            source.as_str(),
            stat.replace('_', " ")
        );
    }
    let Some(load) = LoadMetric::parse(metric) else {
        return metric.to_string();
    };
    match load {
        LoadMetric::Requests => "requests",
        LoadMetric::RequestsPerSec => "requests/s",
        LoadMetric::Errors => "client errors",
        LoadMetric::ErrorsConnect => "connect errors",
        LoadMetric::LatencyP50 => "latency p50 (ms)",
        LoadMetric::LatencyP90 => "latency p90 (ms)",
        LoadMetric::LatencyP99 => "latency p99 (ms)",
        LoadMetric::LatencyMax => "latency max (ms)",
        LoadMetric::ConnectionsOpened => "connections opened",
    }
    .into()
}
