//! What sampling costs the load it measures: requests/s of the embedded lab
//! with conntrack off, on but not sampled, sampled at 1 s and at 100 ms
//! (sockets counted by the gauge and by walking), from whole `twlab run`s
//! (the very command a user runs), alternating the settings run by run.

use super::{BenchOptions, Row, Section, round_order};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The scenario the load sections run: the seed's shape (a Tomcat-like
/// server closing after 100 requests, 100 connections on 2 threads), one
/// variant, no sysctls.
pub fn scenario_yaml(duration: Duration, interval: &str) -> String {
    format!(
        "name: bench\n\
         description: twlab bench load\n\
         server: {{ kind: builtin, port: 8080, max_keepalive_requests: 100 }}\n\
         client: {{ tool: builtin, connections: 100, threads: 2, duration: {}s, path: /abc }}\n\
         collect: {{ interval: {interval}, sockets: true, conntrack: true }}\n\
         allow: [client_saturation]\n\
         repeat: 1\n\
         variants:\n  - name: base\n",
        duration.as_secs().max(1)
    )
}

/// What one `twlab run` of the bench scenario gave.
#[derive(Debug, Clone, Copy)]
pub struct RunFigures {
    pub requests_per_sec: f64,
    /// Wall time of the whole `twlab run` (lab, server, load, writing).
    pub wall_secs: f64,
    /// CPU time of the `twlab run` process itself (its threads: the
    /// sampler, its dumps in the kernel, the event reader; not the server
    /// and client it starts), read from /proc every 250 ms until it exits.
    pub own_cpu_secs: f64,
    pub samples: u64,
    pub missed_ticks: u64,
    /// TIME_WAIT sockets on each side at the final snapshot (taken right
    /// after the load in every setting, sampled or not).
    pub server_tw: f64,
    pub client_tw: f64,
    /// The load generator's CPU per completed request, in microseconds.
    pub client_cpu_us_per_request: f64,
}

/// Run `twlab run SCENARIO --out DIR --set …` and read its summary.json.
pub async fn twlab_run(
    exe: &Path,
    scenario: &Path,
    out: &Path,
    sets: &[&str],
) -> Result<RunFigures> {
    let log = std::fs::File::create(out.with_extension("log"))
        .map_err(|e| Error::io(out.with_extension("log").display(), e))?;
    let mut cmd = tokio::process::Command::new(exe);
    cmd.arg("run").arg(scenario).arg("--out").arg(out);
    for s in sets {
        cmd.args(["--set", s]);
    }
    let log2 = log
        .try_clone()
        .map_err(|e| Error::io(out.with_extension("log").display(), e))?;
    let started = std::time::Instant::now();
    let mut child = cmd
        .stdout(log)
        .stderr(log2)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| Error::env(format!("bench: cannot run {}: {e}", exe.display())))?;
    let pid = child.id().unwrap_or(0);
    let mut own_cpu_secs = 0.0;
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
    let status = loop {
        tokio::select! {
            s = child.wait() => break s,
            _ = tick.tick() => {
                if let Some(cpu) = super::servers::proc_cpu_secs(pid) {
                    own_cpu_secs = cpu;
                }
            }
        }
    }
    .map_err(|e| Error::env(format!("bench: twlab run: {e}")))?;
    if !status.success() {
        return Err(Error::env(format!(
            "bench: `twlab run {}` failed ({status}); its output is in {}",
            scenario.display(),
            out.with_extension("log").display()
        )));
    }
    let wall_secs = started.elapsed().as_secs_f64();
    read_figures(out).map(|f| RunFigures {
        wall_secs,
        own_cpu_secs,
        ..f
    })
}

fn read_figures(dir: &Path) -> Result<RunFigures> {
    let path = dir.join(crate::results::SUMMARY_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(path.display(), e))?;
    let summary: crate::results::Summary = serde_json::from_str(&text)
        .map_err(|e| Error::env(format!("bench: {}: {e}", path.display())))?;
    let run = summary
        .variants
        .first()
        .and_then(|v| v.runs.first())
        .ok_or_else(|| Error::env(format!("bench: {} holds no run", path.display())))?;
    let client = run
        .client
        .as_ref()
        .ok_or_else(|| Error::env(format!("bench: {} has no client figures", path.display())))?;
    let tw = |side: &crate::results::StateStats| {
        side.final_.get("TIME_WAIT").copied().unwrap_or(0) as f64
    };
    Ok(RunFigures {
        requests_per_sec: client.requests_per_sec,
        wall_secs: f64::NAN,
        own_cpu_secs: f64::NAN,
        samples: run.samples,
        missed_ticks: run.missed_ticks,
        server_tw: tw(&run.sockets.server),
        client_tw: tw(&run.sockets.client),
        client_cpu_us_per_request: match (client.cpu_secs, client.requests) {
            (Some(cpu), n) if n > 0 => cpu * 1e6 / n as f64,
            _ => f64::NAN,
        },
    })
}

