//! The scenario file: what to run, parsed and validated once.
//!
//! Like ripgrep turning raw arguments into a validated plan, everything a run
//! needs is checked here, before anything on the machine is touched: unknown
//! keys, wrong types, bad durations, zero connections, ports out of range,
//! empty or duplicate variant lists, unknown roles and sysctl names that are
//! not plain dotted names. Validation lives in the types' `Deserialize`
//! implementations so that serde_yaml_ng reports the line and column of the
//! offending value; errors name the file too. `--set key.path=value`
//! overrides are applied one at a time to the parsed document and re-checked,
//! so an error names the override that caused it.

pub mod expect;
mod input;
pub mod labfile;
mod loaded;
mod matrix;
mod overrides;
mod parse;
mod schema;
mod spec;
mod validate;
mod values;

pub use input::*;
pub use loaded::*;
pub use matrix::VARIANT_PARAM;
pub use overrides::*;
pub use parse::*;
pub use schema::*;
pub use spec::*;
pub use values::*;

use crate::error::{Error, Result};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_yaml_ng::{Mapping, Value};
use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::path::Path;

/// A whole scenario, as written in YAML (keys documented in README).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name, used in run directory names.
    pub name: Name,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub server: ServerSpec,
    #[serde(default)]
    pub client: ClientSpec,
    #[serde(default)]
    pub collect: CollectSpec,
    /// How many times each variant runs (at most 1000).
    #[serde(default = "one", deserialize_with = "repeat_count")]
    #[schemars(range(min = 1, max = 1000))]
    pub repeat: NonZeroU32,
    /// Order of the runs: `interleaved` (A B A B ..., default) or
    /// `randomized` (shuffled with `seed`), so drift does not pass for an effect.
    #[serde(default)]
    pub order: Order,
    /// Seed for `order: randomized` (default: drawn, and recorded in the report).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// What the scenario studies on purpose and so does not flag as an
    /// invalid run: `port_exhaustion`, `client_saturation`, `missed_rate`,
    /// `conntrack_drops`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<Allowance>,
    /// The settings compared; the first is the baseline. Optional with a
    /// `matrix:`, where two or more listed variants are one more axis.
    #[serde(default, deserialize_with = "variant_list")]
    #[schemars(length(min = 1))]
    pub variants: Vec<Variant>,
    /// A sweep: scenario keys (`client.rate`, any key a variant's `set:`
    /// takes) and per-role sysctls (`sysctls.client.NAME`), each with a list
    /// of values; the cross product becomes the variants (at most
    /// MAX_VARIANTS). Expanded when the scenario is parsed, so a parsed
    /// scenario's is always empty.
    #[serde(default, skip_serializing_if = "Mapping::is_empty")]
    #[schemars(with = "BTreeMap<String, Vec<serde_json::Value>>")]
    pub matrix: Mapping,
    /// What the results must show (CI gates): a failed expectation exits 1.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expect: Vec<crate::scenario::expect::ExpectSpec>,
    /// Real hosts to run on instead of the embedded namespaces (the same
    /// keys as a `--lab` file, which takes precedence).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lab: Option<crate::scenario::labfile::LabSpec>,
}

/// Order of the runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    #[default]
    Interleaved,
    Randomized,
}

/// Conditions a scenario studies on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Allowance {
    /// The client running out of local ports (EADDRNOTAVAIL).
    PortExhaustion,
    /// The load generator using all the CPU it can.
    ClientSaturation,
    /// An open-loop load (`client.rate`) achieving less than 99% of its
    /// rate (the server or the ports could not keep up).
    MissedRate,
    /// conntrack refusing flows (its `drop`, `early_drop` or
    /// `insert_failed` statistics moved): a full table is what a scenario
    /// about `nf_conntrack_max` studies.
    ConntrackDrops,
}

fn one() -> NonZeroU32 {
    NonZeroU32::MIN
}

fn repeat_count<'de, D: serde::Deserializer<'de>>(d: D) -> Result<NonZeroU32, D::Error> {
    bounded_count(
        d,
        "repeat",
        MAX_REPEAT,
        "each repetition builds a lab and loads it for client.duration (MAX_REPEAT)",
    )
}

/// One setting compared in the scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    pub name: Name,
    #[serde(default)]
    pub sysctls: RoleSysctls,
    /// Scenario scalars this variant changes, as `--set` would:
    /// `{ server.max_keepalive_requests: 1, client.linger_zero: true }`.
    /// Only `server.*` and `client.*` keys.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(with = "BTreeMap<String, serde_json::Value>")]
    pub set: BTreeMap<String, Value>,
    /// The parameter values of a variant a `matrix:` generated, in the
    /// matrix's order (twlab writes them; summary.json and the report's
    /// sweep section read them).
    #[serde(default, skip_serializing_if = "Mapping::is_empty")]
    #[schemars(with = "BTreeMap<String, serde_json::Value>")]
    pub params: Mapping,
}

