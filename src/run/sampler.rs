//! Sampling TCP-state and conntrack counts for the server endpoint.
//!
//! Both sides are counted at each tick, sockets and conntrack in parallel,
//! and every sample is appended and flushed to `samples.jsonl` before the
//! next one is taken, so a crash or Ctrl-C loses nothing already measured.
//! A final snapshot is taken right after the client stops: TIME_WAIT is still
//! at its height then, while the last periodic tick may be up to one
//! interval older.

use super::kept::RunSamples;
use crate::common::counts::{Counts, Source, sum_counts};
use crate::common::endpoint::{Endpoint, Side};
use crate::error::{Error, Result};
use crate::lab::Counter;
use crate::measure::kernel_counters::{self, KernelCounters};
use crate::results::kernel::{self, KernelDeltas, KernelSample};
use crate::results::{BySide, KERNEL_FILE, Sample, SampleWriter};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// What to count and where.
pub struct Collector<'a> {
    pub server: &'a dyn Counter,
    /// The client hosts: one, or `client.hosts` of them. With several, the
    /// client side's sample is their sum and carries each host's counts
    /// ([`Sample::per_client`]).
    pub clients: Vec<&'a dyn Counter>,
    pub endpoint: Endpoint,
    pub sockets: bool,
    pub conntrack: bool,
    /// Labels stamped on every sample.
    pub variant: String,
    pub repeat: u32,
    pub run_id: String,
    /// The kernel's counters of each side, read with every snapshot and
    /// once as the load starts; see [`KernelSampling`].
    pub kernel: KernelSampling,
}

/// The kernel's counters as the collector reads them: each side's first
/// and latest, and the file each sample goes to (`kernel.jsonl`, opened in
/// the samples' directory as sampling starts). Reading them costs tens of
/// microseconds in-process (a few proc files), so they are read at every
/// tick with the counts. A host whose counters cannot be read (a kernel
/// without /proc/net/netstat, a remote shell that fails) gives none: stderr
/// says so once, and the run goes on.
#[derive(Default)]
pub struct KernelSampling {
    /// `collect.kernel_counters: false` turns the reads off (to measure
    /// what they cost, or on a host where they are not wanted).
    off: bool,
    state: std::sync::Mutex<KernelState>,
}

#[derive(Default)]
struct KernelState {
    writer: Option<SampleWriter>,
    /// Per side (server, client): the first sample and the latest.
    first: [Option<(f64, KernelCounters)>; 2],
    last: [Option<(f64, KernelCounters)>; 2],
    warned: bool,
}

fn side_slot(side: Side) -> usize {
    usize::from(side == Side::Client)
}

impl KernelSampling {
    /// Sampling that reads the counters when `on`.
    pub fn new(on: bool) -> Self {
        KernelSampling {
            off: !on,
            ..Default::default()
        }
    }

    /// Each side's counters over the load: see [`crate::results::kernel`].
    pub fn summary(&self) -> BySide<KernelDeltas> {
        let Ok(state) = self.state.lock() else {
            return BySide::default();
        };
        let of = |i: usize| match (&state.first[i], &state.last[i]) {
            (Some((t0, a)), Some((t1, b))) => kernel::deltas((*t0, a), (*t1, b)),
            _ => KernelDeltas::new(),
        };
        BySide {
            server: of(0),
            client: of(1),
        }
    }
}

