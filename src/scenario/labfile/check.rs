//! Checks across the keys of a lab file, each error at the line of the
//! key that is wrong (also inside a scenario's `lab:` and in the items of
//! `hosts.clients`).

use super::LabSpec;
use crate::common::endpoint::{HostRole, Side};
use crate::error::{Error, Result};
use crate::scenario::MAX_CLIENT_HOSTS;

/// `file:line: ` of `key` inside item `index` (0-based) of the block-style
/// list under the keys `path` (`clients:` then `- ssh: …` lines), the
/// item's own line when the key is not on a line of its own, the list's
/// line for a flow-style list.
fn item_key_line(text: &str, origin: &str, path: &[&str], index: usize, key: &str) -> String {
    let list_at = crate::scenario::line_of(text, origin, path);
    let Some(list_line) = list_at
        .strip_prefix(origin)
        .and_then(|r| r.trim_start_matches(':').split(':').next())
        .and_then(|n| n.parse::<usize>().ok())
    else {
        return list_at;
    };
    let indent = |l: &str| l.len() - l.trim_start().len();
    let lines: Vec<&str> = text.lines().collect();
    let list_indent = lines.get(list_line - 1).map_or(0, |l| indent(l));
    // Where each item starts (`- ` at the first item's indentation), up to
    // the first line back at the list key's level that is not an item.
    let mut starts = Vec::new();
    let mut end = lines.len();
    for (i, l) in lines.iter().enumerate().skip(list_line) {
        let t = l.trim_start();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let item = t.starts_with("- ") || t == "-";
        if indent(l) <= list_indent && !item {
            end = i;
            break;
        }
        if item
            && starts
                .first()
                .is_none_or(|&f: &usize| indent(lines[f]) == indent(l))
        {
            starts.push(i);
        }
    }
    let Some(&start) = starts.get(index) else {
        return list_at;
    };
    let stop = starts.get(index + 1).copied().unwrap_or(end);
    let found = (start..stop).find(|&i| {
        let l = lines[i];
        l.trim_start()
            .trim_start_matches("- ")
            .starts_with(&format!("{key}:"))
            || l.contains(&format!("{{ {key}:"))
            || l.contains(&format!("{{{key}:"))
            || l.contains(&format!(", {key}:"))
    });
    format!("{origin}:{}: ", found.unwrap_or(start) + 1)
}

impl LabSpec {
    /// Checks across fields, with the line of the offending key.
    pub fn check(&self, origin: &str, text: &str) -> Result<()> {
        self.check_in(origin, text, &[])
    }

