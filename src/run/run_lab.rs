//! The lab of one run, as the run's steps see it: the seam between the
//! steps and the kind of lab. The steps ask a [`RunLab`] for its hosts,
//! addresses and engines, have it note and forget processes, and close it;
//! they never ask which kind it is. [`Labs`] opens one for each run: the
//! embedded lab ([`Embedded`]: a fresh set of namespaces per run) or a lab
//! file's real hosts ([`RealLab`]: connected once, made ready per run).
//!
//! A new kind of lab is one implementation of each trait here; the choice
//! between them is made once, where `twlab run` reads its lab.

use super::plan::VariantPlan;
use crate::common::endpoint::Endpoint;
use crate::common::endpoint::{HostRole, Side};
use crate::docker::Engine;
use crate::error::{Error, Result};
use crate::lab::Host;
use crate::lab::netns::NetnsLab;
use crate::lab::real::RealLab;
use crate::lab::run_id;
use crate::lab::sysctl::Journal;
use crate::process::Supervised;
use crate::results::env::RunEnv;
use crate::scenario::labfile::SwarmPlacement;
use async_trait::async_trait;
use std::collections::BTreeMap;

/// Where the runs of a scenario get their lab.
#[async_trait]
pub(crate) trait Labs: Send + Sync {
    /// The lab of one run, ready for its steps; what it is goes into `env`,
    /// and where its sysctl journal is kept on disk into `journal`.
    async fn open<'s>(
        &'s self,
        plan: &VariantPlan<'_>,
        run_id: &str,
        conntrack: bool,
        env: &mut RunEnv,
        journal: &mut Journal,
    ) -> Result<Box<dyn RunLab + 's>>;
}

/// A lab host that vanished under the run.
pub(crate) struct Vanished {
    /// Its role in the lab (the sysctl journal keys changes by it).
    pub(crate) role: HostRole,
    /// As the completeness note names it.
    pub(crate) name: String,
}

/// The lab of one run.
#[async_trait]
pub(crate) trait RunLab: Send + Sync {
    fn run_id(&self) -> &str;

    fn host(&self, side: Side) -> &dyn Host;

    /// Every client host this run uses, the first one first.
    fn clients(&self) -> Vec<&dyn Host>;

    /// Each client host's address towards the server, in host order (empty
    /// text where the lab file does not say).
    fn client_addresses(&self) -> Vec<String>;

    fn endpoint(&self, port: u16) -> Endpoint;

    /// The Docker engine of the server host, where the lab has one.
    fn engine(&self) -> Option<&Engine> {
        None
    }

    /// The Docker engine of the client host, where the lab has one.
    fn client_engine(&self) -> Option<&Engine> {
        None
    }

    /// The placement of a `client.via: swarm` load (the lab file's
    /// `hosts.client.swarm`).
    fn client_swarm(&self) -> Option<&SwarmPlacement> {
        None
    }

    /// Make conntrack track the run's connections (and follow its events),
    /// where twlab may: in a lab of its own. A real host is counted as it
    /// is: twlab adds no rule there.
    async fn track_conntrack(&self, _endpoint: Endpoint, _events: bool) -> Result<()> {
        Ok(())
    }

    /// Count the endpoint's sockets with the socket gauge where the lab
    /// lets twlab (its own namespaces, watched before the server starts;
    /// see [`crate::measure::sock_gauge`]). Returns how each host counts,
    /// by host, for env.json. A real host's sockets are walked as they are.
    async fn watch_sockets(&self, _endpoint: Endpoint) -> BTreeMap<String, String> {
        BTreeMap::new()
    }

    /// The hosts removed under the run (e.g. by `twlab clean --force`); a
    /// real lab's hosts are not twlab's to vanish (a dropped connection
    /// fails the run).
    fn vanished(&self) -> Vec<Vanished> {
        Vec::new()
    }

    /// Note a process where twlab would not end it by itself after a
    /// `kill -9` of twlab (on a real host), so `twlab clean` can. Returns
    /// what to [`RunLab::forget_process`] once the process is reaped.
    fn note_process(&self, _role: HostRole, _process: &Supervised) -> Result<Option<u32>> {
        Ok(None)
    }

    fn forget_process(&self, _pid: Option<u32>) {}

    /// The last step: restore the sysctls and remove the lab (or keep it
    /// for inspection). Returns what could not be restored.
    async fn close(&self, journal: &mut Journal, keep: bool) -> Vec<Error>;
}

/// Every host of a lab, server first, for the sysctl journal.
fn all_hosts(lab: &dyn RunLab) -> Vec<&dyn Host> {
    std::iter::once(lab.host(Side::Server))
        .chain(lab.clients())
        .collect()
}

/// The embedded lab: a fresh set of network namespaces for each run.
pub(crate) struct Embedded;

#[async_trait]
impl Labs for Embedded {
    async fn open<'s>(
        &'s self,
        plan: &VariantPlan<'_>,
        run_id: &str,
        _conntrack: bool,
        env: &mut RunEnv,
        _journal: &mut Journal,
    ) -> Result<Box<dyn RunLab + 's>> {
        let lab = NetnsLab::create_with_clients(run_id, plan.client.hosts.get()).await?;
        env.namespaces = lab.hosts().map(|h| h.name().to_string()).collect();
        if plan.client.hosts.get() > 1 {
            env.client_addresses = lab
                .client_addresses()
                .iter()
                .map(ToString::to_string)
                .collect();
        }
        Ok(Box::new(lab))
    }
}

