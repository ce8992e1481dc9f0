//! Every installed load tool ([`crate::load::client::TOOLS`]) against the
//! builtin client and wrk, in one run: requests/s and CPU per request of
//! the tool itself, on the same builtin server (closing after 100
//! requests, as Tomcat), each run in a fresh embedded lab, the tools
//! alternating run by run (the order rotated each round).
//!
//! Each tool runs the argv the seam gives it for the seed's shape (100
//! connections where it has the notion, 2 threads, the 404 path), so what
//! is timed is what `twlab run` would run. Its CPU is
//! `getrusage(RUSAGE_CHILDREN)` around its whole life (it is the only
//! child that ends in that window; the server is still running). httperf
//! is open loop: it runs at a fixed rate ([`HTTPERF_RATE`] requests/s, 100
//! per connection), so its requests/s is the rate it kept, and its CPU per
//! request is the comparable figure. A tool that is not installed gets a
//! row saying so.

use super::counting::tool_installed;
use super::servers::{PORT, children_cpu_secs, spawn, stop, wait_listening};
use super::{BenchOptions, Row, Section, round_order};
use crate::common::counts::ClientStats;
use crate::common::endpoint::Side;
use crate::error::{Error, Result};
use crate::lab::Host;
use crate::lab::netns::{NetnsLab, SERVER_ADDR};
use crate::lab::run_id::{random_id, reserve_run_id};
use crate::load::client::tools::{LoadTool, TOOLS, Target};
use crate::scenario::{ClientSpec, ClientTool, HumanDuration};
use std::path::Path;
use std::time::Duration;

/// httperf's rate in the bench (requests/s; 200 connections/s of 100).
pub const HTTPERF_RATE: f64 = 20_000.0;

/// One run's figures.
#[derive(Clone, Copy)]
struct Figures {
    requests_per_sec: f64,
    cpu_per_request: f64,
}

pub async fn run(opts: &BenchOptions) -> Result<Vec<Row>> {
    let dir = opts.out.join("clients");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(dir.display(), e))?;
    let mut rows = Vec::new();
    let mut tools: Vec<&'static dyn LoadTool> = Vec::new();
    for tool in TOOLS {
        match tool.program() {
            _ if tool.runs_twlab() => tools.push(*tool),
            Some(p) if tool_installed(p) => tools.push(*tool),
            Some(p) => rows.push(Row::new(Section::Clients, tool.name(), "").note(format!(
                "not run: `{p}` is not installed ({})",
                tool.install()
            ))),
            // `command` has no program of its own to time.
            None => {}
        }
    }
    let mut figs: Vec<Vec<Figures>> = vec![Vec::new(); tools.len()];
    // A tool whose run fails (or hangs past its deadline) loses that run,
    // said in its rows; the other tools are still measured.
    let mut failed: Vec<Vec<String>> = vec![Vec::new(); tools.len()];
    for round in 0..opts.runs {
        for i in round_order(tools.len(), round) {
            match one(opts, &dir, tools[i]).await {
                Ok(f) => figs[i].push(f),
                Err(e) => {
                    errln!("  {}: {e}", tools[i].name());
                    failed[i].push(e.to_string());
                }
            }
        }
    }
    let secs = opts.duration.as_secs_f64();
    let condition =
        format!("100 connections, 2 threads (where the tool has them), {secs}s, builtin server");
    let row = |i: usize, cpu: bool| {
        let name = tools[i].name();
        if cpu {
            Row::new(Section::Clients, format!("{name}: CPU/request"), &condition).values(
                "µs",
                figs[i].iter().map(|f| f.cpu_per_request * 1e6).collect(),
            )
        } else {
            Row::new(Section::Clients, format!("{name}: requests/s"), &condition).values(
                "req/s",
                figs[i].iter().map(|f| f.requests_per_sec).collect(),
            )
        }
    };
    // Ratios against wrk (the seed's tool) when it ran, else the builtin
    // client; the note gives the other one.
    let at = |name: &str| tools.iter().position(|t| t.name() == name);
    let reference = at("wrk").or(at("builtin"));
    let other = if reference == at("wrk") {
        at("builtin")
    } else {
        None
    };
    for cpu in [false, true] {
        for (i, tool) in tools.iter().enumerate() {
            let mut r = row(i, cpu);
            if let Some(j) = reference.filter(|j| *j != i) {
                r = r.against(&row(j, cpu));
            }
            if let Some(k) = other.filter(|k| *k != i) {
                let o = row(k, cpu);
                if o.median.is_finite() && o.median != 0.0 && r.median.is_finite() {
                    let ratio = r.median / o.median;
                    r = r.note(format!("{ratio:.2}x builtin"));
                }
            }
            if let Some(first) = failed[i].first() {
                let lost = format!(
                    "{} of {} runs failed, first: {first}",
                    failed[i].len(),
                    opts.runs
                );
                r.note = if r.note.is_empty() {
                    lost
                } else {
                    format!("{}; {lost}", r.note)
                };
            }
            if tool.name() == "httperf" {
                let rate = format!("open loop at {HTTPERF_RATE} requests/s");
                r.note = if r.note.is_empty() {
                    rate
                } else {
                    format!("{}; {rate}", r.note)
                };
            }
            rows.push(r);
        }
    }
    Ok(rows)
}