/// Sysctls per role. Only `client` and `server` exist.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleSysctls {
    #[serde(
        default,
        deserialize_with = "sysctl_map",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub client: BTreeMap<SysctlName, SysctlValue>,
    #[serde(
        default,
        deserialize_with = "sysctl_map",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub server: BTreeMap<SysctlName, SysctlValue>,
}

impl RoleSysctls {
    pub fn for_side(
        &self,
        side: crate::common::endpoint::Side,
    ) -> &BTreeMap<SysctlName, SysctlValue> {
        match side {
            crate::common::endpoint::Side::Client => &self.client,
            crate::common::endpoint::Side::Server => &self.server,
        }
    }
}

/// `text` as an error message shows it: whole up to 120 bytes, else its
/// start and its length.
fn shorten(text: &str) -> String {
    if text.len() <= 120 {
        return text.to_string();
    }
    let mut end = 80;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &text[..end], text.len())
}

impl Scenario {
    /// Read, validate and apply `--set` overrides. Every error is
    /// [`Error::Invalid`] and names the file (and line/column for YAML).
    /// The file is read once ([`read_input`]); a caller that needs its text
    /// too (for [`Scenario::check_lab`]) reads it with [`Scenario::read`]
    /// and calls [`Scenario::parse`].
    pub fn load(path: &Path, overrides: &[String]) -> Result<Scenario> {
        let text = Self::read(path)?;
        Self::parse(&text, &path.display().to_string(), overrides)
    }

    /// The text of a scenario file, read once, within the input limits.
    pub fn read(path: &Path) -> Result<String> {
        read_input(path, "scenario")
    }

    /// Parse scenario text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str, overrides: &[String]) -> Result<Scenario> {
        guard(text, origin)?;
        let mut scenario: Scenario = serde_yaml_ng::from_str(text).map_err(|e| {
            client_check_error(text, origin, &e).unwrap_or_else(|| yaml_error(origin, &e))
        })?;
        scenario.expand_matrix(origin, Some(text))?;
        scenario.check(origin, Some(text))?;
        if overrides.is_empty() {
            return Ok(scenario);
        }
        let mut doc: Value = serde_yaml_ng::from_str(text).map_err(|e| yaml_error(origin, &e))?;
        let mut result = scenario;
        for o in overrides {
            // What the errors repeat of it: a long value would bury the
            // message (and fill a pipe that is read only at the end).
            let o_shown = shorten(o);
            // A key the matrix sweeps: the command line pins that axis.
            let pinned = pin_matrix_axis(&mut doc, o)
                .map_err(|e| Error::invalid(format!("{origin}: --set {o_shown}: {e}")))?;
            if !pinned {
                apply_override(&mut doc, o)
                    .map_err(|e| Error::invalid(format!("{origin}: --set {o_shown}: {e}")))?;
            }
            result = serde_yaml_ng::from_value(doc.clone())
                .map_err(|e| Error::invalid(format!("{origin}: --set {o_shown}: {e}")))?;
            result
                .expand_matrix(origin, None)
                .map_err(|e| Error::invalid(format!("--set {o_shown}: {e}")))?;
            result
                .check(origin, None)
                .map_err(|e| Error::invalid(format!("--set {o_shown}: {e}")))?;
        }
        Ok(result)
    }

    /// The server and client of a variant: the scenario's, with the
    /// variant's `set` applied.
    pub fn effective(
        &self,
        variant: &Variant,
    ) -> std::result::Result<(ServerSpec, ClientSpec), String> {
        if variant.set.is_empty() {
            return Ok((self.server.clone(), self.client.clone()));
        }
        let s = self.effective_scenario(variant)?;
        Ok((s.server, s.client))
    }

    /// The whole scenario as one variant runs it: this one with the
    /// variant's `set` applied (what [`Scenario::effective`] returns the
    /// server and client of).
    pub fn effective_scenario(&self, variant: &Variant) -> std::result::Result<Scenario, String> {
        if variant.set.is_empty() {
            return Ok(self.clone());
        }
        let mut doc = serde_yaml_ng::to_value(self).map_err(|e| e.to_string())?;
        for (key, value) in &variant.set {
            set_path(&mut doc, key, value.clone()).map_err(|e| format!("set `{key}`: {e}"))?;
        }
        serde_yaml_ng::from_value(doc).map_err(|e| {
            let keys: Vec<&str> = variant.set.keys().map(String::as_str).collect();
            format!("set `{}`: {e}", keys.join("`, `"))
        })
    }

    /// The scenario as YAML, with every default filled in.
    pub fn to_yaml(&self) -> String {
        serde_yaml_ng::to_string(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }

    pub fn baseline(&self) -> &Variant {
        &self.variants[0]
    }
}

#[cfg(test)]
mod tests;
