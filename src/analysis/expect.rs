//! `expect:` — what a scenario asserts about its results, for CI gates.
//!
//! Each expectation names a metric (`client.sockets.TIME_WAIT`, i.e.
//! side.source.STATE, or a load metric such as `client.requests_per_sec`), a
//! statistic for state metrics (`final`, `peak`, `steady_mean`), a variant
//! and a bound: on the change against the baseline in percent
//! (`"<= -20%"`) or on the variant's own value (`"< 5000"`). With
//! `confidence`, the whole confidence interval must satisfy the bound, not
//! just the point estimate, so a gate does not pass on noise. Failed
//! expectations make `twlab run` exit 1 and are listed in the report and in
//! the JUnit file.

use crate::analysis::statistics;
use crate::results::{self, Expectation, Summary};
use crate::scenario::{Name, checked_str};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};
use std::borrow::Cow;
use std::fmt;

/// One entry of `expect:`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectSpec {
    /// `side.source.STATE` or `client.<load metric>`.
    pub metric: MetricName,
    /// For state metrics: `final`, `peak` or `steady_mean` (default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stat: Option<Stat>,
    /// The variant whose figures are checked.
    pub variant: Name,
    /// `"<= -20%"` (percent change against the baseline) or `"< 5000"`
    /// (the variant's own value).
    pub change: Bound,
    /// Optional: the confidence interval at this level must satisfy the bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<Confidence>,
}

/// The load metrics an expectation can name.
pub const LOAD_METRICS: [&str; 9] = [
    "client.requests",
    "client.requests_per_sec",
    "client.errors",
    "client.errors.connect",
    "client.latency.p50_ms",
    "client.latency.p90_ms",
    "client.latency.p99_ms",
    "client.latency.max_ms",
    "client.connections_opened",
];

/// A metric name, checked when the scenario is read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct MetricName(pub String);

impl MetricName {
    pub fn is_state(&self) -> bool {
        results::state_metric(&format!("{}.steady_mean", self.0)).is_some()
    }
}

impl<'de> Deserialize<'de> for MetricName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked_str(d, |s| {
            let state_ok = results::state_metric(&format!("{s}.steady_mean"))
                .is_some_and(|(_, source, state, _)| known_state(source, state));
            if state_ok || LOAD_METRICS.contains(&s) {
                Ok(MetricName(s.to_string()))
            } else {
                Err(format!(
                    "unknown metric `{s}`: use side.source.STATE (e.g. client.sockets.TIME_WAIT, server.conntrack.TIME_WAIT) or one of {}",
                    LOAD_METRICS.join(", ")
                ))
            }
        })
    }
}

/// Is `state` a state name that `source` reports (netstat's spelling for
/// sockets, conntrack's for conntrack)?
pub fn known_state(source: results::Source, state: &str) -> bool {
    match source {
        results::Source::Sockets => {
            (1..=12).any(|n| crate::measure::sockdiag::state_name(n) == state)
        }
        results::Source::Conntrack => [
            "SYN_SENT",
            "SYN_RECV",
            "ESTABLISHED",
            "FIN_WAIT",
            "CLOSE_WAIT",
            "LAST_ACK",
            "TIME_WAIT",
            "CLOSE",
            "SYN_SENT2",
        ]
        .contains(&state),
    }
}

/// Which statistic of a state count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Stat {
    Final,
    Peak,
    SteadyMean,
}

impl Stat {
    pub fn as_str(&self) -> &'static str {
        match self {
            Stat::Final => "final",
            Stat::Peak => "peak",
            Stat::SteadyMean => "steady_mean",
        }
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
}

impl Op {
    fn holds(&self, x: f64, bound: f64) -> bool {
        match self {
            Op::Lt => x < bound,
            Op::Le => x <= bound,
            Op::Gt => x > bound,
            Op::Ge => x >= bound,
        }
    }

    fn as_str(&self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        }
    }
}

/// `<= -20%` (percent change against the baseline) or `< 5000` (the value).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bound {
    pub op: Op,
    pub limit: f64,
    pub percent: bool,
}

