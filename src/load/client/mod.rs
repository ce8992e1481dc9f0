//! The load: twlab's own generator or any tool behind the seam in
//! [`tools`], run on the client host.
//!
//! Each runs as a child process on the client host (in its namespace, in
//! its own process group), or in a container on the client host's Docker
//! engine with host networking (`client.via: docker`, [`docker`]) when the
//! tool has an image; each ends in a [`ClientStats`] by its tool's parser,
//! so the report does not care which ran. A graceful stop sends each the
//! signal on which it prints what it measured so far
//! ([`LoadTool::stop_signal`]: SIGTERM for `twlab load`, SIGINT for wrk and
//! most others, also in a container).

pub mod builtin;
pub mod docker;
pub mod group;
pub mod swarm;
pub mod tools;

pub use tools::wrk;
pub use tools::{LoadTool, TOOLS};

use crate::common::counts::ClientStats;
use crate::common::endpoint::Endpoint;
use crate::docker::Engine;
use crate::error::{Error, Result};
use crate::lab::Host;
use crate::process::Supervised;
use crate::scenario::{ClientSpec, ClientVia};
use nix::sys::signal::Signal;
use std::path::Path;

/// The argv that runs the scenario's client against `endpoint`.
pub fn argv(spec: &ClientSpec, endpoint: Endpoint, exe: &Path) -> Vec<String> {
    spec.tool.get().argv(spec, &tools::Target { endpoint, exe })
}

/// `stdout` of `spec`'s tool as [`ClientStats`]; an error quotes the
/// command, what it printed and its stderr's tail.
pub fn parse_output(
    spec: &ClientSpec,
    stdout: &str,
    command: &str,
    stderr_tail: &str,
) -> Result<ClientStats> {
    spec.tool.get().parse(stdout, spec).map_err(|e| {
        let shown: String = stdout.chars().take(2000).collect();
        Error::env(format!(
            "cannot read the output of `{command}`: {e}\n--- stdout ---\n{shown}\n--- stderr ---\n{stderr_tail}"
        ))
    })
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
    spec: ClientSpec,
    /// The image id (`sha256:...`) of a client container, for env.json.
    pub image_id: Option<String>,
    /// When it started: the duration of a load that reports no figures.
    started: std::time::Instant,
}

/// What runs the client.
enum Inner {
    /// A program on the client host (`via: host`).
    Process(Supervised),
    /// The tool in a container on the client host's engine (`via: docker`).
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
            spec: spec.clone(),
            image_id,
            started: std::time::Instant::now(),
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

    /// The command line (a container: its name, image and the tool's argv), for messages.
    pub fn command(&self) -> &str {
        match &self.inner {
            Inner::Process(p) => p.command(),
            Inner::Container(c) => c.command(),
        }
    }

    /// The signal on which this client stops early and still reports.
    pub fn stop_signal(&self) -> Signal {
        self.spec.tool.get().stop_signal()
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
                let reported = status
                    .code()
                    .is_some_and(|c| self.spec.tool.get().exit_codes_with_report().contains(&c));
                if !reported {
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
                let reported = status.exit_code.is_some_and(|c| {
                    i32::try_from(c)
                        .is_ok_and(|c| self.spec.tool.get().exit_codes_with_report().contains(&c))
                });
                if !reported {
                    return Err(container.died(&status));
                }
                removed?;
                (
                    String::from_utf8_lossy(&stdout).into_owned(),
                    container.stderr_tail(20),
                )
            }
        };
        let mut stats = parse_output(&self.spec, &text, self.command(), &stderr_tail)?;
        if !self.spec.tool.get().reports_figures(&text) {
            // No figures of its own: how long it ran is twlab's to say.
            stats.duration_secs = tools::text::round_to(self.started.elapsed().as_secs_f64(), 1e3);
        }
        Ok(stats)
    }
}
