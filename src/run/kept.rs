//! What a run keeps of its samples in memory, bounded whatever its length.
//!
//! Every sample is on disk (`samples.jsonl`) the moment it is taken; memory
//! only needs what the run's figures and the charts use. A 10-minute run
//! sampled every 100 ms takes 24,000 samples, and a scenario of such runs
//! would otherwise hold them all until its end. So the run's figures are
//! accumulated sample by sample ([`StateStatsAcc`]), and the charts get a
//! decimated copy of each series: at most [`CHART_POINTS`] periodic samples
//! per side and source (every k-th, k doubling as the run goes on, so the
//! points stay evenly spread), plus the final snapshot. A chart is a few
//! hundred pixels wide; it loses nothing it could show.

use crate::common::counts::Source;
use crate::common::endpoint::Side;
use crate::results::{Sample, StateStats, StateStatsAcc};
use std::ops::Range;

/// Periodic samples kept for the charts per side and source of one run.
pub const CHART_POINTS: usize = 600;

const SERIES: [(Side, Source); 4] = [
    (Side::Server, Source::Sockets),
    (Side::Client, Source::Sockets),
    (Side::Server, Source::Conntrack),
    (Side::Client, Source::Conntrack),
];

fn series_index(side: Side, source: Source) -> usize {
    SERIES
        .iter()
        .position(|&(a, b)| a == side && b == source)
        .unwrap_or(0)
}

/// One series of a run: its figures so far and its chart points.
struct Series {
    stats: StateStatsAcc,
    periodic: u64,
    steady: u64,
    /// Keep periodic sample number `i` when `i % stride == 0`.
    stride: u64,
    chart: Vec<Sample>,
}

/// The samples of one run as memory keeps them.
pub struct RunSamples {
    steady: Range<f64>,
    series: Vec<Series>,
    /// With several client hosts: each host's figures, per source
    /// (sockets, conntrack), from the samples' [`Sample::per_client`].
    per_client: Vec<[StateStatsAcc; 2]>,
    /// The distinct client addresses the server saw (its final sample).
    server_peers: Option<u64>,
}

impl RunSamples {
    /// `steady` is the window of offsets the steady mean is taken over.
    pub fn new(steady: Range<f64>) -> Self {
        let series = SERIES
            .iter()
            .map(|_| Series {
                stats: StateStatsAcc::new(steady.clone()),
                periodic: 0,
                steady: 0,
                stride: 1,
                chart: Vec::new(),
            })
            .collect();
        RunSamples {
            steady,
            series,
            per_client: Vec::new(),
            server_peers: None,
        }
    }

    pub fn add(&mut self, s: &Sample) {
        if s.peers.is_some() {
            self.server_peers = s.peers;
        }
        let slot = usize::from(s.source == Source::Conntrack);
        for (i, counts) in s.per_client.iter().enumerate() {
            if self.per_client.len() <= i {
                let fresh = || StateStatsAcc::new(self.steady.clone());
                self.per_client.push([fresh(), fresh()]);
            }
            self.per_client[i][slot].add_counts(s.t, s.is_final, counts);
        }
        let series = &mut self.series[series_index(s.host, s.source)];
        series.stats.add(s);
        if s.is_final {
            series.chart.push(s.clone());
            return;
        }
        if self.steady.contains(&s.t) {
            series.steady += 1;
        }
        if series.periodic.is_multiple_of(series.stride) {
            series.chart.push(s.clone());
            if series.chart.len() >= 2 * CHART_POINTS {
                // Keep every other point: the stride doubles.
                let mut i = 0;
                series.chart.retain(|_| {
                    i += 1;
                    i % 2 == 1
                });
                series.stride *= 2;
            }
        }
        series.periodic += 1;
    }

    /// The figures of one series.
    pub fn stats(&self, side: Side, source: Source) -> StateStats {
        self.series[series_index(side, source)]
            .stats
            .clone()
            .finish()
    }

    /// The figures of client host `i` (0-based) of a run with several, for
    /// one source; `None` with one client host.
    pub fn client_stats(&self, i: usize, source: Source) -> Option<StateStats> {
        let slot = usize::from(source == Source::Conntrack);
        self.per_client
            .get(i)
            .map(|accs| accs[slot].clone().finish())
    }

    /// How many distinct client addresses the server held sockets with at
    /// the end, when it was counted.
    pub fn server_peers(&self) -> Option<u64> {
        self.server_peers
    }

    /// Periodic samples taken of one series.
    pub fn periodic(&self, side: Side, source: Source) -> u64 {
        self.series[series_index(side, source)].periodic
    }

    /// Periodic samples of one series inside the steady window.
    pub fn steady(&self, side: Side, source: Source) -> u64 {
        self.series[series_index(side, source)].steady
    }

    /// The chart points of every series, in time order within each.
    pub fn into_chart_samples(self) -> Vec<Sample> {
        self.series.into_iter().flat_map(|s| s.chart).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t: f64, tw: u64, is_final: bool) -> Sample {
        Sample {
            t,
            variant: "v".into(),
            repeat: 1,
            run_id: "r".into(),
            host: Side::Server,
            source: Source::Sockets,
            is_final,
            counts: [("TIME_WAIT".to_string(), tw)].into_iter().collect(),
            per_client: Vec::new(),
            peers: None,
        }
    }

    #[test]
    fn a_long_run_keeps_bounded_evenly_spread_chart_points_and_exact_figures() {
        let mut kept = RunSamples::new(10.0..f64::INFINITY);
        let all: Vec<Sample> = (0..24_000)
            .map(|i| sample(i as f64 * 0.1, i % 1000, false))
            .chain([sample(2400.0, 7, true)])
            .collect();
        for s in &all {
            kept.add(s);
        }
        let exact = StateStats::from_samples(&all, 10.0..f64::INFINITY);
        assert_eq!(kept.stats(Side::Server, Source::Sockets), exact);
        assert_eq!(kept.periodic(Side::Server, Source::Sockets), 24_000);
        assert_eq!(kept.steady(Side::Server, Source::Sockets), 24_000 - 100);
        let chart = kept.into_chart_samples();
        let periodic: Vec<&Sample> = chart.iter().filter(|s| !s.is_final).collect();
        assert!(periodic.len() >= CHART_POINTS && periodic.len() < 2 * CHART_POINTS);
        // Evenly spread from the first sample to near the last.
        let gaps: Vec<f64> = periodic.windows(2).map(|w| w[1].t - w[0].t).collect();
        let first_gap = gaps[0];
        assert!(
            gaps.iter().all(|g| (g - first_gap).abs() < 1e-6),
            "{gaps:?}"
        );
        assert!(periodic[periodic.len() - 1].t > 2000.0);
        assert_eq!(chart.iter().filter(|s| s.is_final).count(), 1);
    }

    #[test]
    fn a_short_run_keeps_every_sample() {
        let mut kept = RunSamples::new(0.0..f64::INFINITY);
        for i in 0..100 {
            kept.add(&sample(f64::from(i), 1, false));
        }
        assert_eq!(kept.into_chart_samples().len(), 100);
    }
}
