//! The load of a run with one or several client hosts, driven as one.
//!
//! `client.hosts: N` runs the scenario's client on N hosts at once, each
//! with the scenario's `connections` and `threads`, as if the tool were
//! started on each machine. They are started together (every start is
//! issued at once and the group exists only when all have started; one
//! that cannot start stops the others), stopped together (a stop or a kill
//! reaches every one) and waited for together. Each host's figures are
//! kept: how TIME_WAIT and port exhaustion spread over the clients is what
//! a run with several is for.

use super::swarm::SwarmLoad;
use super::{ClientContext, RunningClient};
use crate::common::counts::ClientStats;
use crate::common::endpoint::Endpoint;
use crate::error::{Error, Result};
use crate::lab::Host;
use crate::process::Supervised;
use crate::scenario::{ClientSpec, ClientVia};

/// The running clients of one run, one per client host, in host order.
pub struct ClientGroup {
    clients: Vec<RunningClient>,
    /// Each client's outcome as it arrives, so a `select!` loop that drops
    /// [`ClientGroup::finish`] part way loses none.
    results: Vec<Option<Result<ClientStats>>>,
    /// `client.via: swarm`: the load is one service of several tasks
    /// instead (`clients` is then empty).
    swarm: Option<SwarmLoad>,
    /// [`ClientGroup::finish`] has handed the outcomes out.
    taken: bool,
}

impl ClientGroup {
    /// Start the client on every host at once (`ctxs[i]` for `hosts[i]`).
    /// If one cannot start, those that did are killed and the first error
    /// is returned.
    pub async fn start(
        spec: &ClientSpec,
        hosts: &[&dyn Host],
        endpoint: Endpoint,
        ctxs: &[ClientContext<'_>],
    ) -> Result<ClientGroup> {
        if spec.via == ClientVia::Swarm {
            let ctx = ctxs
                .first()
                .ok_or_else(|| Error::env("internal: no client context"))?;
            let argv = super::argv(spec, endpoint, ctx.exe);
            let load = SwarmLoad::start(ctx.engine, ctx.swarm, spec, &argv, ctx.run_id).await?;
            return Ok(ClientGroup {
                clients: Vec::new(),
                results: Vec::new(),
                swarm: Some(load),
                taken: false,
            });
        }
        if hosts.len() != ctxs.len() || hosts.is_empty() {
            return Err(Error::env(format!(
                "internal: {} client hosts but {} client contexts",
                hosts.len(),
                ctxs.len()
            )));
        }
        let started = futures::future::join_all(
            hosts
                .iter()
                .zip(ctxs)
                .map(|(host, ctx)| RunningClient::start(spec, *host, endpoint, ctx)),
        )
        .await;
        let mut clients = Vec::with_capacity(started.len());
        let mut first_error = None;
        for s in started {
            match s {
                Ok(c) => clients.push(c),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_error {
            let mut group = ClientGroup::of(clients);
            group.kill_and_reap().await;
            return Err(e);
        }
        Ok(ClientGroup::of(clients))
    }

    fn of(clients: Vec<RunningClient>) -> ClientGroup {
        let results = clients.iter().map(|_| None).collect();
        ClientGroup {
            clients,
            results,
            swarm: None,
            taken: false,
        }
    }

    /// How many clients run.
    pub fn len(&self) -> usize {
        match &self.swarm {
            Some(load) => load.len(),
            None => self.clients.len(),
        }
    }

    /// Never true for a started group; for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The Swarm load, for `client.via: swarm`.
    pub fn swarm(&self) -> Option<&SwarmLoad> {
        self.swarm.as_ref()
    }

    /// The clients that are processes (not containers or tasks), for the
    /// restore journal.
    pub fn processes(&self) -> Vec<&Supervised> {
        self.clients
            .iter()
            .filter_map(RunningClient::process)
            .collect()
    }

    /// The image id of the first client container, for env.json.
    pub fn image_id(&self) -> Option<String> {
        self.clients.first().and_then(|c| c.image_id.clone())
    }

    /// Ask every client still running to stop early and report (a Swarm
    /// load is removed: it cannot report early, see [`SwarmLoad::abandon`]).
    pub async fn request_stop(&mut self) {
        if let Some(load) = &mut self.swarm {
            load.abandon().await;
        }
        futures::future::join_all(self.pending().map(RunningClient::request_stop)).await;
    }

    /// Kill every client still running at once (SIGKILL).
    pub async fn signal_kill(&mut self) {
        if let Some(load) = &mut self.swarm {
            load.abandon().await;
        }
        futures::future::join_all(self.pending().map(RunningClient::signal_kill)).await;
    }

    /// The clients whose outcome is not in yet.
    fn pending(&self) -> impl Iterator<Item = &RunningClient> {
        let ended = self.taken;
        self.clients
            .iter()
            .zip(&self.results)
            .filter(move |(_, r)| !ended && r.is_none())
            .map(|(c, _)| c)
    }

    /// CPU time each client has used so far (see [`RunningClient::cpu_secs`]).
    pub fn cpu_secs(&self) -> Vec<Option<f64>> {
        match &self.swarm {
            Some(load) => vec![None; load.len()],
            None => self.clients.iter().map(RunningClient::cpu_secs).collect(),
        }
    }

    /// The first client's command line, for messages.
    pub fn command(&self) -> &str {
        match &self.swarm {
            Some(load) => load.command(),
            None => self.clients.first().map_or("", |c| c.command()),
        }
    }

    /// Wait for every client to end; each one's figures or error, in host
    /// order. Cancel-safe: outcomes already in are kept for the next call.
    pub async fn finish(&mut self) -> Vec<Result<ClientStats>> {
        if let Some(load) = &mut self.swarm {
            return load.finish().await;
        }
        if self.taken {
            return self
                .clients
                .iter()
                .map(|c| {
                    Err(Error::env(format!(
                        "`{}`: its figures were taken already",
                        c.command()
                    )))
                })
                .collect();
        }
        futures::future::join_all(
            self.clients
                .iter_mut()
                .zip(self.results.iter_mut())
                .filter(|(_, r)| r.is_none())
                .map(|(c, r)| async move {
                    let outcome = c.finish().await;
                    *r = Some(outcome);
                }),
        )
        .await;
        self.taken = true;
        self.results
            .iter_mut()
            .map(|r| {
                r.take()
                    .unwrap_or_else(|| Err(Error::env("internal: a client's outcome went missing")))
            })
            .collect()
    }

    /// Kill every client and wait for them (after a failed start or a
    /// crashed server); their outcomes are dropped.
    pub async fn kill_and_reap(&mut self) {
        self.signal_kill().await;
        let _ = self.finish().await;
    }
}
