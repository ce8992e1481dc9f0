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
mod tests {
    use super::*;

    const SWEEP: &str = "name: sweep
client:
  connections: 10
  duration: 5s
matrix:
  client.rate: [200, 400, 800]
  sysctls.client.net.ipv4.tcp_tw_reuse:
    - 0
    - 1
";

    fn parse(text: &str, set: &[&str]) -> Result<Scenario> {
        let set: Vec<String> = set.iter().map(|s| s.to_string()).collect();
        Scenario::parse(text, "s.yaml", &set)
    }

    fn names(s: &Scenario) -> Vec<&str> {
        s.variants.iter().map(|v| v.name.as_str()).collect()
    }

    fn refused(text: &str, set: &[&str]) -> String {
        let e = parse(text, set).unwrap_err();
        assert_eq!(e.exit_code(), 2, "{e}");
        e.to_string()
    }

    #[test]
    fn the_cross_product_becomes_named_variants_with_their_params() {
        let s = parse(SWEEP, &[]).unwrap();
        assert_eq!(
            names(&s),
            [
                "rate-200.tcp_tw_reuse-0",
                "rate-200.tcp_tw_reuse-1",
                "rate-400.tcp_tw_reuse-0",
                "rate-400.tcp_tw_reuse-1",
                "rate-800.tcp_tw_reuse-0",
                "rate-800.tcp_tw_reuse-1",
            ]
        );
        let v = &s.variants[3];
        assert_eq!(v.set["client.rate"], Value::from(400));
        let reuse = SysctlName::parse("net.ipv4.tcp_tw_reuse").unwrap();
        assert_eq!(v.sysctls.client[&reuse].0, "1");
        assert!(v.sysctls.server.is_empty());
        let keys: Vec<&str> = v.params.keys().filter_map(Value::as_str).collect();
        assert_eq!(
            keys,
            ["client.rate", "sysctls.client.net.ipv4.tcp_tw_reuse"]
        );
        assert_eq!(v.params["client.rate"], Value::from(400));
        // The generated variant runs what its values say.
        let (_, client) = s.effective(v).unwrap();
        assert_eq!(client.rate.map(|r| r.to_string()), Some("400".into()));
        assert!(s.matrix.is_empty());
        assert_eq!(
            s.sweep_axes(),
            [
                ("client.rate".to_string(), 3),
                ("sysctls.client.net.ipv4.tcp_tw_reuse".to_string(), 2)
            ]
        );
        // The resolved scenario (scenario.yaml of a run) reads back the same.
        assert_eq!(Scenario::parse(&s.to_yaml(), "resolved", &[]).unwrap(), s);
    }

    #[test]
    fn listed_variants_are_one_more_axis_and_keep_their_settings() {
        let text = format!(
            "{SWEEP}variants:\n  - name: keep\n  - name: close\n    set:\n      client.linger_zero: true\n"
        );
        let s = parse(&text, &[]).unwrap();
        assert_eq!(s.variants.len(), 12);
        assert_eq!(s.baseline().name.as_str(), "keep.rate-200.tcp_tw_reuse-0");
        let v = &s.variants[7];
        assert_eq!(v.name.as_str(), "close.rate-200.tcp_tw_reuse-1");
        assert_eq!(v.params[VARIANT_PARAM], Value::from("close"));
        assert_eq!(v.set["client.linger_zero"], Value::from(true));
        assert_eq!(v.set["client.rate"], Value::from(200));
        // One listed variant is the base of every point, not an axis.
        let one =
            format!("{SWEEP}variants:\n  - name: only\n    set:\n      client.linger_zero: true\n");
        let s = parse(&one, &[]).unwrap();
        assert_eq!(s.variants[0].name.as_str(), "rate-200.tcp_tw_reuse-0");
        assert!(!s.variants[0].params.contains_key(VARIANT_PARAM));
        assert_eq!(s.variants[0].set["client.linger_zero"], Value::from(true));
    }

