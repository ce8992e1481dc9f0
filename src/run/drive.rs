//! Waiting for the load: the clients run their duration while the server
//! is watched (a crash ends the run at once), the progress bar ticks and
//! the stop signals are honoured (first: graceful, second: immediate); a
//! sampler that failed stops the clients as a first signal would.

use crate::common::counts::ClientStats;
use crate::error::{Error, Result};
use crate::load::client::group::ClientGroup;
use crate::load::server;
use crate::shutdown::{Level, Shutdown};
use indicatif::{ProgressBar, ProgressStyle};
use std::time::{Duration, Instant};

/// Each client's figures (or why it failed) and its CPU time, when known.
pub(crate) type ClientOutcomes = Vec<(Result<ClientStats>, Option<f64>)>;

/// Wait for the clients while ticking the progress bar, watching the server
/// and the stop signals.
pub(crate) async fn drive(
    client: &mut ClientGroup,
    server: &mut server::RunningServer,
    shutdown: &Shutdown,
    mut sampler_failed: tokio::sync::watch::Receiver<bool>,
    progress: &ProgressBar,
    start: Instant,
    duration: Duration,
) -> Result<ClientOutcomes> {
    let deadline = duration + Duration::from_secs(30);
    let mut cpu: Vec<Option<f64>> = vec![None; client.len()];
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut stop_sent = false;
    let mut killed = false;
    loop {
        tokio::select! {
            stats = client.finish() => {
                return Ok(stats.into_iter().zip(cpu).collect());
            }
            _ = shutdown.reached(Level::Graceful), if !stop_sent => {
                client.request_stop().await;
                stop_sent = true;
            }
            Ok(_) = sampler_failed.wait_for(|f| *f), if !stop_sent => {
                client.request_stop().await;
                stop_sent = true;
            }
            _ = shutdown.reached(Level::Immediate), if !killed => {
                client.signal_kill().await;
                killed = true;
            }
            _ = tick.tick() => {
                progress.set_position(start.elapsed().as_secs().min(duration.as_secs()));
                // None for a client on an SSH host: the saturation check then has none.
                for (kept, now) in cpu.iter_mut().zip(client.cpu_secs()) {
                    *kept = now.or(*kept);
                }
                if let Err(e) = server.check_alive().await {
                    client.kill_and_reap().await;
                    return Err(e);
                }
                if start.elapsed() > deadline {
                    client.kill_and_reap().await;
                    return Err(Error::env(format!(
                        "the client `{}` ran {}s past its duration and was killed",
                        client.command(),
                        (deadline - duration).as_secs()
                    )));
                }
            }
        }
    }
}

pub(crate) fn progress_bar(variant: &str, repeat: u32, duration: Duration) -> ProgressBar {
    let pb = ProgressBar::new(duration.as_secs().max(1));
    let style =
        ProgressStyle::with_template("{prefix:>18} [{bar:30.cyan/blue}] {pos:>4}/{len}s {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
    pb.set_style(style);
    pb.set_prefix(format!("{variant} #{repeat}"));
    pb
}