    /// [`LabSpec::check`] for a lab written below the keys `within` of
    /// `text` (a scenario's `lab:`), so lines are found there.
    pub fn check_in(&self, origin: &str, text: &str, within: &[&str]) -> Result<()> {
        let at = |role: &str, key: &str| {
            let mut path = within.to_vec();
            path.extend([role, key]);
            crate::scenario::line_of(text, origin, &path)
        };
        // Keys are named from the top of the file they are in.
        let hosts = within.iter().map(|k| format!("{k}.")).collect::<String>() + "hosts";
        self.check_clients(origin, text, within, &hosts)?;
        for (role, h) in self.hosts.roles() {
            // `hosts.server`, `hosts.client`, `hosts.clients[1]`, and the
            // line of `key` in that host's block.
            let (name, line) = self.role_key(role, origin, text, within, &hosts);
            if h.is_local() {
                for (set, key) in [
                    (h.port.is_some(), "port"),
                    (h.identity.is_some(), "identity"),
                    (h.known_hosts.is_some(), "known_hosts"),
                    (h.ssh_config.is_some(), "ssh_config"),
                    (h.twlab.is_some(), "twlab"),
                ] {
                    if set {
                        return Err(Error::invalid(format!(
                            "{}{name}.{key} is only for an SSH host (set {name}.ssh)",
                            line(key)
                        )));
                    }
                }
            }
            if !self.clients_listed() || role.side == Side::Server {
                continue;
            }
            if h.swarm.is_some() {
                return Err(Error::invalid(format!(
                    "{}{name}.swarm: a Swarm runs the load from one manager, so it belongs to {hosts}.client (one host), not to a host of {hosts}.clients",
                    line("swarm")
                )));
            }
            let same = self.hosts.clients[..role.index]
                .iter()
                .position(|o| o.machine_key() == h.machine_key());
            if let Some(first) = same {
                return Err(Error::invalid(format!(
                    "{}{name} is the same host as {hosts}.clients[{first}] ({}): each client host is its own machine, with its own ports and counts",
                    line("ssh"),
                    h.describe()
                )));
            }
        }
        if self.hosts.server.swarm.is_some() {
            return Err(Error::invalid(format!(
                "{}{hosts}.server.swarm: a Swarm runs the load, so it belongs to hosts.client",
                at("server", "swarm")
            )));
        }
        let client = self.hosts.client();
        if client.swarm.is_some() && !client.docker {
            return Err(Error::invalid(format!(
                "{}{hosts}.client.swarm needs {hosts}.client.docker: true (the Swarm manager is that host's Docker engine)",
                at("client", "swarm")
            )));
        }
        if self.hosts.server.ssh.is_some() && self.hosts.server.address.is_none() {
            return Err(Error::invalid(format!(
                "{}{hosts}.server.address is needed for an SSH server: the address the client targets",
                at("server", "ssh")
            )));
        }
        if self.hosts.server.is_local() && self.hosts.client_hosts().iter().any(|c| !c.is_local()) {
            let addr = self.server_address();
            if addr.is_loopback() {
                return Err(Error::invalid(format!(
                    "{}{hosts}.server.address is {addr}, which the SSH client host cannot reach: give the address of this machine that the client targets",
                    at("server", "address")
                )));
            }
        }
        Ok(())
    }

    /// One client host, or a list of 1 to [`MAX_CLIENT_HOSTS`] of them.
    fn check_clients(&self, origin: &str, text: &str, within: &[&str], hosts: &str) -> Result<()> {
        let mut path = within.to_vec();
        path.push("hosts");
        let hosts_line = crate::scenario::line_of(text, origin, &path);
        path.push("clients");
        let clients_line = crate::scenario::line_of(text, origin, &path);
        let n = self.hosts.clients.len();
        match (&self.hosts.client, n) {
            (None, 0) => Err(Error::invalid(format!(
                "{hosts_line}{hosts} needs `client:` (the client host) or `clients:` (a list of client hosts)"
            ))),
            (Some(_), _) if n > 0 => Err(Error::invalid(format!(
                "{clients_line}{hosts} has both `client:` and `clients:`: write one client host as `client:`, or every client host in the list `clients:`"
            ))),
            (None, n) if n > MAX_CLIENT_HOSTS as usize => Err(Error::invalid(format!(
                "{clients_line}{hosts}.clients lists {n} hosts; at most {MAX_CLIENT_HOSTS} client hosts run at once"
            ))),
            _ => Ok(()),
        }
    }

    /// A role's key (`hosts.clients[1]`) and a finder of the line of one of
    /// its keys.
    fn role_key<'t>(
        &self,
        role: HostRole,
        origin: &'t str,
        text: &'t str,
        within: &'t [&'t str],
        hosts: &str,
    ) -> (String, impl Fn(&str) -> String + 't) {
        let listed = self.clients_listed() && role.side == Side::Client;
        let name = if listed {
            format!("{hosts}.clients[{}]", role.index)
        } else {
            format!("{hosts}.{}", role.side)
        };
        let side = role.side.as_str();
        let index = role.index;
        let line = move |key: &str| {
            let mut path = within.to_vec();
            path.push("hosts");
            if listed {
                path.push("clients");
                return item_key_line(text, origin, &path, index, key);
            }
            path.extend([side, key]);
            crate::scenario::line_of(text, origin, &path)
        };
        (name, line)
    }
}
