//! A Docker engine, through bollard: images, labelled containers, logs.
//!
//! `server.kind: docker` runs the server as a container on the server
//! host's engine, `client.via: docker` runs wrk as one on the client host's.
//! Three choices shape this module:
//!
//! * **Labels, like containerlab.** Every container twlab creates carries
//!   [`LABEL_RUN`]`=<run id>` (and [`LABEL_ROLE`]), and its name starts with
//!   `twlab-<run id>-`. After a `kill -9` of twlab nothing in memory knows
//!   about the container any more; the label is what lets `twlab clean`
//!   ([`Engine::remove_labelled`]) find and remove it, without touching any
//!   container twlab did not create.
//! * **Version negotiation.** bollard speaks a newer API version than many
//!   installed engines (Debian's Docker 20.10 speaks API 1.41) and an engine
//!   refuses requests for a version above its own. Every [`Engine`] asks the
//!   engine for its version first and downgrades to it.
//! * **No bollard ssh transport.** bollard can reach a remote engine over
//!   `ssh://`, but its transport builds an openssh session with
//!   `KnownHosts::Add`, i.e. it accepts an unknown host key silently, and it
//!   cannot take a port, a known_hosts file or an identity. twlab's SSH hosts
//!   check host keys strictly, so for a remote engine twlab forwards the
//!   engine's unix socket over its own SSH connection and talks to the
//!   forwarded socket with [`Engine::at_socket`]. For the same reason
//!   [`Engine::local`] refuses `DOCKER_HOST=ssh://...`.
//!
//! Past one machine the same engine API runs services on a Swarm: see
//! [`swarm`].

use crate::error::{Error, Result};
use bollard::Docker;
use bollard::container::LogOutput;
use bollard::models::{ContainerCreateBody, ContainerState, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, KillContainerOptionsBuilder,
    ListContainersOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
    StatsOptionsBuilder, StopContainerOptionsBuilder,
};
use futures::StreamExt;
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub mod swarm;

/// The label every container twlab creates carries, with the run id as value.
pub const LABEL_RUN: &str = "twlab.run";

/// The label naming what a container is for in the run (`server`, `client`).
pub const LABEL_ROLE: &str = "twlab.role";

/// The engine's socket when `DOCKER_HOST` is not set.
pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

/// bollard's read/write timeout per request, in seconds. It bounds the wait
/// for a response's headers only, not a followed log stream.
const REQUEST_TIMEOUT_SECS: u64 = 120;

/// How long connecting (version negotiation and ping) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// A connection to one Docker engine (this machine's, or a remote one whose
/// socket is forwarded over SSH).
#[derive(Clone)]
pub struct Engine {
    pub docker: bollard::Docker,
    /// "local engine" or "engine of ssh admin@host", for messages.
    pub describe: String,
}

/// What a container is made of (the subset twlab uses).
#[derive(Debug, Clone, Default)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    pub labels: HashMap<String, String>,
    /// `NAME=value` entries.
    pub env: Vec<String>,
    /// Replaces the image's CMD when set.
    pub cmd: Option<Vec<String>>,
    /// `--network=host`: the container shares the host's network namespace.
    pub host_network: bool,
}

/// Where a container is in its life, from an inspect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerStatus {
    pub running: bool,
    /// `created`, `running`, `exited`, ...
    pub status: String,
    pub exit_code: Option<i64>,
    /// The engine's error, e.g. when the command could not be executed.
    pub error: Option<String>,
    pub oom_killed: bool,
}

impl ContainerStatus {
    fn from_state(state: Option<ContainerState>) -> Self {
        let state = state.unwrap_or_default();
        ContainerStatus {
            running: state.running.unwrap_or(false),
            status: state
                .status
                .map(|s| s.to_string())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "unknown".into()),
            exit_code: state.exit_code,
            error: state.error.filter(|e| !e.is_empty()),
            oom_killed: state.oom_killed.unwrap_or(false),
        }
    }

    /// "exited with code 1", plus the engine's error and OOM kill if any.
    pub fn exit_text(&self) -> String {
        let mut text = match self.exit_code {
            Some(code) if !self.running => format!("{} with code {code}", self.status),
            _ => self.status.clone(),
        };
        if self.oom_killed {
            text.push_str(" (killed: out of memory)");
        }
        if let Some(e) = &self.error {
            text.push_str(&format!(" ({e})"));
        }
        text
    }
}

/// Was this a 404 from the engine ("no such container/image")?
fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// Was this a 409 from the engine (conflict: not running, removal in progress)?
fn is_conflict(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 409,
            ..
        }
    )
}

