//! Where commands run: the hosts of a lab.
//!
//! One [`Host`] abstraction covers every place a server or client can run:
//! it builds commands, reads and writes sysctls, and counts sockets and
//! conntrack entries for the server endpoint. The embedded lab ([`netns`])
//! is two network namespaces joined by a veth pair; [`local`] is this
//! machine's own namespace and [`ssh`] a real host over one multiplexed SSH
//! connection; [`real`] connects a lab file's hosts. The orchestration in
//! [`crate::run`](mod@crate::run) does not change with the lab: a new host backend is one
//! file here implementing [`Host`], and a case in [`real`] that builds it.
//!
//! Whatever a host changes is journaled first: [`sysctl`] keeps the values
//! before, and on real hosts [`restore`] writes them to disk before the
//! change, so `twlab clean` can undo a run that was killed. [`lock`] keeps
//! two twlab runs off one machine, and [`run_id`] names each run and says
//! which twlab owns it (its owner file).
//!
//! Counting is a narrower role than a host ([`counter`]): the sampler asks
//! only a [`Counter`], which every host is (through [`HostCounter`]) and a
//! Swarm node's counter task or a test fake can be without running anything.
//!
//! Commands are always built from argument vectors, never by pasting user
//! text into a shell line.

pub mod counter;
pub mod local;
pub mod lock;
pub mod netns;
pub mod real;
pub mod restore;
pub mod run_id;
pub mod ssh;
pub mod sysctl;

use crate::common::counts::Counts;
use crate::common::endpoint::{Endpoint, Side};
use crate::error::{Error, Result};
use crate::process::{self, Supervised};
use crate::scenario::SysctlName;
use async_trait::async_trait;
use std::path::{Path, PathBuf};
use tokio::process::Command;

pub use counter::{Counter, HostCounter};

/// Every resource twlab creates carries this prefix, so `twlab clean` can
/// find leftovers of a run that was killed.
pub const LABEL_PREFIX: &str = "twlab-";

/// A machine (or namespace) of the lab.
/// An argv names a program: an empty one (or an empty program name) is
/// refused before anything is spawned.
pub fn require_program(argv: &[String]) -> Result<()> {
    match argv.first() {
        Some(p) if !p.is_empty() => Ok(()),
        _ => Err(crate::error::Error::invalid(
            "nothing to run: the command is empty (a program and its arguments are needed)",
        )),
    }
}

#[async_trait]
pub trait Host: Send + Sync {
    /// Which role this host plays.
    fn side(&self) -> Side;

    /// Which host of the lab: its side and, of several client hosts of a
    /// lab file, which one (the restore journal keys changes by it).
    fn role(&self) -> crate::common::endpoint::HostRole {
        self.side().into()
    }

    /// Human description, for the report ("netns twlab-ab12-server").
    fn describe(&self) -> String;

    /// A command that runs `argv` on this host, and the argv to show in
    /// messages (including any wrapper such as `ip netns exec`).
    fn command(&self, argv: &[String]) -> (Command, Vec<String>);

    /// Start a long-running program (server, load client) on this host in
    /// its own process group, stderr appended to `log`, stdout captured
    /// when `capture_stdout`. Stopping it reaches the program itself, also
    /// where it runs on another machine. This default is for programs on
    /// this machine (its namespace or a lab namespace): they die with twlab
    /// ([`process::die_with_twlab`]).
    fn spawn(&self, argv: &[String], log: &Path, capture_stdout: bool) -> Result<Supervised> {
        require_program(argv)?;
        let (mut cmd, shown) = self.command(argv);
        process::die_with_twlab(&mut cmd);
        Supervised::spawn(cmd, &shown, log, capture_stdout)
    }

    /// The path of twlab's own binary on this host, for `twlab serve` and
    /// `twlab load`: this machine's `local` for hosts that share its
    /// filesystem; an SSH host gets a copy (or the path its lab file names).
    async fn twlab_exe(&self, local: &Path) -> Result<PathBuf> {
        Ok(local.to_path_buf())
    }

    /// Is this host this machine's own namespace (so twlab can connect to
    /// its loopback itself, e.g. to see that a server answers)?
    fn is_this_machine(&self) -> bool {
        false
    }

    /// How twlab reaches this host, for `twlab doctor`'s connect check.
    fn reached_how(&self) -> String {
        self.describe()
    }