    #[test]
    fn names_that_would_clash_fall_back_to_point_numbers() {
        let text = "name: x\nmatrix:\n  client.path: ['/a:b', '/a_b']\n";
        let s = parse(text, &[]).unwrap();
        assert_eq!(names(&s), ["point-1", "point-2"]);
        assert_eq!(s.variants[1].params["client.path"], Value::from("/a_b"));
        // Two axes with the same last segment are told apart by role.
        let text = "name: x\nmatrix:\n  sysctls.client.net.ipv4.tcp_tw_reuse: [0]\n  sysctls.server.net.ipv4.tcp_tw_reuse: [1]\n";
        let s = parse(text, &[]).unwrap();
        assert_eq!(names(&s), ["client-tcp_tw_reuse-0.server-tcp_tw_reuse-1"]);
    }

    #[test]
    fn bad_matrices_are_refused_at_their_line() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "  client.rate: [200, 400, 800]",
                "  client.nonsense: [1, 2]",
                "s.yaml:6: matrix key `client.nonsense` is not a scenario key: set `client.nonsense`: unknown field `nonsense`",
            ),
            (
                "  client.rate: [200, 400, 800]",
                "  name: [a, b]",
                "s.yaml:6: matrix key `name`",
            ),
            (
                "  client.rate: [200, 400, 800]",
                "  client.rate: []",
                "s.yaml:6: matrix.client.rate: the list is empty",
            ),
            (
                "  client.rate: [200, 400, 800]",
                "  client.rate: 200",
                "s.yaml:6: matrix.client.rate: expected a list",
            ),
            (
                "  client.rate: [200, 400, 800]",
                "  client.rate: [200, fast]",
                "s.yaml:6: matrix.client.rate[1]: set `client.rate`",
            ),
            (
                "  client.rate: [200, 400, 800]",
                "  client.rate: [200, 200]",
                "s.yaml:6: matrix.client.rate[1]: `200` is listed twice",
            ),
            (
                "  client.rate: [200, 400, 800]",
                "  client.rate: [[1]]",
                "s.yaml:6: matrix.client.rate[0]: a value must be one",
            ),
            (
                "    - 1",
                "    - \"a\\nb\"",
                "s.yaml:9: matrix.sysctls.client.net.ipv4.tcp_tw_reuse[1]: ",
            ),
            (
                "sysctls.client.net.ipv4",
                "sysctls.host.net.ipv4",
                "s.yaml:7: matrix key `sysctls.host.net.ipv4.tcp_tw_reuse`: sysctls are per role",
            ),
            (
                "sysctls.client.net.ipv4",
                "sysctls.client.kernel.ipv4",
                "s.yaml:7: matrix key `sysctls.client.kernel.ipv4.tcp_tw_reuse`: sysctl kernel.ipv4.tcp_tw_reuse is not a network sysctl",
            ),
            ("client.connections", "client.connections", ""),
        ];
        for (from, to, want) in cases {
            if want.is_empty() {
                continue;
            }
            let text = SWEEP.replace(from, to);
            assert_ne!(text, SWEEP, "{from}");
            let e = refused(&text, &[]);
            assert!(e.starts_with(want), "{to}: {e}");
        }
        // Wrong type in a block list: the value's own line.
        let text = SWEEP.replace(
            "    - 1",
            "    - 1\n  client.connections:\n    - 10\n    - none",
        );
        let e = refused(&text, &[]);
        assert!(
            e.starts_with("s.yaml:12: matrix.client.connections[1]: "),
            "{e}"
        );
    }

    #[test]
    fn a_product_over_the_cap_is_refused_at_the_matrix_line() {
        let values: Vec<String> = (1..=51).map(|n| (n * 10).to_string()).collect();
        let text = format!(
            "name: x\nvariants:\n  - name: a\nmatrix:\n  client.rate: [{}]\n  client.linger_zero: [false, true]\n",
            values.join(", ")
        );
        let e = refused(&text, &[]);
        assert!(
            e.starts_with("s.yaml:4: matrix: 51 x 2 = 102 variants is more than the 100"),
            "{e}"
        );
        // At the cap it is fine.
        let ok = text.replace(", 510]", "]");
        assert_eq!(parse(&ok, &[]).unwrap().variants.len(), 100);
    }

    #[test]
    fn a_listed_variant_setting_a_swept_key_is_refused() {
        let text = format!("{SWEEP}variants:\n  - name: a\n    set:\n      client.rate: 100\n");
        let e = refused(&text, &[]);
        assert!(
            e.starts_with("s.yaml:6: variant `a` sets client.rate, which the matrix sweeps"),
            "{e}"
        );
        let text = format!("{SWEEP}variants:\n  - name: a\n    params: {{ x: 1 }}\n");
        let e = refused(&text, &[]);
        assert!(
            e.starts_with("s.yaml:12: variant `a`: params is written by twlab"),
            "{e}"
        );
    }

    #[test]
    fn summary_json_gives_each_variant_its_params_in_matrix_order() {
        let s = parse(SWEEP, &[]).unwrap();
        let v = crate::results::VariantSummary::empty(&s.variants[5]);
        let json = serde_json::to_string(&v).unwrap();
        assert!(
            json.contains(
                r#""params":{"client.rate":800,"sysctls.client.net.ipv4.tcp_tw_reuse":1}"#
            ),
            "{json}"
        );
        let back: crate::results::VariantSummary = serde_json::from_str(&json).unwrap();
        assert_eq!(back, v);
        // Without a matrix there is no `params` key: old summaries and
        // snapshots stay byte-identical.
        let plain = parse("name: x\nvariants:\n  - name: a\n", &[]).unwrap();
        let json =
            serde_json::to_string(&crate::results::VariantSummary::empty(&plain.variants[0]))
                .unwrap();
        assert!(!json.contains("params"), "{json}");
    }

    #[test]
    fn a_matrix_or_variants_is_needed() {
        let e = refused("name: x\n", &[]);
        assert!(e.contains("missing field `variants`"), "{e}");
    }

    #[test]
    fn set_pins_a_swept_axis_and_changes_the_base_for_other_keys() {
        let s = parse(SWEEP, &["client.rate=300", "client.connections=20"]).unwrap();
        assert_eq!(
            names(&s),
            ["rate-300.tcp_tw_reuse-0", "rate-300.tcp_tw_reuse-1"]
        );
        for v in &s.variants {
            let (_, c) = s.effective(v).unwrap();
            assert_eq!(c.rate.map(|r| r.to_string()), Some("300".into()));
            assert_eq!(c.connections.get(), 20);
        }
        let s = parse(SWEEP, &["sysctls.client.net.ipv4.tcp_tw_reuse=2"]).unwrap();
        assert_eq!(s.variants.len(), 3);
        assert_eq!(s.variants[0].name.as_str(), "rate-200.tcp_tw_reuse-2");
        // A pinned value gets the same checks as a listed one.
        let e = refused(SWEEP, &["client.rate=fast"]);
        assert!(
            e.starts_with(
                "--set client.rate=fast: s.yaml: matrix.client.rate[0]: set `client.rate`"
            ),
            "{e}"
        );
    }

    #[test]
    fn expectations_name_generated_variants() {
        let text = format!(
            "{SWEEP}expect:\n  - variant: rate-800.tcp_tw_reuse-1\n    metric: client.errors\n    change: \"< 1\"\n"
        );
        let s = parse(&text, &[]);
        let text_bad = text.replace("rate-800.tcp_tw_reuse-1", "rate-900");
        let e = refused(&text_bad, &[]);
        assert!(e.contains("`rate-900` is not a variant"), "{e}");
        s.unwrap();
    }
}
