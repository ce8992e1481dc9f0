//! The comparison printed at the end of `twlab run`: one line per headline
//! metric and variant, with the verdict, and the expectations that failed.

use super::*;
use crate::common::names::LoadMetric;

/// The comparison table printed on the terminal at the end of `twlab run`.
pub fn render_terminal(summary: &Summary) -> String {
    let view = View::new(summary);
    let mut out = String::new();
    let Some(baseline) = view.variants.first() else {
        let _ = writeln!(out, "{}: no variant ran.", summary.scenario);
        expectation_lines(&mut out, summary);
        return out;
    };
    let _ = writeln!(
        out,
        "{}: {} variant{}, baseline {}{}",
        summary.scenario,
        view.variants.len(),
        if view.variants.len() == 1 { "" } else { "s" },
        baseline.name,
        if summary.info.complete {
            ""
        } else {
            " (INCOMPLETE: not every run completed)"
        }
    );
    for (v, r) in view.runs().filter(|(_, r)| !r.incomplete.is_empty()) {
        let _ = writeln!(
            out,
            "NOT COMPLETE: {} repeat {}: {}",
            v.name,
            r.repeat,
            r.incomplete.join("; ")
        );
    }
    for (v, r) in view.invalid_runs() {
        let _ = writeln!(
            out,
            "INVALID: {} repeat {}: {}",
            v.name,
            r.repeat,
            reasons(r)
        );
    }

    let (header, rows) = glance(&view, false);
    let no_rows = rows.is_empty();
    if !no_rows {
        let left = glance_left(&header);
        out.push_str(&markdown::terminal_table(&header, rows, &left));
        if view.needs_repeats_note() {
            let _ = writeln!(out, "verdicts: {NEEDS_REPEATS}");
        }
    }
    let failed = view.runs().filter(|(_, r)| r.error.is_some()).count();
    if failed > 0 {
        let _ = writeln!(
            out,
            "{failed} run{} failed and {} left out of these figures; see report.md.",
            if failed == 1 { "" } else { "s" },
            if failed == 1 { "is" } else { "are" }
        );
    }
    let left_out = view
        .runs()
        .filter(|(_, r)| r.error.is_none() && !r.is_complete())
        .count();
    match left_out {
        0 => {}
        1 => out.push_str(
            "1 run was interrupted or is not complete; it is left out of these figures.\n",
        ),
        n => {
            let _ = writeln!(
                out,
                "{n} runs were interrupted or are not complete; they are left out of these figures."
            );
        }
    }
    if no_rows {
        out.push_str("No completed run reported any figure.\n");
    }
    expectation_lines(&mut out, summary);
    out
}
/// The expectations on the terminal: a count, then a line per failed one.
pub(super) fn expectation_lines(out: &mut String, summary: &Summary) {
    let all = &summary.expectations;
    if all.is_empty() {
        return;
    }
    let failed: Vec<_> = all.iter().filter(|e| !e.passed).collect();
    if failed.is_empty() {
        let _ = writeln!(out, "expectations: all {} held", all.len());
        return;
    }
    let _ = writeln!(
        out,
        "expectations: {} of {} failed",
        failed.len(),
        all.len()
    );
    for e in failed {
        let _ = writeln!(out, "FAILED: {} — {}", inline(&e.text), inline(&e.detail));
    }
}
/// The headline comparison, shared by the terminal and "At a glance": one
/// row per key metric, a value column per variant, and a change column per
/// variant after the baseline (with its 95% interval when `with_ci`) and
/// its verdict when some comparison has one.
pub(super) fn glance(view: &View, with_ci: bool) -> (Vec<String>, Vec<Vec<String>>) {
    let mut metrics: Vec<(String, String)> = Vec::new();
    for source in SOURCES {
        for side in Side::BOTH {
            let stats: &[&str] = if source == Source::Sockets {
                &["steady_mean", "peak"]
            } else {
                &["steady_mean"]
            };
            for state in ALWAYS_SHOWN {
                for stat in stats {
                    let metric = names::state_metric_name(side, source, state, stat);
                    let label = format!(
                        "{side} {} {state} ({})",
                        source.as_str(),
                        stat.replace('_', " ")
                    );
                    let shown = if state == "TIME_WAIT" {
                        view.any_value(&metric)
                    } else {
                        *stat == "steady_mean"
                            && source == Source::Sockets
                            && view.any_nonzero(&metric)
                    };
                    if shown {
                        metrics.push((label, metric));
                    }
                }
            }
        }
    }
    for (label, metric) in [
        ("requests/s", LoadMetric::RequestsPerSec.name()),
        ("latency p99 (ms)", LoadMetric::LatencyP99.name()),
        ("client errors", LoadMetric::Errors.name()),
    ] {
        if view.any_value(metric) {
            metrics.push((label.to_string(), metric.to_string()));
        }
    }
    let verdicts = view.any_verdict();
    let baseline = view.baseline_name();
    let mut header = vec!["metric".to_string(), format!("{baseline} (baseline)")];
    for v in view.variants.iter().skip(1) {
        header.push(v.name.clone());
        header.push(format!("vs {baseline}"));
        if verdicts {
            header.push("verdict".into());
        }
    }
    let rows = metrics
        .iter()
        .map(|(label, metric)| {
            let mut row = vec![label.clone()];
            for i in 0..view.variants.len() {
                row.push(view.value_cell(i, metric));
                if i > 0 {
                    row.push(view.change_cell(i, metric, with_ci));
                    if verdicts {
                        row.push(view.verdict_cell(i, metric));
                    }
                }
            }
            row
        })
        .collect();
    (header, rows)
}
/// The columns of a [`glance`] table that are text, left-aligned: the
/// metric and the verdicts; the figures are right-aligned.
pub(super) fn glance_left(header: &[String]) -> Vec<usize> {
    header
        .iter()
        .enumerate()
        .filter(|(i, h)| *i == 0 || *h == "verdict")
        .map(|(i, _)| i)
        .collect()
}
