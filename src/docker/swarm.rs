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

use super::{Engine, LABEL_ROLE, LABEL_RUN, is_not_found};
use crate::error::{Error, Result};
use bollard::container::LogOutput;
use bollard::models::{
    LocalNodeState, NetworkAttachmentConfig, ServiceSpec, ServiceSpecMode,
    ServiceSpecModeReplicated, TaskSpec, TaskSpecContainerSpec, TaskSpecPlacement,
    TaskSpecRestartPolicy, TaskSpecRestartPolicyConditionEnum, TaskState,
};
use bollard::query_parameters::{
    ListNodesOptions, ListServicesOptionsBuilder, ListTasksOptionsBuilder, LogsOptionsBuilder,
};
use futures::StreamExt;
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};

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

/// A service twlab created. Dropping it without [`Service::remove`]
/// removes it from a helper thread, as for containers.
pub struct Service {
    swarm: Swarm,
    id: String,
    name: String,
    mode: Mode,
    removed: bool,
}

/// One task of a service, as the manager sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskInfo {
    pub id: String,
    /// The replica's slot (replicated services), 0 for a global one.
    pub slot: i64,
    pub node_id: String,
    /// The node's hostname, when the node is known.
    pub hostname: Option<String>,
    /// `pending`, `running`, `complete`, `failed`, `rejected`, ...
    pub state: String,
    /// `running` or `shutdown`.
    pub desired: String,
    /// The manager's message ("started", "no suitable node ...").
    pub message: String,
    /// The task's error ("task: non-zero exit (1)", "No such image ...").
    pub err: Option<String>,
    pub exit_code: Option<i64>,
}

impl TaskInfo {
    /// "task abc on vm: failed (task: non-zero exit (1))".
    pub fn describe(&self) -> String {
        let node = self
            .hostname
            .as_deref()
            .unwrap_or(if self.node_id.is_empty() {
                "no node"
            } else {
                &self.node_id
            });
        let mut text = format!("task {} on {node}: {}", short(&self.id), self.state);
        match &self.err {
            Some(err) => text.push_str(&format!(" ({err})")),
            None if !self.message.is_empty() => text.push_str(&format!(" ({})", self.message)),
            None => {}
        }
        text
    }

    fn running(&self) -> bool {
        self.state == "running"
    }

    /// Ended: it will never run again (restart policy `none`).
    fn ended(&self) -> bool {
        matches!(
            self.state.as_str(),
            "complete" | "failed" | "shutdown" | "rejected" | "orphaned" | "remove"
        )
    }

    /// Ended otherwise than with exit code 0.
    fn failed(&self) -> bool {
        self.ended() && self.state != "complete"
    }
}

/// What one task printed.
#[derive(Debug, Clone)]
pub struct TaskOutput {
    pub task: TaskInfo,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// One line a task printed, from a followed log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLine {
    pub node_id: String,
    pub hostname: Option<String>,
    pub task_id: String,
    /// From stderr (else stdout).
    pub stderr: bool,
    /// The line, without its newline.
    pub line: String,
}

/// The first 12 characters of an id, as `docker` shows them.
fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

