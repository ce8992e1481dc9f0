//! Checking a scenario's expectations ([`crate::scenario::expect`])
//! against a run's summary. Failed expectations make `twlab run` exit 1 and
//! are listed in the report and in the JUnit file.

use crate::analysis::metrics;
use crate::analysis::statistics;
use crate::results::{Expectation, Summary};
use crate::scenario::expect::ExpectSpec;

/// Check one expectation against a summary.
pub fn evaluate(spec: &ExpectSpec, summary: &Summary) -> Expectation {
    let text = spec.text();
    let fail = |detail: String| Expectation {
        text: text.clone(),
        passed: false,
        detail,
    };
    let metric = spec.full_metric();
    let Some(variant) = summary
        .variants
        .iter()
        .find(|v| v.name == spec.variant.as_str())
    else {
        return fail(format!("variant `{}` has no results", spec.variant));
    };
    let values = metrics::metric_values(variant, &metric);
    if values.is_empty() {
        return fail(format!(
            "no completed run of `{}` measured {metric}",
            spec.variant
        ));
    }
    let conf = spec.confidence.map(|c| c.0);
    let (point, interval, unit) = if spec.change.percent {
        let Some(baseline) = summary.variants.first() else {
            return fail("no baseline".into());
        };
        let base = metrics::metric_values(baseline, &metric);
        let bm = statistics::describe(&base).mean;
        if base.is_empty() || bm == 0.0 {
            return fail(format!(
                "the baseline `{}` has no non-zero {metric} to compare against",
                baseline.name
            ));
        }
        let xm = statistics::describe(&values).mean;
        let pct = |d: f64| d / bm * 100.0;
        let ci = conf.map(|c| statistics::diff_ci(&base, &values, c));
        (
            pct(xm - bm),
            ci.map(|ci| ci.map(|(l, h)| (pct(l), pct(h)))),
            "%",
        )
    } else {
        let xm = statistics::describe(&values).mean;
        let ci = conf.map(|c| statistics::mean_ci(&values, c));
        (xm, ci, "")
    };
    let what = if spec.change.percent {
        "change"
    } else {
        "value"
    };
    match interval {
        None => {
            let passed = spec.change.op.holds(point, spec.change.limit);
            Expectation {
                text,
                passed,
                detail: format!("{what} {point:+.1}{unit} (mean of {} run(s))", values.len()),
            }
        }
        Some(None) => fail(format!(
            "{what} {point:+.1}{unit}, but a confidence interval needs at least 2 runs per variant (set repeat)"
        )),
        Some(Some((lo, hi))) => {
            let passed = spec.change.op.holds(lo, spec.change.limit)
                && spec.change.op.holds(hi, spec.change.limit);
            Expectation {
                text,
                passed,
                detail: format!(
                    "{what} {point:+.1}{unit}, {}% CI [{lo:+.1}{unit}, {hi:+.1}{unit}] over {} run(s)",
                    conf.unwrap_or(0.95) * 100.0,
                    values.len()
                ),
            }
        }
    }
}

