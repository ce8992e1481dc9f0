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
//!
//! Here: the model of a comparison and [`compare_runs`] as its named steps
//! (refusals, differences, figures, notes). Finding the differences is in
//! `differences.rs`, one step per kind of difference; `scenario.yaml`
//! flattened to a map of scalars in `yaml.rs`; the text for a file or the
//! terminal in `render.rs`.

mod differences;
mod render;
mod yaml;
pub use render::*;

use crate::analysis::metrics;
use crate::common::names;
use crate::error::{Error, Result};
use crate::output::markdown::{self, code, inline, num, percent, signed};
use crate::results::Verdict;
use crate::results::env::Env;
use crate::results::{self, Comparison, RunInfo, Summary, VariantSummary};
use differences::Differences;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
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

/// The files [`compare_dirs`] reads in run directories `a` and `b` (what
/// `compare --out` must never overwrite). [`RunDir::load`] reads these.
pub fn inputs(a: &Path, b: &Path) -> Vec<PathBuf> {
    [a, b]
        .iter()
        .flat_map(|d| RUN_FILES.iter().map(|f| d.join(f)))
        .collect()
}

/// The files of a run directory [`RunDir::load`] reads.
const RUN_FILES: [&str; 3] = [
    results::SUMMARY_FILE,
    results::ENV_FILE,
    results::SCENARIO_FILE,
];

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
///
/// The steps, in the order their findings are listed: refuse what cannot
/// be compared, then what differs besides the figures (the machine, the
/// sysctls applied, the scenario, the variants of one run only; see
/// `differences.rs`), then the figures of each common variant and the notes
/// on runs that weigh on them.
pub fn compare_runs(a: &RunDir, b: &RunDir) -> Result<RunCompare> {
    let (sa, sb) = (&a.summary, &b.summary);
    if sa.scenario != sb.scenario {
        // Nothing else matters: the figures measure different things.
        let refuse = refusal(
            "different scenarios",
            sa.scenario.clone(),
            sb.scenario.clone(),
        );
        return Ok(empty(a, b, vec![refuse]));
    }
    let names = VariantNames::of(sa, sb);
    let common = common_variants(sa, sb);
    if common.is_empty() {
        let refuse = refusal("no variant in common", names.list_a(), names.list_b());
        return Ok(empty(a, b, vec![refuse]));
    }

    let (ha, hb) = (header(a), header(b));
    let mut found = Differences::default();
    found.machine(a, b, &ha, &hb);
    let applied_known = found.applied_sysctls(a, b, &common);
    found.scenario(a, b, (&ha, &hb), &names, &applied_known)?;
    found.one_run_only(sa, sb, &names);

    let (variants, comparisons, mut notes) = figures(&common);
    notes.extend(run_notes(sa, sb));
    Ok(RunCompare {
        a: a.dir.clone(),
        b: b.dir.clone(),
        scenario: sa.scenario.clone(),
        a_header: ha,
        b_header: hb,
        variants,
        differences: found.0,
        comparisons,
        notes,
    })
}

/// A difference that stops the comparison.
fn refusal(what: &str, a: String, b: String) -> Difference {
    Difference {
        what: what.into(),
        a,
        b,
        severity: Severity::Refuse,
    }
}

/// The names of each run's variants.
struct VariantNames<'a> {
    a: BTreeSet<&'a str>,
    b: BTreeSet<&'a str>,
}

impl<'a> VariantNames<'a> {
    fn of(sa: &'a Summary, sb: &'a Summary) -> Self {
        let names = |s: &'a Summary| s.variants.iter().map(|v| v.name.as_str()).collect();
        VariantNames {
            a: names(sa),
            b: names(sb),
        }
    }

    fn list_a(&self) -> String {
        list(&self.a)
    }

    fn list_b(&self) -> String {
        list(&self.b)
    }
}

/// Names joined with commas, `none` when there are none.
fn list(names: &BTreeSet<&str>) -> String {
    if names.is_empty() {
        "none".to_string()
    } else {
        names.iter().copied().collect::<Vec<_>>().join(", ")
    }
}

/// The variants present in both runs, in A's order, with each side's.
fn common_variants<'a>(
    sa: &'a Summary,
    sb: &'a Summary,
) -> Vec<(&'a VariantSummary, &'a VariantSummary)> {
    sa.variants
        .iter()
        .filter_map(|va| {
            sb.variants
                .iter()
                .find(|vb| vb.name == va.name)
                .map(|vb| (va, vb))
        })
        .collect()
}

/// A variant's complete runs (`RunSummary::is_complete`: no error, no signal, nothing missing).
fn completed(v: &VariantSummary) -> usize {
    v.runs.iter().filter(|r| r.is_complete()).count()
}

/// `3 completed runs`.
fn runs_text(n: usize) -> String {
    format!("{n} completed run{}", if n == 1 { "" } else { "s" })
}

/// B against A for each common variant: the pairs with their completed
/// runs, every metric's comparison, and a note where a variant has too few
/// runs for a comparison or an interval.
fn figures(
    common: &[(&VariantSummary, &VariantSummary)],
) -> (Vec<VariantPair>, Vec<Comparison>, Vec<String>) {
    let mut notes = Vec::new();
    let mut comparisons = Vec::new();
    let mut variants = Vec::new();
    for (va, vb) in common {
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
    (variants, comparisons, notes)
}

/// Facts about each run that weigh on the figures: incomplete, failed runs
/// (left out), runs whose figures cannot be trusted.
fn run_notes(sa: &Summary, sb: &Summary) -> Vec<String> {
    let mut notes = Vec::new();
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
            .filter(|r| !r.is_complete())
            .count();
        if failed > 0 {
            notes.push(format!(
                "{failed} run(s) of {label} failed, were interrupted or are not complete, and are left out of the figures."
            ));
        }
        let invalid: Vec<String> = s
            .variants
            .iter()
            .flat_map(|v| v.runs.iter().map(move |r| (v, r)))
            .filter(|(_, r)| r.is_complete() && !r.invalid.is_empty())
            .map(|(v, r)| format!("{} repeat {} ({})", v.name, r.repeat, r.invalid.join("; ")))
            .collect();
        if !invalid.is_empty() {
            notes.push(format!(
                "Figures of {label} that cannot be trusted: {}.",
                invalid.join(", ")
            ));
        }
    }
    notes
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
