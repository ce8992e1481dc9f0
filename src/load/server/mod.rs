//! The endpoint under load.
//!
//! A server kind knows how to start on a [`Host`] and how to stop:
//! `builtin` is twlab's own Tomcat-like server, run as `twlab serve` on the
//! server host so it lives in that host's network namespace and process
//! group; `command` is any program given as an argv (nginx, Debian's
//! Tomcat, ...), started and supervised the same way and ready once
//! something listens on the port; `docker` is a container on the server
//! host's Docker engine with host networking ([`docker`]), ready the same
//! way. [`RunningServer`] holds either a supervised process or a container
//! and stops each its own way.

pub mod builtin;
pub mod docker;

use crate::common::endpoint::{Endpoint, Side};
use crate::error::{Error, Result};
use crate::lab::Host;
use crate::process::{GRACE, Supervised};
use crate::scenario::{ServerKind, ServerSpec};
use nix::sys::signal::Signal;
use std::net::{IpAddr, Ipv6Addr};
use std::path::Path;
use std::time::{Duration, Instant};

/// How long a server may take to listen.
pub const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// What starting a server needs besides its spec and host.
pub struct ServerContext<'a> {
    /// twlab's binary on the server host (for `kind: builtin`).
    pub exe: &'a Path,
    /// The server's log file in the run directory.
    pub log: &'a Path,
    /// The run id, which labels whatever is created (containers).
    pub run_id: &'a str,
    /// The server host's Docker engine, when the lab has one.
    pub engine: Option<&'a crate::docker::Engine>,
}

/// A server that is up and listening.
pub struct RunningServer {
    inner: Inner,
    pub description: String,
    /// The image id (`sha256:...`) of a docker server, for env.json.
    pub image_id: Option<String>,
}

/// What runs the server.
enum Inner {
    /// A program on the server host (`builtin`, `command`).
    Process(Supervised),
    /// A container on the server host's engine (`docker`).
    Container(docker::Container),
}

impl RunningServer {
    /// The server's process, when it is one (not a container).
    pub fn process(&self) -> Option<&Supervised> {
        match &self.inner {
            Inner::Process(p) => Some(p),
            Inner::Container(_) => None,
        }
    }

    /// Has the server died? An error with its stderr (a container: its
    /// exit code and last log lines) if so.
    pub async fn check_alive(&mut self) -> Result<()> {
        match &mut self.inner {
            Inner::Process(process) => match process.try_status() {
                Some(status) => Err(process.died(status)),
                None => Ok(()),
            },
            Inner::Container(container) => container.failure("while the load ran").await,
        }
    }

    /// Stop it (SIGTERM, grace, SIGKILL) and reap it; a container's log is
    /// written and the container removed.
    pub async fn stop(self) -> Result<()> {
        match self.inner {
            Inner::Process(mut process) => process.stop(Signal::SIGTERM, GRACE).await.map(|_| ()),
            Inner::Container(container) => container.stop().await,
        }
    }

    /// Kill it at once (a container: and remove it).
    pub async fn kill(self) {
        match self.inner {
            Inner::Process(mut process) => {
                let _ = process.stop(Signal::SIGKILL, Duration::ZERO).await;
            }
            Inner::Container(container) => container.kill().await,
        }
    }
}

/// The argv of the builtin server for a scenario.
pub fn builtin_argv(exe: &Path, spec: &ServerSpec) -> Vec<String> {
    let mut argv = vec![
        exe.display().to_string(),
        "serve".into(),
        "--listen".into(),
        // Dual-stack like Tomcat: IPv4 peers appear as ::ffff: sockets.
        std::net::SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), spec.port.0).to_string(),
        "--max-keepalive-requests".into(),
        spec.max_keepalive_requests.to_string(),
    ];
    if spec.linger_zero {
        argv.push("--linger-zero".into());
    }
    if !spec.close_delay.0.is_zero() {
        argv.extend(["--close-delay".into(), spec.close_delay.to_string()]);
    }
    argv
}

/// Start the server of `spec` on `host` and wait until it listens.
/// Its stderr (a container: its stdout and stderr) goes to `ctx.log`.
pub async fn start(
    spec: &ServerSpec,
    host: &dyn Host,
    ctx: &ServerContext<'_>,
) -> Result<RunningServer> {
    start_noted(spec, host, ctx, &|_| Ok(())).await
}

/// As [`start`], with `noted` called on the server's process as soon as it
/// is spawned, before the wait for it to listen (up to [`READY_TIMEOUT`]):
/// a real host's restore journal then holds it while it starts. An error
/// from `noted` kills the process.
pub async fn start_noted(
    spec: &ServerSpec,
    host: &dyn Host,
    ctx: &ServerContext<'_>,
    noted: &(dyn Fn(&Supervised) -> Result<()> + Sync),
) -> Result<RunningServer> {
    let argv = match spec.kind {
        ServerKind::Builtin => builtin_argv(ctx.exe, spec),
        ServerKind::Command => spec.command.clone(),
        ServerKind::Docker => {
            let (container, image_id, description) = docker::start(spec, host, ctx).await?;
            return Ok(RunningServer {
                inner: Inner::Container(container),
                description,
                image_id: Some(image_id),
            });
        }
    };
    let mut process = host.spawn(&argv, ctx.log, false)?;
    if let Err(e) = noted(&process) {
        let _ = process.stop(Signal::SIGKILL, Duration::ZERO).await;
        return Err(e);
    }
    let listening = Endpoint::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), spec.port.0);
    let started = Instant::now();
    loop {
        if let Some(status) = process.try_status() {
            return Err(process.died(status));
        }
        let counts = host.socket_counts(listening).await?;
        if counts.get("LISTEN").copied().unwrap_or(0) > 0 {
            break;
        }
        if started.elapsed() > READY_TIMEOUT {
            let tail = process.stderr_tail(20);
            let _ = process.stop(Signal::SIGKILL, Duration::ZERO).await;
            return Err(Error::env(format!(
                "server `{}` did not listen on port {} within {}s; its last output:\n{tail}",
                process.command(),
                spec.port.0,
                READY_TIMEOUT.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    debug_assert_eq!(host.side(), Side::Server);
    let description = match spec.kind {
        ServerKind::Builtin => format!(
            "twlab builtin (Tomcat-like, closes after {} requests) on {}",
            spec.max_keepalive_requests,
            host.describe()
        ),
        ServerKind::Command | ServerKind::Docker => {
            format!("`{}` on {}", process.command(), host.describe())
        }
    };
    Ok(RunningServer {
        description,
        inner: Inner::Process(process),
        image_id: None,
    })
}
