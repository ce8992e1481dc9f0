//! A real host that is this machine, in its own network namespace.
//!
//! Commands run directly (through `sudo -n` when the lab file asks for it
//! and twlab is not root), sockets are counted in-process over sock_diag
//! like in the embedded lab, conntrack with the `conntrack` tool. Unlike a
//! lab namespace, this namespace is the machine's own: a sysctl written here
//! changes the machine, so every change goes through the on-disk restore
//! journal first (see [`crate::lab::restore`]).

use super::Host;
use crate::common::counts::Counts;
use crate::common::endpoint::{Endpoint, HostRole, Side};
use crate::error::{Error, Result};
use crate::measure::sockdiag::LazySockDiag;
use async_trait::async_trait;
use tokio::process::Command;

/// This machine as a lab host.
pub struct LocalHost {
    role: HostRole,
    sudo: bool,
    diag: LazySockDiag,
}

impl LocalHost {
    /// `sudo` is honoured only when twlab is not root already.
    pub fn new(role: impl Into<HostRole>, sudo: bool) -> Self {
        LocalHost {
            role: role.into(),
            sudo: sudo && !nix::unistd::geteuid().is_root(),
            diag: LazySockDiag::here(),
        }
    }
}

/// `argv` on this machine, through `sudo -n --` when `sudo`.
fn local_command(sudo: bool, argv: &[String]) -> (Command, Vec<String>) {
    let mut shown: Vec<String> = Vec::new();
    if sudo {
        shown.extend(["sudo".to_string(), "-n".into(), "--".into()]);
    }
    shown.extend(argv.iter().cloned());
    let (program, args) = shown
        .split_first()
        .map_or(("", &[][..]), |(p, a)| (p.as_str(), a));
    let mut cmd = Command::new(program);
    cmd.args(args);
    (cmd, shown)
}

#[async_trait]
impl Host for LocalHost {
    fn side(&self) -> Side {
        self.role.side
    }

    fn role(&self) -> HostRole {
        self.role
    }

    fn describe(&self) -> String {
        crate::scenario::labfile::LOCAL_HOST.into()
    }

    /// An empty `argv` (the scenario checks make it impossible, but the
    /// trait cannot say so) gives a command whose program is the empty
    /// path: spawning it fails with an error naming the command, it does
    /// not panic.
    fn command(&self, argv: &[String]) -> (Command, Vec<String>) {
        local_command(self.sudo, argv)
    }

    fn is_this_machine(&self) -> bool {
        true
    }

    fn sysctl_scope(&self) -> &'static str {
        "this machine's own network namespace (machine-wide for its programs); restored by twlab"
    }

    async fn socket_counts(&self, endpoint: Endpoint) -> Result<Counts> {
        self.diag.count(endpoint, self.role.side).await
    }

    /// In-process: this machine's namespace is twlab's own.
    async fn kernel_counters(&self) -> Result<crate::measure::kernel_counters::KernelCounters> {
        tokio::task::spawn_blocking(crate::measure::kernel_counters::read_here)
            .await
            .map_err(|e| Error::env(format!("kernel counters task: {e}")))?
            .map_err(|e| Error::env(format!("kernel counters of this machine: {e}")))
    }

    async fn peer_addresses(&self, _endpoint: Endpoint) -> Result<Option<u64>> {
        Ok(Some(self.diag.peers_seen()))
    }

    fn reset_peers(&self) {
        self.diag.reset_peers();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_argv_is_an_error_when_spawned_not_a_panic() {
        let (mut cmd, shown) = local_command(false, &[]);
        assert!(shown.is_empty());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let spawned = rt.block_on(async { cmd.spawn().map(|_| ()) });
        assert!(spawned.is_err());
        let (_, shown) = local_command(true, &[]);
        assert_eq!(shown, ["sudo", "-n", "--"]);
        let (_, shown) = local_command(false, &["true".to_string()]);
        assert_eq!(shown, ["true"]);
    }
}
