//! `twlab compare RUN_A RUN_B`: the same scenario run twice, side by side.
//!
//! A variant of a scenario compares sysctls within one run. The other
//! question a lab answers is "what changed between last week and today":
//! a new kernel, a new twlab, another machine. `compare` reads two run
//! directories of the same scenario and compares each variant present in
//! both, B's runs against A's runs, metric by metric, with the very
//! statistics a run uses between its variants ([`metrics::compare`]: means
//! over completed runs, Welch's 95% interval of the change, a verdict), so a
//! "better" here means what it means in a report.
//!
//! Two runs differ in more than the thing under study, and a comparison is
//! only as good as what else stayed the same. So before any figure, compare
//! lists everything else it can see that differs, from `summary.json`,
//! `env.json` and `scenario.yaml`: kernel, twlab version, OS, tool versions,
//! the scenario itself (by a hash of `scenario.yaml`, then scalar by scalar,
//! e.g. `client.duration`: `1m 30s` vs `10s`), the machine's sysctls, the
//! sysctls each variant applied and the values they replaced (a kernel's
//! defaults change between releases), the conntrack timeouts, and the
//! variants present in only one run. These are warnings: the kernel is
//! usually exactly what is being compared, and the reader decides what the
//! other differences mean. Two different scenarios, or two runs without a
//! variant in common, have nothing comparable: [`compare_dirs`] refuses them
//! as invalid input (exit 2), naming both directories and the reason.

mod render;
pub use render::*;

use crate::analysis::metrics;
use crate::common::endpoint::Side;
use crate::common::names;
use crate::error::{Error, Result};
use crate::output::markdown::{self, code, inline, num, percent, signed};
use crate::results::Verdict;
use crate::results::env::Env;
use crate::results::{self, Comparison, RunInfo, Summary, VariantSummary};
use crate::scenario::normalize_sysctl;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// How much a difference between the two runs matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Listed at the top of the output; the comparison goes on.
    Warning,
    /// Nothing can be compared: [`compare_dirs`] returns an error.
    Refuse,
}

/// One thing that differs between run A and run B besides the figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Difference {
    /// What differs, e.g. `kernel`, `scenario: client.duration`,
    /// `sysctl set by reuse-on on the client: net.ipv4.tcp_tw_reuse`.
    pub what: String,
    /// Its value in run A (`(not set)` / `(missing)` when absent there).
    pub a: String,
    /// Its value in run B.
    pub b: String,
    pub severity: Severity,
}

/// What a run directory says about itself, for the header of a comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunHeader {
    /// The run directory.
    pub dir: PathBuf,
    /// The kernel release (from `env.json`, else `summary.json`).
    pub kernel: String,
    pub info: RunInfo,
    /// FNV-1a 64 of `scenario.yaml` (16 hex digits), when the file exists.
    pub scenario_hash: Option<String>,
}

/// A variant present in both runs, with its completed runs on each side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VariantPair {
    pub name: String,
    /// Completed runs (no error) in run A.
    pub runs_a: usize,
    /// Completed runs in run B.
    pub runs_b: usize,
}

/// Two run directories compared: what differs, and every metric of every
/// variant they have in common.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunCompare {
    /// Run A, the reference (the "baseline" of every comparison).
    pub a: PathBuf,
    /// Run B, compared against A.
    pub b: PathBuf,
    /// The scenario both ran.
    pub scenario: String,
    pub a_header: RunHeader,
    pub b_header: RunHeader,
    /// The variants present in both, in A's order.
    pub variants: Vec<VariantPair>,
    /// Everything that differs besides the figures. [`compare_dirs`] returns
    /// only warnings here (a refusal is an error instead).
    pub differences: Vec<Difference>,
    /// B against A per variant and metric: `baseline_value` and
    /// `baseline_stats` are A's, `value` and `stats` B's; `variant` and
    /// `baseline` both name the variant.
    pub comparisons: Vec<Comparison>,
    /// Facts about the runs that weigh on the figures (failed, incomplete or
    /// invalid runs), one sentence each.
    pub notes: Vec<String>,
}

/// A run directory as compare reads it.
#[derive(Debug, Clone)]
pub struct RunDir {
    pub dir: PathBuf,
    pub summary: Summary,
    /// `env.json`, when present; a field it lacks (an older or newer
    /// twlab's file) reads as empty.
    pub env: Option<Env>,
    /// The text of `scenario.yaml`, when present.
    pub scenario_yaml: Option<String>,
}

