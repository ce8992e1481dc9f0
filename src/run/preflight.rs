//! Refusals before anything is created: root, the programs the plan needs on
//! this machine, and the load tool's program on an SSH client host. A run that would fail half
//! way is stopped here instead, with nothing started or changed.

use crate::common::endpoint::Side;
use crate::error::{Error, Result};
use crate::lab;
use crate::lab::real::RealLab;
use crate::load::client::tools::LoadTool;
use crate::run::plan::VariantPlan;
use crate::scenario::labfile::{HostSpec, LabSpec};
use crate::scenario::{ClientVia, Scenario, ServerKind};
use std::path::Path;

/// Refuse before anything is created when the plan is wrong or the machine
/// cannot run it.
pub(crate) fn preflight(
    scenario: &Scenario,
    plans: &[VariantPlan<'_>],
    lab_spec: Option<&LabSpec>,
) -> Result<()> {
    if let Some(spec) = lab_spec {
        return preflight_real(scenario, plans, spec);
    }
    lab::require_privileges()?;
    // The lab itself (namespaces, veth, sysctls, the conntrack table) and
    // its counting are in-process: no `ip`, `sysctl`, `nft` or `conntrack`.
    for plan in plans {
        if plan.server.kind == ServerKind::Command
            && let Some(program) = plan.server.command.first()
        {
            let found = if program.contains('/') {
                Path::new(program).is_file()
            } else {
                lab::which(program).is_some()
            };
            if !found {
                return Err(Error::env(format!(
                    "the server command `{program}` (server.command) is not installed or not on PATH"
                )));
            }
        }
    }
    require_client_programs(plans)?;
    Ok(())
}

/// Every program the scenario's load tools run on this machine (not in a
/// container) must be installed.
fn require_client_programs(plans: &[VariantPlan<'_>]) -> Result<()> {
    for (program, tool) in client_programs(plans) {
        let found = if program.contains('/') {
            Path::new(&program).is_file()
        } else {
            lab::which(&program).is_some()
        };
        if !found {
            return Err(Error::env(format!(
                "`{program}` is not installed; it is needed as the scenario's client (client.tool: {}). Install it with: {}",
                tool.name(),
                tool.install()
            )));
        }
    }
    Ok(())
}

/// A real lab: this machine needs what its local hosts run (the SSH hosts
/// are checked when twlab connects to them).
pub(crate) fn preflight_real(
    scenario: &Scenario,
    plans: &[VariantPlan<'_>],
    spec: &LabSpec,
) -> Result<()> {
    let roles = spec.hosts.roles();
    let hosts: Vec<&HostSpec> = roles.iter().map(|(_, h)| *h).collect();
    if hosts.iter().any(|h| !h.is_local()) {
        lab::require_tool("ssh", "to reach the lab's SSH hosts", "openssh-client")?;
    }
    let local_needs_root = hosts.iter().any(|h| h.is_local() && !h.sudo);
    if local_needs_root && !nix::unistd::geteuid().is_root() {
        return Err(Error::env(
            "a local host of the lab changes sysctls and reads conntrack: run twlab as root, or set `sudo: true` for it in the lab file",
        ));
    }
    for (role, h) in roles {
        let side = role.side;
        if !h.is_local() {
            continue;
        }
        lab::require_tool("sysctl", "to apply and verify sysctls", "procps")?;
        if scenario.collect.conntrack {
            lab::require_tool("conntrack", "to count conntrack entries", "conntrack")?;
        }
        // A tool in a container needs none on the host.
        if side == Side::Client {
            require_client_programs(plans)?;
        }
    }
    Ok(())
}

/// An SSH client host must have the load tool's program (unless it runs
/// in a container) before anything is changed there.
pub(crate) async fn require_remote_wrk(plans: &[VariantPlan<'_>], real: &RealLab) -> Result<()> {
    let programs = client_programs(plans);
    if programs.is_empty() {
        return Ok(());
    }
    for (real_host, spec) in real.clients.iter().zip(real.spec.hosts.client_hosts()) {
        if spec.is_local() {
            continue;
        }
        let client = real_host.as_host();
        for (program, tool) in &programs {
            let found = client
                .run(&[
                    "sh".into(),
                    "-c".into(),
                    r#"command -v "$1""#.into(),
                    "twlab-which".into(),
                    program.clone(),
                ])
                .await;
            found.map_err(|_| {
                let docker = if tool.image(crate::scenario::ClientVia::Docker).is_some() {
                    " or use client.via: docker"
                } else {
                    ""
                };
                Error::env(format!(
                    "{program} is not installed on the client host {} (client.tool: {}); install it there ({}){docker}",
                    client.describe(),
                    tool.name(),
                    tool.install()
                ))
            })?;
        }
    }
    Ok(())
}

/// The programs the variants run on the client host (not in a container,
/// not twlab itself), each once, with the tool that runs it: the host needs
/// them installed.
fn client_programs(plans: &[VariantPlan<'_>]) -> Vec<(String, &'static dyn LoadTool)> {
    let mut out: Vec<(String, &'static dyn LoadTool)> = Vec::new();
    for plan in plans {
        let c = &plan.client;
        if c.via != ClientVia::Host {
            continue;
        }
        let tool = c.tool.get();
        let program = tool
            .program()
            .map(String::from)
            .or_else(|| c.command.first().cloned());
        if let Some(p) = program
            && !out.iter().any(|(q, _)| *q == p)
        {
            out.push((p, tool));
        }
    }
    out
}
