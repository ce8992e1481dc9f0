//! The sweep section: each key figure against a parameter of a `matrix:`.
//!
//! The variants a matrix generates carry their parameter values
//! (`variants[].params` in summary.json). A comparison against the baseline
//! answers "does this setting help"; a sweep asks "how does the figure move
//! as the parameter grows", so for every numeric axis (all its values
//! numbers, at least two of them) the figures are tabled against that axis:
//! one row per value, in increasing order, and one table per combination of
//! the other axes' values (the lines a chart would draw), as flent's batch
//! summaries and hyperfine's `--parameter-scan` exports do. Each cell is the
//! mean over the variant's completed runs, with its 95% interval (Student's
//! t, [`statistics::mean_ci`]) when it has two or more. Axes whose values are
//! text (a listed variant, a path) only group the rows.
//!
//! Read from the summary alone, like the rest of the report.

use super::*;
use crate::common::names::LoadMetric;
use crate::output::charts::sweep::{axes, groups, numeric_axes, shown};

/// The figures shown against a parameter: (metric, column label).
const FIGURES: [(&str, &str); 6] = [
    ("server.sockets.TIME_WAIT.steady_mean", "server TIME_WAIT"),
    ("client.sockets.TIME_WAIT.steady_mean", "client TIME_WAIT"),
    (
        "server.conntrack.TIME_WAIT.steady_mean",
        "conntrack TIME_WAIT (server)",
    ),
    (
        "client.conntrack.TIME_WAIT.steady_mean",
        "conntrack TIME_WAIT (client)",
    ),
    (LoadMetric::RequestsPerSec.name(), "requests/s"),
    (LoadMetric::Errors.name(), "errors"),
];

/// A cell: the mean, with its 95% interval when there are two or more runs.
fn cell(values: &[f64]) -> String {
    if values.is_empty() {
        return "—".into();
    }
    let mean = statistics::describe(values).mean;
    match statistics::mean_ci(values, 0.95) {
        Some((lo, hi)) if lo != hi => format!("{} [{}, {}]", num(mean), num(lo), num(hi)),
        _ => num(mean),
    }
}