impl RunDir {
    /// Read `summary.json` (required), `env.json` and `scenario.yaml`
    /// (optional) of a run directory. Errors name the file.
    pub fn load(dir: &Path) -> Result<RunDir> {
        if !dir.is_dir() {
            return Err(Error::invalid(format!(
                "{}: no such directory; expected a twlab run directory",
                dir.display()
            )));
        }
        let summary = results::read_summary(dir)?;
        let env = match read_optional(&dir.join(results::ENV_FILE))? {
            Some(text) => Some(serde_json::from_str(&text).map_err(|e| {
                Error::invalid(format!("{}: {e}", dir.join(results::ENV_FILE).display()))
            })?),
            None => None,
        };
        let scenario_yaml = read_optional(&dir.join(results::SCENARIO_FILE))?;
        Ok(RunDir {
            dir: dir.to_path_buf(),
            summary,
            env,
            scenario_yaml,
        })
    }
}

/// The text of a file, `None` when it does not exist.
fn read_optional(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::invalid(format!(
            "{}: cannot read ({e})",
            path.display()
        ))),
    }
}

/// Read both run directories and compare each variant present in both: B's
/// runs against A's runs, per metric, with the same statistics as within a
/// run (metrics::comparison: Welch 95% CI, verdict).
///
/// Refuses (as [`Error::Invalid`], exit 2) two runs of different scenarios
/// or without a variant in common.
pub fn compare_dirs(a: &Path, b: &Path) -> Result<RunCompare> {
    let ra = RunDir::load(a)?;
    let rb = RunDir::load(b)?;
    let c = compare_runs(&ra, &rb)?;
    let refusals: Vec<String> = c
        .differences
        .iter()
        .filter(|d| d.severity == Severity::Refuse)
        .map(|d| format!("{}: {} vs {}", d.what, d.a, d.b))
        .collect();
    if !refusals.is_empty() {
        return Err(Error::invalid(format!(
            "cannot compare {} with {}: {}",
            a.display(),
            b.display(),
            refusals.join("; ")
        )));
    }
    Ok(c)
}