impl Collector<'_> {
    /// Count everything once, on every host, at offset `t`: every host and
    /// source at once, so no slow count delays another. The final
    /// snapshot also notes how many client addresses the server's counts
    /// have seen.
    pub async fn snapshot(&self, t: f64, is_final: bool) -> Result<Vec<Sample>> {
        let sources: Vec<Source> = [
            (self.sockets, Source::Sockets),
            (self.conntrack, Source::Conntrack),
        ]
        .into_iter()
        .filter_map(|(on, s)| on.then_some(s))
        .collect();
        let hosts: Vec<&dyn Counter> = std::iter::once(self.server)
            .chain(self.clients.iter().copied())
            .collect();
        let jobs: Vec<(usize, Source)> = (0..hosts.len())
            .flat_map(|h| sources.iter().map(move |s| (h, *s)))
            .collect();
        let count = |(h, source): (usize, Source)| {
            let host = hosts[h];
            async move {
                match source {
                    Source::Sockets => host.socket_counts(self.endpoint).await,
                    Source::Conntrack => host.conntrack_counts(self.endpoint).await,
                }
            }
        };
        let kernel_hosts = if self.kernel.off { &[][..] } else { &hosts[..] };
        let (counts, kernel) = futures::future::join(
            futures::future::join_all(jobs.iter().copied().map(count)),
            futures::future::join_all(kernel_hosts.iter().map(|h| h.kernel_counters())),
        )
        .await;
        if !self.kernel.off {
            self.record_kernel(t, is_final, kernel)?;
        }
        // The client addresses the server's counts have seen, after them.
        let peers = if is_final && self.sockets {
            self.server.peer_addresses(self.endpoint).await
        } else {
            Ok(None)
        };
        let mut by_job: Vec<((usize, Source), Counts)> = Vec::with_capacity(jobs.len());
        for (job, c) in jobs.into_iter().zip(counts) {
            by_job.push((job, c?));
        }
        let sample = |side: Side, source: Source, counts: Counts, per_client: Vec<Counts>| Sample {
            t: (t * 1000.0).round() / 1000.0,
            variant: self.variant.clone(),
            repeat: self.repeat,
            run_id: self.run_id.clone(),
            host: side,
            source,
            is_final,
            counts,
            per_client,
            peers: None,
        };
        let mut out = Vec::new();
        for &source in &sources {
            let mut of_source = by_job
                .iter()
                .filter(|((_, s), _)| *s == source)
                .map(|((h, _), c)| (*h, c));
            if let Some((_, server)) = of_source.next() {
                let mut s = sample(Side::Server, source, server.clone(), Vec::new());
                if source == Source::Sockets {
                    // A server that cannot tell its peers leaves it unknown.
                    s.peers = peers.as_ref().ok().copied().flatten();
                }
                out.push(s);
            }
            let clients: Vec<Counts> = of_source.map(|(_, c)| c.clone()).collect();
            match clients.len() {
                0 => {}
                1 => out.extend(
                    clients
                        .into_iter()
                        .map(|c| sample(Side::Client, source, c, Vec::new())),
                ),
                _ => out.push(sample(Side::Client, source, sum_counts(&clients), clients)),
            }
        }
        Ok(out)
    }

    /// Keep one reading of the kernel's counters of every host (server
    /// first): summed over client hosts, written to `kernel.jsonl` and kept
    /// as the side's first or latest. A host that failed leaves its side
    /// out of this reading.
    fn record_kernel(
        &self,
        t: f64,
        is_final: bool,
        read: Vec<Result<KernelCounters>>,
    ) -> Result<()> {
        let Ok(mut state) = self.state_lock() else {
            return Ok(());
        };
        let mut read = read.into_iter();
        let server = read.next().into_iter().collect::<Vec<_>>();
        let clients: Vec<_> = read.collect();
        let t = (t * 1000.0).round() / 1000.0;
        for (side, results) in [(Side::Server, server), (Side::Client, clients)] {
            if results.is_empty() {
                continue;
            }
            let hosts = results.len();
            let mut all = Vec::with_capacity(hosts);
            for r in results {
                match r {
                    Ok(c) => all.push(c),
                    Err(e) => {
                        if !state.warned {
                            errln!(
                                "twlab: the kernel's counters are left out where they cannot be read: {e}"
                            );
                            state.warned = true;
                        }
                    }
                }
            }
            // A side of several hosts with one missing would be a part of
            // its sum, not the sum: left out of this reading.
            if all.is_empty() || all.len() < hosts {
                continue;
            }
            let counters = kernel_counters::sum(&all);
            if let Some(w) = state.writer.as_mut() {
                w.append_value(&KernelSample {
                    t,
                    variant: self.variant.clone(),
                    repeat: self.repeat,
                    run_id: self.run_id.clone(),
                    host: side,
                    is_final,
                    counters: counters
                        .iter()
                        .filter(|(_, v)| **v != 0)
                        .map(|(k, v)| (k.clone(), *v))
                        .collect(),
                })?;
            }
            let i = side_slot(side);
            if state.first[i].is_none() {
                state.first[i] = Some((t, counters.clone()));
            }
            state.last[i] = Some((t, counters));
        }
        Ok(())
    }

    fn state_lock(&self) -> std::result::Result<std::sync::MutexGuard<'_, KernelState>, ()> {
        self.kernel.state.lock().map_err(|_| ())
    }

    /// Open `kernel.jsonl` next to the samples and read every host's
    /// counters once, as the load starts: the start of each counter's
    /// change over the run.
    async fn kernel_baseline(&self, dir: Option<&std::path::Path>, t: f64) -> Result<()> {
        if self.kernel.off {
            return Ok(());
        }
        if let (Some(dir), Ok(mut state)) = (dir, self.state_lock()) {
            state.writer = Some(SampleWriter::create_file(dir, KERNEL_FILE)?);
        }
        let hosts = std::iter::once(self.server).chain(self.clients.iter().copied());
        let read = futures::future::join_all(hosts.map(|h| h.kernel_counters())).await;
        self.record_kernel(t, false, read)
    }

    /// Sample every `interval` from `start` until `stop` turns true; each
    /// sample goes to `writer` as it is taken, and to `kept` (what memory
    /// keeps of the run, bounded).
    ///
    /// A sample that takes longer than the interval never piles up: the
    /// ticks it overran are skipped and counted in [`Sampled::missed_ticks`]
    /// (the next sample is taken at the next multiple of the interval). A
    /// sample still running when `stop` turns true is abandoned, and one
    /// that takes longer than [`sample_timeout`] ends sampling with an error
    /// naming the hang, so a hung collector can hold neither the load nor a
    /// Ctrl-C.
    pub async fn run(
        &self,
        interval: Duration,
        start: Instant,
        writer: &mut SampleWriter,
        kept: &mut RunSamples,
        mut stop: watch::Receiver<bool>,
        progress: Option<&indicatif::ProgressBar>,
    ) -> Result<Sampled> {
        let mut out = Sampled::default();
        let threshold = gap_threshold(interval).as_secs_f64();
        // The offset of the last sample (the load's start before the first).
        let mut last = 0.0;
        let end = |out: &mut Sampled, last: f64| {
            out.stretch(start.elapsed().as_secs_f64() - last, threshold);
        };
        let mut ticker =
            tokio::time::interval_at(tokio::time::Instant::from_std(start) + interval, interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let timeout = sample_timeout(interval);
        tokio::select! {
            r = tokio::time::timeout(timeout, self.kernel_baseline(writer.dir(), start.elapsed().as_secs_f64())) => {
                if let Ok(r) = r {
                    r?;
                }
            }
            _ = stop.wait_for(|s| *s) => {
                end(&mut out, last);
                return Ok(out);
            }
        }
        loop {
            let due = tokio::select! {
                due = ticker.tick() => due,
                _ = stop.wait_for(|s| *s) => {
                    end(&mut out, last);
                    return Ok(out);
                }
            };
            out.missed_ticks += missed_since(due, tokio::time::Instant::now(), interval);
            let t = start.elapsed().as_secs_f64();
            let samples = tokio::select! {
                r = tokio::time::timeout(timeout, self.snapshot(t, false)) => match r {
                    Ok(samples) => samples?,
                    Err(_) => return Err(Error::env(format!(
                        "a sample of the counts took longer than {}s (a hung collector?); sampling stopped",
                        timeout.as_secs()
                    ))),
                },
                _ = stop.wait_for(|s| *s) => {
                    end(&mut out, last);
                    return Ok(out);
                }
            };
            out.stretch(t - last, threshold);
            last = t;
            for s in &samples {
                writer.append(s)?;
                kept.add(s);
            }
            if let Some(pb) = progress {
                pb.set_message(progress_message(&samples));
            }
        }
    }
}

