//! `matrix:` — a sweep written as the values of a few keys, expanded into
//! ordinary variants when the scenario is parsed.
//!
//! ```yaml
//! matrix:
//!   client.rate: [200, 400, 800]                      # any key a variant's `set:` takes
//!   sysctls.client.net.ipv4.tcp_tw_reuse: [0, 1]      # sysctls.ROLE.NAME
//! variants:          # optional: with two or more, the listed variant is one more axis
//!   - name: base
//! ```
//!
//! Why expand at parse time: every later stage (the plan, the interleaved
//! repeats, the summary, the report, `compare`, `expect:`) already knows
//! variants, so a generated variant is one like any other (its `set:` and
//! `sysctls` are the listed variant's merged with the point's) and nothing
//! downstream needs a second code path. What the sweep adds is kept in
//! [`Variant::params`] (the axis values, in the matrix's order), which
//! summary.json carries so that the report can draw each figure against a
//! parameter (flent's batches and hyperfine's `--parameter-scan` are the
//! models).
//!
//! Every value goes through the code a variant's `set:` goes through (or a
//! sysctl's parser), so a wrong type is refused for free, and refused at the
//! line of the value (exit 2), before anything runs. The product is capped at
//! [`MAX_VARIANTS`], the cap on listed variants, so a sweep cannot plan more
//! runs than a hand-written scenario may.
//!
//! Names: `{short}-{value}` per axis joined by `.` (`rate-200.tcp_tw_reuse-0`),
//! the listed variant's name first when it is an axis (`base.rate-200`); the
//! short name is the key's last segment (`ROLE-last` when two axes share
//! it). Variant names allow only letters, digits, `.`, `_` and `-`, so other
//! characters of a value become `_`; when that makes two names equal or a
//! name longer than 64 characters, the points are named `point-1`,
//! `point-2`, … in order instead (the params still say which is which).
//!
//! `--set KEY=VALUE` for a key the matrix sweeps pins that axis to the one
//! value (the command line wins, as everywhere else in twlab); other
//! `--set` keys change the base scenario as before, and a generated
//! variant's own value wins over the base, as a listed variant's `set:` does.

use super::values::*;
use super::{Scenario, Variant};
use crate::error::{Error, Result};
use serde_yaml_ng::{Mapping, Value};

/// The `params` key under which a generated variant records its listed
/// variant, when those are an axis (two or more listed).
pub const VARIANT_PARAM: &str = "variant";

/// What a matrix key changes.
enum Axis {
    /// A `server.*` / `client.*` key, as a variant's `set:`.
    Set,
    /// A sysctl of one role.
    Sysctl { client: bool, name: SysctlName },
}

fn axis_kind(key: &str) -> std::result::Result<Axis, String> {
    if let Some(rest) = key.strip_prefix("sysctls.") {
        let (role, name) = rest.split_once('.').unwrap_or((rest, ""));
        let client = match role {
            "client" => true,
            "server" => false,
            _ => {
                return Err(format!(
                    "matrix key `{key}`: sysctls are per role: sysctls.client.NAME or sysctls.server.NAME"
                ));
            }
        };
        let name = SysctlName::parse(name).map_err(|e| format!("matrix key `{key}`: {e}"))?;
        if !name.as_str().starts_with("net.") {
            return Err(format!(
                "matrix key `{key}`: sysctl {name} is not a network sysctl; the embedded lab only sets per-namespace net.* sysctls and never changes the machine's own"
            ));
        }
        return Ok(Axis::Sysctl { client, name });
    }
    if key.starts_with("server.") || key.starts_with("client.") {
        return Ok(Axis::Set);
    }
    Err(format!(
        "matrix key `{key}` is not one a sweep can vary: use a server.* or client.* key (as a variant's `set:`), or sysctls.client.NAME / sysctls.server.NAME"
    ))
}

