//! Docker Swarm as the engine past one machine: the load on N client nodes
//! and a counter on every node, as labelled services of one manager.
//!
//! One client machine runs out of ephemeral ports towards one server
//! endpoint; real load tests drive the server from several. Something then
//! has to start the load on each machine at once, collect what each printed
//! and remove it all at the end. twlab does not bring an agent of its own
//! for that: Swarm mode is part of every Docker Engine (`docker swarm init`
//! on one machine, `docker swarm join` on the others), bollard speaks its
//! services API, and the engine already schedules, places, logs and removes
//! containers on every node. So twlab talks to one manager and
//!
//! * runs the load as a **replicated service** ([`Swarm::start_replicated`]):
//!   N tasks, at most one per node when asked (the placement's
//!   `MaxReplicas`, API 1.40+), on the nodes a placement constraint selects
//!   (e.g. `node.labels.twlab.role==client`), with the restart policy
//!   `none` (a load that ended must not start again) and **host
//!   networking** (the service attached to the predefined `host` network:
//!   the sockets, TIME_WAIT and conntrack entries are the node's own, not a
//!   container namespace's behind NAT). What each task printed comes back
//!   through the task logs ([`Service::task_outputs`]), stdout apart from
//!   stderr, to parse as `twlab load --json` or wrk's report.
//! * counts on every node with a **global service**
//!   ([`Swarm::start_global`]) running `twlab states ENDPOINT --watch
//!   --json` with host networking and `NET_ADMIN` (ctnetlink dumps need
//!   it): one JSON line per sample and node, streamed back through the task
//!   logs ([`Service::follow_lines`]).
//! * labels every service and its containers `twlab.run=<run id>`, like
//!   the containers of [`super`], so [`Swarm::remove_labelled`] (the run on
//!   stop, error and Ctrl-C; `twlab clean` after a `kill -9`) finds them.
//!
//! **Images without a registry.** A swarm agent pulls a task's image
//! before it starts it, unless the image is named by its id. twlab's lab
//! has no registry and builds its images locally (`docker/twlab/build.sh`
//! for twlab itself), so a service is created with the image's id
//! (`sha256:…`, resolved on the manager): no node ever pulls, and every
//! node runs exactly the manager's image. An image moved with `docker save
//! | docker load` keeps its id, which is how it reaches the other nodes; a
//! node without it rejects the task, and [`Service::wait_running`] names it.
//!
//! **The same shape on Kubernetes.** The replicated client service is a
//! `Job` with `parallelism: N`, `completions: N`, `restartPolicy: Never`,
//! `hostNetwork: true` and a pod anti-affinity on `twlab.run` (one pod per
//! node, as `MaxReplicas: 1`), with a `nodeSelector` for the placement
//! constraint; the results are the pods' logs. The global counter is a
//! `DaemonSet` with `hostNetwork: true` and `capabilities.add: [NET_ADMIN]`,
//! its samples the pods' followed logs. Labels `twlab.run` on both, and
//! `kubectl delete job,daemonset -l twlab.run=<id>` is `remove_labelled`.
//! A Kubernetes backend can follow with the same [`Service`] surface.
//!
//! The module by idea: the manager and its nodes here, the services twlab
//! starts and waits for (`service.rs`), their tasks, logs and followed lines
//! (`tasks.rs`), and removing what a run left by its label (`cleanup.rs`).

mod cleanup;
mod service;
mod tasks;

pub use cleanup::remove_labelled_services;
pub use service::Service;
pub use tasks::{NodeLine, TaskInfo, TaskOutput};

use crate::docker::{Engine, LABEL_RUN};
use crate::error::{Error, Result};
use bollard::models::LocalNodeState;
use bollard::query_parameters::ListNodesOptions;
use std::collections::HashMap;
use std::time::Duration;

/// The label naming the image a service was asked for (its spec holds the id).
pub const LABEL_IMAGE: &str = "twlab.image";

/// How often task states are polled while waiting.
const POLL: Duration = Duration::from_millis(200);

/// How long reading one task's log may take (the agent on its node serves it).
const LOG_TIMEOUT: Duration = Duration::from_secs(30);

/// How long [`Swarm::remove_labelled`] waits for the tasks of removed
/// services, and their containers on the manager's engine, to be gone.
const REMOVE_WAIT: Duration = Duration::from_secs(30);

/// What an engine is to a swarm.
enum Membership {
    Manager(Swarm),
    /// Why not (for the error of [`Swarm::connect`]).
    NotManager(String),
}

