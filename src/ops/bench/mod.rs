//! `twlab bench`: the instrument measured against the tools people trust,
//! in the same run, on this machine.
//!
//! A tool that counts TIME_WAIT must not change the load that makes the
//! TIME_WAIT, and its speed claims are only worth a ratio against a named
//! peer measured beside it. So every section here times twlab and its peer
//! alternately (A B A B, the order rotated each round so neither always
//! runs on a warm cache), keeps every measurement, and prints the medians
//! with the ratio against the peer:
//!
//! - [`counting`]: socket and conntrack counts of one endpoint over
//!   populations of 10k–200k TIME_WAIT sockets (with their conntrack
//!   entries) built in a lab namespace, twlab's in-process sock_diag and
//!   ctnetlink against `ss`, `netstat` and `conntrack -L` pipelines (the
//!   seed's own commands), with `/proc/net/sockstat` and `conntrack -C` as
//!   floors;
//! - [`overhead`]: requests/s of the embedded lab with sampling off, at 1 s
//!   (with and without the kernel's counters) and at 100 ms (the
//!   instrument's cost on what it measures);
//! - [`servers`]: the builtin server against nginx under wrk, and the
//!   builtin client against wrk, with CPU per request;
//! - [`clients`]: every installed load tool (httperf, ab, hey, h2load,
//!   oha, …) against the builtin client and wrk, requests/s and CPU per
//!   request, alternating in one run;
//! - [`lab`]: setting up and tearing down the embedded lab, in-process
//!   against the same with `ip` commands;
//! - [`counters`]: reading one side's kernel counters in-process against
//!   `nstat`, `netstat -s` and `conntrack -S`;
//! - [`rss`]: twlab's peak resident memory over a long run at 100 ms
//!   against a short one (memory must not grow with the run).
//!
//! Results are written to `bench.json` and `bench.md` in the output
//! directory after every section, so an interrupted bench keeps what it
//! measured. Every namespace is a labelled embedded lab (`twlab clean`
//! finds it after a crash); nothing on the machine itself is changed.

mod clients;
mod counters;
mod counting;
mod fixed_rate;
mod lab;
mod overhead;
mod population;
mod rss;
mod servers;
mod table;

use crate::error::{Error, Result};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;

/// A part of the bench.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Section {
    Counting,
    Overhead,
    Servers,
    Lab,
    Rss,
    /// Every installed load tool against the builtin client and wrk.
    Clients,
    /// The seed's shape at a fixed rate: rate kept, sampling's cost at a
    /// fixed rate, run-to-run spread of TIME_WAIT against the closed loop.
    #[value(name = "fixed-rate")]
    #[serde(rename = "fixed-rate")]
    FixedRate,
    /// Reading one side's kernel counters: twlab in-process against
    /// `nstat`, `netstat -s` and `conntrack -S`.
    Counters,
}

/// What `twlab bench` was asked for.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub sections: Vec<Section>,
    /// TIME_WAIT populations for the counting section.
    pub sizes: Vec<u64>,
    /// Timings per method and population in the counting section.
    pub rounds: usize,
    /// Runs per configuration in the load sections (overhead, servers).
    pub runs: usize,
    /// Load duration of one run in the load sections.
    pub duration: Duration,
    /// Duration of the long run of the memory section.
    pub rss_duration: Duration,
    /// Where bench.json and bench.md go.
    pub out: PathBuf,
    /// The twlab binary the load sections run (this one).
    pub exe: PathBuf,
}

/// One line of the result table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub section: Section,
    /// What was measured, e.g. `twlab sockets (sock_diag)` or the peer's command.
    pub what: String,
    /// Under which condition, e.g. `200k TIME_WAIT`.
    pub condition: String,
    /// The median of `values`.
    pub median: f64,
    pub unit: String,
    /// Every measurement, in the order taken.
    pub values: Vec<f64>,
    /// `median / reference median`, when the row has a reference.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
    /// What the ratio is against.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vs: Option<String>,
    /// Anything the reader must know (what the peer counted, a missing tool).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub note: String,
}

impl Row {
    fn new(section: Section, what: impl Into<String>, condition: impl Into<String>) -> Row {
        Row {
            section,
            what: what.into(),
            condition: condition.into(),
            median: f64::NAN,
            unit: String::new(),
            values: Vec::new(),
            ratio: None,
            vs: None,
            note: String::new(),
        }
    }

    fn values(mut self, unit: &str, values: Vec<f64>) -> Row {
        self.median = median(&values);
        self.unit = unit.to_string();
        self.values = values;
        self
    }

    fn against(mut self, reference: &Row) -> Row {
        if reference.median.is_finite() && reference.median != 0.0 && self.median.is_finite() {
            self.ratio = Some(self.median / reference.median);
            self.vs = Some(reference.what.clone());
        }
        self
    }

    fn note(mut self, note: impl Into<String>) -> Row {
        self.note = note.into();
        self
    }
}

/// The whole bench: the machine and every row so far.
#[derive(Debug, Serialize)]
pub struct BenchResult {
    pub machine: table::Machine,
    pub rows: Vec<Row>,
}

/// The median (the mean of the middle two for an even count); NaN for none.
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The order of `n` methods in round `round`: rotated by one each round,
/// so every method runs first as often as the others (A B, B A, …).
pub fn round_order(n: usize, round: usize) -> Vec<usize> {
    (0..n).map(|i| (i + round) % n.max(1)).collect()
}

/// Run the bench and print its table; results are saved after every section.
pub async fn run(opts: &BenchOptions) -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        return Err(Error::env(
            "twlab bench builds network namespaces: run it as root",
        ));
    }
    std::fs::create_dir_all(&opts.out).map_err(|e| Error::io(opts.out.display(), e))?;
    let mut result = BenchResult {
        machine: table::Machine::read(),
        rows: Vec::new(),
    };
    errln!("twlab bench: {}", result.machine.describe());
    for section in &opts.sections {
        errln!("twlab bench: {section:?} …");
        let rows = match section {
            Section::Counting => counting::run(opts).await?,
            Section::Overhead => overhead::run(opts).await?,
            Section::Servers => servers::run(opts).await?,
            Section::Lab => lab::run(opts).await?,
            Section::Rss => rss::run(opts).await?,
            Section::FixedRate => fixed_rate::run(opts).await?,
            Section::Counters => counters::run(opts).await?,
            Section::Clients => clients::run(opts).await?,
        };
        outln!("{}", table::render_terminal(&rows));
        result.rows.extend(rows);
        table::save(&opts.out, &result)?;
    }
    errln!(
        "twlab bench: results in {} (bench.json, bench.md)",
        opts.out.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
        assert_eq!(median(&[f64::NAN, 5.0]), 5.0);
    }

    #[test]
    fn every_method_leads_a_round_in_turn() {
        assert_eq!(round_order(3, 0), vec![0, 1, 2]);
        assert_eq!(round_order(3, 1), vec![1, 2, 0]);
        assert_eq!(round_order(3, 2), vec![2, 0, 1]);
        assert_eq!(round_order(2, 3), vec![1, 0]);
    }

    #[test]
    fn a_ratio_is_against_a_named_reference() {
        let twlab = Row::new(Section::Counting, "twlab", "10k").values("ms", vec![2.0]);
        let peer = Row::new(Section::Counting, "ss", "10k")
            .values("ms", vec![10.0, 30.0, 20.0])
            .against(&twlab);
        assert_eq!(peer.ratio, Some(10.0));
        assert_eq!(peer.vs.as_deref(), Some("twlab"));
        let none = Row::new(Section::Counting, "x", "").against(&twlab);
        assert_eq!(none.ratio, None);
    }
}
