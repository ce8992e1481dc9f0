//! The checks a scenario gets after parsing, across keys and variants:
//! each one names the file and the line of the key at fault, and all run
//! before anything on the machine is touched.

use super::parse::*;
use super::spec::*;
use super::values::*;
use super::{Scenario, Variant};
use crate::error::{Error, Result};

/// What is wrong with a server block, with a text to find its line by,
/// or `None`.
fn server_problem(server: &ServerSpec) -> Option<(String, String)> {
    match (server.kind, server.command.is_empty()) {
        (ServerKind::Command, true) => {
            return Some((
                "kind: command".into(),
                "server.kind: command needs server.command, the program and its arguments".into(),
            ));
        }
        (ServerKind::Builtin | ServerKind::Docker, false) => {
            return Some((
                "command:".into(),
                format!(
                    "server.command is only for server.kind: command{}",
                    if server.kind == ServerKind::Docker {
                        " (a container's command is server.args)"
                    } else {
                        ""
                    }
                ),
            ));
        }
        _ => {}
    }
    if server.command.first().is_some_and(|p| p.trim().is_empty()) {
        return Some((
            "command:".into(),
            "server.command's first element, the program, is empty".into(),
        ));
    }
    for (key, argv) in [("command", &server.command), ("args", &server.args)] {
        let bytes: usize = argv.iter().map(|a| a.len() + 1).sum();
        if bytes > MAX_COMMAND_BYTES {
            return Some((
                format!("{key}:"),
                format!(
                    "server.{key} is {bytes} bytes, more than the {} KiB twlab allows for a program and its arguments (MAX_COMMAND_BYTES)",
                    MAX_COMMAND_BYTES / 1024
                ),
            ));
        }
    }
    if server.kind != ServerKind::Docker {
        let docker_keys = [
            ("image", server.image.is_some()),
            ("network", server.network.is_some()),
            ("env", !server.env.is_empty()),
            ("args", !server.args.is_empty()),
            ("pull", server.pull.is_some()),
        ];
        if let Some((key, _)) = docker_keys.iter().find(|(_, set)| *set) {
            return Some((
                format!("{key}:"),
                format!("server.{key} is only for server.kind: docker"),
            ));
        }
    }
    if !server.close_delay.0.is_zero() && server.kind != ServerKind::Builtin {
        return Some((
            "close_delay:".into(),
            "server.close_delay is only for server.kind: builtin (twlab's server; another server closes as it does)".into(),
        ));
    }
    if let Some(problem) = server.image.as_deref().and_then(image_problem) {
        return Some(("image:".into(), format!("server.image {problem}")));
    }
    let env_bytes: usize = server.env.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
    if env_bytes > MAX_COMMAND_BYTES {
        return Some((
            "env:".into(),
            format!(
                "server.env is {env_bytes} bytes, more than the {} KiB twlab allows (MAX_COMMAND_BYTES)",
                MAX_COMMAND_BYTES / 1024
            ),
        ));
    }
    if let Some(k) = server.env.keys().find(|k| {
        k.is_empty()
            || k.starts_with(|c: char| c.is_ascii_digit())
            || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    }) {
        return Some((
            k.clone(),
            format!(
                "server.env name `{}` is not an environment variable name: letters, digits and `_`, not starting with a digit",
                k.escape_default()
            ),
        ));
    }
    None
}

