//! The lab file: which real machines play server and client.
//!
//! Without one, twlab builds its embedded lab (two network namespaces joined
//! by a veth pair). With `--lab FILE`, or a `lab:` key in the scenario, the
//! same scenario runs on real hosts instead: this machine's own namespace
//! (`local`, a host without `ssh`) or a machine reached over SSH. The file is
//! parsed and checked like a scenario (unknown keys, bad addresses, bad SSH
//! destinations are refused with `file:line:column` and exit code 2) before
//! anything is connected to or changed.
//!
//! ```yaml
//! hosts:
//!   server:
//!     ssh: admin@192.168.100.12      # absent: this machine (local)
//!     sudo: true                     # privileged commands through sudo -n
//!     address: 192.168.100.12        # the address the client targets
//!     docker: true                   # Docker engine on this host
//!   client:
//!     ssh: admin@192.168.100.21
//!     sudo: true
//! ```
//!
//! Several client machines are a list, `hosts.clients`, in place of
//! `hosts.client`; a variant's `client.hosts: N` runs the load on the first
//! N of them (so one lab file serves a 1-client and a 4-client variant).
//! Each is locked, journaled and restored on its own: the restore journal
//! keys every entry by side and client index ([`HostRole`]).
//!
//! ```yaml
//! hosts:
//!   server: { ssh: admin@192.168.100.12, address: 192.168.100.12 }
//!   clients:
//!     - { ssh: admin@192.168.100.21, address: 192.168.100.21 }
//!     - { ssh: admin@192.168.100.22, address: 192.168.100.22 }
//! ```

use crate::common::endpoint::{HostRole, Side};
use crate::error::{Error, Result};
use crate::scenario::{HumanDuration, MAX_CLIENT_HOSTS};
use schemars::JsonSchema;
use serde::de::Deserializer;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// A lab of real hosts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LabSpec {
    pub hosts: LabHosts,
    /// Between two runs on real hosts, wait until no socket or conntrack
    /// entry of the endpoint is left from the previous run, at most this
    /// long (default 130s: conntrack keeps TIME_WAIT for 120 s). A real lab
    /// cannot be made fresh per run as the embedded one is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cooldown: Option<HumanDuration>,
}

/// The server and the client host(s).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LabHosts {
    pub server: HostSpec,
    /// The client host. Either this or `clients`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<HostSpec>,
    /// Several client hosts (1 to 64), in place of `client`: a variant's
    /// `client.hosts: N` runs the load on the first N.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clients: Vec<HostSpec>,
}

/// A client host for a lab value that was never checked (no client given):
/// this machine, as a lab file without a client used to mean nothing at
/// all; [`LabSpec::check`] refuses such a file.
static NO_CLIENT: std::sync::LazyLock<HostSpec> = std::sync::LazyLock::new(HostSpec::default);

impl LabHosts {
    /// The server, or the first client host.
    pub fn get(&self, side: Side) -> &HostSpec {
        match side {
            Side::Server => &self.server,
            Side::Client => self.client(),
        }
    }

    /// The (first) client host.
    pub fn client(&self) -> &HostSpec {
        self.client
            .as_ref()
            .or(self.clients.first())
            .unwrap_or(&NO_CLIENT)
    }

    /// Every client host, in order.
    pub fn client_hosts(&self) -> Vec<&HostSpec> {
        match &self.client {
            Some(c) => vec![c],
            None => self.clients.iter().collect(),
        }
    }

    /// The host of a role, `None` past the last client.
    pub fn at(&self, role: HostRole) -> Option<&HostSpec> {
        match role.side {
            Side::Server => Some(&self.server),
            Side::Client => self.client_hosts().get(role.index).copied(),
        }
    }

    /// Every host with its role: the server, then the clients.
    pub fn roles(&self) -> Vec<(HostRole, &HostSpec)> {
        std::iter::once((HostRole::SERVER, &self.server))
            .chain(
                self.client_hosts()
                    .into_iter()
                    .enumerate()
                    .map(|(i, h)| (HostRole::client(i), h)),
            )
            .collect()
    }
}

