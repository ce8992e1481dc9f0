//! The tasks of a service: their states as the manager reports them, what
//! each printed (its log, read once when it ended) and the lines of a
//! running one's log as they come (the counters' samples).

use super::{LOG_TIMEOUT, Service, Swarm, short};
use crate::docker::is_not_found;
use crate::error::{Error, Result};
use bollard::container::LogOutput;
use bollard::models::TaskState;
use bollard::query_parameters::{ListTasksOptionsBuilder, LogsOptionsBuilder};
use futures::StreamExt;
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};

/// One task of a service, as the manager sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskInfo {
    pub id: String,
    /// The replica's slot (replicated services), 0 for a global one.
    pub slot: i64,
    pub node_id: String,
    /// The node's hostname, when the node is known.
    pub hostname: Option<String>,
    /// `pending`, `running`, `complete`, `failed`, `rejected`, ...; `None`
    /// when the manager does not say.
    pub state: Option<TaskState>,
    /// `running` or `shutdown`.
    pub desired: Option<TaskState>,
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
        let state = self
            .state
            .map_or_else(|| "unknown".to_string(), |s| s.to_string());
        let mut text = format!("task {} on {node}: {state}", short(&self.id));
        match &self.err {
            Some(err) => text.push_str(&format!(" ({err})")),
            None if !self.message.is_empty() => text.push_str(&format!(" ({})", self.message)),
            None => {}
        }
        text
    }

    pub(super) fn running(&self) -> bool {
        self.state == Some(TaskState::RUNNING)
    }

    /// Ended with exit code 0.
    pub(super) fn completed(&self) -> bool {
        self.state == Some(TaskState::COMPLETE)
    }

    /// Ended: it will never run again (restart policy `none`).
    pub(super) fn ended(&self) -> bool {
        matches!(
            self.state,
            Some(
                TaskState::COMPLETE
                    | TaskState::FAILED
                    | TaskState::SHUTDOWN
                    | TaskState::REJECTED
                    | TaskState::ORPHANED
                    | TaskState::REMOVE
            )
        )
    }

    /// Ended otherwise than with exit code 0.
    pub(super) fn failed(&self) -> bool {
        self.ended() && !self.completed()
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

impl Swarm {
    /// The tasks of a service (by id), with their nodes' hostnames.
    pub(super) async fn tasks_of(&self, service_id: &str, what: &str) -> Result<Vec<TaskInfo>> {
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
                    state: status.state,
                    desired: t.desired_state,
                    message: status.message.unwrap_or_default(),
                    err: status.err.filter(|e| !e.is_empty()),
                    exit_code: status.container_status.and_then(|c| c.exit_code),
                }
            })
            .collect();
        infos.sort_by(|a, b| (a.slot, &a.node_id, &a.id).cmp(&(b.slot, &b.node_id, &b.id)));
        Ok(infos)
    }
}

impl Service {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn task(state: TaskState, err: Option<&str>) -> TaskInfo {
        TaskInfo {
            id: "0123456789abcdef".into(),
            slot: 1,
            node_id: "node1".into(),
            hostname: Some("vm".into()),
            state: Some(state),
            desired: Some(TaskState::SHUTDOWN),
            message: "finished".into(),
            err: err.map(String::from),
            exit_code: None,
        }
    }

    #[test]
    fn task_states_classify() {
        assert!(task(TaskState::RUNNING, None).running());
        assert!(!task(TaskState::RUNNING, None).ended());
        assert!(task(TaskState::COMPLETE, None).ended());
        assert!(!task(TaskState::COMPLETE, None).failed());
        assert!(task(TaskState::FAILED, Some("task: non-zero exit (1)")).failed());
        assert!(task(TaskState::REJECTED, Some("No such image")).failed());
        assert!(!task(TaskState::PENDING, None).ended());
        let unknown = TaskInfo {
            state: None,
            ..task(TaskState::PENDING, None)
        };
        assert!(!unknown.ended() && !unknown.running());
        assert!(unknown.describe().ends_with(": unknown (finished)"));
    }

    #[test]
    fn task_description_names_node_state_and_error() {
        assert_eq!(
            task(TaskState::FAILED, Some("task: non-zero exit (1)")).describe(),
            "task 0123456789ab on vm: failed (task: non-zero exit (1))"
        );
        assert_eq!(
            task(TaskState::COMPLETE, None).describe(),
            "task 0123456789ab on vm: complete (finished)"
        );
    }
}
