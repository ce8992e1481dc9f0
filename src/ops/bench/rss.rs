//! twlab's peak resident memory over a long run sampling at 100 ms, against
//! the same run made short: the samples are on disk as they are taken, so
//! memory should not grow with the length of a run. The peak is the
//! kernel's own high-water mark (`VmHWM` of `/proc/PID/status`) of the
//! `twlab run` process, read every second while it runs; the server and
//! client it starts are other processes and not counted.

use super::overhead::scenario_yaml;
use super::{BenchOptions, Row, Section};
use crate::error::{Error, Result};
use std::path::Path;
use std::time::Duration;

pub async fn run(opts: &BenchOptions) -> Result<Vec<Row>> {
    let dir = opts.out.join("rss");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(dir.display(), e))?;
    let short = peak_rss(opts, &dir, opts.duration, "short").await?;
    let long = peak_rss(opts, &dir, opts.rss_duration, "long").await?;
    let short_row = Row::new(
        Section::Rss,
        "twlab run peak RSS, short run",
        format!("{}s at 100 ms", opts.duration.as_secs()),
    )
    .values("MiB", vec![short]);
    let long_row = Row::new(
        Section::Rss,
        "twlab run peak RSS, long run",
        format!("{}s at 100 ms", opts.rss_duration.as_secs()),
    )
    .values("MiB", vec![long])
    .against(&short_row);
    Ok(vec![short_row, long_row])
}

async fn peak_rss(opts: &BenchOptions, dir: &Path, duration: Duration, name: &str) -> Result<f64> {
    let scenario = dir.join(format!("{name}.yaml"));
    std::fs::write(&scenario, scenario_yaml(duration, "100ms"))
        .map_err(|e| Error::io(scenario.display(), e))?;
    let out = dir.join(name);
    let log_path = dir.join(format!("{name}.log"));
    let log = std::fs::File::create(&log_path).map_err(|e| Error::io(log_path.display(), e))?;
    let log2 = log
        .try_clone()
        .map_err(|e| Error::io(log_path.display(), e))?;
    let mut child = tokio::process::Command::new(&opts.exe)
        .arg("run")
        .arg(&scenario)
        .arg("--out")
        .arg(&out)
        .stdout(log)
        .stderr(log2)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| Error::env(format!("bench: cannot run {}: {e}", opts.exe.display())))?;
    let pid = child.id().unwrap_or(0);
    let mut peak_kib = 0u64;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let status = loop {
        tokio::select! {
            s = child.wait() => break s,
            _ = tick.tick() => {
                if let Some(k) = vm_hwm_kib(pid) {
                    peak_kib = peak_kib.max(k);
                }
            }
        }
    }
    .map_err(|e| Error::env(format!("bench: twlab run: {e}")))?;
    if !status.success() {
        return Err(Error::env(format!(
            "bench: `twlab run {}` failed ({status}); see {}",
            scenario.display(),
            log_path.display()
        )));
    }
    Ok(peak_kib as f64 / 1024.0)
}

/// The resident high-water mark of a live process, in KiB.
fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_high_water_mark_of_this_process_is_read() {
        let kib = super::vm_hwm_kib(std::process::id()).expect("VmHWM");
        assert!(kib > 0);
    }
}
