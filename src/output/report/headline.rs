//! The answer first: the headline table (TIME_WAIT and ESTABLISHED per
//! side and source against the baseline), the expectations, the charts.

use super::*;

pub(super) fn at_a_glance(out: &mut String, view: &View) {
    let (header, rows) = glance(view, true);
    if rows.is_empty() {
        return;
    }
    let _ = write!(
        out,
        "## At a glance\n\n\
         The key figures of each variant and their change against the baseline {} \
         (absolute, then percent); the tables below give every state and statistic.",
        code(view.baseline_name())
    );
    if view.any_verdict() {
        out.push_str(
            " In brackets, the 95% interval of the percent change (Welch, over the runs). \
             *verdict*: better or worse when that interval leaves out zero, higher or lower \
             for counts that are neither good nor bad (ESTABLISHED), no clear change when \
             it spans zero, needs repeats when a side has a single run.",
        );
    }
    out.push_str("\n\n");
    if view.needs_repeats_note() {
        let _ = writeln!(
            out,
            "Verdicts: {NEEDS_REPEATS}. With a single run of a variant there is no interval \
             to tell a real change from run-to-run noise.\n"
        );
    }
    let left = glance_left(&header);
    out.push_str(&markdown::table(&header, rows, &left));
}
pub(super) fn expectations(out: &mut String, summary: &Summary) {
    let all = &summary.expectations;
    if all.is_empty() {
        return;
    }
    let failed = all.iter().filter(|e| !e.passed).count();
    out.push_str("## Expectations\n\n");
    if failed == 0 {
        let _ = writeln!(out, "All {} held.\n", all.len());
    } else {
        let _ = writeln!(out, "**{failed} of {} failed.**\n", all.len());
    }
    for e in all {
        let mark = if e.passed { "✅" } else { "❌" };
        let detail = inline(&e.detail);
        if detail.is_empty() {
            let _ = writeln!(out, "- {mark} {}", code(&e.text));
        } else {
            let _ = writeln!(out, "- {mark} {}: {detail}", code(&e.text));
        }
    }
    out.push('\n');
}
pub(super) fn charts(out: &mut String, summary: &Summary) {
    // The kernel counters' charts are in "What the kernel did".
    let charts: Vec<_> = summary
        .charts
        .iter()
        .filter(|c| c.counter.is_none())
        .collect();
    if charts.is_empty() {
        return;
    }
    out.push_str(
        "## Charts\n\nCounts over time for the server endpoint, one line per run; \
         the repeats of a variant share its colour.",
    );
    if charts.iter().any(|c| c.per_host) {
        out.push_str(
            " On the charts of each client host a line is one client host of a run, \
             each host in a colour of its own (its repeats share it).",
        );
    }
    out.push_str("\n\n");
    for c in charts {
        let _ = writeln!(out, "![{}]({})\n", alt_text(&c.title), link_target(&c.path));
    }
}
/// Image alt text: one line, brackets escaped.
pub(super) fn alt_text(s: &str) -> String {
    let mut out = String::new();
    for c in inline(s).chars() {
        if matches!(c, '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
/// A link target; in angle brackets when it holds spaces or parentheses.
pub(super) fn link_target(path: &str) -> String {
    if path
        .chars()
        .any(|c| c.is_whitespace() || "()<>".contains(c))
    {
        format!("<{}>", path.replace('<', "%3C").replace('>', "%3E"))
    } else {
        path.to_string()
    }
}
