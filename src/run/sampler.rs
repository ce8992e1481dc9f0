//! Sampling TCP-state and conntrack counts for the server endpoint.
//!
//! Both sides are counted at each tick, sockets and conntrack in parallel,
//! and every sample is appended and flushed to `samples.jsonl` before the
//! next one is taken, so a crash or Ctrl-C loses nothing already measured.
//! A final snapshot is taken right after the client stops: TIME_WAIT is still
//! at its height then, while the last periodic tick may be up to one
//! interval older.

use crate::common::counts::Source;
use crate::common::endpoint::{Endpoint, Side};
use crate::error::Result;
use crate::lab::Host;
use crate::results::{Sample, SampleWriter};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// What to count and where.
pub struct Collector<'a> {
    pub hosts: Vec<&'a dyn Host>,
    pub endpoint: Endpoint,
    pub sockets: bool,
    pub conntrack: bool,
    /// Labels stamped on every sample.
    pub variant: String,
    pub repeat: u32,
    pub run_id: String,
}

impl Collector<'_> {
    /// Count everything once, on every host, at offset `t`.
    pub async fn snapshot(&self, t: f64, is_final: bool) -> Result<Vec<Sample>> {
        let mut jobs = Vec::new();
        for host in &self.hosts {
            if self.sockets {
                jobs.push((host.side(), Source::Sockets, *host));
            }
            if self.conntrack {
                jobs.push((host.side(), Source::Conntrack, *host));
            }
        }
        let counts = futures::future::join_all(jobs.iter().map(|(_, source, host)| async move {
            match source {
                Source::Sockets => host.socket_counts(self.endpoint).await,
                Source::Conntrack => host.conntrack_counts(self.endpoint).await,
            }
        }))
        .await;
        jobs.into_iter()
            .zip(counts)
            .map(|((side, source, _), counts)| {
                Ok(Sample {
                    t: (t * 1000.0).round() / 1000.0,
                    variant: self.variant.clone(),
                    repeat: self.repeat,
                    run_id: self.run_id.clone(),
                    host: side,
                    source,
                    is_final,
                    counts: counts?,
                })
            })
            .collect()
    }

    /// Sample every `interval` from `start` until `stop` turns true; each
    /// sample goes to `writer` as it is taken and is also returned.
    pub async fn run(
        &self,
        interval: Duration,
        start: Instant,
        writer: &mut SampleWriter,
        mut stop: watch::Receiver<bool>,
        progress: Option<&indicatif::ProgressBar>,
    ) -> Result<Vec<Sample>> {
        let mut all = Vec::new();
        let mut ticker =
            tokio::time::interval_at(tokio::time::Instant::from_std(start) + interval, interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = stop.wait_for(|s| *s) => return Ok(all),
            }
            let samples = self.snapshot(start.elapsed().as_secs_f64(), false).await?;
            for s in &samples {
                writer.append(s)?;
            }
            if let Some(pb) = progress {
                pb.set_message(progress_message(&samples));
            }
            all.extend(samples);
        }
    }
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