fn task_state(state: Option<&TaskState>) -> String {
    state.map_or_else(|| "unknown".to_string(), |s| s.to_string())
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

    /// Start `replicas` tasks of `request` (restart policy `none`, host
    /// networking); at most `per_node` of them on one node when given (1:
    /// one load per client machine; unset on a single-node swarm).
    pub async fn start_replicated(
        &self,
        request: &ServiceRequest,
        replicas: u32,
        per_node: Option<u32>,
    ) -> Result<Service> {
        if replicas == 0 {
            return Err(Error::invalid(format!(
                "service {}: at least one replica is needed",
                service_name(request)
            )));
        }
        self.create(request, Mode::Replicated(replicas), per_node)
            .await
    }

    /// Start one task of `request` on every node its constraint selects
    /// (host networking; e.g. `twlab states … --watch --json` with
    /// `CAP_NET_ADMIN`).
    pub async fn start_global(&self, request: &ServiceRequest) -> Result<Service> {
        self.create(request, Mode::Global, None).await
    }

    async fn create(
        &self,
        request: &ServiceRequest,
        mode: Mode,
        per_node: Option<u32>,
    ) -> Result<Service> {
        let name = service_name(request);
        let image_id = self.engine.image_id(&request.image).await?.ok_or_else(|| {
            Error::env(format!(
                "{}: no image `{}` on the Swarm manager: build it there (docker/twlab/build.sh for twlab's image) \
                 and carry it to every node (docker save {0} | ssh NODE docker load); Swarm services run it by id, without a registry",
                self.engine.describe, request.image
            ))
        })?;
        let mut labels = request.labels.clone();
        labels.insert(LABEL_RUN.to_string(), request.run_id.clone());
        labels.insert(LABEL_IMAGE.to_string(), request.image.clone());
        labels
            .entry(LABEL_ROLE.to_string())
            .or_insert_with(|| request.name_suffix.clone());
        let spec = ServiceSpec {
            name: Some(name.clone()),
            labels: Some(labels.clone()),
            mode: Some(match mode {
                Mode::Replicated(n) => ServiceSpecMode {
                    replicated: Some(ServiceSpecModeReplicated {
                        replicas: Some(i64::from(n)),
                    }),
                    ..Default::default()
                },
                Mode::Global => ServiceSpecMode {
                    global: Some(HashMap::new()),
                    ..Default::default()
                },
            }),
            task_template: Some(TaskSpec {
                container_spec: Some(TaskSpecContainerSpec {
                    image: Some(image_id.clone()),
                    labels: Some(labels),
                    args: Some(request.args.clone()),
                    capability_add: (!request.cap_add.is_empty()).then(|| request.cap_add.clone()),
                    // An init as PID 1 (the engine's docker-init) passes
                    // signals on: the program does not run as PID 1, whose
                    // signals without a handler are ignored, so removing
                    // the service ends it at once on SIGINT (wrk, `twlab
                    // load`, `twlab states`) instead of SIGKILL 3 s later.
                    // Removal deletes the containers and their logs: a
                    // load's result is read after it ended by itself
                    // (its duration), not after a stop.
                    init: Some(true),
                    stop_signal: Some("SIGINT".to_string()),
                    stop_grace_period: Some(3_000_000_000),
                    ..Default::default()
                }),
                restart_policy: Some(TaskSpecRestartPolicy {
                    condition: Some(TaskSpecRestartPolicyConditionEnum::NONE),
                    max_attempts: Some(0),
                    ..Default::default()
                }),
                placement: Some(TaskSpecPlacement {
                    constraints: request.constraint.clone().map(|c| vec![c]),
                    max_replicas: per_node.map(i64::from),
                    ..Default::default()
                }),
                networks: Some(vec![NetworkAttachmentConfig {
                    target: Some("host".to_string()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let created = self
            .engine
            .docker
            .create_service(spec, None)
            .await
            .map_err(|e| {
                self.engine.fail(
                    &format!(
                        "creating service {name} ({}, image {image_id}, {})",
                        request.image,
                        match mode {
                            Mode::Replicated(n) => format!("{n} replica(s)"),
                            Mode::Global => "global".to_string(),
                        }
                    ),
                    e,
                )
            })?;
        let id = created.id.ok_or_else(|| {
            Error::env(format!(
                "{}: creating service {name}: the engine returned no id",
                self.engine.describe
            ))
        })?;
        Ok(Service {
            swarm: self.clone(),
            id,
            name,
            mode,
            removed: false,
        })
    }

    /// The services labelled `twlab.run` (of `run_id`, or of any run):
    /// (id, name, run id).
    pub async fn labelled_services(
        &self,
        run_id: Option<&str>,
    ) -> Result<Vec<(String, String, String)>> {
        let label = run_label(run_id);
        let filters = HashMap::from([("label".to_string(), vec![label.clone()])]);
        let options = ListServicesOptionsBuilder::new().filters(&filters).build();
        let services = self
            .engine
            .docker
            .list_services(Some(options))
            .await
            .map_err(|e| {
                self.engine
                    .fail(&format!("listing services labelled {label}"), e)
            })?;
        Ok(services
            .into_iter()
            .filter_map(|s| {
                let spec = s.spec?;
                let run = spec.labels.as_ref()?.get(LABEL_RUN)?.clone();
                Some((s.id?, spec.name.unwrap_or_default(), run))
            })
            .collect())
    }

    /// The run ids of the labelled services (each once), so `twlab clean`
    /// can leave those of live runs alone.
    pub async fn labelled_runs(&self) -> Result<Vec<String>> {
        let runs: BTreeSet<String> = self
            .labelled_services(None)
            .await?
            .into_iter()
            .map(|(_, _, run)| run)
            .collect();
        Ok(runs.into_iter().collect())
    }

    /// Remove every service labelled `twlab.run` (of `run_id`, or of any
    /// run) and wait (up to 30 s) until the manager has no task of them
    /// and its engine no container (see `wait_tasks_gone`); the names
    /// removed. Tries them all, then
    /// reports the ones that could not be removed or did not go.
    pub async fn remove_labelled(&self, run_id: Option<&str>) -> Result<Vec<String>> {
        let label = run_label(run_id);
        let mut removed = Vec::new();
        let mut failed = Vec::new();
        for (id, name, _) in self.labelled_services(run_id).await? {
            match self.delete(&id, &name).await {
                Ok(()) => removed.push((id, name)),
                Err(e) => failed.push(e.to_string()),
            }
        }
        for (id, name) in &removed {
            if let Err(e) = self.wait_tasks_gone(id, name, REMOVE_WAIT).await {
                failed.push(e.to_string());
            }
        }
        if failed.is_empty() {
            Ok(removed.into_iter().map(|(_, name)| name).collect())
        } else {
            Err(Error::env(format!(
                "removed {} service(s) labelled {label}, but not all:\n{}",
                removed.len(),
                failed.join("\n")
            )))
        }
    }

    /// Delete one service; one already gone is fine.
    async fn delete(&self, id: &str, name: &str) -> Result<()> {
        match self.engine.docker.delete_service(id).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(self.engine.fail(&format!("removing service {name}"), e)),
        }
    }

    /// The tasks of a service (by id), with their nodes' hostnames.
    async fn tasks_of(&self, service_id: &str, what: &str) -> Result<Vec<TaskInfo>> {
        let filters = HashMap::from([("service".to_string(), vec![service_id.to_string()])]);
        let options = ListTasksOptionsBuilder::new().filters(&filters).build();
        let tasks = match self.engine.docker.list_tasks(Some(options)).await {
            Ok(t) => t,
            Err(e) if is_not_found(&e) => Vec::new(),
            Err(e) => return Err(self.engine.fail(&format!("listing the tasks of {what}"), e)),
        };
        let hostnames = if tasks.is_empty() {
            HashMap::new()
        } else {
            self.hostnames().await?
        };
        let mut infos: Vec<TaskInfo> = tasks
            .into_iter()
            .filter(|t| t.service_id.as_deref() == Some(service_id))
            .map(|t| {
                let status = t.status.unwrap_or_default();
                let node_id = t.node_id.unwrap_or_default();
                TaskInfo {
                    id: t.id.unwrap_or_default(),
                    slot: t.slot.unwrap_or(0),
                    hostname: hostnames.get(&node_id).cloned(),
                    node_id,
                    state: task_state(status.state.as_ref()),
                    desired: task_state(t.desired_state.as_ref()),
                    message: status.message.unwrap_or_default(),
                    err: status.err.filter(|e| !e.is_empty()),
                    exit_code: status.container_status.and_then(|c| c.exit_code),
                }
            })
            .collect();
        infos.sort_by(|a, b| (a.slot, &a.node_id, &a.id).cmp(&(b.slot, &b.node_id, &b.id)));
        Ok(infos)
    }

    /// Wait until a removed service has no task left on the manager and no
    /// container left on the manager's own engine. The manager forgets a
    /// removed service's tasks before the nodes' agents have removed their
    /// containers (Docker 20.10 does), and it cannot list another node's
    /// containers: on the other nodes their removal is the agents' (it
    /// follows within a second or so).
    async fn wait_tasks_gone(&self, id: &str, name: &str, timeout: Duration) -> Result<()> {
        let started = Instant::now();
        let label = format!("com.docker.swarm.service.id={id}");
        loop {
            let tasks = self.tasks_of(id, &format!("service {name}")).await?;
            let containers = if tasks.is_empty() {
                self.engine.list_labelled(&label).await?
            } else {
                Vec::new()
            };
            if tasks.is_empty() && containers.is_empty() {
                return Ok(());
            }
            if started.elapsed() >= timeout {
                let left = if tasks.is_empty() {
                    format!(
                        "{} of its container(s) are still on the {}",
                        containers.len(),
                        self.engine.describe
                    )
                } else {
                    format!(
                        "{} of its task(s) are still there: {}",
                        tasks.len(),
                        tasks
                            .iter()
                            .map(TaskInfo::describe)
                            .collect::<Vec<_>>()
                            .join("; ")
                    )
                };
                return Err(Error::env(format!(
                    "{}: service {name} is removed but after {}s {left}",
                    self.engine.describe,
                    timeout.as_secs(),
                )));
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// `twlab-<run id>-<suffix>`.
fn service_name(request: &ServiceRequest) -> String {
    format!("twlab-{}-{}", request.run_id, request.name_suffix)
}

/// Every labelled service of `engine`'s swarm (of `run_id`, or all) removed,
/// for `twlab clean` and a run's cleanup: an engine that is not a Swarm
/// manager has none, which is not an error.
pub async fn remove_labelled_services(
    engine: &Engine,
    run_id: Option<&str>,
) -> Result<Vec<String>> {
    match Swarm::if_manager(engine).await? {
        Some(swarm) => swarm.remove_labelled(run_id).await,
        None => Ok(Vec::new()),
    }
}

impl Service {
    pub fn id(&self) -> &str {
        &self.id
    }

    /// `twlab-<run id>-<suffix>`.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Its tasks now, ordered by slot and node.
    pub async fn tasks(&self) -> Result<Vec<TaskInfo>> {
        self.swarm
            .tasks_of(&self.id, &format!("service {}", self.name))
            .await
    }

    /// How many tasks the service should have: its replicas, or for a global
    /// service the number of eligible nodes (the manager's count).
    async fn desired_tasks(&self) -> Result<u64> {
        if let Mode::Replicated(n) = self.mode {
            return Ok(u64::from(n));
        }
        let filters = HashMap::from([("id".to_string(), vec![self.id.clone()])]);
        let options = ListServicesOptionsBuilder::new()
            .filters(&filters)
            .status(true)
            .build();
        let services = self
            .swarm
            .engine
            .docker
            .list_services(Some(options))
            .await
            .map_err(|e| {
                self.swarm
                    .engine
                    .fail(&format!("asking the status of service {}", self.name), e)
            })?;
        Ok(services
            .into_iter()
            .find(|s| s.id.as_deref() == Some(self.id.as_str()))
            .and_then(|s| s.service_status?.desired_tasks)
            .unwrap_or(0))
    }

    /// Wait until every task runs (or, for a load, has already completed);
    /// the tasks. Fails at once when a task failed or was rejected, and at
    /// `timeout` otherwise, with each task's state and error.
    pub async fn wait_running(&self, timeout: Duration) -> Result<Vec<TaskInfo>> {
        let started = Instant::now();
        loop {
            let desired = self.desired_tasks().await?;
            let tasks = self.tasks().await?;
            if tasks.iter().any(TaskInfo::failed) {
                return Err(self.tasks_error("a task did not start", &tasks));
            }
            let up = tasks
                .iter()
                .filter(|t| t.running() || t.state == "complete")
                .count() as u64;
            if desired > 0 && up >= desired {
                return Ok(tasks);
            }
            if started.elapsed() >= timeout {
                let why = if desired == 0 {
                    "no node matches the placement (no task to run)".to_string()
                } else {
                    format!(
                        "{up} of {desired} task(s) running after {:.0?}",
                        started.elapsed()
                    )
                };
                return Err(self.tasks_error(&why, &tasks));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Wait until every task has ended (restart policy `none`: they do not
    /// come back); the tasks, which may have failed (see
    /// [`TaskInfo::exit_code`] and `err`). Fails at `timeout`.
    pub async fn wait_complete(&self, timeout: Duration) -> Result<Vec<TaskInfo>> {
        let started = Instant::now();
        loop {
            let desired = self.desired_tasks().await?;
            let tasks = self.tasks().await?;
            let ended = tasks.iter().filter(|t| t.ended()).count() as u64;
            if !tasks.is_empty() && ended == tasks.len() as u64 && ended >= desired {
                return Ok(tasks);
            }
            if started.elapsed() >= timeout {
                return Err(self.tasks_error(
                    &format!(
                        "{ended} of {} task(s) ended after {:.0?}",
                        tasks.len().max(desired as usize),
                        started.elapsed()
                    ),
                    &tasks,
                ));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    fn tasks_error(&self, why: &str, tasks: &[TaskInfo]) -> Error {
        let listed = if tasks.is_empty() {
            "no task yet".to_string()
        } else {
            tasks
                .iter()
                .map(TaskInfo::describe)
                .collect::<Vec<_>>()
                .join("; ")
        };
        Error::env(format!(
            "{}: service {}: {why}: {listed}",
            self.swarm.engine.describe, self.name
        ))
    }

    /// What every task printed so far, stdout and stderr apart (from the
    /// task logs, which the agent of each task's node serves).
    pub async fn task_outputs(&self) -> Result<Vec<TaskOutput>> {
        let mut outputs = Vec::new();
        for task in self.tasks().await? {
            let (stdout, stderr) = self.task_log(&task.id).await?;
            outputs.push(TaskOutput {
                task,
                stdout,
                stderr,
            });
        }
        Ok(outputs)
    }

    async fn task_log(&self, task_id: &str) -> Result<(Vec<u8>, Vec<u8>)> {
        let engine = &self.swarm.engine;
        let options = LogsOptionsBuilder::new()
            .stdout(true)
            .stderr(true)
            .follow(false)
            .build();
        let what = format!("reading the log of task {task_id} of {}", self.name);
        let read = async {
            let mut stream = engine.docker.task_logs(task_id, Some(options));
            let (mut out, mut err) = (Vec::new(), Vec::new());
            while let Some(item) = stream.next().await {
                match item.map_err(|e| engine.fail(&what, e))? {
                    LogOutput::StdErr { message } => err.extend_from_slice(&message),
                    other => out.extend_from_slice(other.as_ref()),
                }
            }
            Ok::<_, Error>((out, err))
        };
        tokio::time::timeout(LOG_TIMEOUT, read).await.map_err(|_| {
            Error::env(format!(
                "{}: {what}: no end within {}s (is the task's node reachable?)",
                engine.describe,
                LOG_TIMEOUT.as_secs()
            ))
        })?
    }

    /// Follow the logs of every task, present and to come (a global service
    /// gets a task on each node that joins), line by line. The receiver
    /// ends when the service's tasks have ended and their logs are read;
    /// an engine error is sent as an `Err` and ends it too. Abort the
    /// handle to stop following.
    pub fn follow_lines(&self) -> (mpsc::Receiver<Result<NodeLine>>, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(1024);
        let swarm = self.swarm.clone();
        let (id, name) = (self.id.clone(), self.name.clone());
        let handle = tokio::spawn(async move {
            // Dropped with this task (aborted or ended): the followers go too.
            let mut followers = JoinSet::new();
            let mut followed: BTreeSet<String> = BTreeSet::new();
            loop {
                let tasks = match swarm.tasks_of(&id, &format!("service {name}")).await {
                    Ok(t) => t,
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        break;
                    }
                };
                for task in &tasks {
                    if task.node_id.is_empty() || !followed.insert(task.id.clone()) {
                        continue;
                    }
                    followers.spawn(follow_task(swarm.clone(), task.clone(), tx.clone()));
                }
                while followers.try_join_next().is_some() {}
                if tx.is_closed() {
                    break;
                }
                let all_ended = !tasks.is_empty() && tasks.iter().all(TaskInfo::ended);
                if all_ended && followers.is_empty() {
                    break;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        (rx, handle)
    }

    /// Remove the service and wait (up to 30 s) until its tasks are gone.
    pub async fn remove(&mut self) -> Result<()> {
        self.swarm.delete(&self.id, &self.name).await?;
        self.removed = true;
        self.swarm
            .wait_tasks_gone(&self.id, &self.name, REMOVE_WAIT)
            .await
    }
}

/// Send one task's followed log, line by line, until it ends.
async fn follow_task(swarm: Swarm, task: TaskInfo, tx: mpsc::Sender<Result<NodeLine>>) {
    let options = LogsOptionsBuilder::new()
        .stdout(true)
        .stderr(true)
        .follow(true)
        .build();
    let mut stream = swarm.engine.docker.task_logs(&task.id, Some(options));
    // A frame is normally one line; keep a partial one until its newline.
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let line = |bytes: &[u8], stderr: bool| NodeLine {
        node_id: task.node_id.clone(),
        hostname: task.hostname.clone(),
        task_id: task.id.clone(),
        stderr,
        line: String::from_utf8_lossy(bytes)
            .trim_end_matches('\r')
            .to_string(),
    };
    while let Some(item) = stream.next().await {
        let (buf, stderr) = match item {
            Ok(LogOutput::StdErr { message }) => {
                err.extend_from_slice(&message);
                (&mut err, true)
            }
            Ok(other) => {
                out.extend_from_slice(other.as_ref());
                (&mut out, false)
            }
            Err(e) => {
                let _ = tx
                    .send(Err(swarm
                        .engine
                        .fail(&format!("following the log of task {}", task.id), e)))
                    .await;
                return;
            }
        };
        while let Some(i) = buf.iter().position(|b| *b == b'\n') {
            let rest = buf.split_off(i + 1);
            let sent = tx.send(Ok(line(&buf[..i], stderr))).await;
            *buf = rest;
            if sent.is_err() {
                return;
            }
        }
    }
    for (buf, stderr) in [(out, false), (err, true)] {
        if !buf.is_empty() {
            let _ = tx.send(Ok(line(&buf, stderr))).await;
        }
    }
}

impl Drop for Service {
    /// A service that was not removed (an error path, a panic) is removed
    /// from a helper thread with a runtime of its own, as
    /// [`Engine::remove_blocking`] does for containers.
    fn drop(&mut self) {
        if self.removed {
            return;
        }
        let swarm = self.swarm.clone();
        let (id, name) = (self.id.clone(), self.name.clone());
        let helper = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if swarm.delete(&id, &name).await.is_ok() {
                    let _ = swarm.wait_tasks_gone(&id, &name, REMOVE_WAIT).await;
                }
            });
        });
        let _ = helper.join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(state: &str, err: Option<&str>) -> TaskInfo {
        TaskInfo {
            id: "0123456789abcdef".into(),
            slot: 1,
            node_id: "node1".into(),
            hostname: Some("vm".into()),
            state: state.into(),
            desired: "shutdown".into(),
            message: "finished".into(),
            err: err.map(String::from),
            exit_code: None,
        }
    }

    #[test]
    fn task_states_classify() {
        assert!(task("running", None).running());
        assert!(!task("running", None).ended());
        assert!(task("complete", None).ended());
        assert!(!task("complete", None).failed());
        assert!(task("failed", Some("task: non-zero exit (1)")).failed());
        assert!(task("rejected", Some("No such image")).failed());
        assert!(!task("pending", None).ended());
    }

    #[test]
    fn task_description_names_node_state_and_error() {
        assert_eq!(
            task("failed", Some("task: non-zero exit (1)")).describe(),
            "task 0123456789ab on vm: failed (task: non-zero exit (1))"
        );
        assert_eq!(
            task("complete", None).describe(),
            "task 0123456789ab on vm: complete (finished)"
        );
    }

    #[test]
    fn run_labels() {
        assert_eq!(run_label(Some("r1")), "twlab.run=r1");
        assert_eq!(run_label(None), "twlab.run");
    }
}
