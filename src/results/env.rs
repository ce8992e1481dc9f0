//! `env.json`: what the machine and the lab were when the run was taken —
//! kernel, versions, every sysctl the scenario touches before, wanted and
//! read back, conntrack timeouts, image ids. `twlab compare` reads it to say
//! whether two runs were taken alike.

use crate::common::endpoint::Side;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `env.json`: what the machine and the lab were.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Env {
    pub twlab_version: String,
    pub kernel: String,
    pub os: String,
    pub tools: BTreeMap<String, String>,
    pub lab: String,
    /// The machine's own values of the sysctls the scenario touches, read
    /// (never written) for reference: the lab runs in its own namespaces.
    pub machine_sysctls: BTreeMap<String, String>,
    /// Real labs: each host as described, with its kernel, the tool that
    /// counts its sockets, where its sysctls live, and the values of the
    /// scenario's sysctls on it before the first run.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub hosts: BTreeMap<String, HostEnv>,
    /// The server host's Docker engine version, when one is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_engine: Option<String>,
    /// The client host's Docker engine version, when one is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_docker_engine: Option<String>,
    pub runs: Vec<RunEnv>,
}

/// One real host in `env.json`.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
#[serde(default)]
pub struct HostEnv {
    pub host: String,
    pub kernel: String,
    pub sysctl_scope: String,
    /// The host's own values of the scenario's sysctls before the run.
    pub sysctls_before: BTreeMap<String, String>,
}

/// One run's lab and settings in `env.json`.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
#[serde(default)]
pub struct RunEnv {
    pub run_id: String,
    pub variant: String,
    pub repeat: u32,
    pub namespaces: Vec<String>,
    pub server_address: String,
    pub client_address: String,
    /// With several client hosts: each one's address, in host order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub client_addresses: Vec<String>,
    /// Each sysctl written: before, wanted, read back.
    pub sysctls: Vec<SysctlChange>,
    /// Sysctls someone else changed during the run (put back all the same).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sysctls_changed_meanwhile: Vec<SysctlChangedMeanwhile>,
    /// How each host of an embedded lab counted its sockets, by namespace:
    /// `gauge` (the socket gauge), or `walk` and why the gauge could not.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub socket_counting: BTreeMap<String, String>,
    /// conntrack timeouts (seconds) per side, by TCP state.
    pub conntrack_timeouts: BTreeMap<String, BTreeMap<String, String>>,
    /// The server's image id, for a docker server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_image_id: Option<String>,
    /// The client's image id, for a client in a container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_image_id: Option<String>,
}

/// One sysctl as twlab changed it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SysctlChange {
    pub side: Side,
    pub host: String,
    pub name: String,
    /// The value before twlab wrote it.
    pub before: String,
    /// The value asked for.
    pub wanted: String,
    /// The value read back after writing (empty when the read-back failed;
    /// the value is restored all the same).
    pub after: String,
}

/// A sysctl that someone else changed while twlab's value was in force:
/// at the restore it was neither what twlab wrote nor what it was before.
/// twlab put the value from before the run back all the same.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SysctlChangedMeanwhile {
    pub side: Side,
    pub host: String,
    pub name: String,
    /// What twlab had written (read back).
    pub written: String,
    /// What it found at the restore.
    pub found: String,
    /// What it put back (the value before the run).
    pub restored: String,
}