/// One machine of a real lab.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HostSpec {
    /// `[user@]host` to reach it over SSH (BatchMode, the user's ssh config
    /// and agent; host keys checked strictly, never accepted silently).
    /// Absent: this machine, in its own network namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh: Option<SshDestination>,
    /// SSH port (default: what the ssh config says, else 22).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<crate::scenario::Port>,
    /// Private key to use (ssh -i, only that key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<PathBuf>,
    /// known_hosts file to check the host key against (default: ssh's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_hosts: Option<PathBuf>,
    /// ssh config file (ssh -F; default: ssh's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_config: Option<PathBuf>,
    /// Run privileged commands (sysctl, conntrack, ss -p) through `sudo -n`.
    #[serde(default)]
    pub sudo: bool,
    /// The address the client targets (server), or the client's own address
    /// for the record. Default for a local server: 127.0.0.1.
    #[serde(
        default,
        deserialize_with = "endpoint_address",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<String>")]
    pub address: Option<IpAddr>,
    /// A Docker engine runs on this host (reached over SSH when `ssh` is set).
    #[serde(default)]
    pub docker: bool,
    /// Path of the twlab binary on an SSH host, for the builtin server or
    /// client (default: this twlab is copied to the host when needed).
    #[serde(
        default,
        deserialize_with = "remote_path",
        skip_serializing_if = "Option::is_none"
    )]
    pub twlab: Option<String>,
    /// This host's Docker engine is a Swarm manager, and `client.via:
    /// swarm` runs the load as a service there (client host only; needs
    /// `docker: true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swarm: Option<SwarmPlacement>,
}

/// Where a Swarm service's tasks go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SwarmPlacement {
    /// A placement constraint for the load's tasks and the counters, e.g.
    /// `node.labels.twlab.role==client` (default: any node).
    #[serde(
        default,
        deserialize_with = "swarm_constraint",
        skip_serializing_if = "Option::is_none"
    )]
    pub constraint: Option<String>,
    /// At most one load task per node (default true: one client machine per
    /// task, so each has its own ports and counts). `false` lets several
    /// share a node (a one-node swarm); their counts are then the node's.
    #[serde(default = "yes")]
    pub one_per_node: bool,
}

fn yes() -> bool {
    true
}

/// A placement constraint: `key==value` or `key!=value`, of printable
/// characters without spaces around nothing else.
fn swarm_constraint<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<String>, D::Error> {
    crate::scenario::checked_str(d, |s| {
        let ok_char = |c: char| c.is_ascii_alphanumeric() || "._-=!/:".contains(c);
        if s.len() > 256 || !s.chars().all(ok_char) || !(s.contains("==") || s.contains("!=")) {
            return Err(format!(
                "`{s}` is not a Swarm placement constraint: write `KEY==VALUE` or `KEY!=VALUE`, e.g. node.labels.twlab.role==client"
            ));
        }
        Ok(s.to_string())
    })
    .map(Some)
}

/// An address a host can be reached at (or, for a client, sends from):
/// not `0.0.0.0` or `::` (they mean "any address" to a listener, and as a
/// destination Linux quietly turns them into this machine's loopback), not
/// multicast or broadcast (TCP cannot connect to them). An IPv4-mapped IPv6
/// address (`::ffff:a.b.c.d`) is refused, not rewritten: its traffic is
/// IPv4 on the wire and in conntrack while the sockets on the client are
/// IPv6 ones, so the file would say IPv6 where twlab measures IPv4; the
/// message gives the IPv4 address to write instead.
fn endpoint_address<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<IpAddr>, D::Error> {
    crate::scenario::checked_str(d, |s| {
        let addr: IpAddr = s
            .trim()
            .parse()
            .map_err(|_| "invalid IP address syntax".to_string())?;
        if let IpAddr::V6(v6) = addr
            && let Some(v4) = v6.to_ipv4_mapped()
        {
            return Err(format!(
                "`{s}` is an IPv4-mapped IPv6 address: the traffic and conntrack's entries are IPv4; write {v4}"
            ));
        }
        let broadcast = matches!(addr, IpAddr::V4(v4) if v4.is_broadcast());
        if addr.is_unspecified() || addr.is_multicast() || broadcast {
            return Err(format!(
                "`{s}` is not the address of one host ({}): write the address the client connects to, e.g. 192.168.100.12",
                if addr.is_unspecified() {
                    "it means any address"
                } else {
                    "it is a multicast or broadcast address"
                }
            ));
        }
        Ok(Some(addr))
    })
}

