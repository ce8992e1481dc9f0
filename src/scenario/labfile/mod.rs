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
//! ```//!
//! The module by idea: the model and its reading here, the values each
//! key accepts, refused as they are read (`values.rs`), the checks across
//! keys with the line of the offending key (`check.rs`), and their tests.

mod check;
mod values;

pub use values::SshDestination;
use values::{endpoint_address, remote_path, swarm_constraint, yes};

use crate::common::endpoint::{HostRole, Side};
use crate::error::Result;
use crate::scenario::HumanDuration;
use schemars::JsonSchema;
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

/// How this machine as a lab host (`ssh` not set) reads in messages,
/// env.json and the report: one text, whether said from the lab file's
/// host or from the connected host (`lab::local`).
pub const LOCAL_HOST: &str = "local (this machine)";

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

    /// "ssh admin@host", "ssh admin@host -p 2202" or [`LOCAL_HOST`]: one
    /// string per destination, as [`HostSpec::machine_key`], for people (two
    /// sshd on one address read as two hosts). The journals name a host by
    /// its role, never by this text.
    pub fn describe(&self) -> String {
        match &self.ssh {
            Some(d) => match self.port {
                Some(p) => format!("ssh {} -p {}", d.0, p.0),
                None => format!("ssh {}", d.0),
            },
            None => LOCAL_HOST.into(),
        }
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

    /// Is `hosts.clients` (a list) used rather than `hosts.client`?
    pub fn clients_listed(&self) -> bool {
        self.hosts.client.is_none() && !self.hosts.clients.is_empty()
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
mod tests;