/// A connection to a Swarm manager.
#[derive(Clone)]
pub struct Swarm {
    engine: Engine,
    /// The manager's own node id.
    node_id: String,
}

/// What a service runs, for [`Swarm::start_replicated`] and
/// [`Swarm::start_global`].
#[derive(Debug, Clone, Default)]
pub struct ServiceRequest {
    pub run_id: String,
    /// The service is named `twlab-<run id>-<name_suffix>`.
    pub name_suffix: String,
    /// The image reference on the manager (a tag or an id); the service
    /// runs it by id (see the module doc).
    pub image: String,
    /// Arguments to the image's entrypoint (`load --target …` for twlab's
    /// image, wrk's arguments for the wrk image).
    pub args: Vec<String>,
    /// A placement constraint, e.g. `node.labels.twlab.role==client`.
    pub constraint: Option<String>,
    /// More labels for the service and its containers (beside `twlab.run`).
    pub labels: HashMap<String, String>,
    /// Linux capabilities to add, e.g. `CAP_NET_ADMIN`.
    pub cap_add: Vec<String>,
}

/// How a service is scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// N tasks, placed by the scheduler.
    Replicated(u32),
    /// One task per eligible node.
    Global,
}

/// The first 12 characters of an id, as `docker` shows them.
fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// The label filter of `run_id`'s services, or of every run's.
fn run_label(run_id: Option<&str>) -> String {
    match run_id {
        Some(id) => format!("{LABEL_RUN}={id}"),
        None => LABEL_RUN.to_string(),
    }
}

impl Swarm {
    /// The Swarm whose manager is `engine`; an error says what to do when
    /// the engine is not in a swarm, or is a worker.
    pub async fn connect(engine: &Engine) -> Result<Swarm> {
        match Swarm::membership(engine).await? {
            Membership::Manager(swarm) => Ok(swarm),
            Membership::NotManager(why) => Err(Error::env(why)),
        }
    }

    /// The Swarm when `engine` is a manager, `None` when it is not (not in
    /// a swarm, or a worker); an error only when the engine cannot say.
    pub async fn if_manager(engine: &Engine) -> Result<Option<Swarm>> {
        Ok(match Swarm::membership(engine).await? {
            Membership::Manager(swarm) => Some(swarm),
            Membership::NotManager(_) => None,
        })
    }

    async fn membership(engine: &Engine) -> Result<Membership> {
        let info = engine
            .docker
            .info()
            .await
            .map_err(|e| engine.fail("asking the engine whether it is in a Swarm", e))?;
        let swarm = info.swarm.unwrap_or_default();
        let state = swarm.local_node_state.unwrap_or(LocalNodeState::EMPTY);
        if state != LocalNodeState::ACTIVE {
            let shown = if state == LocalNodeState::EMPTY {
                "unknown".to_string()
            } else {
                state.to_string()
            };
            return Ok(Membership::NotManager(format!(
                "the {} is not a Swarm manager (its swarm state is `{shown}`{}): run `docker swarm init` on it \
                 (`--advertise-addr ADDR` on a machine with several addresses), and `docker swarm join` on the client machines",
                engine.describe,
                swarm
                    .error
                    .filter(|e| !e.is_empty())
                    .map(|e| format!(", error: {e}"))
                    .unwrap_or_default()
            )));
        }
        if swarm.control_available != Some(true) {
            let managers = swarm
                .remote_managers
                .unwrap_or_default()
                .into_iter()
                .filter_map(|m| m.addr)
                .collect::<Vec<_>>();
            return Ok(Membership::NotManager(format!(
                "the {} is a Swarm worker, not a manager: point twlab at a manager's engine{}, or promote this node there (`docker node promote`)",
                engine.describe,
                if managers.is_empty() {
                    String::new()
                } else {
                    format!(" (managers: {})", managers.join(", "))
                }
            )));
        }
        Ok(Membership::Manager(Swarm {
            engine: engine.clone(),
            node_id: swarm.node_id.unwrap_or_default(),
        }))
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The manager's own node id.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// Node id → hostname, for every node of the swarm.
    pub async fn hostnames(&self) -> Result<HashMap<String, String>> {
        let nodes = self
            .engine
            .docker
            .list_nodes(None::<ListNodesOptions>)
            .await
            .map_err(|e| self.engine.fail("listing the swarm's nodes", e))?;
        Ok(nodes
            .into_iter()
            .filter_map(|n| Some((n.id?, n.description?.hostname?)))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_labels() {
        assert_eq!(run_label(Some("r1")), "twlab.run=r1");
        assert_eq!(run_label(None), "twlab.run");
    }
}