#[async_trait]
impl RunLab for NetnsLab {
    fn run_id(&self) -> &str {
        &self.run_id
    }

    fn host(&self, side: Side) -> &dyn Host {
        NetnsLab::host(self, side)
    }

    fn clients(&self) -> Vec<&dyn Host> {
        NetnsLab::clients(self).map(|h| h as &dyn Host).collect()
    }

    fn client_addresses(&self) -> Vec<String> {
        NetnsLab::client_addresses(self)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    fn endpoint(&self, port: u16) -> Endpoint {
        NetnsLab::endpoint(self, port)
    }

    async fn watch_sockets(&self, endpoint: Endpoint) -> BTreeMap<String, String> {
        let mut how = BTreeMap::new();
        for host in self.hosts() {
            let counting = match host.watch_sockets(endpoint).await {
                Ok(()) => "gauge".to_string(),
                Err(e) => {
                    errln!(
                        "twlab: sockets in {} are counted by walking (the socket gauge: {e})",
                        host.name()
                    );
                    format!("walk: {e}")
                }
            };
            how.insert(host.name().to_string(), counting);
        }
        how
    }

    async fn track_conntrack(&self, endpoint: Endpoint, events: bool) -> Result<()> {
        for host in self.hosts() {
            host.enable_conntrack().await?;
            if events {
                host.watch_conntrack(endpoint).await;
            }
        }
        Ok(())
    }

    fn vanished(&self) -> Vec<Vanished> {
        self.hosts()
            .filter(|h| !h.path().exists())
            .map(|h| Vanished {
                role: h.role(),
                name: h.name().to_string(),
            })
            .collect()
    }

    async fn close(&self, journal: &mut Journal, keep: bool) -> Vec<Error> {
        if keep {
            errln!(
                "twlab: lab kept for inspection: `ip netns exec {} bash` (or {}); `twlab clean` removes it",
                self.client.name(),
                self.server.name()
            );
            self.keep();
            return Vec::new();
        }
        let errors = journal.restore(&all_hosts(self)).await;
        self.destroy().await;
        errors
    }
}

/// One run on the real lab: its id and how many of the lab's client hosts
/// its variant uses (`client.hosts`, the first ones).
struct RealRun<'a> {
    lab: &'a RealLab,
    run_id: String,
    clients: usize,
}

/// Before each run on real hosts: wait for the previous run's sockets and
/// conntrack entries to drain, and note the run as twlab's (owner file,
/// restore journal) so `twlab clean` can tell live runs from leftovers.
#[async_trait]
impl Labs for RealLab {
    async fn open<'s>(
        &'s self,
        plan: &VariantPlan<'_>,
        run_id: &str,
        conntrack: bool,
        env: &mut RunEnv,
        journal: &mut Journal,
    ) -> Result<Box<dyn RunLab + 's>> {
        let endpoint = self.endpoint(plan.server.port.0);
        let left = self.drain(endpoint, conntrack).await?;
        if !left.is_empty() {
            errln!(
                "twlab: the endpoint {endpoint} did not drain within {}: {} left; the run starts anyway",
                humantime::format_duration(self.spec.cooldown()),
                left.join(", ")
            );
        }
        run_id::write_owner_file(run_id)?;
        self.restore.record_run(run_id)?;
        let run = RealRun {
            lab: self,
            run_id: run_id.to_string(),
            clients: plan.client.hosts.get() as usize,
        };
        env.server_address = self.spec.server_address().to_string();
        let addresses = run.client_addresses();
        env.client_address = addresses.first().cloned().unwrap_or_default();
        if run.clients > 1 {
            env.client_addresses = addresses;
        }
        journal.disk = Some(self.restore.clone());
        Ok(Box::new(run))
    }
}

#[async_trait]
impl RunLab for RealRun<'_> {
    fn run_id(&self) -> &str {
        &self.run_id
    }

    fn host(&self, side: Side) -> &dyn Host {
        self.lab.host(side)
    }

    fn clients(&self) -> Vec<&dyn Host> {
        self.lab.client_hosts(self.clients)
    }

    fn client_addresses(&self) -> Vec<String> {
        self.lab
            .spec
            .hosts
            .client_hosts()
            .iter()
            .take(self.clients)
            .map(|h| h.address.map(|a| a.to_string()).unwrap_or_default())
            .collect()
    }

    fn endpoint(&self, port: u16) -> Endpoint {
        self.lab.endpoint(port)
    }

    fn engine(&self) -> Option<&Engine> {
        self.lab.engine.as_ref()
    }

    fn client_engine(&self) -> Option<&Engine> {
        self.lab.client_engine.as_ref()
    }

    fn client_swarm(&self) -> Option<&SwarmPlacement> {
        self.lab.spec.hosts.client().swarm.as_ref()
    }

    /// In the restore journal, so `twlab clean` can end it after a
    /// `kill -9` of twlab (processes in a lab namespace die with it).
    fn note_process(&self, role: HostRole, process: &Supervised) -> Result<Option<u32>> {
        let Some(pid) = process.pid() else {
            return Ok(None);
        };
        self.lab
            .restore
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

    fn forget_process(&self, pid: Option<u32>) {
        if let Some(pid) = pid
            && let Err(e) = self.lab.restore.forget_process(pid)
        {
            errln!("twlab: {e}");
        }
    }

    async fn close(&self, journal: &mut Journal, _keep: bool) -> Vec<Error> {
        let errors = journal.restore(&all_hosts(self)).await;
        let _ = std::fs::remove_file(run_id::owner_file(&self.run_id));
        errors
    }
}