/// The line (1-based) of a variant's entry in `text`: the line of `needle`
/// inside that variant's entry when it is there, else the line of its
/// `name:`. Variants are found below the top-level `variants:` key.
pub(crate) fn variant_line(text: &str, name: &str, needle: &str) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.iter().position(|l| l.starts_with("variants:"))?;
    let names_it = |l: &str| {
        let t = l
            .trim_start()
            .trim_start_matches("- ")
            .trim_start_matches('{')
            .trim_start();
        l.contains("name:")
            && l.split("name:").skip(1).any(|rest| {
                let v = rest.trim_start().trim_start_matches(['"', '\'']);
                v.strip_prefix(name).is_some_and(|after| {
                    after.is_empty() || after.starts_with([' ', ',', '}', '"', '\'', '#'])
                })
            })
            && (t.starts_with("name:") || l.trim_start().starts_with('-'))
    };
    let first = start + lines[start..].iter().position(|l| names_it(l))?;
    // The entry ends where the next list item at its indentation starts.
    let indent = lines[first].len() - lines[first].trim_start().len();
    let item_indent = lines[..=first]
        .iter()
        .rev()
        .find(|l| l.trim_start().starts_with('-'))
        .map_or(indent, |l| l.len() - l.trim_start().len());
    let end = lines[first + 1..]
        .iter()
        .position(|l| {
            let i = l.len() - l.trim_start().len();
            let t = l.trim_start();
            !t.is_empty()
                && !t.starts_with('#')
                && (i < item_indent || (i == item_indent && t.starts_with('-')))
        })
        .map_or(lines.len(), |p| first + 1 + p);
    let key = needle.trim_end_matches(':');
    let inside = lines[first..end]
        .iter()
        .position(|l| {
            !l.trim_start().starts_with('#')
                && (l.contains(needle) || l.contains(&format!("server.{key}")))
        })
        .map(|p| first + p);
    Some(inside.unwrap_or(first) + 1)
}

impl Scenario {
    /// Checks across fields: expectations name existing variants, each
    /// variant's `set` applies cleanly. With the source `text`, errors point
    /// at the line of the offending value.
    pub(crate) fn check(&self, origin: &str, text: Option<&str>) -> Result<()> {
        let at = |needle: &str| -> String {
            text.and_then(|t| {
                t.lines()
                    .position(|l| !l.trim_start().starts_with('#') && l.contains(needle))
                    .map(|i| format!("{origin}:{}: ", i + 1))
            })
            .unwrap_or_else(|| format!("{origin}: "))
        };
        if self.variants.len() > MAX_VARIANTS {
            return Err(Error::invalid(format!(
                "{}variants: {} variants is more than the {MAX_VARIANTS} twlab compares in one scenario (MAX_VARIANTS)",
                at("variants:"),
                self.variants.len()
            )));
        }
        if let Some((needle, problem)) = server_problem(&self.server) {
            return Err(Error::invalid(format!("{}{problem}", at(&needle))));
        }
        if let Some(lab) = &self.lab {
            lab.check_in(origin, text.unwrap_or_default(), &["lab"])?;
        }
        for (i, e) in self.expect.iter().enumerate() {
            if !self.variants.iter().any(|v| v.name == e.variant) {
                return Err(Error::invalid(format!(
                    "{}expect[{i}].variant `{}` is not a variant of this scenario",
                    at(&format!("variant: {}", e.variant)),
                    e.variant
                )));
            }
            if e.stat.is_some() && !e.metric.is_state() {
                return Err(Error::invalid(format!(
                    "{}expect[{i}]: `stat` applies to state counts (side.source.STATE), not to {}",
                    at("stat:"),
                    e.metric.0
                )));
            }
            let source = e.metric.0.split('.').nth(1);
            let collected = match source {
                Some("sockets") => self.collect.sockets,
                Some("conntrack") => self.collect.conntrack,
                _ => true,
            };
            if e.metric.is_state() && !collected {
                return Err(Error::invalid(format!(
                    "{}expect[{i}]: {} is not collected (collect.{} is false)",
                    at(&e.metric.0),
                    e.metric.0,
                    source.unwrap_or_default()
                )));
            }
        }
        for v in &self.variants {
            for side in [
                crate::common::endpoint::Side::Server,
                crate::common::endpoint::Side::Client,
            ] {
                for name in v.sysctls.for_side(side).keys() {
                    if !name.as_str().starts_with("net.") {
                        return Err(Error::invalid(format!(
                            "{}variant `{}`: sysctl {name} is not a network sysctl; the embedded lab only sets per-namespace net.* sysctls and never changes the machine's own",
                            at(name.as_str()),
                            v.name
                        )));
                    }
                }
            }
            for key in v.set.keys() {
                if !(key.starts_with("server.") || key.starts_with("client.")) {
                    return Err(Error::invalid(format!(
                        "{}variant `{}`: set `{key}`: only server.* and client.* keys can vary per variant",
                        at(key),
                        v.name
                    )));
                }
            }
            // One key at a time, so an error names the key that caused it.
            for (key, value) in &v.set {
                let single = Variant {
                    set: [(key.clone(), value.clone())].into_iter().collect(),
                    ..v.clone()
                };
                self.effective(&single)
                    .map_err(|e| Error::invalid(format!("{}variant `{}`: {e}", at(key), v.name)))?;
            }
            let effective = self
                .effective_scenario(v)
                .map_err(|e| Error::invalid(format!("{}variant `{}`: {e}", at("set"), v.name)))?;
            // What `run` runs for this variant gets the checks the base
            // gets: a `set` can make a server that the base checks never saw.
            if !v.set.is_empty()
                && let Some((needle, problem)) = server_problem(&effective.server)
            {
                let line = text
                    .and_then(|t| variant_line(t, v.name.as_str(), &needle))
                    .map_or_else(|| format!("{origin}: "), |l| format!("{origin}:{l}: "));
                return Err(Error::invalid(format!(
                    "{line}variant `{}`: {problem}",
                    v.name
                )));
            }
            let client = effective.client;
            if effective.server.close_delay >= client.timeout {
                let line = text
                    .and_then(|t| {
                        variant_line(t, v.name.as_str(), "close_delay")
                            .filter(|_| v.set.contains_key("server.close_delay"))
                            .or_else(|| {
                                t.lines()
                                    .position(|l| {
                                        !l.trim_start().starts_with('#')
                                            && l.contains("close_delay")
                                    })
                                    .map(|i| i + 1)
                            })
                    })
                    .map_or_else(|| format!("{origin}: "), |l| format!("{origin}:{l}: "));
                return Err(Error::invalid(format!(
                    "{line}variant `{}`: server.close_delay ({}) must be shorter than client.timeout ({}): a server holding a finished connection longer than a request may take models nothing",
                    v.name, effective.server.close_delay, client.timeout
                )));
            }
            if let Some(after) = self.collect.steady_after
                && after >= client.duration
            {
                return Err(Error::invalid(format!(
                    "{}collect.steady_after ({after}) must be shorter than the load of variant `{}` ({})",
                    at("steady_after"),
                    v.name,
                    client.duration
                )));
            }
        }
        Ok(())
    }

