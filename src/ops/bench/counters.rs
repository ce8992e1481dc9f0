//! What reading the kernel's counters of one side costs: twlab's in-process
//! read (`/proc/net/netstat`, `/proc/net/snmp`, conntrack's statistics, its
//! count, limit and timeouts, from files opened inside the namespace; kept
//! open as a run keeps them, and opened each time) against
//! the commands people type for the same figures: `nstat -asz` (iproute2;
//! `-s` so it leaves its history file alone), `netstat -s` (net-tools) and
//! `conntrack -S`.
//!
//! A run reads every side's counters with every sample, so this is a cost
//! paid once per side per tick; the goal is ≤ 100 µs. The namespace is a
//! lab namespace that has carried connections (conntrack on, 1,000 closed
//! connections), so the files hold what they hold during a run. Each
//! method runs [`READS`] times per round, in an order rotated each round;
//! a row's value is the mean time of one read in a round, and the note
//! says how many counters that read gave (the peers print fewer: `nstat`
//! and `netstat -s` have no conntrack figures, `conntrack -S` nothing else).
//! One row reads the same kept-open files and parses nothing: the kernel's
//! share, which no in-process reader of these files can go under, so the
//! rest of twlab's row is its own parsing and building of the reading.

use super::counting::tool_installed;
use super::population::Population;
use super::{BenchOptions, Row, Section, median, round_order};
use crate::error::{Error, Result};
use crate::lab::netns::sys;
use crate::measure::kernel_counters;
use std::path::Path;
use std::time::Instant;

/// Reads per method and round.
const READS: usize = 20;
/// Closed connections in the namespace before reading.
const CONNECTIONS: u64 = 1_000;

/// One way of reading the counters.
#[derive(Clone, Copy)]
enum Method {
    /// A run's way: the files opened once, read at every sample.
    Twlab,
    /// Opened and read each time (`twlab states --counters` without `--watch`).
    TwlabOnce,
    /// The kept-open files read and not parsed: the kernel's share of
    /// [`Method::Twlab`], the floor of any in-process reader of these files.
    Unparsed,
    Command(&'static [&'static str]),
}

struct Timed {
    what: String,
    method: Method,
    /// Microseconds per read, one value per round.
    times: Vec<f64>,
    /// Counters (or output lines with a number) per read.
    counters: Vec<f64>,
}

pub async fn run(opts: &BenchOptions) -> Result<Vec<Row>> {
    let pop = Population::build(CONNECTIONS).await?;
    let measured = measure(&pop.netns_path(), opts.rounds);
    pop.destroy().await;
    measured
}

fn measure(ns: &Path, rounds: usize) -> Result<Vec<Row>> {
    let timed = |what: &str, method| Timed {
        what: what.to_string(),
        method,
        times: Vec::new(),
        counters: Vec::new(),
    };
    let mut methods = [
        timed(
            "twlab, in-process, files kept open (a run's sample)",
            Method::Twlab,
        ),
        timed(
            "twlab, in-process, files opened each time",
            Method::TwlabOnce,
        ),
        timed(
            "the same files read, not parsed (the kernel's share)",
            Method::Unparsed,
        ),
        timed("nstat -asz", Method::Command(&["nstat", "-asz"])),
        timed("netstat -s", Method::Command(&["netstat", "-s"])),
        timed("conntrack -S", Method::Command(&["conntrack", "-S"])),
    ];
    let ns = ns.to_path_buf();
    for round in 0..rounds.max(1) {
        for i in round_order(methods.len(), round) {
            let t = &mut methods[i];
            let method = t.method;
            if let Method::Command(argv) = method
                && !tool_installed(argv[0])
            {
                continue;
            }
            let (secs, counters) = sys::in_netns(&ns, move || time_reads(method))
                .map_err(|e| Error::env(format!("bench: {}: {e}", t.what)))?;
            t.times.push(secs * 1e6 / READS as f64);
            t.counters.push(counters as f64);
        }
    }
    let condition = format!("a lab namespace after {CONNECTIONS} connections, conntrack on");
    let row = |t: &Timed| {
        let n = median(&t.counters);
        Row::new(Section::Counters, t.what.clone(), &condition)
            .values("µs", t.times.clone())
            .note(if !n.is_finite() {
                "not run: the tool is not installed".to_string()
            } else if matches!(t.method, Method::Unparsed) {
                format!("{n:.0} bytes per read, no counters")
            } else {
                format!("{n:.0} counters per read")
            })
    };
    let twlab = row(&methods[0]);
    let mut rows = vec![twlab.clone()];
    rows.extend(methods[1..].iter().map(|t| row(t).against(&twlab)));
    Ok(rows)
}

/// [`READS`] reads by `method` from this thread (inside the namespace):
/// the seconds they took and the counters the last one gave.
fn time_reads(method: Method) -> std::io::Result<(f64, usize)> {
    // A run opens the files once, when its first sample is taken.
    let mut files = match method {
        Method::Twlab | Method::Unparsed => {
            Some(kernel_counters::CounterFiles::open_here().map_err(std::io::Error::other)?)
        }
        _ => None,
    };
    let started = Instant::now();
    let mut counters = 0;
    for _ in 0..READS {
        counters = match method {
            Method::Twlab => match files.as_mut() {
                Some(f) => f.read().map_err(std::io::Error::other)?.len(),
                None => 0,
            },
            Method::Unparsed => match files.as_mut() {
                Some(f) => f.read_unparsed().map_err(std::io::Error::other)?,
                None => 0,
            },
            Method::TwlabOnce => kernel_counters::read_here()
                .map_err(std::io::Error::other)?
                .len(),
            Method::Command(argv) => {
                // A child forked from this thread is in its namespace.
                let out = std::process::Command::new(argv[0])
                    .args(&argv[1..])
                    .stderr(std::process::Stdio::null())
                    .output()?;
                if !out.status.success() {
                    return Err(std::io::Error::other(format!(
                        "`{}` failed: {}",
                        argv.join(" "),
                        out.status
                    )));
                }
                numbers(&String::from_utf8_lossy(&out.stdout))
            }
        };
    }
    Ok((started.elapsed().as_secs_f64(), counters))
}

/// The figures a peer printed: the numbers on its lines (`nstat`: one per
/// line; `netstat -s`: one per line of prose; `conntrack -S`: `key=value`
/// pairs, several per CPU line).
fn numbers(text: &str) -> usize {
    text.split_whitespace()
        .filter(|w| {
            let v = w.rsplit('=').next().unwrap_or(w);
            !v.is_empty() && v.chars().all(|c| c.is_ascii_digit())
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peers_figures_are_counted_as_printed() {
        assert_eq!(numbers("#kernel\nTcpExtTW 12 0.0\nIpInReceives 3 0.0\n"), 2);
        assert_eq!(numbers("    7 active connection openings\n"), 1);
        assert_eq!(
            numbers("cpu=0 found=0 invalid=3 insert=0 insert_failed=0\n"),
            5
        );
    }
}