impl std::str::FromStr for Bound {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let (op, rest) = [("<=", Op::Le), (">=", Op::Ge), ("<", Op::Lt), (">", Op::Gt)]
            .iter()
            .find_map(|(p, op)| t.strip_prefix(p).map(|r| (*op, r.trim())))
            .ok_or_else(|| {
                format!(
                    "bound `{s}` must start with <, <=, > or >= (e.g. \"<= -20%\" or \"< 5000\")"
                )
            })?;
        let (num, percent) = match rest.strip_suffix('%') {
            Some(n) => (n.trim(), true),
            None => (rest, false),
        };
        let limit: f64 = num
            .parse()
            .map_err(|_| format!("bound `{s}`: `{num}` is not a number"))?;
        if !limit.is_finite() {
            return Err(format!("bound `{s}` must be finite"));
        }
        Ok(Bound { op, limit, percent })
    }
}

impl fmt::Display for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}{}",
            self.op.as_str(),
            self.limit,
            if self.percent { "%" } else { "" }
        )
    }
}

impl Serialize for Bound {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Bound {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked_str(d, str::parse)
    }
}

/// A confidence level strictly between 0 and 1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Confidence(pub f64);

impl<'de> Deserialize<'de> for Confidence {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = f64::deserialize(d)?;
        if v > 0.0 && v < 1.0 {
            Ok(Confidence(v))
        } else {
            Err(de::Error::custom(format!(
                "confidence {v} must be between 0 and 1 (e.g. 0.95)"
            )))
        }
    }
}

impl ExpectSpec {
    /// The full metric name as in summary.json (with the statistic).
    pub fn full_metric(&self) -> String {
        if self.metric.is_state() {
            format!(
                "{}.{}",
                self.metric.0,
                self.stat.unwrap_or(Stat::SteadyMean).as_str()
            )
        } else {
            self.metric.0.clone()
        }
    }

    pub fn text(&self) -> String {
        let stat = if self.metric.is_state() {
            format!(" {}", self.stat.unwrap_or(Stat::SteadyMean).as_str())
        } else {
            String::new()
        };
        let what = if self.change.percent {
            "change"
        } else {
            "value"
        };
        let conf = self
            .confidence
            .map(|c| format!(" ({}% confidence)", c.0 * 100.0))
            .unwrap_or_default();
        format!(
            "{}{stat} of {}: {what} {}{conf}",
            self.metric.0, self.variant, self.change
        )
    }

    /// Check the expectation against a summary.
    pub fn evaluate(&self, summary: &Summary) -> Expectation {
        let text = self.text();
        let fail = |detail: String| Expectation {
            text: text.clone(),
            passed: false,
            detail,
        };
        let metric = self.full_metric();
        let Some(variant) = summary
            .variants
            .iter()
            .find(|v| v.name == self.variant.as_str())
        else {
            return fail(format!("variant `{}` has no results", self.variant));
        };
        let values = results::metric_values(variant, &metric);
        if values.is_empty() {
            return fail(format!(
                "no completed run of `{}` measured {metric}",
                self.variant
            ));
        }
        let conf = self.confidence.map(|c| c.0);
        let (point, interval, unit) = if self.change.percent {
            let Some(baseline) = summary.variants.first() else {
                return fail("no baseline".into());
            };
            let base = results::metric_values(baseline, &metric);
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
        let what = if self.change.percent {
            "change"
        } else {
            "value"
        };
        match interval {
            None => {
                let passed = self.change.op.holds(point, self.change.limit);
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
                let passed = self.change.op.holds(lo, self.change.limit)
                    && self.change.op.holds(hi, self.change.limit);
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
}

impl JsonSchema for MetricName {
    fn schema_name() -> Cow<'static, str> {
        "MetricName".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "side.source.STATE (e.g. client.sockets.TIME_WAIT) or a load metric",
            "anyOf": [
                { "pattern": "^(server|client)\\.(sockets|conntrack)\\.[A-Z_0-9]+$" },
                { "enum": LOAD_METRICS }
            ]
        })
    }
}

impl JsonSchema for Bound {
    fn schema_name() -> Cow<'static, str> {
        "Bound".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "\"<= -20%\" (percent change against the baseline) or \"< 5000\" (the value)",
            "pattern": "^\\s*(<=|>=|<|>)\\s*-?[0-9.]+\\s*%?\\s*$"
        })
    }
}

impl JsonSchema for Confidence {
    fn schema_name() -> Cow<'static, str> {
        "Confidence".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1 })
    }
}

/// Evaluate every expectation.
pub fn evaluate_all(specs: &[ExpectSpec], summary: &Summary) -> Vec<Expectation> {
    specs.iter().map(|s| s.evaluate(summary)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
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