/// Compare two loaded run directories. Refusals are listed in
/// [`RunCompare::differences`] with [`Severity::Refuse`] (and no comparison
/// is made); only a `scenario.yaml` that is not YAML is an error.
pub fn compare_runs(a: &RunDir, b: &RunDir) -> Result<RunCompare> {
    let (sa, sb) = (&a.summary, &b.summary);
    let mut differences = Vec::new();
    let mut warn = |what: String, va: String, vb: String| {
        differences.push(Difference {
            what,
            a: va,
            b: vb,
            severity: Severity::Warning,
        })
    };

    if sa.scenario != sb.scenario {
        // Nothing else matters: the figures measure different things.
        let refuse = Difference {
            what: "different scenarios".into(),
            a: sa.scenario.clone(),
            b: sb.scenario.clone(),
            severity: Severity::Refuse,
        };
        return Ok(empty(a, b, vec![refuse]));
    }

    // The variants: in both, or in one only.
    let names_b: BTreeSet<&str> = sb.variants.iter().map(|v| v.name.as_str()).collect();
    let names_a: BTreeSet<&str> = sa.variants.iter().map(|v| v.name.as_str()).collect();
    let common: Vec<(&VariantSummary, &VariantSummary)> = sa
        .variants
        .iter()
        .filter_map(|va| {
            sb.variants
                .iter()
                .find(|vb| vb.name == va.name)
                .map(|vb| (va, vb))
        })
        .collect();
    if common.is_empty() {
        let list = |s: &BTreeSet<&str>| {
            if s.is_empty() {
                "none".to_string()
            } else {
                s.iter().copied().collect::<Vec<_>>().join(", ")
            }
        };
        let refuse = Difference {
            what: "no variant in common".into(),
            a: list(&names_a),
            b: list(&names_b),
            severity: Severity::Refuse,
        };
        return Ok(empty(a, b, vec![refuse]));
    }

    // What the machine and twlab were.
    let (ha, hb) = (header(a), header(b));
    if ha.kernel != hb.kernel {
        warn("kernel".into(), ha.kernel.clone(), hb.kernel.clone());
    }
    if sa.info.twlab_version != sb.info.twlab_version {
        warn(
            "twlab version".into(),
            sa.info.twlab_version.clone(),
            sb.info.twlab_version.clone(),
        );
    }
    match (&a.env, &b.env) {
        (Some(ea), Some(eb)) => {
            if ea.os != eb.os {
                warn("OS".into(), or_unknown(&ea.os), or_unknown(&eb.os));
            }
            for (tool, va, vb) in map_diff(&ea.tools, &eb.tools) {
                warn(format!("tool {tool}"), or_absent(va), or_absent(vb));
            }
            for (name, va, vb) in map_diff(&ea.machine_sysctls, &eb.machine_sysctls) {
                warn(
                    format!("machine sysctl {name}"),
                    or_absent(va),
                    or_absent(vb),
                );
            }
        }
        (ea, eb) => {
            if ea.is_some() != eb.is_some() {
                warn(
                    results::ENV_FILE.into(),
                    presence(ea.is_some()),
                    presence(eb.is_some()),
                );
            }
        }
    }
    if sa.info.lab != sb.info.lab {
        warn("lab".into(), sa.info.lab.clone(), sb.info.lab.clone());
    }
    if !sa.info.order.is_empty() && !sb.info.order.is_empty() && sa.info.order != sb.info.order {
        warn(
            "run order".into(),
            sa.info.order.clone(),
            sb.info.order.clone(),
        );
    }

    // The sysctls each common variant applied, and the conntrack timeouts.
    let mut applied_known = BTreeSet::new();
    if let (Some(ea), Some(eb)) = (&a.env, &b.env) {
        for (va, _) in &common {
            let (pa, pb) = (applied(ea, &va.name), applied(eb, &va.name));
            if has_runs(ea, &va.name) && has_runs(eb, &va.name) {
                applied_known.insert(va.name.clone());
            }
            for ((side, name), x, y) in map_diff(&pa, &pb) {
                warn(
                    format!("sysctl set by {} on the {side}: {name}", va.name),
                    or_not_set(x),
                    or_not_set(y),
                );
            }
        }
        for (key, x, y) in map_diff(&conntrack_timeouts(ea), &conntrack_timeouts(eb)) {
            warn(
                format!("conntrack timeout {key}"),
                or_absent(x),
                or_absent(y),
            );
        }
    }

    // The scenario itself.
    match (&a.scenario_yaml, &b.scenario_yaml) {
        (Some(ya), Some(yb)) if ya != yb => {
            let fa = flatten_yaml(ya, &a.dir)?;
            let fb = flatten_yaml(yb, &b.dir)?;
            let diffs = map_diff(&fa, &fb);
            if diffs.is_empty() {
                warn(
                    format!("{} (layout only, same settings)", results::SCENARIO_FILE),
                    ha.scenario_hash.clone().unwrap_or_default(),
                    hb.scenario_hash.clone().unwrap_or_default(),
                );
            }
            for (YamlPath(path), x, y) in diffs {
                // Listed elsewhere: the name is the scenario's (checked
                // above), a variant of one run only is listed as such, and
                // the sysctls a variant applied come with their before values.
                let variant = (path.first().is_some_and(|s| s == "variants"))
                    .then(|| path.get(1))
                    .flatten();
                let elsewhere = path == ["name"]
                    || variant.is_some_and(|v| {
                        !names_a.contains(v.as_str())
                            || !names_b.contains(v.as_str())
                            || (path.get(2).is_some_and(|s| s == "sysctls")
                                && applied_known.contains(v))
                    });
                if !elsewhere {
                    warn(
                        format!("scenario: {}", path.join(".")),
                        or_not_set(x),
                        or_not_set(y),
                    );
                }
            }
        }
        (Some(_), None) | (None, Some(_)) => {
            warn(
                results::SCENARIO_FILE.into(),
                presence(a.scenario_yaml.is_some()),
                presence(b.scenario_yaml.is_some()),
            );
        }
        _ => {}
    }

    // Variants in one run only.
    let completed = |v: &VariantSummary| v.runs.iter().filter(|r| r.error.is_none()).count();
    for (s, others, in_a) in [(sa, &names_b, true), (sb, &names_a, false)] {
        for v in s
            .variants
            .iter()
            .filter(|v| !others.contains(v.name.as_str()))
        {
            let (here, absent) = (runs_text(completed(v)), "(absent)".to_string());
            let (va, vb) = if in_a { (here, absent) } else { (absent, here) };
            warn(format!("variant {}", v.name), va, vb);
        }
    }

    // The figures.
    let mut notes = Vec::new();
    let mut comparisons = Vec::new();
    let mut variants = Vec::new();
    for (va, vb) in &common {
        let pair = VariantPair {
            name: va.name.clone(),
            runs_a: completed(va),
            runs_b: completed(vb),
        };
        if pair.runs_a == 0 || pair.runs_b == 0 {
            notes.push(format!(
                "Variant {} has no completed run in {}: nothing to compare.",
                va.name,
                if pair.runs_a == 0 { "A" } else { "B" }
            ));
        } else if pair.runs_a < 2 || pair.runs_b < 2 {
            notes.push(format!(
                "Variant {} has {} completed run(s) in A and {} in B: a 95% interval needs at least two on each side (set `repeat: 3` or more).",
                va.name, pair.runs_a, pair.runs_b
            ));
        }
        comparisons.extend(metrics::compare(&[(*va).clone(), (*vb).clone()]));
        variants.push(pair);
    }
    for (label, s) in [("A", sa), ("B", sb)] {
        if !s.info.complete {
            notes.push(format!(
                "Run {label} is incomplete: not every planned run completed."
            ));
        }
        let failed = s
            .variants
            .iter()
            .flat_map(|v| &v.runs)
            .filter(|r| r.error.is_some())
            .count();
        if failed > 0 {
            notes.push(format!(
                "{failed} run(s) of {label} failed and are left out of the figures."
            ));
        }
        let invalid: Vec<String> = s
            .variants
            .iter()
            .flat_map(|v| v.runs.iter().map(move |r| (v, r)))
            .filter(|(_, r)| r.error.is_none() && !r.invalid.is_empty())
            .map(|(v, r)| format!("{} repeat {} ({})", v.name, r.repeat, r.invalid.join("; ")))
            .collect();
        if !invalid.is_empty() {
            notes.push(format!(
                "Figures of {label} that cannot be trusted: {}.",
                invalid.join(", ")
            ));
        }
    }

    Ok(RunCompare {
        a: a.dir.clone(),
        b: b.dir.clone(),
        scenario: sa.scenario.clone(),
        a_header: ha,
        b_header: hb,
        variants,
        differences,
        comparisons,
        notes,
    })
}

