//! The load: twlab's own generator or wrk, run on the client host.
//!
//! Both run as child processes on the client host (in its namespace, in
//! their own process group), or wrk in a container on the client host's
//! Docker engine with host networking (`client.via: docker`, [`docker`]);
//! each ends in a [`ClientStats`], so the report does not care which ran.
//! A graceful stop sends each the signal on which it prints what it
//! measured so far: SIGTERM for `twlab load`, SIGINT for wrk (also in a
//! container).

pub mod builtin;
pub mod docker;
pub mod group;
pub mod swarm;
pub mod wrk;

use crate::common::counts::ClientStats;
use crate::common::endpoint::Endpoint;
use crate::docker::Engine;
use crate::error::{Error, Result};
use crate::lab::Host;
use crate::process::Supervised;
use crate::scenario::{ClientSpec, ClientTool, ClientVia};
use nix::sys::signal::Signal;
use std::path::Path;

/// The argv that runs the scenario's client against `endpoint`.
pub fn argv(spec: &ClientSpec, endpoint: Endpoint, exe: &Path) -> Vec<String> {
    match spec.tool {
        ClientTool::Builtin => {
            let mut argv = vec![
                exe.display().to_string(),
                "load".into(),
                "--target".into(),
                endpoint.to_string(),
                "--path".into(),
                spec.path.clone(),
                "--connections".into(),
                spec.connections.to_string(),
                "--threads".into(),
                spec.threads.to_string(),
                "--duration".into(),
                spec.duration.to_string(),
                "--timeout".into(),
                spec.timeout.to_string(),
                "--json".into(),
            ];
            if spec.close_after > 0 {
                argv.extend(["--close-after".into(), spec.close_after.to_string()]);
            }
            if spec.linger_zero {
                argv.push("--linger-zero".into());
            }
            if let Some(rate) = spec.rate {
                argv.extend(["--rate".into(), rate.to_string()]);
            }
            if !spec.close_delay.0.is_zero() {
                argv.extend(["--close-delay".into(), spec.close_delay.to_string()]);
            }
            argv
        }
        ClientTool::Wrk => wrk::wrk_argv(
            &format!("http://{}{}", endpoint, spec.path),
            spec.connections.get(),
            spec.threads.get(),
            spec.duration.0,
            spec.timeout.0,
        ),
    }
}

/// What starting a client needs besides its spec, host and endpoint.
pub struct ClientContext<'a> {
    /// twlab's binary on the client host (for `tool: builtin`).
    pub exe: &'a Path,
    /// The client's log file in the run directory (its stderr).
    pub log: &'a Path,
    /// The run id, which labels a client container.
    pub run_id: &'a str,
    /// The client host's Docker engine, when the lab has one.
    pub engine: Option<&'a Engine>,
    /// Where a `client.via: swarm` load's tasks go (the lab file's
    /// `hosts.client.swarm`).
    pub swarm: Option<&'a crate::scenario::labfile::SwarmPlacement>,
}

/// A load client that is running.
pub struct RunningClient {
    inner: Inner,
    tool: ClientTool,
    /// The image id (`sha256:...`) of a client container, for env.json.
    pub image_id: Option<String>,
}

/// What runs the client.
enum Inner {
    /// A program on the client host (`via: host`).
    Process(Supervised),
    /// wrk in a container on the client host's engine (`via: docker`).
    Container(docker::ClientContainer),
}

impl RunningClient {
    /// Start the client on `host`; its stderr goes to `ctx.log`.
    pub async fn start(
        spec: &ClientSpec,
        host: &dyn Host,
        endpoint: Endpoint,
        ctx: &ClientContext<'_>,
    ) -> Result<Self> {
        let argv = argv(spec, endpoint, ctx.exe);
        let (inner, image_id) = match spec.via {
            ClientVia::Host => (Inner::Process(host.spawn(&argv, ctx.log, true)?), None),
            ClientVia::Docker => {
                let c = docker::start(ctx.engine, spec.image(), &argv, host, ctx.run_id, ctx.log)
                    .await?;
                let id = c.image_id.clone();
                (Inner::Container(c), Some(id))
            }
            ClientVia::Swarm => {
                return Err(Error::env(
                    "internal: a Swarm load is started as a group (ClientGroup::start)",
                ));
            }
        };
        Ok(RunningClient {
            inner,
            tool: spec.tool,
            image_id,
        })
    }

    /// The client's process, when it is one (not a container), for the
    /// restore journal.
    pub fn process(&self) -> Option<&Supervised> {
        match &self.inner {
            Inner::Process(p) => Some(p),
            Inner::Container(_) => None,
        }
    }

    /// The command line (a container: its name, image and wrk's argv), for messages.
    pub fn command(&self) -> &str {
        match &self.inner {
            Inner::Process(p) => p.command(),
            Inner::Container(c) => c.command(),
        }
    }

    /// The signal on which this client stops early and still reports.
    pub fn stop_signal(&self) -> Signal {
        match self.tool {
            ClientTool::Builtin => Signal::SIGTERM,
            ClientTool::Wrk => Signal::SIGINT,
        }
    }

    /// Ask the client to stop early and report what it measured.
    pub async fn request_stop(&self) {
        match &self.inner {
            Inner::Process(p) => p.signal(self.stop_signal()),
            Inner::Container(c) => c.signal(self.stop_signal().as_str()).await,
        }
    }

    /// Kill the client at once (SIGKILL).
    pub async fn signal_kill(&self) {
        match &self.inner {
            Inner::Process(p) => p.signal(Signal::SIGKILL),
            Inner::Container(c) => c.signal(Signal::SIGKILL.as_str()).await,
        }
    }

    /// CPU time the client has used so far: a local process's from /proc,
    /// a container's from the engine's stats (its cgroup, about once a
    /// second, also on another machine). `None` for a process on an SSH
    /// host (the local pid is its ssh): the saturation check then has none.
    pub fn cpu_secs(&self) -> Option<f64> {
        match &self.inner {
            Inner::Process(p) => p
                .pid()
                .filter(|_| !p.is_remote())
                .and_then(crate::process::cpu_secs),
            Inner::Container(c) => c.cpu_secs(),
        }
    }

    /// Wait for the client to end and parse what it reported. A container
    /// is removed once it has ended.
    pub async fn finish(&mut self) -> Result<ClientStats> {
        let (text, stderr_tail) = match &mut self.inner {
            Inner::Process(process) => {
                let (status, stdout) = process.wait().await?;
                if !status.success() {
                    return Err(process.died(status));
                }
                (
                    String::from_utf8_lossy(&stdout).into_owned(),
                    process.stderr_tail(20),
                )
            }
            Inner::Container(container) => {
                let ended = container.wait().await;
                let removed = container.remove().await;
                let (status, stdout) = ended?;
                if status.exit_code != Some(0) {
                    return Err(container.died(&status));
                }
                removed?;
                (
                    String::from_utf8_lossy(&stdout).into_owned(),
                    container.stderr_tail(20),
                )
            }
        };
        let command = self.command();
        match self.tool {
            ClientTool::Builtin => serde_json::from_str(&text).map_err(|e| {
                Error::env(format!(
                    "`{command}` printed no valid result ({e}); stderr:\n{stderr_tail}"
                ))
            }),
            ClientTool::Wrk => wrk::parse_wrk_output(&text).map_err(|e| {
                Error::env(format!(
                    "cannot read the output of `{command}`: {e}\n--- stdout ---\n{text}--- stderr ---\n{stderr_tail}"
                ))
            }),
        }
    }
}
