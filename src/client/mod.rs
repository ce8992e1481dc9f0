//! The load: twlab's own generator or wrk, run on the client host.
//!
//! Both run as child processes on the client host (in its namespace, in
//! their own process group) and both end in a [`ClientStats`], so the report
//! does not care which ran. A graceful stop sends each the signal on which
//! it prints what it measured so far: SIGTERM for `twlab load`, SIGINT for
//! wrk.

pub mod builtin;
pub mod wrk;

use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use crate::lab::Host;
use crate::process::Supervised;
use crate::scenario::{ClientSpec, ClientTool};
use crate::stats::ClientStats;
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

/// A load client that is running.
pub struct RunningClient {
    pub process: Supervised,
    tool: ClientTool,
}

impl RunningClient {
    /// Start the client on `host`; its stderr goes to `log`.
    pub fn start(
        spec: &ClientSpec,
        host: &dyn Host,
        endpoint: Endpoint,
        exe: &Path,
        log: &Path,
    ) -> Result<Self> {
        Ok(RunningClient {
            process: host.spawn(&argv(spec, endpoint, exe), log, true)?,
            tool: spec.tool,
        })
    }

    /// The signal on which this client stops early and still reports.
    pub fn stop_signal(&self) -> Signal {
        match self.tool {
            ClientTool::Builtin => Signal::SIGTERM,
            ClientTool::Wrk => Signal::SIGINT,
        }
    }

    /// Ask the client to stop early and report what it measured.
    pub fn request_stop(&self) {
        self.process.signal(self.stop_signal());
    }

    /// Wait for the client to end and parse what it reported.
    pub async fn finish(&mut self) -> Result<ClientStats> {
        let (status, stdout) = self.process.wait().await?;
        let text = String::from_utf8_lossy(&stdout);
        if !status.success() {
            return Err(self.process.died(status));
        }
        match self.tool {
            ClientTool::Builtin => serde_json::from_str(&text).map_err(|e| {
                Error::env(format!(
                    "`{}` printed no valid result ({e}); stderr:\n{}",
                    self.process.command(),
                    self.process.stderr_tail(20)
                ))
            }),
            ClientTool::Wrk => wrk::parse_wrk_output(&text).map_err(|e| {
                Error::env(format!(
                    "cannot read the output of `{}`: {e}\n--- stdout ---\n{text}--- stderr ---\n{}",
                    self.process.command(),
                    self.process.stderr_tail(20)
                ))
            }),
        }
    }
}
