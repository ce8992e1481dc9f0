//! The lines of a chart, apart from drawing them: which samples make each
//! line, and what each line stands for in the legend and the palette.
//!
//! With one client host a line is a run (a variant's repeats share its
//! colour and its legend entry). With several (`client.hosts`), a client
//! sample carries each host's counts beside their sum, and
//! `collect.client_lines` chooses what the client-side charts draw: the
//! sum, one line per run as with one host (`total`, the default), or one
//! line per client host of each run (`per_host`), which shows how a state
//! spreads over the clients, and one client running out of ports while the
//! others do not, which the sum hides.
//!
//! What a line stands for is a [`Key`]: a variant, or one client host of a
//! variant. Keys are numbered once for the whole plan, the variants first
//! (in the order they first appear, so with `total` the colours are the
//! variants' as they always were) and then the client hosts (in the order
//! they first appear); a key's number picks its colour, so a line has the
//! same colour in every chart, and each client host its own.

use crate::common::counts::{Counts, Source};
use crate::common::endpoint::Side;
use crate::results::Sample;
use crate::scenario::ClientLines;
use std::collections::HashMap;

/// What a line stands for: a variant (its runs, their client hosts summed
/// when there are several), or one client host of a variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct Key<'a> {
    pub variant: &'a str,
    /// 0-based client host, for a per-host line.
    pub host: Option<usize>,
}

impl Key<'_> {
    /// The legend's name of the line: `four-clients`, `four-clients client 2`
    /// (hosts are numbered from 1, as their namespaces are).
    pub fn label(&self) -> String {
        match self.host {
            None => self.variant.to_string(),
            Some(i) => format!("{} client {}", self.variant, i + 1),
        }
    }
}

/// Whether a sample's lines are its client hosts' rather than its sum.
fn per_host(s: &Sample, lines: ClientLines) -> bool {
    lines == ClientLines::PerHost && s.host == Side::Client && !s.per_client.is_empty()
}

/// Every key of the samples, numbered as the module documentation says:
/// a key's number is its index.
pub(super) fn keys(samples: &[Sample], lines: ClientLines) -> Vec<Key<'_>> {
    let mut out = Numbered::default();
    for s in samples {
        out.number(Key {
            variant: &s.variant,
            host: None,
        });
    }
    for s in samples.iter().filter(|s| per_host(s, lines)) {
        for i in 0..s.per_client.len() {
            out.number(Key {
                variant: &s.variant,
                host: Some(i),
            });
        }
    }
    out.items
}

/// Items numbered in the order they are first seen, found again in
/// constant time (a scenario may have thousands of runs, each with up to
/// 64 client hosts).
struct Numbered<T> {
    items: Vec<T>,
    index: HashMap<T, usize>,
}

impl<T> Default for Numbered<T> {
    fn default() -> Self {
        Numbered {
            items: Vec::new(),
            index: HashMap::new(),
        }
    }
}

impl<T: Copy + Eq + std::hash::Hash> Numbered<T> {
    /// The item's number, and whether it was seen for the first time.
    fn number(&mut self, item: T) -> (usize, bool) {
        match self.index.get(&item) {
            Some(&i) => (i, false),
            None => {
                self.items.push(item);
                self.index.insert(item, self.items.len() - 1);
                (self.items.len() - 1, true)
            }
        }
    }
}

/// One line of a chart: a run's (or one client host's of a run) counts of
/// one state over time, or a kernel counter's rate.
pub(super) struct RunSeries {
    /// Index into the plan's keys (and the palette).
    pub key: usize,
    /// (seconds since the load started, value); a count is exact as an f64
    /// up to 2^53.
    pub points: Vec<(f64, f64)>,
}

/// The lines of one chart, in the order they first appear. Empty when no
/// periodic sample of this side and source counted `state`: a sample that
/// does not name a state saw none, so it counts as zero in a chart that has
/// the state at all.
pub(super) fn runs_of(
    samples: &[Sample],
    side: Side,
    source: Source,
    state: &str,
    keys: &[Key],
    lines: ClientLines,
) -> Vec<RunSeries> {
    let relevant: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.host == side && s.source == source && !s.is_final && s.t.is_finite())
        .collect();
    if !relevant.iter().any(|s| s.counts.contains_key(state)) {
        return Vec::new();
    }
    // A run is a run id within a variant (ids are unique per run, the
    // variant is there in case two runs ever share one); a per-host line is
    // a run's client host.
    let numbers: HashMap<&Key, usize> = keys.iter().enumerate().map(|(i, k)| (k, i)).collect();
    let mut ids: Numbered<(&str, &str, Option<usize>)> = Numbered::default();
    let mut runs: Vec<RunSeries> = Vec::new();
    for s in relevant {
        let counts: Vec<(Option<usize>, &Counts)> = if per_host(s, lines) {
            s.per_client
                .iter()
                .enumerate()
                .map(|(i, c)| (Some(i), c))
                .collect()
        } else {
            vec![(None, &s.counts)]
        };
        for (host, counts) in counts {
            let (i, first) = ids.number((s.variant.as_str(), s.run_id.as_str(), host));
            if first {
                let key = Key {
                    variant: &s.variant,
                    host,
                };
                runs.push(RunSeries {
                    key: numbers.get(&key).copied().unwrap_or_default(),
                    points: Vec::new(),
                });
            }
            let count = counts.get(state).copied().unwrap_or(0);
            if let Some(run) = runs.get_mut(i) {
                run.points.push((s.t.max(0.0), count as f64));
            }
        }
    }
    for r in &mut runs {
        r.points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    runs
}
