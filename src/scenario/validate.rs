//! The checks a scenario gets after parsing, across keys and variants:
//! each one names the file and the line of the key at fault, and all run
//! before anything on the machine is touched.

use super::parse::*;
use super::spec::*;
use super::{Scenario, Variant};
use crate::error::{Error, Result};

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
        match (self.server.kind, self.server.command.is_empty()) {
            (ServerKind::Command, true) => {
                return Err(Error::invalid(format!(
                    "{}server.kind: command needs server.command, the program and its arguments",
                    at("kind: command")
                )));
            }
            (ServerKind::Builtin | ServerKind::Docker, false) => {
                return Err(Error::invalid(format!(
                    "{}server.command is only for server.kind: command{}",
                    at("command:"),
                    if self.server.kind == ServerKind::Docker {
                        " (a container's command is server.args)"
                    } else {
                        ""
                    }
                )));
            }
            _ => {}
        }
        if self.server.kind != ServerKind::Docker {
            let docker_keys = [
                ("image", self.server.image.is_some()),
                ("network", self.server.network.is_some()),
                ("env", !self.server.env.is_empty()),
                ("args", !self.server.args.is_empty()),
                ("pull", self.server.pull.is_some()),
            ];
            if let Some((key, _)) = docker_keys.iter().find(|(_, set)| *set) {
                return Err(Error::invalid(format!(
                    "{}server.{key} is only for server.kind: docker",
                    at(&format!("{key}:"))
                )));
            }
        }
        if let Some(image) = &self.server.image
            && (image.trim().is_empty() || image.chars().any(char::is_whitespace))
        {
            return Err(Error::invalid(format!(
                "{}server.image `{image}` is not an image reference",
                at("image:")
            )));
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
            let (_, client) = self
                .effective(v)
                .map_err(|e| Error::invalid(format!("{}variant `{}`: {e}", at("set"), v.name)))?;
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
        let docker_client = self.variants.iter().find(|v| {
            self.effective(v)
                .is_ok_and(|(_, c)| c.via == ClientVia::Docker)
        });
        if let Some(v) = docker_client
            && !lab.is_some_and(|l| l.hosts.client.docker)
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
