//! The lab of one run as the orchestration sees it: a fresh pair of
//! namespaces or the connected real lab, and the restore journal entries
//! for processes started on real hosts.

use crate::common::endpoint::Endpoint;
use crate::common::endpoint::{HostRole, Side};
use crate::error::Result;
use crate::lab::Host;
use crate::lab::netns::{NetnsHost, NetnsLab};
use crate::lab::real::RealLab;

/// The lab of one run: a fresh pair of namespaces, or the real lab.
pub(crate) enum RunLab<'a> {
    Netns(Box<NetnsLab>),
    /// `clients`: how many of the lab's client hosts this run's variant
    /// uses (`client.hosts`), the first ones.
    Real {
        lab: &'a RealLab,
        run_id: String,
        clients: usize,
    },
}

impl RunLab<'_> {
    pub(crate) fn host(&self, side: Side) -> &dyn Host {
        match self {
            RunLab::Netns(l) => l.host(side),
            RunLab::Real { lab, .. } => lab.host(side),
        }
    }

    /// Every client host, the first one first.
    pub(crate) fn clients(&self) -> Vec<&dyn Host> {
        match self {
            RunLab::Netns(l) => l.clients().map(|h| h as &dyn Host).collect(),
            RunLab::Real { lab, clients, .. } => lab.client_hosts(*clients),
        }
    }

    /// Each client host's address towards the server, in host order (empty
    /// text where the lab file does not say).
    pub(crate) fn client_addresses(&self) -> Vec<String> {
        match self {
            RunLab::Netns(l) => l
                .client_addresses()
                .iter()
                .map(ToString::to_string)
                .collect(),
            RunLab::Real { lab, clients, .. } => lab
                .spec
                .hosts
                .client_hosts()
                .iter()
                .take(*clients)
                .map(|h| h.address.map(|a| a.to_string()).unwrap_or_default())
                .collect(),
        }
    }

    /// The lab's namespaces that no longer exist under their names (removed
    /// under the run, e.g. by `twlab clean --force`); a real lab's hosts
    /// are not twlab's to vanish (a dropped connection fails the run).
    pub(crate) fn vanished(&self) -> Vec<&NetnsHost> {
        match self {
            RunLab::Netns(l) => l.hosts().filter(|h| !h.path().exists()).collect(),
            RunLab::Real { .. } => Vec::new(),
        }
    }

    pub(crate) fn run_id(&self) -> &str {
        match self {
            RunLab::Netns(l) => &l.run_id,
            RunLab::Real { run_id, .. } => run_id,
        }
    }

    pub(crate) fn endpoint(&self, port: u16) -> Endpoint {
        match self {
            RunLab::Netns(l) => l.endpoint(port),
            RunLab::Real { lab, .. } => lab.endpoint(port),
        }
    }

    pub(crate) fn engine(&self) -> Option<&crate::docker::Engine> {
        match self {
            RunLab::Netns(_) => None,
            RunLab::Real { lab, .. } => lab.engine.as_ref(),
        }
    }

    /// The placement of a `client.via: swarm` load (the lab file's
    /// `hosts.client.swarm`).
    pub(crate) fn client_swarm(&self) -> Option<&crate::scenario::labfile::SwarmPlacement> {
        match self {
            RunLab::Netns(_) => None,
            RunLab::Real { lab, .. } => lab.spec.hosts.client().swarm.as_ref(),
        }
    }

    pub(crate) fn client_engine(&self) -> Option<&crate::docker::Engine> {
        match self {
            RunLab::Netns(_) => None,
            RunLab::Real { lab, .. } => lab.client_engine.as_ref(),
        }
    }
}

/// On a real host, note a process in the restore journal so `twlab clean`
/// can end it after a `kill -9` of twlab (processes in a lab namespace die
/// with it). Returns the PID to forget once the process is reaped.
pub(crate) fn note_process(
    lab: &RunLab<'_>,
    role: HostRole,
    process: &crate::process::Supervised,
) -> Result<Option<u32>> {
    let (RunLab::Real { lab, .. }, Some(pid)) = (lab, process.pid()) else {
        return Ok(None);
    };
    lab.restore
        .record_process(crate::lab::restore::PendingProcess {
            side: role.side,
            index: role.index,
            pid,
            start_ticks: crate::lab::restore::start_ticks(pid).unwrap_or_default(),
            remote_pidfile: process.remote_pidfile().map(String::from),
            command: process.command().to_string(),
        })?;
    Ok(Some(pid))
}

pub(crate) fn forget_process(lab: &RunLab<'_>, pid: Option<u32>) {
    if let (RunLab::Real { lab, .. }, Some(pid)) = (lab, pid)
        && let Err(e) = lab.restore.forget_process(pid)
    {
        errln!("twlab: {e}");
    }
}
