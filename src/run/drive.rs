//! Waiting for the load: the client runs its duration while the server is
//! watched (a crash ends the run at once), the progress bar ticks and the
//! stop signals are honoured (first: graceful, second: immediate); a
//! sampler that failed stops the client as a first signal would.

use crate::common::counts::ClientStats;
use crate::error::{Error, Result};
use crate::load::client::RunningClient;
use crate::load::server;
use crate::load::shutdown::{Level, Shutdown};
use indicatif::{ProgressBar, ProgressStyle};
use std::time::{Duration, Instant};

/// Wait for the client while ticking the progress bar, watching the server
/// and the stop signals.
pub(crate) async fn drive(
    client: &mut RunningClient,
    server: &mut server::RunningServer,
    shutdown: &Shutdown,
    mut sampler_failed: tokio::sync::watch::Receiver<bool>,
    progress: &ProgressBar,
    start: Instant,
    duration: Duration,
) -> Result<(ClientStats, Option<f64>)> {
    let deadline = duration + Duration::from_secs(30);
    let mut cpu = None;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut stop_sent = false;
    let mut killed = false;
    loop {
        tokio::select! {
            stats = client.finish() => {
                return stats.map(|s| (s, cpu));
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
                cpu = client.cpu_secs().or(cpu);
                if let Err(e) = server.check_alive().await {
                    client.signal_kill().await;
                    let _ = client.finish().await;
                    return Err(e);
                }
                if start.elapsed() > deadline {
                    client.signal_kill().await;
                    let _ = client.finish().await;
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