/// A comparison that stops at a refusal.
fn empty(a: &RunDir, b: &RunDir, differences: Vec<Difference>) -> RunCompare {
    RunCompare {
        a: a.dir.clone(),
        b: b.dir.clone(),
        scenario: a.summary.scenario.clone(),
        a_header: header(a),
        b_header: header(b),
        variants: Vec::new(),
        differences,
        comparisons: Vec::new(),
        notes: Vec::new(),
    }
}

fn header(r: &RunDir) -> RunHeader {
    let kernel = r
        .env
        .as_ref()
        .map(|e| e.kernel.clone())
        .filter(|k| !k.is_empty())
        .unwrap_or_else(|| r.summary.info.kernel.clone());
    RunHeader {
        dir: r.dir.clone(),
        kernel,
        info: r.summary.info.clone(),
        scenario_hash: r.scenario_yaml.as_deref().map(fnv1a64),
    }
}

fn runs_text(n: usize) -> String {
    format!("{n} completed run{}", if n == 1 { "" } else { "s" })
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

/// FNV-1a, 64 bits, as 16 hex digits: a stable fingerprint of a file, the
/// same across machines and Rust versions (unlike std's hasher).
fn fnv1a64(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// A scalar's path in a YAML document: mapping keys, list items by their
/// `name` when they have one (as `--set` addresses variants), else by index.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct YamlPath(Vec<String>);

/// Every scalar of a YAML document by path.
fn flatten_yaml(text: &str, dir: &Path) -> Result<BTreeMap<YamlPath, String>> {
    let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).map_err(|e| {
        Error::invalid(format!(
            "{}: {e}",
            dir.join(results::SCENARIO_FILE).display()
        ))
    })?;
    let mut out = BTreeMap::new();
    flatten_into(&value, &mut Vec::new(), &mut out);
    Ok(out)
}

fn flatten_into(
    value: &serde_yaml_ng::Value,
    path: &mut Vec<String>,
    out: &mut BTreeMap<YamlPath, String>,
) {
    use serde_yaml_ng::Value;
    match value {
        Value::Mapping(map) => {
            for (k, v) in map {
                path.push(scalar_text(k).unwrap_or_else(|| format!("{k:?}")));
                flatten_into(v, path, out);
                path.pop();
            }
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter().enumerate() {
                let name = item
                    .get("name")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .unwrap_or_else(|| i.to_string());
                path.push(name);
                flatten_into(item, path, out);
                path.pop();
            }
        }
        Value::Tagged(tagged) => flatten_into(&tagged.value, path, out),
        scalar => {
            let text = scalar_text(scalar).unwrap_or_default();
            out.insert(YamlPath(path.clone()), text);
        }
    }
}

fn scalar_text(v: &serde_yaml_ng::Value) -> Option<String> {
    use serde_yaml_ng::Value;
    match v {
        Value::Null => Some("null".into()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}