/// The seed's shape for `tool` (httperf: its fixed rate).
fn spec(tool: &'static dyn LoadTool, duration: Duration) -> Result<ClientSpec> {
    let mut spec = ClientSpec {
        tool: ClientTool::named(tool.name())
            .ok_or_else(|| Error::env(format!("bench: no tool `{}`", tool.name())))?,
        duration: HumanDuration(duration),
        ..Default::default()
    };
    if tool.name() == "httperf" {
        spec.rate = Some(HTTPERF_RATE);
        spec.close_after = 100;
    }
    Ok(spec)
}

/// One run of `tool` in a fresh lab.
async fn one(opts: &BenchOptions, dir: &Path, tool: &'static dyn LoadTool) -> Result<Figures> {
    let lab = NetnsLab::create(&reserve_run_id(|| format!("b{}", random_id()))).await?;
    let result = one_in(opts, dir, &lab, tool).await;
    lab.destroy().await;
    result
}

async fn one_in(
    opts: &BenchOptions,
    dir: &Path,
    lab: &NetnsLab,
    tool: &'static dyn LoadTool,
) -> Result<Figures> {
    let argv = vec![
        opts.exe.display().to_string(),
        "serve".into(),
        "--listen".into(),
        format!("{SERVER_ADDR}:{PORT}"),
        "--max-keepalive-requests".into(),
        "100".into(),
    ];
    let mut srv = spawn(lab.host(Side::Server), &argv, &dir.join("server.log"))?;
    if let Err(e) = wait_listening(lab).await {
        stop(&mut srv).await;
        return Err(e);
    }
    let before = children_cpu_secs();
    let loaded = load(opts, lab, tool).await;
    let after = children_cpu_secs();
    stop(&mut srv).await;
    let stats = loaded?;
    Ok(Figures {
        requests_per_sec: stats.requests_per_sec,
        cpu_per_request: (after - before) / stats.requests.max(1) as f64,
    })
}

/// Run the tool to its end and read its report with its own parser.
async fn load(
    opts: &BenchOptions,
    lab: &NetnsLab,
    tool: &'static dyn LoadTool,
) -> Result<ClientStats> {
    let spec = spec(tool, opts.duration)?;
    let argv = tool.argv(
        &spec,
        &Target {
            endpoint: lab.endpoint(PORT),
            exe: &opts.exe,
        },
    );
    let (mut cmd, shown) = lab.host(Side::Client).command(&argv);
    // A tool that outlives its duration by this much is stopped (dropping
    // the future kills it) and its run counts as failed.
    let deadline = opts.duration + Duration::from_secs(15);
    let out = tokio::time::timeout(
        deadline,
        cmd.stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .map_err(|_| {
        Error::env(format!(
            "bench: `{}` did not finish within {}s of a {}s load; stopped",
            shown.join(" "),
            deadline.as_secs(),
            opts.duration.as_secs()
        ))
    })?
    .map_err(|e| Error::env(format!("bench: cannot run `{}`: {e}", shown.join(" "))))?;
    let reported = out
        .status
        .code()
        .is_some_and(|c| tool.exit_codes_with_report().contains(&c));
    if !reported {
        return Err(Error::env(format!(
            "bench: `{}` failed ({}): {}",
            shown.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    tool.parse(&String::from_utf8_lossy(&out.stdout), &spec)
        .map_err(|e| Error::env(format!("bench: {} output: {e}", tool.name())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_with_a_program_gets_a_valid_seed_shape() {
        for tool in TOOLS {
            if tool.program().is_none() && !tool.runs_twlab() {
                continue;
            }
            let s = spec(*tool, Duration::from_secs(3)).expect("spec");
            crate::load::client::tools::check(&s)
                .unwrap_or_else(|e| panic!("{}: {e}", tool.name()));
        }
    }
}