/// The line (1-based) of the top-level `matrix:` key, of `key` inside its
/// block, or of the `index`-th value of that key (block lists put one per
/// line; a flow list `[a, b]` is on the key's line).
pub(crate) fn matrix_line(text: &str, key: Option<&str>, index: Option<usize>) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.iter().position(|l| l.starts_with("matrix:"))?;
    let Some(key) = key else {
        return Some(start + 1);
    };
    let is_code = |l: &str| {
        let t = l.trim_start();
        !t.is_empty() && !t.starts_with('#')
    };
    let end = lines[start + 1..]
        .iter()
        .position(|l| is_code(l) && !l.starts_with([' ', '\t']))
        .map_or(lines.len(), |p| start + 1 + p);
    let names_key = |l: &str| {
        let t = l.trim_start();
        [
            format!("{key}:"),
            format!("\"{key}\":"),
            format!("'{key}':"),
        ]
        .iter()
        .any(|n| t.starts_with(n.as_str()))
    };
    let Some(at) = (start + 1..end).find(|&i| names_key(lines[i])) else {
        // Flow style on the `matrix:` line itself.
        return Some(start + 1);
    };
    let Some(index) = index else {
        return Some(at + 1);
    };
    let rest = lines[at].split_once(':').map_or("", |(_, r)| r);
    let rest = rest.split(" #").next().unwrap_or_default().trim();
    if !rest.is_empty() {
        return Some(at + 1);
    }
    (at + 1..end)
        .filter(|&i| lines[i].trim_start().starts_with('-'))
        .nth(index)
        .map(|i| i + 1)
        .or(Some(at + 1))
}

/// A value as a name shows it: letters, digits, `.`, `_`, `-`; others `_`.
fn value_label(v: &Value) -> String {
    let raw = match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => serde_yaml_ng::to_string(other)
            .unwrap_or_default()
            .trim()
            .to_string(),
    };
    raw.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The short name of each axis in names: the key's last segment, or
