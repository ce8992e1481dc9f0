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

mod clients;
mod header;
mod headline;
mod hosts;
mod kernel;
mod runs;
mod states;
mod sweep;
mod terminal;
#[cfg(test)]
mod tests;

use clients::*;
use header::*;
use headline::*;
use hosts::*;
use runs::*;
use states::*;
use sweep::*;
pub use terminal::render_terminal;
use terminal::*;

use crate::analysis::metrics;
use crate::analysis::statistics;
use crate::common::counts::Counts;
use crate::common::counts::Source;
use crate::common::endpoint::Side;
use crate::common::names;
use crate::error;
use crate::output::markdown::{self, code, fenced, inline, num, percent, signed};
use crate::output::{Format, Written};
use crate::results::{self, Comparison, RunSummary, Summary, VariantSummary};
use crate::results::{Stats, Verdict};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

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

/// `report.md`, written after every run and by `twlab report DIR`.
pub struct Markdown;

impl Format for Markdown {
    fn name(&self) -> &'static str {
        "markdown report"
    }

    fn written(&self) -> Written {
        Written::EveryRun(results::REPORT_FILE)
    }

    fn render(&self, summary: &Summary, _run_dir: &Path) -> error::Result<String> {
        Ok(render_markdown(summary))
    }
}

/// The markdown report (report.md), from summary.json alone.
pub fn render_markdown(summary: &Summary) -> String {
    let view = View::new(summary);
    let mut out = String::new();
    let _ = writeln!(out, "# TIME_WAIT lab: {}\n", inline(&summary.scenario));
    not_complete_warning(&mut out, &view);
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
        sweep_section(&mut out, &view);
        state_tables(&mut out, &view);
        kernel::kernel_section(&mut out, summary);
        client_tables(&mut out, &view);
        client_hosts_table(&mut out, &view);
        runs_section(&mut out, &view);
    }
    reproduce(&mut out, &summary.info.command);
    out
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
                .map(|v| v.runs.iter().any(|r| r.is_complete()))
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