/// A path on an SSH host: absolute, without `.` or `..` parts, one line
/// of at most 4096 printable characters (PATH_MAX). It runs through
/// `sudo` in a quoted command line, where the working directory is not
/// known: an absolute path names one file whatever it is.
fn remote_path<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<String>, D::Error> {
    crate::scenario::checked_str(d, |s| {
        let ok = s.starts_with('/')
            && s.len() <= 4096
            && !s.chars().any(char::is_control)
            && !s.split('/').any(|part| part == "." || part == "..");
        if !ok {
            return Err(format!(
                "`{}` is not an absolute path on the host: start with `/`, no `.` or `..` parts, one line of at most 4096 printable characters",
                s.escape_default()
            ));
        }
        Ok(Some(s.to_string()))
    })
}

impl HostSpec {
    pub fn is_local(&self) -> bool {
        self.ssh.is_none()
    }

    /// Which machine this is, for the lock that keeps two twlab runs off
    /// one host: `local`, or the SSH destination and port.
    pub fn machine_key(&self) -> String {
        match &self.ssh {
            Some(d) => format!(
                "ssh-{}-{}",
                d.0,
                self.port.map_or("default".to_string(), |p| p.0.to_string())
            ),
            None => "local".into(),
        }
    }

    /// "ssh admin@host", "ssh admin@host -p 2202" or "local": one string
    /// per destination, as [`HostSpec::machine_key`] (the restore journal
    /// and env.json tell hosts apart by it: two sshd on one address are two
    /// hosts).
    pub fn describe(&self) -> String {
        match &self.ssh {
            Some(d) => match self.port {
                Some(p) => format!("ssh {} -p {}", d.0, p.0),
                None => format!("ssh {}", d.0),
            },
            None => "local (this machine's own namespace)".into(),
        }
    }
}

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

/// `[user@]host` for SSH: no spaces, no leading `-` (it would be read as an
/// option by ssh), nothing a shell would interpret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(transparent)]
pub struct SshDestination(pub String);

impl<'de> Deserialize<'de> for SshDestination {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        crate::scenario::checked_str(d, |s| {
            let ok = !s.is_empty()
                && !s.starts_with('-')
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "@.-_:[]%".contains(c))
                && s.matches('@').count() <= 1
                && !s.ends_with('@');
            if ok {
                Ok(SshDestination(s.to_string()))
            } else {
                Err(format!(
                    "`{s}` is not an SSH destination: write [user@]host, e.g. admin@192.168.100.12"
                ))
            }
        })
    }
}

impl LabSpec {
    /// Read and check a lab file. Errors are [`Error::Invalid`] with
    /// `file:line:column`.
    pub fn load(path: &Path) -> Result<LabSpec> {
        let text = crate::scenario::read_input(path, "lab file")?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parse and check lab-file text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<LabSpec> {
        crate::scenario::guard(text, origin)?;
        let spec: LabSpec =
            serde_yaml_ng::from_str(text).map_err(|e| crate::scenario::yaml_error(origin, &e))?;
        spec.check(origin, text)?;
        Ok(spec)
    }

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

    /// Is `hosts.clients` (a list) used rather than `hosts.client`?
    pub fn clients_listed(&self) -> bool {
        self.hosts.client.is_none() && !self.hosts.clients.is_empty()
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

    /// The address the client targets.
    pub fn server_address(&self) -> IpAddr {
        self.hosts
            .server
            .address
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))
    }

