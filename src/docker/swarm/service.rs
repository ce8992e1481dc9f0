//! The services twlab starts (replicated for the load, global for the
//! counters), waiting for their tasks to run or complete, and removing
//! them: by [`Service::remove`], or from a helper thread when dropped.

use super::{LABEL_IMAGE, Mode, POLL, REMOVE_WAIT, ServiceRequest, Swarm, TaskInfo};
use crate::docker::{LABEL_ROLE, LABEL_RUN};
use crate::error::{Error, Result};
use bollard::models::{
    NetworkAttachmentConfig, ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated, TaskSpec,
    TaskSpecContainerSpec, TaskSpecPlacement, TaskSpecRestartPolicy,
    TaskSpecRestartPolicyConditionEnum,
};
use bollard::query_parameters::ListServicesOptionsBuilder;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A service twlab created. Dropping it without [`Service::remove`]
/// removes it from a helper thread, as for containers.
pub struct Service {
    pub(super) swarm: Swarm,
    pub(super) id: String,
    pub(super) name: String,
    mode: Mode,
    removed: bool,
}

impl Swarm {
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
}

/// `twlab-<run id>-<suffix>`.
fn service_name(request: &ServiceRequest) -> String {
    format!("twlab-{}-{}", request.run_id, request.name_suffix)
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
                .filter(|t| t.running() || t.completed())
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

    /// Remove the service and wait (up to 30 s) until its tasks are gone.
    pub async fn remove(&mut self) -> Result<()> {
        self.swarm.delete(&self.id, &self.name).await?;
        self.removed = true;
        self.swarm
            .wait_tasks_gone(&self.id, &self.name, REMOVE_WAIT)
            .await
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
