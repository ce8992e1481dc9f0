//! Rendering a run: `report.md` and the comparison printed at the end of
//! `twlab run`.
//!
//! Both renderings read a [`Summary`] and nothing else: no samples, no live
//! state, no clock. `summary.json` is the contract of a run directory, so
//! `twlab report DIR` can re-render `report.md` at any time (after a fix to
//! this module, or from a directory copied off the lab machine) and get the
//! very same figures the run printed.
//!
//! The report answers the seed's question first: how much each variant
//! changes the TIME_WAIT (and ESTABLISHED) counts for the server endpoint,
//! in sockets and conntrack, on both sides, against the baseline (the first
//! variant), in absolute terms and in percent, and whether the change is
//! real. A single pair of runs cannot say that, so with repeats each change
//! carries its 95% interval and a verdict (better, worse, no clear change);
//! without them the report says once that verdicts need repeats instead of
//! filling every cell with it. What can make the figures wrong comes before
//! them (runs flagged invalid, at the top) or right after the headline
//! (expectations that failed); then the charts, every state, what the
//! client saw, the runs one by one, and the command to reproduce it all.
//!
//! Values are those of [`metrics::variant_metrics`] (means over a variant's
//! completed runs); changes, intervals and verdicts come from
//! [`Summary::comparisons`], computed at the end of the run, so report and
//! `summary.json` always agree. Metric names are only ever split by
//! [`names::state_metric`].

use crate::analysis::metrics;
use crate::analysis::statistics;
use crate::common::counts::Counts;
use crate::common::counts::Source;
use crate::common::endpoint::Side;
use crate::common::names;
use crate::output::markdown::{self, code, fenced, inline, num, percent, signed};
use crate::results::{Comparison, RunSummary, Summary, VariantSummary};
use crate::results::{Stats, Verdict};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// The sources of state counts, in report order.
const SOURCES: [Source; 2] = [Source::Sockets, Source::Conntrack];
/// The statistics of a state count, in row order: (metric suffix, label).
const STATS: [(&str, &str); 3] = [
    ("steady_mean", "steady mean"),
    ("peak", "peak"),
    ("final", "final"),
];
/// States shown for every side that was sampled, even when zero everywhere:
/// a zero here is part of the answer (e.g. no TIME_WAIT on the client).
const ALWAYS_SHOWN: [&str; 2] = ["TIME_WAIT", "ESTABLISHED"];
/// Said once, instead of in every verdict cell, when no change has an interval.
const NEEDS_REPEATS: &str = "needs repeats (repeat ≥ 2 gives verdicts)";