    /// The longest wait between runs for the endpoint to drain.
    pub fn cooldown(&self) -> std::time::Duration {
        self.cooldown
            .map_or(std::time::Duration::from_secs(130), |d| d.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<LabSpec> {
        LabSpec::parse(text, "lab.yaml")
    }

    #[test]
    fn the_seed_two_host_example_parses() {
        let lab = parse(
            "hosts:\n  server:\n    ssh: admin@192.168.100.12\n    sudo: true\n    address: 192.168.100.12\n    docker: true\n  client:\n    ssh: admin@192.168.100.21\n    sudo: true\n",
        )
        .unwrap();
        assert_eq!(
            lab.hosts.server.ssh.as_ref().unwrap().0,
            "admin@192.168.100.12"
        );
        assert!(lab.hosts.server.docker && lab.hosts.client().sudo);
        assert_eq!(lab.server_address().to_string(), "192.168.100.12");
    }

    #[test]
    fn an_ssh_server_without_an_address_is_refused_at_its_line() {
        let e = parse("hosts:\n  server:\n    ssh: admin@h1\n  client: {}\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("lab.yaml:3: hosts.server.address is needed"),
            "{e}"
        );
    }

    #[test]
    fn a_destination_that_ssh_would_read_as_an_option_is_refused() {
        let e = parse("hosts:\n  server: {}\n  client:\n    ssh: -oProxyCommand=x\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("lab.yaml:4:"), "{e}");
        assert!(e.contains("is not an SSH destination"), "{e}");
    }

    #[test]
    fn ssh_options_on_a_local_host_are_refused() {
        let e = parse("hosts:\n  server:\n    identity: /k\n  client: {}\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("lab.yaml:3: hosts.server.identity is only for an SSH host"),
            "{e}"
        );
    }

    #[test]
    fn unknown_keys_and_bad_addresses_carry_line_and_column() {
        let e = parse("hosts:\n  server:\n    adress: 1.2.3.4\n  client: {}\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("lab.yaml:3:5: "), "{e}");
        let e = parse("hosts:\n  server:\n    address: 1.2.3\n  client: {}\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("lab.yaml:3:14: "), "{e}");
    }

    #[test]
    fn addresses_that_are_not_one_host_are_refused_where_they_are_written() {
        for (addr, why) in [
            ("0.0.0.0", "it means any address"),
            ("'::'", "it means any address"),
            ("224.0.0.1", "multicast or broadcast"),
            ("255.255.255.255", "multicast or broadcast"),
            (
                "'::ffff:10.1.2.3'",
                "IPv4-mapped IPv6 address: the traffic and conntrack's entries are IPv4; write 10.1.2.3",
            ),
        ] {
            let e = parse(&format!(
                "hosts:\n  server:\n    address: {addr}\n  client: {{}}\n"
            ))
            .unwrap_err();
            let msg = e.to_string();
            assert!(
                msg.starts_with("lab.yaml:3:14: hosts.server.address: "),
                "{msg}"
            );
            assert!(msg.contains(why), "{addr}: {msg}");
            assert_eq!(e.exit_code(), 2);
        }
        let ok = parse("hosts:\n  server:\n    address: '::1'\n  client: {}\n").unwrap();
        assert_eq!(ok.server_address().to_string(), "::1");
    }

    #[test]
    fn a_loopback_server_address_with_a_remote_client_is_refused() {
        let e = parse("hosts:\n  server:\n    address: 127.0.0.1\n  client:\n    ssh: c\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot reach"), "{e}");
    }

    #[test]
    fn a_swarm_belongs_to_a_client_host_with_docker_and_a_real_constraint() {
        let ok = parse(
            "hosts:\n  server: {}\n  client:\n    docker: true\n    swarm: { constraint: node.labels.twlab.role==client }\n",
        )
        .expect("valid");
        let placement = ok.hosts.client().swarm.clone().expect("swarm");
        assert_eq!(
            placement.constraint.as_deref(),
            Some("node.labels.twlab.role==client")
        );
        assert!(placement.one_per_node, "one task per node by default");
        for (text, needle) in [
            (
                "hosts:\n  server: { docker: true, swarm: {} }\n  client: {}\n",
                "belongs to hosts.client",
            ),
            (
                "hosts:\n  server: {}\n  client: { swarm: {} }\n",
                "docker: true",
            ),
            (
                "hosts:\n  server: {}\n  client: { docker: true, swarm: { constraint: \"x; rm -rf /\" } }\n",
                "placement constraint",
            ),
            (
                "hosts:\n  server: {}\n  client: { docker: true, swarm: { constraint: node.role } }\n",
                "KEY==VALUE",
            ),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(needle), "{text}: {e}");
            assert!(
                e.contains(":3:") || e.contains(":2:"),
                "the line is named: {e}"
            );
        }
    }

    const TWO_CLIENTS: &str = "hosts:\n  server: { ssh: root@s, address: 198.18.1.1 }\n  clients:\n    - ssh: root@c1\n    - ssh: root@c2\n      port: 2222\n";

    #[test]
    fn a_list_of_client_hosts_parses_in_order_with_roles() {
        let lab = parse(TWO_CLIENTS).expect("valid");
        assert!(lab.clients_listed());
        let names: Vec<String> = lab
            .hosts
            .roles()
            .into_iter()
            .map(|(r, h)| format!("{r}={}", h.describe()))
            .collect();
        assert_eq!(
            names,
            [
                "server=ssh root@s",
                "client=ssh root@c1",
                "client 2=ssh root@c2 -p 2222"
            ]
        );
        assert_eq!(lab.hosts.client().describe(), "ssh root@c1");
        assert_eq!(
            lab.hosts.at(HostRole::client(1)).unwrap().port.unwrap().0,
            2222
        );
        assert!(lab.hosts.at(HostRole::client(2)).is_none());
        // One client host is still `hosts.client`, and it round-trips as one.
        let one = parse("hosts:\n  server: {}\n  client: {}\n").expect("valid");
        assert!(!one.clients_listed());
        assert_eq!(one.hosts.client_hosts().len(), 1);
        let yaml = serde_yaml_ng::to_string(&one).unwrap();
        assert!(!yaml.contains("clients"), "{yaml}");
    }

    #[test]
    fn client_and_clients_are_one_or_the_other_at_their_line() {
        let neither = parse("hosts:\n  server: {}\n").unwrap_err();
        assert_eq!(neither.exit_code(), 2);
        let neither = neither.to_string();
        assert!(
            neither.starts_with("lab.yaml:1: hosts needs `client:`"),
            "{neither}"
        );
        let both = parse("hosts:\n  server: {}\n  client: {}\n  clients:\n    - {}\n")
            .unwrap_err()
            .to_string();
        assert!(
            both.starts_with("lab.yaml:4: hosts has both `client:` and `clients:`"),
            "{both}"
        );
        let many = format!(
            "hosts:\n  server: {{}}\n  clients:\n{}",
            (0..=MAX_CLIENT_HOSTS)
                .map(|i| format!("    - ssh: root@c{i}\n"))
                .collect::<String>()
        );
        let many = parse(&many).unwrap_err().to_string();
        assert!(
            many.starts_with("lab.yaml:3: hosts.clients lists 65 hosts; at most 64"),
            "{many}"
        );
    }

    #[test]
    fn a_bad_key_of_a_listed_client_names_its_item_and_line() {
        // The same destination twice: the second item's `ssh:` line.
        let twice = "hosts:\n  server: { ssh: root@s, address: 198.18.1.1 }\n  clients:\n    - ssh: root@c1\n    - ssh: root@c2\n    - ssh: root@c1\n";
        let e = parse(twice).unwrap_err().to_string();
        assert!(
            e.starts_with("lab.yaml:6: hosts.clients[2] is the same host as hosts.clients[0]"),
            "{e}"
        );
        // Same name on another port is another destination, and is named
        // apart: the restore journal and env.json tell hosts by it.
        let ports = parse(TWO_CLIENTS.replace("root@c2", "root@c1").as_str()).expect("other port");
        let named: Vec<String> = ports.hosts.clients.iter().map(|h| h.describe()).collect();
        assert_ne!(named[0], named[1], "{named:?}");
        // An SSH-only key on a local client host, on its own line in item 1.
        let local = "hosts:\n  server: { address: 198.18.1.1 }\n  clients:\n    - ssh: root@c1\n    - sudo: true\n      port: 22\n";
        let e = parse(local).unwrap_err().to_string();
        assert!(
            e.starts_with("lab.yaml:6: hosts.clients[1].port is only for an SSH host"),
            "{e}"
        );
        // A flow-style item: its own line.
        let flow = "hosts:\n  server: { ssh: root@s, address: 198.18.1.1 }\n  clients:\n    - { ssh: root@c1 }\n    - { docker: true, swarm: {} }\n";
        let e = parse(flow).unwrap_err().to_string();
        assert!(
            e.starts_with(
                "lab.yaml:5: hosts.clients[1].swarm: a Swarm runs the load from one manager"
            ),
            "{e}"
        );
    }

    #[test]
    fn a_local_server_with_listed_ssh_clients_needs_a_reachable_address() {
        let e = parse("hosts:\n  server: {}\n  clients:\n    - {}\n    - ssh: root@c2\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("address"), "{e}");
    }
}