/// Evaluate every expectation.
pub fn evaluate_all(specs: &[ExpectSpec], summary: &Summary) -> Vec<Expectation> {
    specs.iter().map(|s| evaluate(s, summary)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `spec.evaluate(&summary)` reads better in these tests than the free function.
    trait Evaluate {
        fn evaluate(&self, summary: &Summary) -> Expectation;
    }

    impl Evaluate for ExpectSpec {
        fn evaluate(&self, summary: &Summary) -> Expectation {
            super::evaluate(self, summary)
        }
    }
    use crate::results::{BySide, RunSummary, StateStats, VariantSummary};

    fn run(tw: f64) -> RunSummary {
        RunSummary {
            sockets: BySide {
                server: StateStats::default(),
                client: StateStats {
                    steady_mean: [("TIME_WAIT".to_string(), tw)].into_iter().collect(),
                    ..Default::default()
                },
            },
            ..Default::default()
        }
    }

    fn summary(off: &[f64], on: &[f64]) -> Summary {
        let v = |name: &str, tws: &[f64]| VariantSummary {
            name: name.into(),
            sysctls: Default::default(),
            runs: tws.iter().map(|t| run(*t)).collect(),
            params: Default::default(),
            kernel: Default::default(),
        };
        Summary {
            scenario: "t".into(),
            info: Default::default(),
            variants: vec![v("off", off), v("on", on)],
            comparisons: vec![],
            expectations: vec![],
            charts: vec![],
        }
    }

    fn spec(yaml: &str) -> ExpectSpec {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    #[test]
    fn percent_change_with_and_without_confidence() {
        let s = summary(&[100.0, 110.0, 90.0], &[40.0, 45.0, 35.0]);
        let e =
            spec("{metric: client.sockets.TIME_WAIT, variant: on, change: '<= -20%'}").evaluate(&s);
        assert!(e.passed, "{e:?}");
        assert!(e.detail.starts_with("change -60.0%"), "{}", e.detail);
        let e = spec(
            "{metric: client.sockets.TIME_WAIT, variant: on, change: '<= -20%', confidence: 0.95}",
        )
        .evaluate(&s);
        assert!(e.passed, "{e:?}");
        // A -70% gate is met by the point estimate (-60% is not <= -70%: fails).
        let e =
            spec("{metric: client.sockets.TIME_WAIT, variant: on, change: '<= -70%'}").evaluate(&s);
        assert!(!e.passed);
    }

    #[test]
    fn a_noisy_change_fails_a_confidence_gate_that_the_point_passes() {
        let s = summary(&[100.0, 140.0, 60.0], &[70.0, 110.0, 30.0]);
        let point =
            spec("{metric: client.sockets.TIME_WAIT, variant: on, change: '<= -20%'}").evaluate(&s);
        assert!(point.passed, "{point:?}");
        let gated = spec(
            "{metric: client.sockets.TIME_WAIT, variant: on, change: '<= -20%', confidence: 0.95}",
        )
        .evaluate(&s);
        assert!(!gated.passed, "{gated:?}");
    }

    #[test]
    fn absolute_bounds_check_the_value() {
        let s = summary(&[100.0], &[40.0]);
        assert!(
            spec("{metric: client.sockets.TIME_WAIT, variant: on, change: '< 50'}")
                .evaluate(&s)
                .passed
        );
        assert!(
            !spec("{metric: client.sockets.TIME_WAIT, variant: off, change: '< 50'}")
                .evaluate(&s)
                .passed
        );
        let one_run = spec(
            "{metric: client.sockets.TIME_WAIT, variant: on, change: '< 50', confidence: 0.9}",
        )
        .evaluate(&s);
        assert!(
            !one_run.passed && one_run.detail.contains("at least 2 runs"),
            "{one_run:?}"
        );
    }

    #[test]
    fn bad_specs_are_refused() {
        for (yaml, msg) in [
            (
                "{metric: client.sockets.TIME_WAITING, variant: a, change: '< 1'}",
                "unknown metric",
            ),
            (
                "{metric: client.requests_per_sec, variant: a, change: '~ 1'}",
                "must start with",
            ),
            (
                "{metric: client.requests_per_sec, variant: a, change: '< x%'}",
                "not a number",
            ),
            (
                "{metric: client.requests_per_sec, variant: a, change: '< 1', confidence: 95}",
                "between 0 and 1",
            ),
            (
                "{metric: client.requests_per_sec, variant: a, change: '< 1', stat: mean}",
                "unknown variant",
            ),
        ] {
            let err = serde_yaml_ng::from_str::<ExpectSpec>(yaml)
                .unwrap_err()
                .to_string();
            assert!(err.contains(msg), "{yaml}: {err}");
        }
    }
}
