//! What a run left on the swarm, found and removed by its `twlab.run`
//! label: by the run itself on stop, error and Ctrl-C, and by `twlab
//! clean` after a `kill -9`, when nothing in memory knows the services.

use super::{POLL, REMOVE_WAIT, Swarm, TaskInfo, run_label};
use crate::docker::{Engine, LABEL_RUN, is_not_found};
use crate::error::{Error, Result};
use bollard::query_parameters::ListServicesOptionsBuilder;
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

impl Swarm {
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
    pub(super) async fn delete(&self, id: &str, name: &str) -> Result<()> {
        match self.engine.docker.delete_service(id).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(self.engine.fail(&format!("removing service {name}"), e)),
        }
    }

    /// Wait until a removed service has no task left on the manager and no
    /// container left on the manager's own engine. The manager forgets a
    /// removed service's tasks before the nodes' agents have removed their
    /// containers (Docker 20.10 does), and it cannot list another node's
    /// containers: on the other nodes their removal is the agents' (it
    /// follows within a second or so).
    pub(super) async fn wait_tasks_gone(
        &self,
        id: &str,
        name: &str,
        timeout: Duration,
    ) -> Result<()> {
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
