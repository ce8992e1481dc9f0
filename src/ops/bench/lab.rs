//! Setting up and tearing down the embedded lab: twlab's in-process way
//! (system calls and rtnetlink) against the same two namespaces, veth pair,
//! addresses and links made with iproute2's `ip` commands, the way the lab
//! was built before and the way a person builds it by hand.

use super::counting::tool_installed;
use super::{BenchOptions, Row, Section, round_order};
use crate::common::endpoint::Side;
use crate::error::{Error, Result};
use crate::lab::netns::{NetnsLab, netns_name};
use crate::lab::run_id::{random_id, reserve_run_id};
use std::time::Instant;

pub async fn run(opts: &BenchOptions) -> Result<Vec<Row>> {
    let times = (opts.rounds * 2).max(4);
    let with_ip = tool_installed("ip");
    let methods = if with_ip { 2 } else { 1 };
    let mut up = [Vec::new(), Vec::new()];
    let mut down = [Vec::new(), Vec::new()];
    for round in 0..times {
        for i in round_order(methods, round) {
            let (u, d) = if i == 0 {
                in_process().await?
            } else {
                with_ip_commands().await?
            };
            up[i].push(u);
            down[i].push(d);
        }
    }
    let condition = "2 namespaces, veth pair, addresses, links up";
    let names = ["twlab (in-process)", "ip commands"];
    let mut rows = Vec::new();
    for (phase, figs) in [("set-up", &up), ("teardown", &down)] {
        let twlab = Row::new(
            Section::Lab,
            format!("lab {phase}: {}", names[0]),
            condition,
        )
        .values("ms", figs[0].clone());
        if with_ip {
            let ip = Row::new(
                Section::Lab,
                format!("lab {phase}: {}", names[1]),
                condition,
            )
            .values("ms", figs[1].clone());
            rows.push(twlab.against(&ip));
            rows.push(ip);
        } else {
            rows.push(twlab.note("ip is not installed: no peer"));
        }
    }
    Ok(rows)
}

async fn in_process() -> Result<(f64, f64)> {
    let t = Instant::now();
    let lab = NetnsLab::create(&reserve_run_id(|| format!("b{}", random_id()))).await?;
    let up = ms(t);
    let t = Instant::now();
    lab.destroy().await;
    Ok((up, ms(t)))
}

async fn with_ip_commands() -> Result<(f64, f64)> {
    let id = reserve_run_id(|| format!("b{}", random_id()));
    let (s, c) = (netns_name(&id, Side::Server), netns_name(&id, Side::Client));
    // The owner file tells `twlab clean` whose lab this is, as for a run.
    crate::lab::run_id::write_owner_file(&id)?;
    let up_script = format!(
        "ip netns add {s} && ip netns add {c} && \
         ip -n {s} link add twlab0 type veth peer name twlab0 netns {c} && \
         ip -n {s} addr add 198.18.0.1/24 dev twlab0 && ip -n {c} addr add 198.18.0.2/24 dev twlab0 && \
         ip -n {s} link set twlab0 up && ip -n {c} link set twlab0 up && \
         ip -n {s} link set lo up && ip -n {c} link set lo up"
    );
    let down_script = format!("ip netns del {s}; ip netns del {c}");
    let t = Instant::now();
    let built = sh(&up_script).await;
    let up = ms(t);
    let t = Instant::now();
    let removed = sh(&down_script).await;
    let down = ms(t);
    let _ = std::fs::remove_file(crate::lab::run_id::owner_file(&id));
    built?;
    removed?;
    Ok((up, down))
}

async fn sh(script: &str) -> Result<()> {
    let out = tokio::process::Command::new("sh")
        .args(["-c", script])
        .output()
        .await
        .map_err(|e| Error::env(format!("bench: sh: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::env(format!(
            "bench: `{script}` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}
