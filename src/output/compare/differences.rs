//! Finding what differs between two runs besides the figures: the machine
//! and twlab, the sysctls each variant applied and the values they
//! replaced, the conntrack timeouts, the scenario itself, and the variants
//! only one run has. Each step appends to [`Differences`] in the order the
//! comparison lists them; every difference found here is a warning (the
//! refusals are decided before, in `compare_runs`).

use super::yaml::{YamlPath, flatten_yaml};
use super::{Difference, RunDir, RunHeader, Severity, VariantNames, completed, runs_text};
use crate::common::endpoint::Side;
use crate::error::Result;
use crate::results::env::Env;
use crate::results::{self, Summary, VariantSummary};
use crate::scenario::normalize_sysctl;
use std::collections::{BTreeMap, BTreeSet};

/// The differences found so far, in the order they are listed.
#[derive(Default)]
pub(super) struct Differences(pub(super) Vec<Difference>);

impl Differences {
    fn warn(&mut self, what: String, a: String, b: String) {
        self.0.push(Difference {
            what,
            a,
            b,
            severity: Severity::Warning,
        })
    }

    /// What the machine and twlab were: kernel, twlab version, OS, tool
    /// versions, the machine's sysctls, the lab, the run order.
    pub(super) fn machine(&mut self, a: &RunDir, b: &RunDir, ha: &RunHeader, hb: &RunHeader) {
        let (sa, sb) = (&a.summary, &b.summary);
        if ha.kernel != hb.kernel {
            self.warn("kernel".into(), ha.kernel.clone(), hb.kernel.clone());
        }
        if sa.info.twlab_version != sb.info.twlab_version {
            self.warn(
                "twlab version".into(),
                sa.info.twlab_version.clone(),
                sb.info.twlab_version.clone(),
            );
        }
        match (&a.env, &b.env) {
            (Some(ea), Some(eb)) => {
                if ea.os != eb.os {
                    self.warn("OS".into(), or_unknown(&ea.os), or_unknown(&eb.os));
                }
                for (tool, va, vb) in map_diff(&ea.tools, &eb.tools) {
                    self.warn(format!("tool {tool}"), or_absent(va), or_absent(vb));
                }
                for (name, va, vb) in map_diff(&ea.machine_sysctls, &eb.machine_sysctls) {
                    self.warn(
                        format!("machine sysctl {name}"),
                        or_absent(va),
                        or_absent(vb),
                    );
                }
            }
            (ea, eb) => {
                if ea.is_some() != eb.is_some() {
                    self.warn(
                        results::ENV_FILE.into(),
                        presence(ea.is_some()),
                        presence(eb.is_some()),
                    );
                }
            }
        }
        if sa.info.lab != sb.info.lab {
            self.warn("lab".into(), sa.info.lab.clone(), sb.info.lab.clone());
        }
        if !sa.info.order.is_empty() && !sb.info.order.is_empty() && sa.info.order != sb.info.order
        {
            self.warn(
                "run order".into(),
                sa.info.order.clone(),
                sb.info.order.clone(),
            );
        }
    }

    /// The sysctls each common variant applied (with the values they
    /// replaced), and the conntrack timeouts. Returns the variants whose
    /// applied sysctls are known in both runs (the scenario step then
    /// leaves their `sysctls` settings out: they are listed here, with
    /// their before values).
    pub(super) fn applied_sysctls(
        &mut self,
        a: &RunDir,
        b: &RunDir,
        common: &[(&VariantSummary, &VariantSummary)],
    ) -> BTreeSet<String> {
        let mut applied_known = BTreeSet::new();
        if let (Some(ea), Some(eb)) = (&a.env, &b.env) {
            for (va, _) in common {
                let (pa, pb) = (applied(ea, &va.name), applied(eb, &va.name));
                if has_runs(ea, &va.name) && has_runs(eb, &va.name) {
                    applied_known.insert(va.name.clone());
                }
                for ((side, name), x, y) in map_diff(&pa, &pb) {
                    self.warn(
                        format!("sysctl set by {} on the {side}: {name}", va.name),
                        or_not_set(x),
                        or_not_set(y),
                    );
                }
            }
            for (key, x, y) in map_diff(&conntrack_timeouts(ea), &conntrack_timeouts(eb)) {
                self.warn(
                    format!("conntrack timeout {key}"),
                    or_absent(x),
                    or_absent(y),
                );
            }
        }
        applied_known
    }

