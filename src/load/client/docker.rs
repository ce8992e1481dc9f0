//! `client.via: docker`: wrk in a container on the client host's Docker
//! engine, with host networking.
//!
//! Host networking puts wrk in the client host's own network namespace, so
//! its sockets, its TIME_WAIT and its conntrack entries are the host's, as
//! for a wrk run on the host: no bridge, no NAT state of Docker's own. The
//! image's entrypoint must be wrk (docker/wrk/build.sh builds such an
//! image): the container's command is wrk's arguments only, so any wrk
//! image with `ENTRYPOINT ["wrk"]` works.
//!
//! The container is named `twlab-<run id>-client` and labelled
//! [`LABEL_RUN`] and [`LABEL_ROLE`]`=client`, so `twlab clean` finds it after
//! a crash. Its stdout is wrk's report, parsed as for a wrk process; its
//! stderr goes to the run's client log once it has ended. A graceful stop
//! is SIGINT to the container (wrk prints its results on SIGINT; as the
//! container's PID 1 it has a handler for it, unlike SIGTERM), an immediate
//! one SIGKILL. It is removed whatever happens: after it ended, and (from a
//! helper thread) when a [`ClientContainer`] is dropped before that.
//!
//! Its CPU time is read from the engine's stats stream (the container's
//! cgroup), also for an engine on another machine; see
//! [`Engine::cpu_sampler`].

use crate::docker::{ContainerSpec, ContainerStatus, Engine, LABEL_ROLE, LABEL_RUN};
use crate::error::{CommandError, Error, Result, display_argv};
use crate::lab::Host;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The client container's name for a run.
pub fn container_name(run_id: &str) -> String {
    format!("twlab-{run_id}-client")
}

/// How to get a wrk image without a registry, for pull errors.
const IMAGE_HINT: &str = "(docker/wrk/build.sh builds twlab/wrk:4.1 from Debian's wrk package; `docker load -i FILE` loads a saved image), \
     or set client.image to a wrk image the engine has";

/// A wrk container that twlab created and will remove.
pub struct ClientContainer {
    engine: Engine,
    pub name: String,
    pub image: String,
    /// The image's id (`sha256:...`), for env.json.
    pub image_id: String,
    log: PathBuf,
    /// "container NAME (IMAGE): wrk --latency ...", for messages.
    command: String,
    cpu: watch::Receiver<Option<f64>>,
    cpu_task: JoinHandle<()>,
    /// How it ended and its stdout, once it has: kept so that a caller that
    /// cancels [`ClientContainer::wait`] (a `select!` loop) loses nothing.
    ended: Option<(ContainerStatus, Vec<u8>)>,
    removed: bool,
}

/// The image on `engine`, pulled when missing; its id.
async fn resolve_image(engine: &Engine, image: &str) -> Result<String> {
    if let Some(id) = engine.image_id(image).await? {
        return Ok(id);
    }
    engine.pull(image, IMAGE_HINT).await?;
    engine.image_id(image).await?.ok_or_else(|| {
        Error::env(format!(
            "{}: image `{image}` was pulled but the engine does not know it",
            engine.describe
        ))
    })
}

