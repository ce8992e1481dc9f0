//! `expect:` — what a scenario asserts about its results, for CI gates.
//!
//! Each expectation names a metric (`client.sockets.TIME_WAIT`, i.e.
//! side.source.STATE, or a load metric such as `client.requests_per_sec`), a
//! statistic for state metrics (`final`, `peak`, `steady_mean`), a variant
//! and a bound: on the change against the baseline in percent
//! (`"<= -20%"`) or on the variant's own value (`"< 5000"`). With
//! `confidence`, the whole confidence interval must satisfy the bound, not
//! just the point estimate, so a gate does not pass on noise.
//!
//! This is the model as the scenario file writes it, checked when it is
//! read; [`crate::analysis::expect`] evaluates it against a summary.

use crate::common::names::{LOAD_METRICS, known_state, state_count};
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

/// A metric name, checked when the scenario is read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct MetricName(pub String);

impl MetricName {
    pub fn is_state(&self) -> bool {
        state_count(&self.0).is_some()
    }
}

impl<'de> Deserialize<'de> for MetricName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked_str(d, |s| {
            let state_ok =
                state_count(s).is_some_and(|(_, source, state)| known_state(source, state));
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
    pub fn holds(&self, x: f64, bound: f64) -> bool {
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
}