    /// The scenario itself: `scenario.yaml` present in one run only, or its
    /// settings that differ, scalar by scalar (or, when none does, that
    /// only its layout differs). Only a `scenario.yaml` that is not YAML is
    /// an error.
    pub(super) fn scenario(
        &mut self,
        a: &RunDir,
        b: &RunDir,
        (ha, hb): (&RunHeader, &RunHeader),
        names: &VariantNames,
        applied_known: &BTreeSet<String>,
    ) -> Result<()> {
        match (&a.scenario_yaml, &b.scenario_yaml) {
            (Some(ya), Some(yb)) if ya != yb => {
                let fa = flatten_yaml(ya, &a.dir)?;
                let fb = flatten_yaml(yb, &b.dir)?;
                let diffs = map_diff(&fa, &fb);
                if diffs.is_empty() {
                    self.warn(
                        format!("{} (layout only, same settings)", results::SCENARIO_FILE),
                        ha.scenario_hash.clone().unwrap_or_default(),
                        hb.scenario_hash.clone().unwrap_or_default(),
                    );
                }
                for (YamlPath(path), x, y) in diffs {
                    if !listed_elsewhere(&path, names, applied_known) {
                        self.warn(
                            format!("scenario: {}", path.join(".")),
                            or_not_set(x),
                            or_not_set(y),
                        );
                    }
                }
            }
            (Some(_), None) | (None, Some(_)) => {
                self.warn(
                    results::SCENARIO_FILE.into(),
                    presence(a.scenario_yaml.is_some()),
                    presence(b.scenario_yaml.is_some()),
                );
            }
            _ => {}
        }
        Ok(())
    }

    /// The variants of one run only, with their completed runs.
    pub(super) fn one_run_only(&mut self, sa: &Summary, sb: &Summary, names: &VariantNames) {
        for (s, others, in_a) in [(sa, &names.b, true), (sb, &names.a, false)] {
            for v in s
                .variants
                .iter()
                .filter(|v| !others.contains(v.name.as_str()))
            {
                let (here, absent) = (runs_text(completed(v)), "(absent)".to_string());
                let (va, vb) = if in_a { (here, absent) } else { (absent, here) };
                self.warn(format!("variant {}", v.name), va, vb);
            }
        }
    }
}

/// Whether a scenario setting that differs is listed by another step: the
/// name is the scenario's (checked before anything else), a variant of one
/// run only is listed as such, and the sysctls a variant applied come with
/// their before values.
fn listed_elsewhere(
    path: &[String],
    names: &VariantNames,
    applied_known: &BTreeSet<String>,
) -> bool {
    let variant = (path.first().is_some_and(|s| s == "variants"))
        .then(|| path.get(1))
        .flatten();
    path == ["name"]
        || variant.is_some_and(|v| {
            !names.a.contains(v.as_str())
                || !names.b.contains(v.as_str())
                || (path.get(2).is_some_and(|s| s == "sysctls") && applied_known.contains(v))
        })
}

/// Whether a file of a run directory is there.
fn presence(present: bool) -> String {
    if present { "present" } else { "(missing)" }.to_string()
}

fn or_unknown(s: &str) -> String {
    if s.trim().is_empty() {
        "(unknown)".into()
    } else {
        s.to_string()
    }
}

fn or_absent(v: Option<String>) -> String {
    v.unwrap_or_else(|| "(absent)".into())
}

fn or_not_set(v: Option<String>) -> String {
    v.unwrap_or_else(|| "(not set)".into())
}
/// The keys whose values differ between two maps, with each side's value
/// (`None` where the key is missing), in key order.
fn map_diff<K: Ord + Clone>(
    a: &BTreeMap<K, String>,
    b: &BTreeMap<K, String>,
) -> Vec<(K, Option<String>, Option<String>)> {
    let keys: BTreeSet<&K> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter_map(|k| {
            let (x, y) = (a.get(k), b.get(k));
            (x != y).then(|| (k.clone(), x.cloned(), y.cloned()))
        })
        .collect()
}

fn has_runs(env: &Env, variant: &str) -> bool {
    env.runs.iter().any(|r| r.variant == variant)
}

/// The sysctls a variant applied over its runs, by (side, name): the value
/// read back with the value it replaced, e.g. `1 (before 2)`; the values of
/// runs that disagree are joined with ` / `.
fn applied(env: &Env, variant: &str) -> BTreeMap<(Side, String), String> {
    let mut seen: BTreeMap<(Side, String), Vec<String>> = BTreeMap::new();
    for run in env.runs.iter().filter(|r| r.variant == variant) {
        for c in &run.sysctls {
            let (before, wanted, after) = (
                normalize_sysctl(&c.before),
                normalize_sysctl(&c.wanted),
                normalize_sysctl(&c.after),
            );
            let text = if wanted == after {
                format!("{after} (before {before})")
            } else {
                format!("{after} (wanted {wanted}, before {before})")
            };
            let values = seen.entry((c.side, c.name.clone())).or_default();
            if !values.contains(&text) {
                values.push(text);
            }
        }
    }
    seen.into_iter().map(|(k, v)| (k, v.join(" / "))).collect()
}

/// The conntrack timeouts over all runs, by `side name`; values of runs that
/// disagree are joined with ` / `.
fn conntrack_timeouts(env: &Env) -> BTreeMap<String, String> {
    let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for run in &env.runs {
        for (side, timeouts) in &run.conntrack_timeouts {
            for (name, value) in timeouts {
                let short = name.strip_prefix("net.netfilter.").unwrap_or(name);
                let values = seen.entry(format!("on the {side}: {short}")).or_default();
                let value = normalize_sysctl(value);
                if !values.contains(&value) {
                    values.push(value);
                }
            }
        }
    }
    seen.into_iter().map(|(k, v)| (k, v.join(" / "))).collect()
}