    /// A variant on a lab file runs on the first `client.hosts` of its
    /// client hosts (a Swarm service runs `client.hosts` tasks instead):
    /// one that asks for more than the file lists is refused, and so is a
    /// client container (`client.via: docker`) on several hosts.
    fn check_client_hosts(
        &self,
        origin: &str,
        text: &str,
        lab: &crate::scenario::labfile::LabSpec,
    ) -> Result<()> {
        let listed = lab.hosts.client_hosts().len();
        for v in &self.variants {
            let Ok((_, client)) = self.effective(v) else {
                continue;
            };
            let wanted = client.hosts.get() as usize;
            // The variant's `client.hosts`, else the client block's `hosts:`.
            let line = variant_line(text, v.name.as_str(), "client.hosts")
                .filter(|_| v.set.contains_key("client.hosts"))
                .or_else(|| client_key_line(text, "hosts"));
            let at = line.map_or(format!("{origin}: "), |l| format!("{origin}:{l}: "));
            match client.via {
                ClientVia::Swarm => {}
                ClientVia::Docker if wanted > 1 => {
                    return Err(Error::invalid(format!(
                        "{at}variant `{}` asks for client.hosts: {wanted} with client.via: docker, which runs one client container on hosts.client; run the load on several hosts as processes (leave client.via out), or as a Swarm service (client.via: swarm)",
                        v.name
                    )));
                }
                _ if wanted > listed => {
                    return Err(Error::invalid(format!(
                        "{at}variant `{}` asks for client.hosts: {wanted}, but the lab file lists {listed} client host{} ({}); list at least {wanted} under hosts.clients, or lower client.hosts",
                        v.name,
                        if listed == 1 { "" } else { "s" },
                        if lab.clients_listed() {
                            "hosts.clients"
                        } else {
                            "hosts.client"
                        },
                    )));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Checks that need the lab: a docker server needs a lab whose server
    /// host has a Docker engine, a docker client one whose client host has
    /// one. Errors name the scenario file and the line.
    /// `origin` names the scenario and `text` is what was read of it (the
    /// file is not read again: it may be a pipe, or have changed).
    pub fn check_lab(
        &self,
        origin: &str,
        text: &str,
        lab: Option<&crate::scenario::labfile::LabSpec>,
    ) -> Result<()> {
        let docker_variant = self.variants.iter().find(|v| {
            self.effective(v)
                .is_ok_and(|(s, _)| s.kind == ServerKind::Docker)
        });
        if let Some(v) = docker_variant
            && !lab.is_some_and(|l| l.hosts.server.docker)
        {
            return Err(Error::invalid(format!(
                "{}server.kind: docker (variant `{}`) needs a lab whose server host has a Docker engine: run with --lab FILE (or a `lab:` key) whose hosts.server has `docker: true`; the embedded lab's namespaces cannot host a container",
                line_of(text, origin, &["server", "kind"]),
                v.name
            )));
        }
        if let Some(lab) = lab {
            self.check_client_hosts(origin, text, lab)?;
        }
        let swarm_client = self.variants.iter().find(|v| {
            self.effective(v)
                .is_ok_and(|(_, c)| c.via == ClientVia::Swarm)
        });
        if let Some(v) = swarm_client {
            let at = match client_key_line(text, "via") {
                Some(line) => format!("{origin}:{line}: "),
                None => format!("{origin}: "),
            };
            if !lab.is_some_and(|l| {
                l.hosts
                    .client
                    .as_ref()
                    .is_some_and(|c| c.docker && c.swarm.is_some())
            }) {
                return Err(Error::invalid(format!(
                    "{at}client.via: swarm (variant `{}`) needs a lab whose client host is a Swarm manager: run with --lab FILE whose hosts.client has `docker: true` and `swarm: {{}}` (optionally `swarm: {{ constraint: node.labels.twlab.role==client }}`)",
                    v.name
                )));
            }
            if let Some(v) = self.variants.iter().find(|v| {
                !v.sysctls.client.is_empty()
                    && self
                        .effective(v)
                        .is_ok_and(|(_, c)| c.via == ClientVia::Swarm)
            }) {
                return Err(Error::invalid(format!(
                    "{at}client.via: swarm runs the load on the swarm's nodes, which twlab does not change: variant `{}` sets client sysctls; set them on the nodes, or drop them",
                    v.name
                )));
            }
        }
        let docker_client = self.variants.iter().find(|v| {
            self.effective(v)
                .is_ok_and(|(_, c)| c.via == ClientVia::Docker)
        });
        if let Some(v) = docker_client
            && !lab.is_some_and(|l| l.hosts.client().docker)
        {
            // The `via:` of the client block, else the variant's `set` line.
            let line = client_key_line(text, "via").or_else(|| {
                text.lines()
                    .position(|l| !l.trim_start().starts_with('#') && l.contains("client.via"))
                    .map(|i| i + 1)
            });
            let at = match line {
                Some(line) => format!("{origin}:{line}: "),
                None => format!("{origin}: "),
            };
            return Err(Error::invalid(format!(
                "{at}client.via: docker (variant `{}`) needs a lab whose client host has a Docker engine: run with --lab FILE (or a `lab:` key) whose hosts.client has `docker: true`; the embedded lab's namespaces cannot host a container",
                v.name
            )));
        }
        Ok(())
    }
}
