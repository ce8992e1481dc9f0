//! `client.tool: builtin`: twlab's own generator (`twlab load`, in
//! [`crate::load::client::builtin`]) behind the tool seam. It honours every
//! scenario key (it was written for them) and prints its [`ClientStats`] as
//! JSON, so its parser is serde's.

use super::{Key, LoadTool, Target};
use crate::common::counts::ClientStats;
use crate::scenario::{ClientSpec, ClientVia, DEFAULT_TWLAB_IMAGE};
use nix::sys::signal::Signal;

pub struct Builtin;

impl LoadTool for Builtin {
    fn name(&self) -> &'static str {
        "builtin"
    }

    fn describe(&self) -> &'static str {
        "twlab's own generator (`twlab load`)."
    }

    fn program(&self) -> Option<&'static str> {
        None
    }

    fn runs_twlab(&self) -> bool {
        true
    }

    fn install(&self) -> &'static str {
        "part of twlab"
    }

    fn version_argv(&self) -> Option<Vec<String>> {
        None
    }

    fn supports(&self, _key: Key) -> bool {
        true
    }

    fn argv(&self, spec: &ClientSpec, target: &Target<'_>) -> Vec<String> {
        let mut argv = vec![
            target.exe.display().to_string(),
            "load".into(),
            "--target".into(),
            target.endpoint.to_string(),
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

    /// `twlab load` reports on SIGTERM.
    fn stop_signal(&self) -> Signal {
        Signal::SIGTERM
    }

    fn parse(&self, stdout: &str, _spec: &ClientSpec) -> Result<ClientStats, String> {
        serde_json::from_str(stdout.trim()).map_err(|e| {
            format!(
                "no valid result ({e}): {}",
                stdout.chars().take(400).collect::<String>()
            )
        })
    }

    /// On a swarm it runs from twlab's own image; not in a plain container.
    fn image(&self, via: ClientVia) -> Option<&'static str> {
        (via == ClientVia::Swarm).then_some(DEFAULT_TWLAB_IMAGE)
    }
}
