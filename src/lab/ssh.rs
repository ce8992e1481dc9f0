//! STUB (being written): a real host reached over SSH.
use super::Host;
use crate::endpoint::{Endpoint, Side};
use crate::error::{Error, Result};
use crate::labfile::HostSpec;
use crate::stats::Counts;
use async_trait::async_trait;
use std::path::Path;
use tokio::process::Command;

/// A host reached over one multiplexed SSH connection.
pub struct SshHost {
    side: Side,
    destination: String,
}

impl SshHost {
    /// Connect (BatchMode, strict host key check) with a control socket in `control_dir`.
    pub async fn connect(spec: &HostSpec, side: Side, _control_dir: &Path) -> Result<SshHost> {
        let destination = spec.ssh.as_ref().map(|d| d.0.clone()).unwrap_or_default();
        Err(Error::env(format!(
            "ssh host {destination} ({side}): not implemented yet"
        )))
    }

    /// Forward the host's Docker socket to the local unix socket `local`.
    pub async fn forward_docker_socket(&self, _local: &Path) -> Result<()> {
        Err(Error::env("not implemented yet"))
    }

    /// Close the SSH connection.
    pub async fn close(self) {}
}

#[async_trait]
impl Host for SshHost {
    fn side(&self) -> Side {
        self.side
    }
    fn describe(&self) -> String {
        format!("ssh {}", self.destination)
    }
    fn command(&self, argv: &[String]) -> (Command, Vec<String>) {
        let mut cmd = Command::new("false");
        cmd.args(argv);
        (cmd, argv.to_vec())
    }
    async fn socket_counts(&self, _endpoint: Endpoint) -> Result<Counts> {
        Err(Error::env("not implemented yet"))
    }
}