/// How [`Collector::run`] kept its interval.
#[derive(Debug, Default)]
pub struct Sampled {
    /// Ticks skipped because the sample before them was still being taken.
    pub missed_ticks: u64,
    /// Seconds of the load spent in gaps: stretches without a sample
    /// longer than [`gap_threshold`] (twlab not scheduled, a sample that
    /// hung for seconds). A sampler that is merely slower than its
    /// interval (an SSH host) covers the load evenly and has none.
    pub gap_secs: f64,
}

impl Sampled {
    /// A stretch of `secs` between two samples (or the load's start or
    /// end): a gap when longer than `threshold`.
    fn stretch(&mut self, secs: f64, threshold: f64) {
        if secs > threshold {
            self.gap_secs += secs;
        }
    }
}

/// The longest stretch without a sample that is not a gap: four intervals,
/// and never less than 2 s (a count over SSH of a large table).
pub fn gap_threshold(interval: Duration) -> Duration {
    (interval * 4).max(Duration::from_secs(2))
}

/// How long one sample may take before the collector counts as hung: ten
/// intervals, and never less than 10 s (an SSH round trip plus a
/// `conntrack -L` of a large table on a busy host).
pub fn sample_timeout(interval: Duration) -> Duration {
    (interval * 10).max(Duration::from_secs(10))
}

/// Ticks that passed without a sample between the deadline `due` of the
/// tick being served and `now`.
fn missed_since(due: tokio::time::Instant, now: tokio::time::Instant, interval: Duration) -> u64 {
    let late = now.saturating_duration_since(due);
    (late.as_nanos() / interval.as_nanos().max(1)) as u64
}

/// "TIME_WAIT server 1234 client 56" for the progress bar.
fn progress_message(samples: &[Sample]) -> String {
    let tw = |side, source| {
        samples
            .iter()
            .find(|s| s.host == side && s.source == source)
            .map(|s| s.counts.get("TIME_WAIT").copied().unwrap_or(0).to_string())
    };
    let mut parts = Vec::new();
    if let (Some(s), Some(c)) = (
        tw(Side::Server, Source::Sockets),
        tw(Side::Client, Source::Sockets),
    ) {
        parts.push(format!("TIME_WAIT server {s} client {c}"));
    }
    if let (Some(s), Some(c)) = (
        tw(Side::Server, Source::Conntrack),
        tw(Side::Client, Source::Conntrack),
    ) {
        parts.push(format!("conntrack TW {s}/{c}"));
    }
    parts.join(" · ")
}

#[cfg(test)]
mod tests;