/// The sampling settings, as `--set` overrides. conntrack that tracks
/// connections costs the kernel on every packet whether or not anyone
/// counts, so the reference is the lab with conntrack on and nothing of
/// twlab's listening or sampling during the load (no event listener, no
/// socket gauge, an interval longer than the run: only the final
/// snapshot); the lab without conntrack at all is shown beside it.
/// Sampling is measured both ways sockets can be counted: with the socket
/// gauge (the default) and by walking the socket table.
const SETTINGS: [(&str, &[&str]); 6] = [
    (
        "no conntrack, no sampling",
        &["collect.sockets=false", "collect.conntrack=false"],
    ),
    (
        "conntrack on, not sampled",
        &[
            "collect.interval=1h",
            "collect.conntrack_events=false",
            "collect.socket_gauge=false",
        ],
    ),
    (
        "sampling every 1s (default: socket gauge, conntrack events)",
        &["collect.interval=1s"],
    ),
    (
        "sampling every 100ms (socket gauge, conntrack events)",
        &["collect.interval=100ms"],
    ),
    (
        "sampling every 1s, sockets walked",
        &["collect.interval=1s", "collect.socket_gauge=false"],
    ),
    (
        "sampling every 100ms, sockets walked",
        &["collect.interval=100ms", "collect.socket_gauge=false"],
    ),
];
/// For each sampling setting, the requests/s it kept against the
/// reference run of the same round (the settings alternate within a
/// round, so a pair shares the machine's state of the moment): the spread
/// between rounds cancels out of each ratio.
fn paired_rows(figures: &[Vec<RunFigures>], condition: &str) -> Vec<Row> {
    let reference = &figures[REFERENCE];
    SETTINGS
        .iter()
        .zip(figures)
        .enumerate()
        .filter(|(i, _)| *i > REFERENCE)
        .map(|(_, ((name, _), f))| {
            let ratios: Vec<f64> = f
                .iter()
                .zip(reference)
                .map(|(s, r)| s.requests_per_sec / r.requests_per_sec)
                .filter(|x| x.is_finite())
                .collect();
            let interval = crate::analysis::statistics::mean_ci(&ratios, 0.95)
                .map(|(lo, hi)| format!("; mean's 95% interval {lo:.3}–{hi:.3}"))
                .unwrap_or_default();
            Row::new(
                Section::Overhead,
                format!("requests/s kept, {name}, paired with the reference's run of the round"),
                condition,
            )
            .values("×", ratios.clone())
            .note(format!("{} pairs{interval}", ratios.len()))
        })
        .collect()
}

/// The row the sampling settings are measured against.
const REFERENCE: usize = 1;

pub async fn run(opts: &BenchOptions) -> Result<Vec<Row>> {
    let dir = opts.out.join("overhead");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(dir.display(), e))?;
    let scenario = dir.join("scenario.yaml");
    std::fs::write(&scenario, scenario_yaml(opts.duration, "1s"))
        .map_err(|e| Error::io(scenario.display(), e))?;
    let mut figures: Vec<Vec<RunFigures>> = vec![Vec::new(); SETTINGS.len()];
    for round in 0..opts.runs {
        for i in round_order(SETTINGS.len(), round) {
            let (name, sets) = SETTINGS[i];
            let slug: String = name
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                .collect();
            let out: PathBuf = dir.join(format!("{slug}-{round}"));
            let f = twlab_run(&opts.exe, &scenario, &out, sets).await?;
            errln!("  {name}: {:.0} requests/s", f.requests_per_sec);
            figures[i].push(f);
        }
    }
    let condition = format!(
        "embedded lab, builtin server and client, {}s runs",
        opts.duration.as_secs()
    );
    let rows: Vec<Row> = SETTINGS
        .iter()
        .zip(&figures)
        .map(|((name, _), f)| {
            let missed: u64 = f.iter().map(|f| f.missed_ticks).sum();
            let samples: u64 = f.iter().map(|f| f.samples).sum();
            Row::new(Section::Overhead, format!("requests/s, {name}"), &condition)
                .values("req/s", f.iter().map(|f| f.requests_per_sec).collect())
                .note(if samples > 0 {
                    format!("{samples} samples, {missed} ticks missed")
                } else {
                    String::new()
                })
        })
        .collect();
    let paired = paired_rows(&figures, &condition);
    let reference = rows[REFERENCE].clone();
    let mut rows: Vec<Row> = rows
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            if i == REFERENCE {
                r
            } else {
                r.against(&reference)
            }
        })
        .collect();
    rows.extend(paired);
    // The instrument's own CPU, per second of load: the direct cost of
    // sampling, without the run-to-run spread of requests/s.
    let own: Vec<Row> = SETTINGS
        .iter()
        .zip(&figures)
        .skip(REFERENCE)
        .map(|((name, _), f)| {
            Row::new(
                Section::Overhead,
                format!("twlab's own CPU, {name}"),
                &condition,
            )
            .values(
                "ms/s",
                f.iter()
                    .map(|f| f.own_cpu_secs * 1000.0 / opts.duration.as_secs_f64())
                    .collect(),
            )
        })
        .collect();
    let own_ref = own[0].clone();
    rows.extend(
        own.into_iter()
            .enumerate()
            .map(|(i, r)| if i == 0 { r } else { r.against(&own_ref) }),
    );
    // The whole command against the load it drives: what a user waits for.
    let load = Row::new(Section::Overhead, "load duration", &condition)
        .values("s", vec![opts.duration.as_secs_f64()]);
    let walls: Vec<f64> = figures.iter().flatten().map(|f| f.wall_secs).collect();
    rows.push(
        Row::new(
            Section::Overhead,
            "wall time of `twlab run` (one run)",
            &condition,
        )
        .values("s", walls)
        .against(&load)
        .note("lab, server start and stop, load, final snapshot, results"),
    );
    Ok(rows)
}