/// Create and start the wrk container: `argv` is wrk's argv (its first
/// element, the program, is the image's entrypoint and is left out).
pub async fn start(
    engine: Option<&Engine>,
    image: &str,
    argv: &[String],
    host: &dyn Host,
    run_id: &str,
    log: &Path,
) -> Result<ClientContainer> {
    let engine = engine.ok_or_else(|| {
        Error::env(format!(
            "client.via: docker needs the Docker engine of the client host ({}): set `docker: true` for that host in the lab file",
            host.describe()
        ))
    })?;
    // The log exists from the start, as for a client process.
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| Error::io(log.display(), e))?;
    let image_id = resolve_image(engine, image).await?;
    let name = container_name(run_id);
    let args: Vec<String> = argv.iter().skip(1).cloned().collect();
    let shown_args = display_argv(&args);
    let spec = ContainerSpec {
        name: name.clone(),
        image: image.to_string(),
        labels: HashMap::from([
            (LABEL_RUN.to_string(), run_id.to_string()),
            (LABEL_ROLE.to_string(), "client".to_string()),
        ]),
        env: Vec::new(),
        cmd: Some(args),
        host_network: true,
    };
    engine.create_container(&spec).await?;
    let command = format!("container {name} ({image}): {}", display_argv(argv));
    if let Err(e) = engine.start_container(&name).await {
        let _ = engine.remove_container(&name).await;
        return Err(Error::env(format!(
            "{e}; the image's entrypoint must be wrk (twlab gives the container wrk's arguments only: {shown_args})"
        )));
    }
    let (cpu, cpu_task) = engine.cpu_sampler(&name);
    Ok(ClientContainer {
        engine: engine.clone(),
        name,
        image: image.to_string(),
        image_id,
        log: log.to_path_buf(),
        command,
        cpu,
        cpu_task,
        ended: None,
        removed: false,
    })
}

impl ClientContainer {
    pub fn command(&self) -> &str {
        &self.command
    }

    /// Send `signal` (`SIGINT`, `SIGKILL`) to wrk. An engine error is
    /// reported on stderr: the run's deadline still ends a client that did
    /// not get it.
    pub async fn signal(&self, signal: &str) {
        if let Err(e) = self.engine.signal_container(&self.name, signal).await {
            errln!("twlab: {e}");
        }
    }

    /// The latest CPU time of the container, `None` before the first sample.
    pub fn cpu_secs(&self) -> Option<f64> {
        *self.cpu.borrow()
    }

    /// Wait for the container to end; how it ended and its stdout. Its
    /// stderr is appended to the client log (once).
    pub async fn wait(&mut self) -> Result<(ContainerStatus, Vec<u8>)> {
        if let Some(ended) = &self.ended {
            return Ok(ended.clone());
        }
        let status = loop {
            match self.engine.container_status(&self.name).await? {
                Some(s) if s.running => tokio::time::sleep(Duration::from_millis(100)).await,
                Some(s) => break s,
                None => {
                    return Err(Error::env(format!(
                        "client container {} ({}) is gone from the {} (removed by someone else?)",
                        self.name, self.image, self.engine.describe
                    )));
                }
            }
        };
        let (stdout, stderr) = self.engine.output(&self.name).await?;
        // No await from here on: a cancelled caller cannot write it twice.
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .and_then(|mut f| f.write_all(&stderr));
        self.ended = Some((status.clone(), stdout.clone()));
        self.cpu_task.abort();
        written.map_err(|e| Error::io(self.log.display(), e))?;
        Ok((status, stdout))
    }

    /// Remove the container (it has ended, or is killed).
    pub async fn remove(&mut self) -> Result<()> {
        self.cpu_task.abort();
        let result = self.engine.remove_container(&self.name).await;
        if result.is_ok() {
            self.removed = true;
        }
        result
    }

    /// The last lines wrk wrote on stderr (in the log once it ended).
    pub fn stderr_tail(&self, lines: usize) -> String {
        crate::process::tail(&self.log, lines)
    }

    /// An error for a container that ended with a nonzero code: the
    /// command, the code (and the engine's reason), wrk's stderr.
    pub fn died(&self, status: &ContainerStatus) -> Error {
        let mut stderr = self.stderr_tail(20);
        if status.error.is_some() || status.oom_killed {
            stderr = format!("{} ({})\n{stderr}", self.name, status.exit_text());
        }
        Error::Command(CommandError {
            command: self.command.clone(),
            status: status.exit_code.and_then(|c| i32::try_from(c).ok()),
            stderr,
        })
    }
}

impl Drop for ClientContainer {
    /// A container that was not removed (an error path, a panic) is
    /// removed from a helper thread (see [`Engine::remove_blocking`]).
    fn drop(&mut self) {
        self.cpu_task.abort();
        if !self.removed {
            self.engine.remove_blocking(&self.name);
        }
    }
}
