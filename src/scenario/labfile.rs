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

use crate::common::endpoint::Side;
use crate::error::{Error, Result};
use crate::scenario::HumanDuration;
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

/// The two roles.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LabHosts {
    pub server: HostSpec,
    pub client: HostSpec,
}

impl LabHosts {
    pub fn get(&self, side: Side) -> &HostSpec {
        match side {
            Side::Server => &self.server,
            Side::Client => &self.client,
        }
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

    /// "ssh admin@host" or "local".
    pub fn describe(&self) -> String {
        match &self.ssh {
            Some(d) => format!("ssh {}", d.0),
            None => "local (this machine's own namespace)".into(),
        }
    }
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
        for side in Side::BOTH {
            let h = self.hosts.get(side);
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
                            "{}{hosts}.{side}.{key} is only for an SSH host (set {hosts}.{side}.ssh)",
                            at(side.as_str(), key)
                        )));
                    }
                }
            }
        }
        if self.hosts.server.swarm.is_some() {
            return Err(Error::invalid(format!(
                "{}{hosts}.server.swarm: a Swarm runs the load, so it belongs to hosts.client",
                at("server", "swarm")
            )));
        }
        if self.hosts.client.swarm.is_some() && !self.hosts.client.docker {
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
        if self.hosts.server.is_local() && !self.hosts.client.is_local() {
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
        assert!(lab.hosts.server.docker && lab.hosts.client.sudo);
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
        let placement = ok.hosts.client.swarm.expect("swarm");
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
}