/// `ROLE-last` when two axes share it, or the whole key (dots as `-`).
fn short_names(keys: &[String]) -> Vec<String> {
    let last = |k: &str| k.rsplit('.').next().unwrap_or(k).to_string();
    let role = |k: &str| {
        let k = k.strip_prefix("sysctls.").unwrap_or(k);
        k.split('.').next().unwrap_or(k).to_string()
    };
    let lasts: Vec<String> = keys.iter().map(|k| last(k)).collect();
    let with_role: Vec<String> = keys
        .iter()
        .map(|k| format!("{}-{}", role(k), last(k)))
        .collect();
    keys.iter()
        .enumerate()
        .map(|(i, k)| {
            if lasts.iter().filter(|l| **l == lasts[i]).count() == 1 {
                lasts[i].clone()
            } else if with_role.iter().filter(|l| **l == with_role[i]).count() == 1 {
                with_role[i].clone()
            } else {
                k.replace('.', "-")
            }
        })
        .collect()
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && !s.starts_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

impl Scenario {
    /// Replace a `matrix:` by the variants it generates (see the module
    /// docs); without one, check that variants are listed. With the source
    /// `text`, errors point at the line of the key or value at fault.
    pub(crate) fn expand_matrix(&mut self, origin: &str, text: Option<&str>) -> Result<()> {
        let at = |key: Option<&str>, index: Option<usize>| -> String {
            text.and_then(|t| matrix_line(t, key, index))
                .map_or_else(|| format!("{origin}: "), |l| format!("{origin}:{l}: "))
        };
        if self.matrix.is_empty() {
            if self.variants.is_empty() {
                return Err(Error::invalid(format!(
                    "{origin}: missing field `variants`: list at least one variant (the first is the baseline), or a `matrix:` to generate them"
                )));
            }
            return Ok(());
        }
        let listed: Vec<Variant> = if self.variants.is_empty() {
            vec![Variant {
                name: Name("base".into()),
                sysctls: Default::default(),
                set: Default::default(),
                params: Mapping::new(),
            }]
        } else {
            self.variants.clone()
        };
        // What a value is applied to: this scenario with its listed
        // variants (a variant list may not be empty when re-read).
        let mut probe_scenario = self.clone();
        probe_scenario.variants = listed.clone();
        probe_scenario.matrix = Mapping::new();
        let mut axes: Vec<(String, Axis, Vec<Value>)> = Vec::new();
        for (k, v) in &self.matrix {
            let Some(key) = k.as_str() else {
                return Err(Error::invalid(format!(
                    "{}matrix: a key must be a text like client.rate, not {}",
                    at(None, None),
                    value_label(k)
                )));
            };
            let kind = axis_kind(key)
                .map_err(|e| Error::invalid(format!("{}{e}", at(Some(key), None))))?;
            let Value::Sequence(values) = v else {
                return Err(Error::invalid(format!(
                    "{}matrix.{key}: expected a list of values, like `{key}: [1, 2]`",
                    at(Some(key), None)
                )));
            };
            if values.is_empty() {
                return Err(Error::invalid(format!(
                    "{}matrix.{key}: the list is empty: give at least one value",
                    at(Some(key), None)
                )));
            }
            axes.push((key.to_string(), kind, values.clone()));
        }
        let product = axes
            .iter()
            .fold(listed.len(), |n, (_, _, v)| n.saturating_mul(v.len()));
        if product > MAX_VARIANTS {
            let factors: Vec<String> = std::iter::once(listed.len())
                .filter(|&n| n > 1)
                .chain(axes.iter().map(|(_, _, v)| v.len()))
                .map(|n| n.to_string())
                .collect();
            let count = if factors.len() > 1 {
                format!("{} = {product}", factors.join(" x "))
            } else {
                product.to_string()
            };
            return Err(Error::invalid(format!(
                "{}matrix: {count} variants is more than the {MAX_VARIANTS} twlab compares in one scenario (MAX_VARIANTS): sweep fewer values",
                at(None, None)
            )));
        }
        // Each value once the product is known to be small (so this is at
        // most MAX_VARIANTS values per axis).
        for (key, kind, values) in &axes {
            let key = key.as_str();
            for (i, value) in values.iter().enumerate() {
                let here = at(Some(key), Some(i));
                if !matches!(value, Value::String(_) | Value::Number(_) | Value::Bool(_)) {
                    return Err(Error::invalid(format!(
                        "{here}matrix.{key}[{i}]: a value must be one number, text or boolean"
                    )));
                }
                if values[..i].contains(value) {
                    return Err(Error::invalid(format!(
                        "{here}matrix.{key}[{i}]: `{}` is listed twice",
                        value_label(value)
                    )));
                }
                // The code a variant's `set:` (or a sysctl) goes through.
                let problem = match kind {
                    Axis::Set => {
                        let probe = Variant {
                            name: Name("matrix".into()),
                            sysctls: Default::default(),
                            set: [(key.to_string(), value.clone())].into_iter().collect(),
                            params: Mapping::new(),
                        };
                        probe_scenario.effective(&probe).err()
                    }
                    Axis::Sysctl { .. } => serde_yaml_ng::from_value::<SysctlValue>(value.clone())
                        .err()
                        .map(|e| e.to_string()),
                };
                if let Some(e) = problem {
                    // A key no scenario has is the key's fault, not a value's.
                    if e.contains("unknown field") {
                        return Err(Error::invalid(format!(
                            "{}matrix key `{key}` is not a scenario key: {e}",
                            at(Some(key), None)
                        )));
                    }
                    return Err(Error::invalid(format!("{here}matrix.{key}[{i}]: {e}")));
                }
            }
        }
        for v in &listed {
            let line = |needle: &str| {
                text.and_then(|t| super::validate::variant_line(t, v.name.as_str(), needle))
                    .map_or_else(|| format!("{origin}: "), |l| format!("{origin}:{l}: "))
            };
            if !v.params.is_empty() {
                return Err(Error::invalid(format!(
                    "{}variant `{}`: params is written by twlab for the variants a matrix generates; with a `matrix:` leave it out",
                    line("params:"),
                    v.name
                )));
            }
            for (key, kind, _) in &axes {
                let clash = match kind {
                    Axis::Set => v.set.contains_key(key),
                    Axis::Sysctl { client, name } => {
                        let side = if *client {
                            &v.sysctls.client
                        } else {
                            &v.sysctls.server
                        };
                        side.contains_key(name)
                    }
                };
                if clash {
                    return Err(Error::invalid(format!(
                        "{}variant `{}` sets {key}, which the matrix sweeps: set it in one place",
                        at(Some(key), None),
                        v.name
                    )));
                }
            }
        }
        let keys: Vec<String> = axes.iter().map(|(k, _, _)| k.clone()).collect();
        let shorts = short_names(&keys);
        let points = axes.iter().fold(1, |n, (_, _, v)| n * v.len());
        let mut generated = Vec::with_capacity(product);
        for base in &listed {
            for p in 0..points {
                // Odometer: the last axis changes fastest.
                let mut rest = p;
                let mut chosen = vec![0; axes.len()];
                for (i, (_, _, values)) in axes.iter().enumerate().rev() {
                    chosen[i] = rest % values.len();
                    rest /= values.len();
                }
                let mut v = base.clone();
                v.params = Mapping::new();
                if listed.len() > 1 {
                    v.params
                        .insert(VARIANT_PARAM.into(), Value::String(base.name.to_string()));
                }
                let mut parts = Vec::new();
                for (i, (key, kind, values)) in axes.iter().enumerate() {
                    let value = &values[chosen[i]];
                    v.params.insert(Value::String(key.clone()), value.clone());
                    parts.push(format!("{}-{}", shorts[i], value_label(value)));
                    match kind {
                        Axis::Set => {
                            v.set.insert(key.clone(), value.clone());
                        }
                        Axis::Sysctl { client, name } => {
                            let parsed = serde_yaml_ng::from_value::<SysctlValue>(value.clone())
                                .map_err(|e| {
                                    Error::invalid(format!(
                                        "{}matrix.{key}: {e}",
                                        at(Some(key), None)
                                    ))
                                })?;
                            let side = if *client {
                                &mut v.sysctls.client
                            } else {
                                &mut v.sysctls.server
                            };
                            side.insert(name.clone(), parsed);
                        }
                    }
                }
                let point = parts.join(".");
                v.name = Name(if listed.len() > 1 {
                    format!("{}.{point}", base.name)
                } else {
                    point
                });
                generated.push(v);
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        let named = generated
            .iter()
            .all(|v| valid_name(v.name.as_str()) && seen.insert(v.name.clone()));
        if !named {
            for (i, v) in generated.iter_mut().enumerate() {
                let n = i % points + 1;
                v.name = Name(if listed.len() > 1 {
                    format!("{}.point-{n}", listed[i / points].name)
                } else {
                    format!("point-{n}")
                });
            }
        }
        self.variants = generated;
        self.matrix = Mapping::new();
        Ok(())
    }

    /// The axes of a sweep, from the variants' `params`: each key, in the
    /// order of the first variant's, with how many values it takes. Empty
    /// for a scenario without one.
    pub fn sweep_axes(&self) -> Vec<(String, usize)> {
        let Some(first) = self.variants.first() else {
            return Vec::new();
        };
        first
            .params
            .keys()
            .filter_map(Value::as_str)
            .map(|k| {
                let mut values: Vec<&Value> = Vec::new();
                for v in &self.variants {
                    if let Some(x) = v.params.get(k)
                        && !values.contains(&x)
                    {
                        values.push(x);
                    }
                }
                (k.to_string(), values.len())
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
