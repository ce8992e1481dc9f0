//! `server.kind: docker`: the server is a container on the server host's
//! Docker engine, with host networking.
//!
//! Host networking puts the container in the server host's own network
//! namespace: no bridge, no NAT, no docker-proxy, so the sockets twlab counts
//! on the host are the server's own, exactly as for a process. The container
//! is named `twlab-<run id>-server` and labelled [`LABEL_RUN`] and
//! [`LABEL_ROLE`], so `twlab clean` finds it after a crash. It is removed
//! whatever happens: after a stop, a kill, a failed start, and (from a
//! helper thread) when a [`Container`] is dropped without either.
//!
//! Its output is followed into the run's server log while it runs; at the
//! end the whole log is fetched from the engine once more and replaces what
//! was followed, so the file is complete also when the follow stream broke
//! or the container died.

use super::ServerContext;
use crate::common::endpoint::Endpoint;
use crate::docker::{ContainerSpec, Engine, LABEL_ROLE, LABEL_RUN};
use crate::error::{Error, Result};
use crate::lab::Host;
use crate::process::GRACE;
use crate::scenario::{PullPolicy, ServerSpec};
use bollard::query_parameters::LogsOptionsBuilder;
use futures::StreamExt;
use std::collections::HashMap;
use std::io::SeekFrom;
use std::net::{IpAddr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long a container may take to listen: a JVM server such as Tomcat
/// needs a few seconds, more on a loaded machine.
pub const CONTAINER_READY_TIMEOUT: Duration = Duration::from_secs(60);

/// How many log lines an error message shows.
const TAIL_LINES: usize = 20;

/// The container's name for a run.
pub fn container_name(run_id: &str) -> String {
    format!("twlab-{run_id}-server")
}

/// A server container that twlab created and will remove.
pub struct Container {
    engine: Engine,
    pub name: String,
    pub image: String,
    log: PathBuf,
    /// The log file's length before this container wrote to it.
    log_start: u64,
    follower: Option<Follower>,
    removed: bool,
}

/// The background task that follows the container's output into the log.
struct Follower {
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<()>>,
}

/// Make sure `image` is on the engine as `policy` says; its id.
pub async fn resolve_image(engine: &Engine, image: &str, policy: PullPolicy) -> Result<String> {
    let present = match policy {
        PullPolicy::Always => None,
        PullPolicy::Missing | PullPolicy::Never => engine.image_id(image).await?,
    };
    if let Some(id) = present {
        return Ok(id);
    }
    if policy == PullPolicy::Never {
        return Err(Error::env(format!(
            "image `{image}` is not on the {} and server.pull is never: build or load it there first \
             (docker/tomcat/build.sh builds twlab/tomcat:10.1 from Debian packages without a registry; \
             `docker load -i FILE` loads an image saved with `docker save`), or set server.pull: missing",
            engine.describe
        )));
    }
    engine
        .pull(
            image,
            "(docker/tomcat/build.sh builds twlab/tomcat:10.1 from Debian packages; `docker load -i FILE` loads a saved image) \
             and set server.image and server.pull: never",
        )
        .await?;
    engine.image_id(image).await?.ok_or_else(|| {
        Error::env(format!(
            "{}: image `{image}` was pulled but the engine does not know it",
            engine.describe
        ))
    })
}

/// Create and start the server container of `spec` and wait until it
/// listens on the port; the container, its image id and a description.
pub async fn start(
    spec: &ServerSpec,
    host: &dyn Host,
    ctx: &ServerContext<'_>,
) -> Result<(Container, String, String)> {
    let engine = ctx.engine.ok_or_else(|| {
        Error::env(format!(
            "server.kind: docker needs the Docker engine of the server host ({}): set `docker: true` for that host in the lab file",
            host.describe()
        ))
    })?;
    let image = spec.image().to_string();
    let image_id = resolve_image(engine, &image, spec.pull.unwrap_or_default()).await?;

    let listening = Endpoint::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), spec.port.0);
    let before = host.socket_counts(listening).await?;
    if before.get("LISTEN").copied().unwrap_or(0) > 0 {
        return Err(Error::env(format!(
            "port {} already has a listener on {}; the container shares that host's network and could not bind it \
             (find it with `ss -ltnp sport = :{}`)",
            spec.port.0,
            host.describe(),
            spec.port.0
        )));
    }

    let name = container_name(ctx.run_id);
    let container_spec = ContainerSpec {
        name: name.clone(),
        image: image.clone(),
        labels: HashMap::from([
            (LABEL_RUN.to_string(), ctx.run_id.to_string()),
            (LABEL_ROLE.to_string(), "server".to_string()),
        ]),
        env: spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        cmd: (!spec.args.is_empty()).then(|| spec.args.clone()),
        host_network: true,
    };
    let log_start = tokio::fs::metadata(ctx.log).await.map_or(0, |m| m.len());
    engine.create_container(&container_spec).await?;
    let mut container = Container {
        engine: engine.clone(),
        name,
        image,
        log: ctx.log.to_path_buf(),
        log_start,
        follower: None,
        removed: false,
    };
    if let Err(e) = engine.start_container(&container.name).await {
        container.discard().await;
        return Err(e);
    }
    container.follower = Some(follow_logs(engine.clone(), &container.name, ctx.log));

    let started = Instant::now();
    loop {
        match container.failure("before listening").await {
            Ok(()) => {}
            Err(e) => {
                container.discard().await;
                return Err(e);
            }
        }
        let counts = match host.socket_counts(listening).await {
            Ok(c) => c,
            Err(e) => {
                container.discard().await;
                return Err(e);
            }
        };
        if counts.get("LISTEN").copied().unwrap_or(0) > 0 {
            break;
        }
        if started.elapsed() > CONTAINER_READY_TIMEOUT {
            let tail = engine.log_tail(&container.name, TAIL_LINES).await;
            let message = format!(
                "server container {} ({}) did not listen on port {} within {}s; its last log lines:\n{tail}",
                container.name,
                container.image,
                spec.port.0,
                CONTAINER_READY_TIMEOUT.as_secs()
            );
            container.discard().await;
            return Err(Error::env(message));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A JVM server such as Tomcat binds its port a few seconds before it
    // serves; connections made then wait in the backlog and the first
    // seconds of the load measure the server's start. Where twlab can reach
    // the server itself (this machine), it waits for a real answer too.
    if host.is_this_machine() {
        let deadline = started + CONTAINER_READY_TIMEOUT;
        if let Err(why) = answers_http(spec.port.0, deadline).await {
            let tail = engine.log_tail(&container.name, TAIL_LINES).await;
            let message = format!(
                "server container {} ({}) listens on port {} but did not answer HTTP within {}s ({why}); its last log lines:\n{tail}",
                container.name,
                container.image,
                spec.port.0,
                CONTAINER_READY_TIMEOUT.as_secs()
            );
            container.discard().await;
            return Err(Error::env(message));
        }
    }
    let description = format!(
        "container {} ({}, host network) on {}",
        container.name,
        container.image,
        host.describe()
    );
    Ok((container, image_id, description))
}

/// Wait until `GET /` on 127.0.0.1:`port` gets an HTTP status line (any
/// status), trying until `deadline`. The probe closes with RST (SO_LINGER
/// 0), so it leaves no TIME_WAIT to be counted on either side.
async fn answers_http(port: u16, deadline: Instant) -> std::result::Result<(), String> {
    use tokio::io::AsyncReadExt;
    let mut last = String::from("no attempt");
    while Instant::now() < deadline {
        let attempt = async {
            let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .map_err(|e| format!("connect: {e}"))?;
            stream
                .write_all(b"GET / HTTP/1.1\r\nHost: twlab-ready-probe\r\n\r\n")
                .await
                .map_err(|e| format!("write: {e}"))?;
            let mut buf = [0u8; 5];
            stream
                .read_exact(&mut buf)
                .await
                .map_err(|e| format!("read: {e}"))?;
            let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
            if &buf == b"HTTP/" {
                Ok(())
            } else {
                Err("the answer is not HTTP".to_string())
            }
        };
        match tokio::time::timeout(Duration::from_secs(2), attempt).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => last = e,
            Err(_) => last = "no answer within 2 s".into(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(last)
}

/// Follow the container's stdout and stderr into `log` until told to stop
/// or the stream ends (the container stopped).
fn follow_logs(engine: Engine, name: &str, log: &Path) -> Follower {
    let (stop, mut stopped) = oneshot::channel::<()>();
    let name = name.to_string();
    let log = log.to_path_buf();
    let task = tokio::spawn(async move {
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .await
            .map_err(|e| Error::io(log.display(), e))?;
        let options = LogsOptionsBuilder::new()
            .stdout(true)
            .stderr(true)
            .follow(true)
            .build();
        let mut stream = engine.docker.logs(&name, Some(options));
        let result = loop {
            tokio::select! {
                biased;
                _ = &mut stopped => break Ok(()),
                item = stream.next() => match item {
                    None => break Ok(()),
                    Some(Err(e)) => break Err(Error::env(format!("{}: following the logs of {name}: {e}", engine.describe))),
                    Some(Ok(chunk)) => {
                        if let Err(e) = file.write_all(chunk.as_ref()).await {
                            break Err(Error::io(log.display(), e));
                        }
                    }
                },
            }
        };
        // Waits for the write in flight, so nothing lands after the task ends.
        file.flush()
            .await
            .map_err(|e| Error::io(log.display(), e))?;
        result
    });
    Follower { stop, task }
}

impl Container {
    /// `Ok` while the container runs; otherwise an error with how it ended
    /// and its last log lines (`when`: "before listening", "while the load ran").
    pub async fn failure(&self, when: &str) -> Result<()> {
        match self.engine.container_status(&self.name).await? {
            Some(status) if status.running => Ok(()),
            Some(status) => {
                let tail = self.engine.log_tail(&self.name, TAIL_LINES).await;
                Err(Error::env(format!(
                    "server container {} ({}) {} {when}; its last log lines:\n{tail}",
                    self.name,
                    self.image,
                    status.exit_text()
                )))
            }
            None => Err(Error::env(format!(
                "server container {} ({}) is gone from the {} {when} (removed by someone else?)",
                self.name, self.image, self.engine.describe
            ))),
        }
    }

    /// Stop with a grace (SIGTERM, SIGKILL after [`GRACE`]), write the
    /// whole log, remove the container. Removal is tried also when the
    /// stop failed; the first error is returned.
    pub async fn stop(mut self) -> Result<()> {
        let stopped = self.engine.stop_container(&self.name, GRACE).await;
        let logged = self.save_logs().await;
        let removed = self.remove().await;
        stopped.and(logged).and(removed)
    }

    /// Kill at once, write the log, remove; errors are ignored.
    pub async fn kill(mut self) {
        let _ = self.engine.kill_container(&self.name).await;
        let _ = self.save_logs().await;
        let _ = self.remove().await;
    }

    /// Kill and remove after a failed start, keeping the log.
    async fn discard(&mut self) {
        let _ = self.engine.kill_container(&self.name).await;
        let _ = self.save_logs().await;
        let _ = self.remove().await;
    }

    async fn remove(&mut self) -> Result<()> {
        let result = self.engine.remove_container(&self.name).await;
        if result.is_ok() {
            self.removed = true;
        }
        result
    }

    /// End the follower, then replace what it wrote with the whole log from
    /// the engine (the container must still exist). When the engine cannot
    /// give it, what was followed stays.
    async fn save_logs(&mut self) -> Result<()> {
        let followed = match self.follower.take() {
            Some(Follower { stop, mut task }) => {
                let _ = stop.send(());
                match tokio::time::timeout(Duration::from_secs(5), &mut task).await {
                    Ok(Ok(result)) => result,
                    Ok(Err(e)) => Err(Error::env(format!(
                        "the log follower of {}: {e}",
                        self.name
                    ))),
                    Err(_) => {
                        task.abort();
                        let _ = task.await;
                        Err(Error::env(format!(
                            "the log follower of {} did not stop",
                            self.name
                        )))
                    }
                }
            }
            None => Ok(()),
        };
        let all = match self.engine.logs(&self.name, None).await {
            Ok(bytes) => bytes,
            Err(e) => {
                // Keep what was followed; say what is missing.
                let note = format!("twlab: the full log of {} is unavailable: {e}\n", self.name);
                return append(&self.log, note.as_bytes()).await.and(followed);
            }
        };
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(&self.log)
            .await
            .map_err(|e| Error::io(self.log.display(), e))?;
        let io = async {
            file.set_len(self.log_start).await?;
            file.seek(SeekFrom::Start(self.log_start)).await?;
            file.write_all(&all).await?;
            file.flush().await
        };
        io.await.map_err(|e| Error::io(self.log.display(), e))
    }
}

async fn append(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .await
        .map_err(|e| Error::io(path.display(), e))?;
    file.write_all(bytes)
        .await
        .map_err(|e| Error::io(path.display(), e))?;
    file.flush().await.map_err(|e| Error::io(path.display(), e))
}

impl Drop for Container {
    /// A container that was neither stopped nor killed (an error path, a
    /// panic) is removed from a helper thread with a runtime of its own:
    /// Drop cannot await, and a task spawned on the caller's runtime might
    /// never run if that runtime is shutting down.
    fn drop(&mut self) {
        if let Some(f) = self.follower.take() {
            f.task.abort();
        }
        if !self.removed {
            self.engine.remove_blocking(&self.name);
        }
    }
}