/// The markdown report (report.md), from summary.json alone.
pub fn render_markdown(summary: &Summary) -> String {
    let view = View::new(summary);
    let mut out = String::new();
    let _ = writeln!(out, "# TIME_WAIT lab: {}\n", inline(&summary.scenario));
    invalid_warning(&mut out, &view);
    what_ran(&mut out, &view);
    variants_table(&mut out, &view);
    if view.variants.is_empty() {
        out.push_str("No variant ran, so there is nothing to compare.\n\n");
    } else {
        at_a_glance(&mut out, &view);
    }
    expectations(&mut out, summary);
    charts(&mut out, summary);
    if !view.variants.is_empty() {
        state_tables(&mut out, &view);
        client_tables(&mut out, &view);
        runs_section(&mut out, &view);
    }
    reproduce(&mut out, &summary.info.command);
    out
}

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
    let interrupted = view
        .runs()
        .filter(|(_, r)| r.error.is_none() && r.interrupted)
        .count();
    match interrupted {
        0 => {}
        1 => out.push_str("1 run was interrupted; its figures cover only the time it ran.\n"),
        n => {
            let _ = writeln!(
                out,
                "{n} runs were interrupted; their figures cover only the time they ran."
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
fn expectation_lines(out: &mut String, summary: &Summary) {
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
fn glance(view: &View, with_ci: bool) -> (Vec<String>, Vec<Vec<String>>) {
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
                    let metric = format!("{side}.{}.{state}.{stat}", source.as_str());
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
        ("requests/s", "client.requests_per_sec"),
        ("latency p99 (ms)", "client.latency.p99_ms"),
        ("client errors", "client.errors"),
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
fn glance_left(header: &[String]) -> Vec<usize> {
    header
        .iter()
        .enumerate()
        .filter(|(i, h)| *i == 0 || *h == "verdict")
        .map(|(i, _)| i)
        .collect()
}

/// What the renderings need, computed once from the summary.
struct View<'a> {
    summary: &'a Summary,
    variants: &'a [VariantSummary],
    /// [`metrics::variant_metrics`] of each variant.
    metrics: Vec<BTreeMap<String, f64>>,
    /// [`metrics::variant_values`] of each variant.
    values: Vec<BTreeMap<String, Vec<f64>>>,
    /// Whether each variant has at least one completed run.
    completed: Vec<bool>,
}

impl<'a> View<'a> {
    fn new(summary: &'a Summary) -> Self {
        let variants = summary.variants.as_slice();
        View {
            summary,
            variants,
            metrics: variants.iter().map(metrics::variant_metrics).collect(),
            values: variants.iter().map(metrics::variant_values).collect(),
            completed: variants
                .iter()
                .map(|v| v.runs.iter().any(|r| r.error.is_none()))
                .collect(),
        }
    }

    fn baseline_name(&self) -> &str {
        self.variants.first().map(|v| v.name.as_str()).unwrap_or("")
    }

    /// Every run, with its variant.
    fn runs(&self) -> impl Iterator<Item = (&'a VariantSummary, &'a RunSummary)> {
        self.variants
            .iter()
            .flat_map(|v| v.runs.iter().map(move |r| (v, r)))
    }

    /// The runs whose figures cannot be trusted.
    fn invalid_runs(&self) -> impl Iterator<Item = (&'a VariantSummary, &'a RunSummary)> {
        self.runs().filter(|(_, r)| !r.invalid.is_empty())
    }

    /// The value of a metric for variant `i`. A state count that a variant's
    /// completed runs sampled but never saw counts as zero (as in
    /// [`metrics::compare`]); a variant without completed runs has none.
    fn value(&self, i: usize, metric: &str) -> Option<f64> {
        if !self.completed.get(i).copied().unwrap_or(false) {
            return None;
        }
        let metrics = self.metrics.get(i)?;
        if let Some(v) = metrics.get(metric) {
            return Some(*v);
        }
        let (side, source, _, stat) = names::state_metric(metric)?;
        metrics
            .keys()
            .filter_map(|k| names::state_metric(k))
            .any(|(sd, so, _, st)| (sd, so, st) == (side, source, stat))
            .then_some(0.0)
    }

    fn any_value(&self, metric: &str) -> bool {
        (0..self.variants.len()).any(|i| self.value(i, metric).is_some())
    }

    fn any_nonzero(&self, metric: &str) -> bool {
        (0..self.variants.len()).any(|i| self.value(i, metric).is_some_and(|v| v != 0.0))
    }

    /// The stored comparison of variant `i` (not the baseline) for a metric.
    fn comparison(&self, i: usize, metric: &str) -> Option<&'a Comparison> {
        if i == 0 {
            return None;
        }
        let variant = self.variants.get(i)?;
        self.summary
            .comparisons
            .iter()
            .find(|c| c.metric == metric && c.variant == variant.name)
    }

    /// Does any comparison have an interval, hence a real verdict?
    fn any_verdict(&self) -> bool {
        self.summary
            .comparisons
            .iter()
            .any(|c| c.verdict != Verdict::NeedsRepeats)
    }

    /// Whether to say once that verdicts need repeats: there are
    /// comparisons, and none of them has an interval.
    fn needs_repeats_note(&self) -> bool {
        !self.summary.comparisons.is_empty() && !self.any_verdict()
    }

    /// Statistics of a metric over variant `i`'s completed runs, as the
    /// comparisons computed them (so a state missing from some runs counts
    /// as zero there), else from the run values.
    fn stats(&self, i: usize, metric: &str) -> Option<Stats> {
        if !self.completed.get(i).copied().unwrap_or(false) {
            return None;
        }
        let stored = if i == 0 {
            let name = self.baseline_name();
            self.summary
                .comparisons
                .iter()
                .find(|c| c.metric == metric && c.baseline == name)
                .map(|c| c.baseline_stats)
        } else {
            self.comparison(i, metric).map(|c| c.stats)
        };
        stored.or_else(|| {
            self.values
                .get(i)?
                .get(metric)
                .filter(|v| !v.is_empty())
                .map(|v| statistics::describe(v))
        })
    }

    /// The change of variant `i` against the baseline, as (absolute, percent).
    fn change(&self, i: usize, metric: &str) -> Option<(f64, Option<f64>)> {
        let base = self.value(0, metric)?;
        let value = self.value(i, metric)?;
        Some(match self.comparison(i, metric) {
            Some(c) => (c.change, c.change_pct),
            None => (
                value - base,
                (base != 0.0).then(|| (value - base) / base * 100.0),
            ),
        })
    }

    fn value_cell(&self, i: usize, metric: &str) -> String {
        num_or_dash(self.value(i, metric))
    }

    /// `-4848 (-40.4%)`; with `with_ci` and an interval,
    /// `-4848 (-40.4% [-45.1%, -35.7%])`, or the interval in absolute terms
    /// when the baseline is zero: `+4011.5 (n/a) [+3900, +4123]`.
    fn change_cell(&self, i: usize, metric: &str, with_ci: bool) -> String {
        if i == 0 {
            return "baseline".into();
        }
        let Some((abs, pct)) = self.change(i, metric) else {
            return "—".into();
        };
        // An interval of a single point (every run gave the same figure)
        // says nothing the change does not.
        let c = self
            .comparison(i, metric)
            .filter(|c| with_ci && c.ci95.is_some_and(|[lo, hi]| lo != hi));
        match (c.and_then(|c| c.ci95_pct), c.and_then(|c| c.ci95)) {
            (Some([lo, hi]), _) => format!(
                "{} ({} [{}, {}])",
                signed(abs),
                percent(pct),
                percent(Some(lo)),
                percent(Some(hi))
            ),
            (None, Some([lo, hi])) => format!(
                "{} [{}, {}]",
                markdown::change(abs, pct),
                signed(lo),
                signed(hi)
            ),
            _ => markdown::change(abs, pct),
        }
    }

    fn verdict_cell(&self, i: usize, metric: &str) -> String {
        if i == 0 {
            return String::new();
        }
        self.comparison(i, metric)
            .filter(|_| self.value(i, metric).is_some())
            .map(|c| c.verdict.as_str().to_string())
            .unwrap_or_else(|| "—".into())
    }

    /// Median, min, max and standard deviation of variant `i`, when it has
    /// two runs or more; dashes otherwise.
    fn spread_cells(&self, i: usize, metric: &str) -> [String; 4] {
        match self.stats(i, metric) {
            Some(s) if s.n >= 2 => [num(s.median), num(s.min), num(s.max), num(s.stddev)],
            _ => ["—".into(), "—".into(), "—".into(), "—".into()],
        }
    }

    /// Whether some variant has two or more runs of any of these metrics.
    fn any_spread(&self, metrics: &[String]) -> bool {
        (0..self.variants.len()).any(|i| {
            metrics
                .iter()
                .any(|m| self.stats(i, m).is_some_and(|s| s.n >= 2))
        })
    }

    /// Whether some completed run sampled this source on this side.
    fn sampled(&self, source: Source, side: Side) -> bool {
        self.metrics.iter().any(|m| {
            m.keys()
                .filter_map(|k| names::state_metric(k))
                .any(|(sd, so, _, _)| (sd, so) == (side, source))
        })
    }

    /// The states recorded for a source and side, TIME_WAIT and ESTABLISHED
    /// first, the rest in name order.
    fn states(&self, source: Source, side: Side) -> Vec<String> {
        let mut rest = BTreeSet::new();
        for m in &self.metrics {
            for (sd, so, state, _) in m.keys().filter_map(|k| names::state_metric(k)) {
                if (sd, so) == (side, source) && !ALWAYS_SHOWN.contains(&state) {
                    rest.insert(state.to_string());
                }
            }
        }
        ALWAYS_SHOWN
            .iter()
            .map(|s| s.to_string())
            .chain(rest)
            .collect()
    }
}

/// A figure, or a dash when there is none.
fn num_or_dash(v: Option<f64>) -> String {
    v.map(num).unwrap_or_else(|| "—".into())
}

/// Why a run is invalid, on one line.
fn reasons(r: &RunSummary) -> String {
    r.invalid
        .iter()
        .map(|s| inline(s))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The runs flagged invalid, in a warning at the very top: every figure
/// below that includes them is suspect.
fn invalid_warning(out: &mut String, view: &View) {
    let runs: Vec<_> = view.invalid_runs().collect();
    if runs.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "> [!WARNING]\n> **{} invalid**: {} figures cannot be trusted, nor the means below that include them.\n>",
        match runs.len() {
            1 => "1 run is".to_string(),
            n => format!("{n} runs are"),
        },
        if runs.len() == 1 { "its" } else { "their" }
    );
    for (v, r) in runs {
        let _ = writeln!(
            out,
            "> - {} repeat {} ({}): {}",
            code(&v.name),
            r.repeat,
            code(&r.run_id),
            reasons(r)
        );
    }
    out.push('\n');
}

fn what_ran(out: &mut String, view: &View) {
    let info = &view.summary.info;
    out.push_str("## What ran\n\n");
    if let Some(d) = info.description.as_deref().filter(|d| !d.trim().is_empty()) {
        for line in d.trim().lines() {
            let _ = writeln!(out, "> {}", line.trim_end());
        }
        out.push('\n');
    }
    let repeats: BTreeSet<usize> = view.variants.iter().map(|v| v.runs.len()).collect();
    let runs = match (repeats.len(), repeats.iter().next()) {
        (1, Some(n)) => format!("{n} run{} each", if *n == 1 { "" } else { "s" }),
        _ => "runs per variant differ, see Runs".to_string(),
    };
    let mut fields = vec![
        ("Scenario file", code(&info.scenario_file)),
        ("Started", inline(&info.started_at)),
        ("Finished", inline(&info.finished_at)),
        ("Kernel", inline(&info.kernel)),
        ("twlab", inline(&info.twlab_version)),
        ("Lab", inline(&info.lab)),
        ("Server", inline(&info.server)),
        ("Client", inline(&info.client)),
        ("Endpoint", code(&info.endpoint)),
        (
            "Variants",
            format!(
                "{} ({runs}); baseline {}",
                view.variants.len(),
                code(view.baseline_name())
            ),
        ),
    ];
    if !info.order.trim().is_empty() {
        fields.push(("Order", inline(&info.order)));
    }
    fields.push((
        "Complete",
        if info.complete {
            "yes".to_string()
        } else {
            "**no**: not every planned run completed (see Runs)".to_string()
        },
    ));
    let invalid = view.invalid_runs().count();
    if invalid > 0 {
        fields.push((
            "Invalid runs",
            format!("**{invalid}** (see the warning above)"),
        ));
    }
    let expectations = &view.summary.expectations;
    if !expectations.is_empty() {
        let failed = expectations.iter().filter(|e| !e.passed).count();
        fields.push((
            "Expectations",
            if failed == 0 {
                format!("all {} held", expectations.len())
            } else {
                format!(
                    "**{failed} of {} failed** (see Expectations)",
                    expectations.len()
                )
            },
        ));
    }
    for (name, value) in fields {
        let _ = writeln!(out, "- **{name}:** {value}");
    }
    out.push('\n');
    if !info.notes.is_empty() {
        out.push_str("Notes:\n\n");
        for note in &info.notes {
            let _ = writeln!(out, "- {}", inline(note));
        }
        out.push('\n');
    }
}

fn variants_table(out: &mut String, view: &View) {
    out.push_str("## Variants\n\nThe sysctls each variant set before its runs; the first variant is the baseline.\n\n");
    let mut rows = Vec::new();
    for (i, v) in view.variants.iter().enumerate() {
        let name = variant_label(v, i);
        let mut any = false;
        for side in Side::BOTH {
            for (sysctl, value) in v.sysctls.for_side(side) {
                any = true;
                rows.push(vec![
                    name.clone(),
                    side.to_string(),
                    code(sysctl.as_str()),
                    code(&value.normalized()),
                ]);
            }
        }
        if !any {
            rows.push(vec![
                name,
                "—".into(),
                "(kernel defaults)".into(),
                "—".into(),
            ]);
        }
    }
    out.push_str(&markdown::table(
        &["variant", "role", "sysctl", "value"],
        rows,
        &[0, 1, 2, 3],
    ));
}

fn variant_label(v: &VariantSummary, i: usize) -> String {
    if i == 0 {
        format!("{} (baseline)", code(&v.name))
    } else {
        code(&v.name)
    }
}

fn at_a_glance(out: &mut String, view: &View) {
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

fn expectations(out: &mut String, summary: &Summary) {
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

fn charts(out: &mut String, summary: &Summary) {
    if summary.charts.is_empty() {
        return;
    }
    out.push_str(
        "## Charts\n\nCounts over time for the server endpoint, one line per run; \
         the repeats of a variant share its colour.\n\n",
    );
    for c in &summary.charts {
        let _ = writeln!(out, "![{}]({})\n", alt_text(&c.title), link_target(&c.path));
    }
}

/// Image alt text: one line, brackets escaped.
fn alt_text(s: &str) -> String {
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
fn link_target(path: &str) -> String {
    if path
        .chars()
        .any(|c| c.is_whitespace() || "()<>".contains(c))
    {
        format!("<{}>", path.replace('<', "%3C").replace('>', "%3E"))
    } else {
        path.to_string()
    }
}

fn state_tables(out: &mut String, view: &View) {
    let steady: BTreeSet<String> = view
        .runs()
        .filter(|(_, r)| r.error.is_none())
        .map(|(_, r)| num(r.steady_from_secs))
        .collect();
    let steady = match (steady.len(), steady.iter().next()) {
        (1, Some(s)) => format!("from {s} s into the load"),
        _ => "over the steady part of each run".to_string(),
    };
    let _ = write!(
        out,
        "## TCP states for the server endpoint\n\n\
         TCP sockets and conntrack entries whose endpoint is the server's, \
         per side and state. *steady mean* is the mean count {steady}, *peak* the highest \
         sample, *final* the snapshot taken right after the client stopped. A variant's \
         value is the mean over its completed runs. *change* is against the baseline {} \
         (absolute, then percent of the baseline",
        code(view.baseline_name())
    );
    if view.any_verdict() {
        out.push_str(", with the 95% interval of the percent change in brackets");
    }
    out.push_str(").");
    let all_metrics: Vec<String> = view
        .metrics
        .iter()
        .flat_map(|m| m.keys().cloned())
        .filter(|k| names::state_metric(k).is_some())
        .collect();
    if view.any_spread(&all_metrics) {
        out.push_str(
            " With two or more runs, *median*, *min*, *max* and *sd* (sample standard \
             deviation) describe the spread of a variant's runs.",
        );
    }
    out.push_str("\n\n");
    let verdicts = view.any_verdict();
    let mut missing = Vec::new();
    for source in SOURCES {
        for side in Side::BOTH {
            if !view.sampled(source, side) {
                missing.push(format!("{} on the {side}", source.as_str()));
                continue;
            }
            for state in view.states(source, side) {
                let base = format!("{side}.{}.{state}", source.as_str());
                let metrics: Vec<String> =
                    STATS.iter().map(|(s, _)| format!("{base}.{s}")).collect();
                let shown = ALWAYS_SHOWN.contains(&state.as_str())
                    || metrics.iter().any(|m| view.any_nonzero(m));
                if !shown {
                    continue;
                }
                let _ = writeln!(out, "### {} on the {side}: {state}\n", source_title(source));
                let spread = view.any_spread(&metrics);
                let mut header = vec!["statistic", "variant"];
                header.push(if spread { "mean" } else { "value" });
                if spread {
                    header.extend(["median", "min", "max", "sd"]);
                }
                header.push("change");
                if verdicts {
                    header.push("verdict");
                }
                let mut rows = Vec::new();
                for ((_, label), metric) in STATS.iter().zip(&metrics) {
                    for (i, v) in view.variants.iter().enumerate() {
                        let mut row = vec![label.to_string(), variant_label(v, i)];
                        row.push(view.value_cell(i, metric));
                        if spread {
                            row.extend(view.spread_cells(i, metric));
                        }
                        row.push(view.change_cell(i, metric, true));
                        if verdicts {
                            row.push(view.verdict_cell(i, metric));
                        }
                        rows.push(row);
                    }
                }
                let left = if verdicts {
                    vec![0, 1, header.len() - 1]
                } else {
                    vec![0, 1]
                };
                out.push_str(&markdown::table(&header, rows, &left));
            }
        }
    }
    if !missing.is_empty() {
        let _ = writeln!(
            out,
            "No counts were recorded for {} (not collected, or nothing seen for the endpoint).\n",
            missing.join(", ")
        );
    }
}

fn source_title(source: Source) -> &'static str {
    match source {
        Source::Sockets => "Sockets",
        Source::Conntrack => "conntrack",
    }
}

/// Client figures of a variant: means over its completed runs with a client.
#[derive(Default)]
struct ClientAgg {
    runs: u32,
    tools: BTreeSet<String>,
    requests: f64,
    requests_per_sec: f64,
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
    connect: f64,
    read: f64,
    write: f64,
    timeout: f64,
    non_2xx_3xx: f64,
    connections_opened: Option<f64>,
    cpu_secs: Option<f64>,
    by_errno: Option<BTreeMap<String, f64>>,
}

impl ClientAgg {
    fn of(v: &VariantSummary) -> Self {
        let mut a = ClientAgg::default();
        let clients: Vec<_> = v
            .runs
            .iter()
            .filter(|r| r.error.is_none())
            .filter_map(|r| r.client.as_ref())
            .collect();
        for c in &clients {
            a.runs += 1;
            a.tools.insert(c.tool.clone());
            a.requests += c.requests as f64;
            a.requests_per_sec += c.requests_per_sec;
            a.p50 += c.latency.p50_ms;
            a.p90 += c.latency.p90_ms;
            a.p99 += c.latency.p99_ms;
            a.max += c.latency.max_ms;
            a.connect += c.errors.connect as f64;
            a.read += c.errors.read as f64;
            a.write += c.errors.write as f64;
            a.timeout += c.errors.timeout as f64;
            a.non_2xx_3xx += c.non_2xx_3xx as f64;
        }
        let n = f64::from(a.runs.max(1));
        for f in [
            &mut a.requests,
            &mut a.requests_per_sec,
            &mut a.p50,
            &mut a.p90,
            &mut a.p99,
            &mut a.max,
            &mut a.connect,
            &mut a.read,
            &mut a.write,
            &mut a.timeout,
            &mut a.non_2xx_3xx,
        ] {
            *f /= n;
        }
        let opened: Vec<u64> = clients
            .iter()
            .filter_map(|c| c.connections_opened)
            .collect();
        if !opened.is_empty() && opened.len() == clients.len() {
            a.connections_opened = Some(opened.iter().sum::<u64>() as f64 / n);
        }
        let cpu: Vec<f64> = clients.iter().filter_map(|c| c.cpu_secs).collect();
        if !cpu.is_empty() {
            a.cpu_secs = Some(cpu.iter().sum::<f64>() / cpu.len() as f64);
        }
        let errnos: Vec<&Counts> = clients
            .iter()
            .filter_map(|c| c.errors.connect_by_errno.as_ref())
            .collect();
        if !errnos.is_empty() {
            let mut sums: BTreeMap<String, f64> = BTreeMap::new();
            for counts in errnos {
                for (errno, k) in counts {
                    *sums.entry(errno.clone()).or_insert(0.0) += *k as f64;
                }
            }
            a.by_errno = Some(sums.into_iter().map(|(e, s)| (e, s / n)).collect());
        }
        a
    }
}

fn client_tables(out: &mut String, view: &View) {
    out.push_str("## Client: throughput, latency and errors\n\n");
    let aggs: Vec<ClientAgg> = view.variants.iter().map(ClientAgg::of).collect();
    if aggs.iter().all(|a| a.runs == 0) {
        out.push_str("No completed run reported client figures.\n\n");
        return;
    }
    out.push_str(
        "Means over each variant's completed runs; latency in milliseconds, of completed requests",
    );
    let show_cpu = aggs.iter().any(|a| a.cpu_secs.is_some());
    if show_cpu {
        out.push_str("; *CPU s* is the CPU time the load generator used (user + system)");
    }
    out.push_str(".\n\n");
    let verdicts = view.any_verdict();
    let show_opened = aggs.iter().any(|a| a.connections_opened.is_some());
    let mut header = vec!["variant", "tool", "requests", "req/s", "change"];
    if verdicts {
        header.push("verdict");
    }
    if show_opened {
        header.push("connections opened");
    }
    header.extend(["p50 ms", "p90 ms", "p99 ms", "max ms"]);
    if show_cpu {
        header.push("CPU s");
    }
    let rows = client_rows(
        view,
        &aggs,
        header.len(),
        Some("no completed run"),
        |i, a| {
            let mut row = vec![
                a.tools.iter().cloned().collect::<Vec<_>>().join(", "),
                num(a.requests),
                num(a.requests_per_sec),
                view.change_cell(i, "client.requests_per_sec", true),
            ];
            if verdicts {
                row.push(view.verdict_cell(i, "client.requests_per_sec"));
            }
            if show_opened {
                row.push(num_or_dash(a.connections_opened));
            }
            row.extend([num(a.p50), num(a.p90), num(a.p99), num(a.max)]);
            if show_cpu {
                row.push(num_or_dash(a.cpu_secs));
            }
            row
        },
    );
    let left = if verdicts { vec![0, 1, 5] } else { vec![0, 1] };
    out.push_str(&markdown::table(&header, rows, &left));

    client_spread(out, view);

    let show_errno = aggs
        .iter()
        .any(|a| a.by_errno.as_ref().is_some_and(|m| !m.is_empty()));
    let mut header = vec![
        "variant",
        "connect",
        "read",
        "write",
        "timeout",
        "non-2xx/3xx",
    ];
    if show_errno {
        header.push("connect errors by errno");
    }
    let rows = client_rows(view, &aggs, header.len(), None, |_, a| {
        let mut row = vec![
            num(a.connect),
            num(a.read),
            num(a.write),
            num(a.timeout),
            num(a.non_2xx_3xx),
        ];
        if show_errno {
            row.push(match &a.by_errno {
                Some(m) if !m.is_empty() => m
                    .iter()
                    .map(|(e, n)| format!("{e} {}", num(*n)))
                    .collect::<Vec<_>>()
                    .join(", "),
                Some(_) => "none".into(),
                None => "not reported".into(),
            });
        }
        row
    });
    out.push_str("Errors (socket errors as wrk splits them, and responses that were neither 2xx nor 3xx):\n\n");
    let mut left = vec![0];
    if show_errno {
        left.push(header.len() - 1);
    }
    out.push_str(&markdown::table(&header, rows, &left));

    // The same note on several runs is listed once, with the runs it concerns.
    let mut notes: Vec<(&str, RunsByVariant)> = Vec::new();
    for (v, r) in view.runs() {
        for note in r.client.iter().flat_map(|c| c.notes.iter()) {
            let pos = match notes.iter().position(|(n, _)| *n == note.as_str()) {
                Some(p) => p,
                None => {
                    notes.push((note.as_str(), Vec::new()));
                    notes.len() - 1
                }
            };
            let runs = &mut notes[pos].1;
            match runs.iter_mut().find(|(name, _)| *name == v.name.as_str()) {
                Some((_, repeats)) => repeats.push(r.repeat),
                None => runs.push((v.name.as_str(), vec![r.repeat])),
            }
        }
    }
    if !notes.is_empty() {
        out.push_str("### Client notes\n\n");
        for (note, runs) in notes {
            let runs: Vec<String> = runs
                .iter()
                .map(|(name, repeats)| {
                    let list: Vec<String> = repeats.iter().map(u32::to_string).collect();
                    let word = if repeats.len() == 1 {
                        "repeat"
                    } else {
                        "repeats"
                    };
                    format!("{} {word} {}", code(name), list.join(", "))
                })
                .collect();
            let _ = writeln!(out, "- {}: {}", runs.join("; "), inline(note));
        }
        out.push('\n');
    }
}

/// A row of `width` cells per variant of a client table: the variant, then
/// `cells` of its client figures; a variant without completed runs gets
/// `empty` (when given), then dashes.
fn client_rows(
    view: &View,
    aggs: &[ClientAgg],
    width: usize,
    empty: Option<&str>,
    cells: impl Fn(usize, &ClientAgg) -> Vec<String>,
) -> Vec<Vec<String>> {
    aggs.iter()
        .enumerate()
        .map(|(i, a)| {
            let mut row = vec![variant_label(&view.variants[i], i)];
            if a.runs == 0 {
                row.extend(empty.map(str::to_string));
                row.resize(width, "—".into());
            } else {
                row.extend(cells(i, a));
            }
            row
        })
        .collect()
}

/// How the client's key figures spread over the runs of each variant that
/// has two or more.
fn client_spread(out: &mut String, view: &View) {
    let metrics: Vec<(&str, &str)> = [
        ("req/s", "client.requests_per_sec"),
        ("latency p50 (ms)", "client.latency.p50_ms"),
        ("latency p99 (ms)", "client.latency.p99_ms"),
        ("client errors", "client.errors"),
        ("connections opened", "client.connections_opened"),
    ]
    .into_iter()
    .filter(|(_, m)| view.any_value(m))
    .collect();
    let mut rows = Vec::new();
    for (label, metric) in &metrics {
        for (i, v) in view.variants.iter().enumerate() {
            let Some(s) = view.stats(i, metric).filter(|s| s.n >= 2) else {
                continue;
            };
            rows.push(vec![
                label.to_string(),
                variant_label(v, i),
                s.n.to_string(),
                num(s.mean),
                num(s.median),
                num(s.min),
                num(s.max),
                num(s.stddev),
            ]);
        }
    }
    if rows.is_empty() {
        return;
    }
    out.push_str("Spread over the runs of each variant with two or more:\n\n");
    out.push_str(&markdown::table(
        &[
            "metric", "variant", "runs", "mean", "median", "min", "max", "sd",
        ],
        rows,
        &[0, 1],
    ));
}

/// Repeat numbers by variant name, in run order.
type RunsByVariant<'a> = Vec<(&'a str, Vec<u32>)>;

fn runs_section(out: &mut String, view: &View) {
    let repeated = view.variants.iter().any(|v| v.runs.len() > 1);
    let troubled = view
        .runs()
        .any(|(_, r)| r.error.is_some() || r.interrupted || !r.invalid.is_empty());
    let not_run: Vec<&VariantSummary> =
        view.variants.iter().filter(|v| v.runs.is_empty()).collect();
    if !repeated && !troubled && not_run.is_empty() && view.summary.info.complete {
        return;
    }
    out.push_str(
        "## Runs\n\nEvery run on its own. Failed runs are left out of the figures above; \
         interrupted runs are in, with figures covering only the time they ran.\n\n",
    );
    let show_cpu = view
        .runs()
        .any(|(_, r)| r.client.as_ref().is_some_and(|c| c.cpu_secs.is_some()));
    let metric_of = |r: &RunSummary, side: Side| {
        num_or_dash(r.sockets.get(side).steady_mean.get("TIME_WAIT").copied())
    };
    let rows = view
        .runs()
        .map(|(v, r)| {
            let mut status = Vec::new();
            if r.error.is_some() {
                status.push("**failed**");
            }
            if r.interrupted {
                status.push("interrupted");
            }
            if !r.invalid.is_empty() {
                status.push("**invalid**");
            }
            if status.is_empty() {
                status.push("ok");
            }
            let client = r.client.as_ref();
            let mut row = vec![
                code(&v.name),
                r.repeat.to_string(),
                code(&r.run_id),
                status.join(", "),
                num_or_dash(client.map(|c| c.requests as f64)),
                num_or_dash(client.map(|c| c.requests_per_sec)),
                num_or_dash(client.map(|c| c.errors.total() as f64)),
            ];
            if show_cpu {
                row.push(num_or_dash(client.and_then(|c| c.cpu_secs)));
            }
            row.push(metric_of(r, Side::Server));
            row.push(metric_of(r, Side::Client));
            row
        })
        .collect();
    let mut header = vec![
        "variant",
        "repeat",
        "run",
        "status",
        "requests",
        "req/s",
        "client errors",
    ];
    if show_cpu {
        header.push("client CPU s");
    }
    header.extend([
        "server TIME_WAIT (steady mean)",
        "client TIME_WAIT (steady mean)",
    ]);
    out.push_str(&markdown::table(&header, rows, &[0, 1, 2, 3]));
    for v in not_run {
        let _ = writeln!(out, "- {} did not run.\n", code(&v.name));
    }
    for (v, r) in view.runs() {
        if let Some(err) = &r.error {
            let _ = write!(
                out,
                "**{} repeat {} ({}) failed:**\n\n{}",
                code(&v.name),
                r.repeat,
                code(&r.run_id),
                fenced("text", err)
            );
        }
    }
}

fn reproduce(out: &mut String, command: &str) {
    out.push_str("## Reproduce\n\n");
    if command.trim().is_empty() {
        out.push_str("The command was not recorded.\n");
    } else {
        out.push_str(&fenced("sh", command));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::counts::{ClientStats, ErrorCounts, Latency};
    use crate::results;
    use crate::results::{BySide, RunInfo, StateStats};
    use crate::scenario::{RoleSysctls, SysctlName, SysctlValue};

    fn counts(pairs: &[(&str, u64)]) -> Counts {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    /// State stats with the same states for final, peak and steady mean.
    fn states(rows: &[(&str, u64, u64, f64)]) -> StateStats {
        StateStats {
            final_: rows
                .iter()
                .map(|(s, f, _, _)| (s.to_string(), *f))
                .collect(),
            peak: rows
                .iter()
                .map(|(s, _, p, _)| (s.to_string(), *p))
                .collect(),
            steady_mean: rows
                .iter()
                .map(|(s, _, _, m)| (s.to_string(), *m))
                .collect(),
        }
    }

    fn sysctls(client: &[(&str, &str)], server: &[(&str, &str)]) -> RoleSysctls {
        let map = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (SysctlName::parse(k).unwrap(), SysctlValue(v.to_string())))
                .collect()
        };
        RoleSysctls {
            client: map(client),
            server: map(server),
        }
    }

    fn builtin_client(requests: u64, rps: f64, p50: f64, p99: f64) -> ClientStats {
        ClientStats {
            tool: "builtin".into(),
            duration_secs: 90.0,
            requests,
            requests_per_sec: rps,
            responses_by_class: Some(counts(&[("4xx", requests)])),
            non_2xx_3xx: requests,
            connections_opened: Some(requests / 100),
            errors: ErrorCounts {
                connect: 0,
                connect_by_errno: Some(Counts::new()),
                read: 0,
                write: 0,
                timeout: 0,
            },
            latency: Latency {
                mean_ms: p50 * 1.1,
                p50_ms: p50,
                p75_ms: Some(p50 * 1.3),
                p90_ms: p50 * 1.8,
                p99_ms: p99,
                max_ms: p99 * 4.0,
            },
            cpu_secs: None,
            notes: vec![],
        }
    }

    fn info(complete: bool) -> RunInfo {
        RunInfo {
            scenario_file: "scenarios/tw_reuse.yaml".into(),
            description: Some(
                "How many TIME_WAIT sockets and conntrack entries pile up on each side when a\n\
                 Tomcat-like server closes keep-alive connections after 100 requests, with\n\
                 net.ipv4.tcp_tw_reuse off and on."
                    .into(),
            ),
            started_at: "2025-11-25T18:50:02Z".into(),
            finished_at: "2025-11-25T18:54:41Z".into(),
            kernel: "Linux 6.1.0-27-amd64".into(),
            twlab_version: "0.1.0".into(),
            lab: "embedded: network namespaces joined by a veth pair".into(),
            server: "builtin (Tomcat-like, maxKeepAliveRequests 100) on 10.77.0.1:8080".into(),
            client: "builtin, 100 connections, 2 threads, 90s, GET /abc, timeout 2s".into(),
            endpoint: "10.77.0.1:8080".into(),
            command: "sudo twlab run scenarios/tw_reuse.yaml --out runs".into(),
            complete,
            order: "interleaved".into(),
            notes: vec![
                "conntrack keeps TCP TIME_WAIT entries for 120 s (nf_conntrack_tcp_timeout_time_wait), twice the socket TIME_WAIT.".into(),
            ],
        }
    }

    fn run(
        run_id: &str,
        repeat: u32,
        client: Option<ClientStats>,
        server_tw: (u64, u64, f64),
        client_tw: (u64, u64, f64),
        ct_tw: (u64, u64, f64),
    ) -> RunSummary {
        RunSummary {
            run_id: run_id.into(),
            repeat,
            client,
            sockets: BySide {
                server: states(&[
                    ("TIME_WAIT", server_tw.0, server_tw.1, server_tw.2),
                    ("ESTABLISHED", 0, 100, 99.6),
                    ("FIN_WAIT2", 0, 3, 0.4),
                    ("SYN_RECV", 0, 0, 0.0),
                ]),
                client: states(&[
                    ("TIME_WAIT", client_tw.0, client_tw.1, client_tw.2),
                    ("ESTABLISHED", 0, 100, 99.7),
                    ("CLOSE_WAIT", 0, 2, 0.21),
                ]),
            },
            conntrack: BySide {
                server: states(&[
                    ("TIME_WAIT", ct_tw.0, ct_tw.1, ct_tw.2),
                    ("ESTABLISHED", 100, 100, 100.0),
                ]),
                client: states(&[
                    ("TIME_WAIT", ct_tw.0 + 4, ct_tw.1 + 4, ct_tw.2 + 3.5),
                    ("ESTABLISHED", 100, 100, 100.0),
                ]),
            },
            samples: 91,
            steady_from_secs: 60.0,
            collected: None,
            steady_samples: None,
            interrupted: false,
            error: None,
            invalid: vec![],
        }
    }

    fn two_variants() -> Summary {
        let variants = vec![
            VariantSummary {
                name: "reuse-off".into(),
                sysctls: sysctls(
                    &[("net.ipv4.tcp_tw_reuse", "0")],
                    &[("net.ipv4.tcp_tw_reuse", "0")],
                ),
                runs: vec![run(
                    "reuse-off-1",
                    1,
                    Some(builtin_client(1_800_512, 20005.69, 4.61, 12.4)),
                    (12000, 12110, 11873.42),
                    (0, 0, 0.0),
                    (23811, 23902, 23788.5),
                )],
            },
            VariantSummary {
                name: "reuse-on".into(),
                sysctls: sysctls(
                    &[
                        ("net.ipv4.tcp_tw_reuse", "1"),
                        ("net.ipv4.ip_local_port_range", "32768\t60999"),
                    ],
                    &[],
                ),
                runs: vec![run(
                    "reuse-on-1",
                    1,
                    Some(builtin_client(1_854_540, 20606.0, 4.48, 11.9)),
                    (7152, 7160, 7025.4),
                    (0, 0, 0.0),
                    (23900, 24010, 23850.0),
                )],
            },
        ];
        summary(variants, true)
    }

    fn summary(variants: Vec<VariantSummary>, complete: bool) -> Summary {
        Summary {
            scenario: "tw_reuse".into(),
            info: info(complete),
            comparisons: metrics::compare(&variants),
            variants,
            expectations: vec![],
            charts: vec![],
        }
    }

    /// For each summary, a test of its markdown and one of its terminal
    /// rendering, each against the snapshot named after the test.
    macro_rules! snapshot_tests {
        ($($summary:ident: $markdown:ident, $terminal:ident;)*) => {$(
            #[test]
            fn $markdown() {
                insta::assert_snapshot!(render_markdown(&$summary()));
            }

            #[test]
            fn $terminal() {
                insta::assert_snapshot!(render_terminal(&$summary()));
            }
        )*};
    }

    snapshot_tests! {
        two_variants: two_variants_markdown, two_variants_terminal;
        with_failed_run: failed_run_markdown, failed_run_terminal;
        zero_baseline: zero_baseline_markdown, zero_baseline_terminal;
        repeat_three: repeat_three_markdown, repeat_three_terminal;
        flagged: flagged_markdown, flagged_terminal;
    }

    #[test]
    fn the_change_against_the_baseline_is_in_the_state_table() {
        let md = render_markdown(&two_variants());
        assert!(md.contains("| `reuse-on`"), "{md}");
        assert!(md.contains("-4848 (-40.4%)"), "{md}");
        // FIN_WAIT2 is non-zero somewhere, SYN_RECV never is.
        assert!(md.contains("### Sockets on the server: FIN_WAIT2"), "{md}");
        assert!(!md.contains("SYN_RECV"), "{md}");
    }

    /// Two repeats; the second of `reuse-on` failed, and wrk lost slots.
    fn with_failed_run() -> Summary {
        let mut s = two_variants();
        for v in &mut s.variants {
            let mut second = v.runs[0].clone();
            second.repeat = 2;
            second.run_id = format!("{}-2", v.name);
            v.runs.push(second);
        }
        let wrk = ClientStats {
            tool: "wrk".into(),
            duration_secs: 90.02,
            requests: 1_402_311,
            requests_per_sec: 15578.2,
            responses_by_class: None,
            non_2xx_3xx: 1_402_311,
            connections_opened: None,
            errors: ErrorCounts {
                connect: 37,
                connect_by_errno: None,
                read: 0,
                write: 0,
                timeout: 2,
            },
            latency: Latency {
                mean_ms: 5.12,
                p50_ms: 4.71,
                p75_ms: Some(5.9),
                p90_ms: 7.73,
                p99_ms: 14.05,
                max_ms: 210.33,
            },
            cpu_secs: None,
            notes: vec!["wrk reported 37 connect errors. wrk drops a connection slot for good when connect() fails, so under local port exhaustion (EADDRNOTAVAIL) the run stalls with fewer live connections (up to 37 of its 100 connections lost) — unlike twlab's builtin client, which retries; its throughput is not comparable with a run without connect errors.".into()],
        };
        for v in &mut s.variants {
            for r in &mut v.runs {
                r.client = Some(wrk.clone());
            }
        }
        let interrupted = &mut s.variants[1].runs[0];
        interrupted.interrupted = true;
        if let Some(c) = interrupted.client.as_mut() {
            c.duration_secs = 41.37;
            c.requests = 702_118;
            c.requests_per_sec = 16971.67;
            c.errors.connect = 0;
            c.errors.timeout = 0;
            c.non_2xx_3xx = 702_118;
            c.notes.clear();
        }
        let failed = &mut s.variants[1].runs[1];
        failed.client = None;
        failed.sockets = BySide::default();
        failed.conntrack = BySide::default();
        failed.samples = 0;
        failed.error = Some(
            "the server exited early (status 101) while the load ran: `ip netns exec twlab-srv twlab serve --port 8080`\nstderr:\nthread 'main' panicked at src/server/builtin.rs:88: too many open files | ulimit -n 1024".into(),
        );
        s.info.complete = false;
        s.info.client = "wrk, 100 connections, 2 threads, 90s, GET /abc, timeout 2s".into();
        s.info
            .notes
            .push("The run was interrupted by SIGINT during reuse-on repeat 1.".into());
        s.comparisons = metrics::compare(&s.variants);
        s
    }

    /// The client closes first: no client TIME_WAIT in the baseline, some with
    /// the variant, so percentages against the baseline are n/a.
    fn zero_baseline() -> Summary {
        let mut s = two_variants();
        let on = &mut s.variants[1].runs[0].sockets.client;
        *on = states(&[
            ("TIME_WAIT", 3980, 4102, 4011.5),
            ("ESTABLISHED", 0, 100, 99.7),
        ]);
        s.comparisons = metrics::compare(&s.variants);
        s
    }

    #[test]
    fn a_zero_baseline_has_a_change_without_a_percent() {
        let md = render_markdown(&zero_baseline());
        assert!(md.contains("+4011.5 (n/a)"), "{md}");
    }

    #[test]
    fn a_variant_without_completed_runs_has_no_figures() {
        let mut s = two_variants();
        s.variants[1].runs[0].error = Some("the lab could not be built".into());
        s.info.complete = false;
        s.comparisons = metrics::compare(&s.variants);
        let md = render_markdown(&s);
        assert!(
            // Server TIME_WAIT of `reuse-on`: no value, no change.
            md.contains("| steady mean | `reuse-on`             |        — |        — |"),
            "{md}"
        );
        assert!(
            md.contains("| `reuse-on`             | no completed run |"),
            "{md}"
        );
        assert!(
            md.contains("```text\nthe lab could not be built\n```"),
            "{md}"
        );
        let term = render_terminal(&s);
        assert!(term.contains("1 run failed"), "{term}");
    }

    #[test]
    fn one_run_each_says_needs_repeats_once() {
        let md = render_markdown(&two_variants());
        assert_eq!(md.matches("needs repeats").count(), 1, "{md}");
        assert!(!md.contains("verdict |"), "{md}");
        assert!(!md.contains('['), "no interval without repeats: {md}");
        let term = render_terminal(&two_variants());
        assert_eq!(term.matches("needs repeats").count(), 1, "{term}");
    }

    /// Three runs of each variant: reuse-on clearly lowers the server's
    /// TIME_WAIT, conntrack barely moves, throughput is noise.
    fn repeat_three() -> Summary {
        let mut s = two_variants();
        let off = [
            (12000, 12110, 11873.42, 23811, 20005.69, 12.4),
            (12410, 12530, 12281.0, 23650, 19870.12, 12.9),
            (11790, 11905, 11702.5, 23920, 20110.4, 12.1),
        ];
        let on = [
            (7152, 7160, 7025.4, 23900, 20606.0, 11.9),
            (7388, 7420, 7301.25, 23710, 19790.55, 12.6),
            (6990, 7012, 6911.0, 23805, 20230.1, 12.2),
        ];
        for (v, figures) in s.variants.iter_mut().zip([off, on]) {
            v.runs = figures
                .iter()
                .enumerate()
                .map(|(k, (fin, peak, mean, ct, rps, p99))| {
                    let repeat = k as u32 + 1;
                    run(
                        &format!("{}-{repeat}", v.name),
                        repeat,
                        Some(builtin_client((rps * 90.0) as u64, *rps, 4.5, *p99)),
                        (*fin, *peak, *mean),
                        (0, 0, 0.0),
                        (*ct, ct + 91, *ct as f64 - 22.5),
                    )
                })
                .collect();
        }
        s.comparisons = metrics::compare(&s.variants);
        s
    }

    #[test]
    fn repeats_give_intervals_verdicts_and_spread() {
        let md = render_markdown(&repeat_three());
        assert!(!md.contains("repeat ≥ 2 gives verdicts"), "{md}");
        let glance = md
            .lines()
            .find(|l| l.starts_with("| server sockets TIME_WAIT (steady mean)"))
            .unwrap_or_default();
        assert!(glance.contains("(-40.8% ["), "{glance}");
        assert!(glance.contains("| better"), "{glance}");
        let rps = md
            .lines()
            .find(|l| l.starts_with("| requests/s"))
            .unwrap_or_default();
        assert!(rps.contains("no clear change"), "{rps}");
        assert!(md.contains("| statistic   | variant"), "{md}");
        assert!(md.contains("| median |"), "{md}");
        assert!(md.contains("Spread over the runs"), "{md}");
        let term = render_terminal(&repeat_three());
        assert!(term.contains("verdict"), "{term}");
        assert!(
            !term.contains('['),
            "the terminal keeps changes short: {term}"
        );
    }

    /// Repeats with two failed expectations, an invalid run, charts, client
    /// CPU time and a randomized order.
    fn flagged() -> Summary {
        let mut s = repeat_three();
        s.info.order = "randomized (seed 42)".into();
        for (v, cpu) in s.variants.iter_mut().zip([58.25, 61.5]) {
            for (k, r) in v.runs.iter_mut().enumerate() {
                if let Some(c) = r.client.as_mut() {
                    c.cpu_secs = Some(cpu + k as f64);
                }
            }
        }
        s.variants[1].runs[1].invalid = vec![
            "the load generator was CPU-bound (1.97 of 2 cores busy): the server was not the bottleneck".into(),
            "the client ran out of local ports (EADDRNOTAVAIL on 1204 connects)".into(),
        ];
        s.expectations = vec![
            results::Expectation {
                text: "server.sockets.TIME_WAIT steady_mean of reuse-on: change <= -20% (95% confidence)".into(),
                passed: true,
                detail: "change -40.5%, 95% CI [-44.1%, -36.9%] over 3 run(s)".into(),
            },
            results::Expectation {
                text: "server.conntrack.TIME_WAIT steady_mean of reuse-on: change <= -20%".into(),
                passed: false,
                detail: "change +0.1% (mean of 3 run(s))".into(),
            },
            results::Expectation {
                text: "client.requests_per_sec of reuse-on: value >= 25000".into(),
                passed: false,
                detail: "value +20208.9 (mean of 3 run(s))".into(),
            },
        ];
        s.charts = vec![
            results::Chart {
                title: "TIME_WAIT sockets on the server".into(),
                path: "charts/server-sockets-TIME_WAIT.svg".into(),
            },
            results::Chart {
                title: "TIME_WAIT conntrack entries on the server".into(),
                path: "charts/server-conntrack-TIME_WAIT.svg".into(),
            },
        ];
        s.comparisons = metrics::compare(&s.variants);
        s
    }

    #[test]
    fn flags_come_first_and_charts_are_embedded() {
        let md = render_markdown(&flagged());
        let at = |needle: &str| {
            md.find(needle)
                .unwrap_or_else(|| panic!("no {needle:?} in\n{md}"))
        };
        assert!(at("> [!WARNING]") < at("## What ran"), "{md}");
        assert!(md.contains("**1 run is invalid**"), "{md}");
        assert!(md.contains("- **Expectations:** **2 of 3 failed**"), "{md}");
        assert!(md.contains("- **Order:** randomized (seed 42)"), "{md}");
        assert!(at("## At a glance") < at("## Expectations"), "{md}");
        assert!(at("## Expectations") < at("## Charts"), "{md}");
        assert!(at("## Charts") < at("## TCP states"), "{md}");
        assert!(
            md.contains(
                "- ❌ `client.requests_per_sec of reuse-on: value >= 25000`: value +20208.9"
            ),
            "{md}"
        );
        assert!(md.contains("- ✅ `server.sockets.TIME_WAIT"), "{md}");
        assert!(
            md.contains(
                "![TIME_WAIT sockets on the server](charts/server-sockets-TIME_WAIT.svg)\n"
            ),
            "{md}"
        );
        assert!(
            md.contains("| `reuse-on`  | 2      | `reuse-on-2`  | **invalid** |"),
            "{md}"
        );
        let term = render_terminal(&flagged());
        assert!(
            term.contains("INVALID: reuse-on repeat 2: the load generator was CPU-bound"),
            "{term}"
        );
        assert!(term.contains("expectations: 2 of 3 failed"), "{term}");
        assert_eq!(term.matches("FAILED: ").count(), 2, "{term}");
    }

    #[test]
    fn chart_links_survive_odd_paths_and_titles() {
        assert_eq!(link_target("charts/a b.svg"), "<charts/a b.svg>");
        assert_eq!(link_target("charts/x.svg"), "charts/x.svg");
        assert_eq!(alt_text("a [b]\nc"), "a \\[b\\] c");
    }

    #[test]
    fn an_empty_summary_still_renders() {
        let s = summary(vec![], false);
        let md = render_markdown(&s);
        assert!(md.contains("No variant ran"), "{md}");
        assert!(render_terminal(&s).contains("no variant ran"));
    }
}