/// Split an image reference into the `fromImage` and `tag` of a pull. A
/// reference without tag or digest means `:latest`, as for `docker pull`
/// (an empty tag would make the engine pull every tag of the repository).
pub fn pull_reference(image: &str) -> (String, String) {
    if image.contains('@') {
        return (image.to_string(), String::new());
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.rfind(':') {
        Some(i) => {
            let split = image.len() - last.len() + i;
            (image[..split].to_string(), image[split + 1..].to_string())
        }
        None => (image.to_string(), "latest".to_string()),
    }
}

impl Engine {
    /// This machine's engine: `DOCKER_HOST` when set (see
    /// [`Engine::at_host`]), else [`DEFAULT_SOCKET`]; version negotiated
    /// and pinged.
    pub async fn local() -> Result<Engine> {
        match std::env::var("DOCKER_HOST") {
            Ok(host) if !host.trim().is_empty() => Engine::at_host(&host).await,
            _ => Engine::at_socket(Path::new(DEFAULT_SOCKET), "local engine".into()).await,
        }
    }

    /// The engine at a `DOCKER_HOST`-style address: `unix:///path` or
    /// `tcp://host:port`. `ssh://` is refused (see the module doc), with
    /// the two ways twlab does reach a remote engine.
    pub async fn at_host(host: &str) -> Result<Engine> {
        if let Some(path) = host.strip_prefix("unix://") {
            return Engine::at_socket(Path::new(path), format!("local engine ({host})")).await;
        }
        if host.starts_with("ssh://") {
            return Err(Error::env(format!(
                "DOCKER_HOST={host}: twlab does not use bollard's ssh transport, which accepts unknown host keys; \
                 declare the machine as an ssh host with `docker: true` in the lab file (twlab forwards the engine's socket over its own host-key-checked SSH connection), \
                 or forward the socket yourself (ssh -L /tmp/docker.sock:/var/run/docker.sock HOST) and set DOCKER_HOST=unix:///tmp/docker.sock"
            )));
        }
        let docker = Docker::connect_with_host(host).map_err(|e| {
            Error::env(format!(
                "DOCKER_HOST={host}: cannot use this engine address: {e}; use unix:///path/to/docker.sock or tcp://HOST:PORT"
            ))
        })?;
        Engine::negotiate(docker, format!("engine at {host}"), host).await
    }

    /// The engine behind a unix socket (e.g. one forwarded over SSH);
    /// `describe` names it in messages ("engine of ssh admin@host").
    pub async fn at_socket(path: &Path, describe: String) -> Result<Engine> {
        let shown = path.display().to_string();
        if !path.exists() {
            return Err(Error::env(format!(
                "{describe}: no Docker engine socket at {shown}; is Docker installed and running? \
                 (apt-get install docker.io; systemctl start docker), or set DOCKER_HOST=unix:///path/to/docker.sock"
            )));
        }
        let docker = Docker::connect_with_unix(
            &shown,
            REQUEST_TIMEOUT_SECS,
            bollard::API_DEFAULT_VERSION,
        )
        .map_err(|e| Error::env(format!("{describe}: cannot use the socket {shown}: {e}")))?;
        Engine::negotiate(docker, describe, &shown).await
    }

    /// Negotiate the API version and ping; an error names `address` and the fix.
    async fn negotiate(docker: Docker, describe: String, address: &str) -> Result<Engine> {
        let unreachable = |e: String| {
            Error::env(format!(
                "{describe}: the Docker engine at {address} is not reachable: {e}; \
                 is the daemon running (systemctl start docker)? twlab needs access to its socket (run as root or in the docker group)"
            ))
        };
        let connect = async {
            let docker = docker
                .negotiate_version()
                .await
                .map_err(|e| unreachable(e.to_string()))?;
            docker
                .ping()
                .await
                .map_err(|e| unreachable(e.to_string()))?;
            Ok::<_, Error>(docker)
        };
        let docker = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| {
                unreachable(format!("no answer within {}s", CONNECT_TIMEOUT.as_secs()))
            })??;
        Ok(Engine { docker, describe })
    }

    /// An engine error as an environment failure naming the engine and what was tried.
    fn fail(&self, what: &str, e: bollard::errors::Error) -> Error {
        Error::env(format!("{}: {what}: {e}", self.describe))
    }

    /// The engine's version and API version, for env.json ("20.10.24 (API 1.41)").
    pub async fn version(&self) -> Result<String> {
        let v = self
            .docker
            .version()
            .await
            .map_err(|e| self.fail("asking the engine's version", e))?;
        let version = v.version.unwrap_or_else(|| "unknown".into());
        Ok(match v.api_version {
            Some(api) => format!("{version} (API {api})"),
            None => version,
        })
    }

    /// The id (`sha256:...`) of `image` on this engine, `None` when it has no such image.
    pub async fn image_id(&self, image: &str) -> Result<Option<String>> {
        match self.docker.inspect_image(image).await {
            Ok(info) => Ok(info.id),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(self.fail(&format!("inspecting image `{image}`"), e)),
        }
    }

    /// Pull `image` from its registry, draining the progress stream; an
    /// error carries the engine's message (e.g. the registry is unreachable)
    /// and `hint`: how to get the image without a registry.
    pub async fn pull(&self, image: &str, hint: &str) -> Result<()> {
        let (from_image, tag) = pull_reference(image);
        let mut options = CreateImageOptionsBuilder::new().from_image(&from_image);
        if !tag.is_empty() {
            options = options.tag(&tag);
        }
        let mut progress = self.docker.create_image(Some(options.build()), None, None);
        while let Some(item) = progress.next().await {
            if let Err(e) = item {
                return Err(Error::env(format!(
                    "{}: pulling image `{image}` failed: {e}; without a reachable registry, build or load the image on this engine {hint}",
                    self.describe
                )));
            }
        }
        Ok(())
    }

    /// Create (not start) a container; its id.
    pub async fn create_container(&self, spec: &ContainerSpec) -> Result<String> {
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            labels: Some(spec.labels.clone()),
            env: (!spec.env.is_empty()).then(|| spec.env.clone()),
            cmd: spec.cmd.clone(),
            attach_stdin: Some(false),
            attach_stdout: Some(false),
            attach_stderr: Some(false),
            tty: Some(false),
            open_stdin: Some(false),
            host_config: Some(HostConfig {
                network_mode: spec.host_network.then(|| "host".to_string()),
                auto_remove: Some(false),
                ..Default::default()
            }),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::new()
            .name(&spec.name)
            .build();
        let created = self
            .docker
            .create_container(Some(options), body)
            .await
            .map_err(|e| {
                self.fail(
                    &format!("creating container {} from `{}`", spec.name, spec.image),
                    e,
                )
            })?;
        Ok(created.id)
    }

    /// Start a created container.
    pub async fn start_container(&self, name: &str) -> Result<()> {
        self.docker
            .start_container(name, None)
            .await
            .map_err(|e| self.fail(&format!("starting container {name}"), e))
    }

    /// The container's state; `None` when there is no such container.
    pub async fn container_status(&self, name: &str) -> Result<Option<ContainerStatus>> {
        match self.docker.inspect_container(name, None).await {
            Ok(info) => Ok(Some(ContainerStatus::from_state(info.state))),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(self.fail(&format!("inspecting container {name}"), e)),
        }
    }

    /// Stop a container: its stop signal (SIGTERM), then SIGKILL after
    /// `grace`. A container that is not running is fine.
    pub async fn stop_container(&self, name: &str, grace: Duration) -> Result<()> {
        let t = i32::try_from(grace.as_secs()).unwrap_or(i32::MAX);
        let options = StopContainerOptionsBuilder::new().t(t).build();
        match self.docker.stop_container(name, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(self.fail(&format!("stopping container {name}"), e)),
        }
    }

    /// SIGKILL a container; one that is not running (or gone) is fine.
    pub async fn kill_container(&self, name: &str) -> Result<()> {
        self.signal_container(name, "SIGKILL").await
    }

    /// Send `signal` (`SIGINT`, `SIGKILL`, ...) to a container's main
    /// process; one that is not running (or gone) is fine.
    pub async fn signal_container(&self, name: &str, signal: &str) -> Result<()> {
        let options = KillContainerOptionsBuilder::new().signal(signal).build();
        match self.docker.kill_container(name, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) || is_conflict(&e) => Ok(()),
            Err(e) => Err(self.fail(&format!("sending {signal} to container {name}"), e)),
        }
    }

    /// Follow the CPU time (seconds, user + system, every process of the
    /// container: its cgroup) a container uses, from the engine's stats
    /// stream: the receiver holds the latest figure, `None` before the
    /// first. The engine samples about once a second, so the figure lags
    /// by up to a second; it keeps the last one seen while the container
    /// ran (an exited container reports zeros). The task ends with the
    /// stream; abort it when done.
    pub fn cpu_sampler(&self, name: &str) -> (watch::Receiver<Option<f64>>, JoinHandle<()>) {
        let (tx, rx) = watch::channel(None);
        let docker = self.docker.clone();
        let name = name.to_string();
        let task = tokio::spawn(async move {
            let options = StatsOptionsBuilder::new().stream(true).build();
            let mut stream = docker.stats(&name, Some(options));
            while let Some(Ok(stats)) = stream.next().await {
                let used = stats
                    .cpu_stats
                    .and_then(|c| c.cpu_usage)
                    .and_then(|u| u.total_usage)
                    .filter(|ns| *ns > 0);
                if let Some(ns) = used {
                    let _ = tx.send(Some(ns as f64 / 1e9));
                }
            }
        });
        (rx, task)
    }

    /// Remove a container, killing it if it runs (`docker rm -f`); one
    /// already gone or being removed is fine.
    pub async fn remove_container(&self, name: &str) -> Result<()> {
        let options = RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(true)
            .build();
        match self.docker.remove_container(name, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) || is_conflict(&e) => Ok(()),
            Err(e) => Err(self.fail(&format!("removing container {name}"), e)),
        }
    }

    /// The container's log (stdout and stderr interleaved), all of it or
    /// the last `tail` lines.
    pub async fn logs(&self, name: &str, tail: Option<usize>) -> Result<Vec<u8>> {
        let tail = tail.map_or_else(|| "all".to_string(), |n| n.to_string());
        let options = LogsOptionsBuilder::new()
            .stdout(true)
            .stderr(true)
            .follow(false)
            .tail(&tail)
            .build();
        let mut stream = self.docker.logs(name, Some(options));
        let mut out = Vec::new();
        while let Some(item) = stream.next().await {
            let chunk = item.map_err(|e| self.fail(&format!("reading the logs of {name}"), e))?;
            out.extend_from_slice(chunk.as_ref());
        }
        Ok(out)
    }

    /// The container's stdout and stderr, all of it, apart.
    pub async fn output(&self, name: &str) -> Result<(Vec<u8>, Vec<u8>)> {
        let options = LogsOptionsBuilder::new()
            .stdout(true)
            .stderr(true)
            .follow(false)
            .build();
        let mut stream = self.docker.logs(name, Some(options));
        let (mut out, mut err) = (Vec::new(), Vec::new());
        while let Some(item) = stream.next().await {
            match item.map_err(|e| self.fail(&format!("reading the logs of {name}"), e))? {
                LogOutput::StdErr { message } => err.extend_from_slice(&message),
                other => out.extend_from_slice(other.as_ref()),
            }
        }
        Ok((out, err))
    }

    /// Remove a container from a helper thread with a runtime of its own,
    /// waiting for it: for `Drop`, which cannot await, and where a task
    /// spawned on the caller's runtime might never run (it may be shutting
    /// down). Errors are ignored.
    pub fn remove_blocking(&self, name: &str) {
        let engine = self.clone();
        let name = name.to_string();
        let helper = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            let _ = rt.block_on(engine.remove_container(&name));
        });
        let _ = helper.join();
    }

    /// The last `lines` log lines of a container as text, for error
    /// messages; "(no output)" when it printed nothing, the reason when the
    /// log cannot be read.
    pub async fn log_tail(&self, name: &str, lines: usize) -> String {
        match self.logs(name, Some(lines)).await {
            Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => "(no output)".into(),
            Ok(bytes) => String::from_utf8_lossy(&bytes).trim_end().to_string(),
            Err(e) => format!("(logs unavailable: {e})"),
        }
    }

    /// The run ids of the containers labelled by twlab, running or not
    /// (each once), so `twlab clean` can leave those of live runs alone.
    pub async fn labelled_runs(&self) -> Result<Vec<String>> {
        let mut runs: Vec<String> = self
            .list_labelled(LABEL_RUN)
            .await?
            .into_iter()
            .filter_map(|c| c.labels?.get(LABEL_RUN).cloned())
            .collect();
        runs.sort();
        runs.dedup();
        Ok(runs)
    }

    /// The containers, running or not, whose labels match `label`
    /// (`KEY` or `KEY=VALUE`).
    async fn list_labelled(&self, label: &str) -> Result<Vec<bollard::models::ContainerSummary>> {
        let filters = HashMap::from([("label".to_string(), vec![label.to_string()])]);
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filters)
            .build();
        self.docker
            .list_containers(Some(options))
            .await
            .map_err(|e| self.fail(&format!("listing containers labelled {label}"), e))
    }

    /// Remove every container labelled by twlab (of `run_id`, or of any
    /// run), running or not (force); their names. Tries them all, then
    /// reports the ones that could not be removed.
    pub async fn remove_labelled(&self, run_id: Option<&str>) -> Result<Vec<String>> {
        let label = match run_id {
            Some(id) => format!("{LABEL_RUN}={id}"),
            None => LABEL_RUN.to_string(),
        };
        let containers = self.list_labelled(&label).await?;
        let mut removed = Vec::new();
        let mut failed = Vec::new();
        for c in containers {
            let Some(id) = c.id else { continue };
            let name = c
                .names
                .as_ref()
                .and_then(|n| n.first())
                .map(|n| n.trim_start_matches('/').to_string())
                .unwrap_or_else(|| id.clone());
            match self.remove_container(&id).await {
                Ok(()) => removed.push(name),
                Err(e) => failed.push(e.to_string()),
            }
        }
        if failed.is_empty() {
            Ok(removed)
        } else {
            Err(Error::env(format!(
                "removed {} container(s) labelled {label}, but not all:\n{}",
                removed.len(),
                failed.join("\n")
            )))
        }
    }
}

#[cfg(test)]
mod tests;