    /// How this host's sockets are counted, for `twlab doctor`: here
    /// in-process over sock_diag; `none` when the host cannot count them.
    fn socket_tool(&self) -> &'static str {
        "sock_diag (in-process, no tool needed)"
    }

    /// The host's Docker engine: this machine's socket here; a host
    /// elsewhere forwards its own socket into `control_dir`.
    async fn docker_engine(&self, _control_dir: &Path) -> Result<crate::docker::Engine> {
        crate::docker::Engine::local().await
    }

    /// Which of `pidfiles` still exist on this host (their programs run):
    /// here, on this machine's filesystem.
    async fn present_pidfiles(&self, pidfiles: &[String]) -> Result<Vec<String>> {
        Ok(pidfiles
            .iter()
            .filter(|f| Path::new(f.as_str()).exists())
            .cloned()
            .collect())
    }

    /// Let go of the host once the lab is done with it: nothing to do for
    /// a host on this machine; a connection elsewhere is closed.
    async fn close(self: Box<Self>) {}

    /// Where this host's sysctls live, for the report: the embedded lab's
    /// namespaces vanish with the run; a real host's are its own and are
    /// restored by twlab.
    fn sysctl_scope(&self) -> &'static str {
        "per network namespace: the lab's own, deleted after the run"
    }

    /// Run a short command to completion; its stdout, or an error with the
    /// command line and its stderr.
    async fn run(&self, argv: &[String]) -> Result<String> {
        require_program(argv)?;
        let (cmd, shown) = self.command(argv);
        process::output(cmd, &shown).await
    }

    /// The current value of a sysctl, whitespace as the kernel prints it.
    async fn read_sysctl(&self, name: &SysctlName) -> Result<String> {
        let out = self
            .run(&["sysctl".into(), "-n".into(), name.to_string()])
            .await?;
        Ok(out.trim_end_matches('\n').to_string())
    }

    /// Set a sysctl.
    async fn write_sysctl(&self, name: &SysctlName, value: &str) -> Result<()> {
        self.run(&["sysctl".into(), "-w".into(), format!("{name}={value}")])
            .await
            .map(|_| ())
    }

    /// TCP sockets for the endpoint by state, as seen from this side.
    async fn socket_counts(&self, endpoint: Endpoint) -> Result<Counts>;

    /// How many distinct client addresses the server's socket counts of
    /// this run have seen connected to the endpoint, where this host can
    /// tell without another dump (sock_diag); `None` where it cannot (a
    /// remote host's `ss`).
    async fn peer_addresses(&self, _endpoint: Endpoint) -> Result<Option<u64>> {
        Ok(None)
    }

    /// Start counting client addresses afresh (each run's are its own).
    fn reset_peers(&self) {}

    /// The kernel's TCP and conntrack counters of this host
    /// ([`crate::measure::kernel_counters`]): here from the same proc files
    /// as `cat` prints them; lab namespaces and this machine read them
    /// in-process.
    async fn kernel_counters(&self) -> Result<crate::measure::kernel_counters::KernelCounters> {
        let out = self
            .run(&crate::measure::kernel_counters::bundle_argv())
            .await?;
        crate::measure::kernel_counters::parse_bundle(&out)
            .map_err(|e| Error::env(format!("kernel counters of {}: {e}", self.describe())))
    }

    /// conntrack entries towards the endpoint by TCP state.
    async fn conntrack_counts(&self, endpoint: Endpoint) -> Result<Counts> {
        let out = self
            .run(&crate::measure::conntrack::list_argv(endpoint))
            .await?;
        Ok(crate::measure::conntrack::count_states(&out, endpoint))
    }
}

/// Is this process privileged enough to build a lab (root or CAP_NET_ADMIN
/// and CAP_SYS_ADMIN)? Checked before anything is created.
pub fn require_privileges() -> Result<()> {
    if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        Err(Error::env(
            "building the embedded lab needs root (network namespaces, veth, sysctls): run twlab as root, e.g. with sudo",
        ))
    }
}

/// Is `program` on PATH?
pub fn which(program: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// Refuse early, with the fix, when a tool the run needs is missing.
pub fn require_tool(program: &str, why: &str, package: &str) -> Result<()> {
    if which(program).is_some() {
        Ok(())
    } else {
        Err(Error::env(format!(
            "`{program}` is not installed; it is needed {why}. Install it with: apt-get install {package}"
        )))
    }
}