pub(super) fn sweep_section(out: &mut String, view: &View) {
    let variants = view.variants;
    if variants.iter().all(|v| v.params.is_empty()) {
        return;
    }
    let all_axes = axes(variants);
    let numeric = numeric_axes(variants);
    let figures: Vec<(&str, &str)> = FIGURES
        .iter()
        .copied()
        .filter(|(m, _)| view.any_value(m))
        .collect();
    out.push_str("## Sweep\n\n");
    let each: Vec<String> = all_axes
        .iter()
        .map(|k| {
            let mut values: Vec<String> = Vec::new();
            for v in variants {
                if let Some(x) = v.params.get(k.as_str()).map(shown)
                    && !values.contains(&x)
                {
                    values.push(x);
                }
            }
            format!("{} ({})", code(k), values.join(", "))
        })
        .collect();
    let _ = writeln!(
        out,
        "The variants are the cross product of {}.\n",
        each.join(" × ")
    );
    if numeric.is_empty() || figures.is_empty() {
        out.push_str("No axis has two or more numeric values (or no figure was measured): nothing to draw against a parameter.\n\n");
        return;
    }
    out.push_str(
        "Each figure against a parameter: the mean over a variant's completed runs, \
         with its 95% interval [low, high] when it ran two or more times (TIME_WAIT \
         counts are steady means).\n\n",
    );
    for axis in &numeric {
        let _ = writeln!(out, "### Against {}\n", code(axis));
        // One table per combination of the other axes (the lines of the
        // sweep chart), in order of their values; rows in order of `axis`.
        for (others, members) in groups(variants, axis) {
            if !others.is_empty() {
                let label: Vec<String> = others
                    .iter()
                    .map(|(k, v)| format!("{} = {}", code(k), code(v)))
                    .collect();
                let _ = writeln!(out, "With {}:\n", label.join(", "));
            }
            let rows = members
                .iter()
                .map(|&i| {
                    let v = &variants[i];
                    let mut row = vec![
                        v.params.get(axis.as_str()).map(shown).unwrap_or_default(),
                        code(&v.name),
                    ];
                    row.extend(
                        figures
                            .iter()
                            .map(|(m, _)| cell(&metrics::metric_values(v, m))),
                    );
                    row
                })
                .collect();
            let mut header = vec![axis.as_str(), "variant"];
            header.extend(figures.iter().map(|(_, label)| *label));
            out.push_str(&markdown::table(&header, rows, &[1]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::counts::ClientStats;
    use crate::results::{BySide, StateStats};

    /// A sweep of client.rate (3 values, given out of order) x tcp_tw_reuse
    /// (0, 1), two runs each; the figures grow with the rate, and reuse
    /// halves the server's TIME_WAIT.
    fn sweep() -> Summary {
        let text = "name: sweep\nmatrix:\n  client.rate: [800, 200, 400]\n  sysctls.client.net.ipv4.tcp_tw_reuse: [0, 1]\n";
        let scenario = crate::scenario::Scenario::parse(text, "s.yaml", &[]).unwrap();
        let variants: Vec<VariantSummary> = scenario
            .variants
            .iter()
            .map(|v| {
                let mut s = VariantSummary::empty(v);
                let rate = v.params["client.rate"].as_f64().unwrap();
                let reuse = v.params["sysctls.client.net.ipv4.tcp_tw_reuse"]
                    .as_f64()
                    .unwrap();
                s.runs = [0.0, 1.0]
                    .iter()
                    .enumerate()
                    .map(|(k, jitter)| {
                        let tw = rate * 60.0 / (1.0 + reuse) + jitter * 10.0;
                        let mut r = RunSummary {
                            run_id: format!("{}-{}", v.name, k + 1),
                            repeat: k as u32 + 1,
                            client: Some(ClientStats {
                                requests_per_sec: rate - jitter,
                                ..Default::default()
                            }),
                            ..Default::default()
                        };
                        let steady = |n: f64| StateStats {
                            steady_mean: [("TIME_WAIT".to_string(), n)].into_iter().collect(),
                            ..Default::default()
                        };
                        r.sockets = BySide {
                            server: steady(tw),
                            client: steady(0.0),
                        };
                        r.conntrack = BySide {
                            server: steady(tw * 2.0),
                            client: steady(tw * 2.0),
                        };
                        r
                    })
                    .collect();
                s
            })
            .collect();
        Summary {
            scenario: "sweep".into(),
            info: Default::default(),
            comparisons: metrics::compare(&variants),
            variants,
            expectations: vec![],
            charts: vec![],
        }
    }

    fn section(summary: &Summary) -> String {
        let mut out = String::new();
        sweep_section(&mut out, &View::new(summary));
        out
    }

    #[test]
    fn each_figure_is_tabled_against_a_numeric_parameter() {
        let s = sweep();
        assert_eq!(
            numeric_axes(&s.variants),
            ["client.rate", "sysctls.client.net.ipv4.tcp_tw_reuse"]
        );
        let md = section(&s);
        insta::assert_snapshot!(md);
        // Rows in increasing order of the parameter, whatever the matrix's.
        let against_rate = md.split("### Against `sysctls").next().unwrap();
        let row = |rate: u32| {
            against_rate
                .find(&format!("{rate} | `rate-{rate}.tcp_tw_reuse-0`"))
                .unwrap_or_else(|| panic!("{rate}: {md}"))
        };
        assert!(row(200) < row(400) && row(400) < row(800), "{md}");
        // Repeated runs give intervals; runs that agree give the mean alone.
        assert!(md.contains("12005 [11941.47, 12068.53]"), "{md}");
        assert!(!md.contains("[0, 0]"), "{md}");
        // The report carries it, between the comparison and the state tables.
        let report = render_markdown(&s);
        assert!(report.contains("## Sweep"), "{report}");
    }

    #[test]
    fn without_params_there_is_no_sweep_section() {
        let mut s = sweep();
        for v in &mut s.variants {
            v.params.clear();
        }
        assert_eq!(section(&s), "");
        assert!(!render_markdown(&s).contains("## Sweep"));
    }
}
