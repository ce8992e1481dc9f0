//! The command line: raw arguments, before they become a validated plan.

use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

const EXIT_CODES: &str = "\
Exit codes:
  0  done
  1  an expectation of the scenario failed
  2  invalid input (scenario or arguments); nothing was started
  3  the environment or the lab failed (missing privilege or tool, a process died);
     the message carries the failing command and its stderr
  130  stopped by Ctrl-C or SIGTERM; what was measured so far is written";

/// Reproducible TCP TIME_WAIT and conntrack experiments: one scenario file,
/// a lab built and torn down for you, a report that compares the variants.
#[derive(Debug, Parser)]
#[command(name = "twlab", version, about, after_help = EXIT_CODES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a scenario in a lab and write a report.
    #[command(after_help = EXIT_CODES)]
    Run(RunArgs),
    /// Check a scenario without touching the machine.
    Validate(ValidateArgs),
    /// Re-render report.md from a run directory's summary.json.
    Report(ReportArgs),
    /// Compare two run directories (e.g. two kernels): the same tables and
    /// verdicts, B against A, listing what differs besides the variable.
    Compare(CompareArgs),
    /// Print the JSON Schema of scenario files (for editor completion).
    Schema {
        /// Print instead the schema of the JSON result a `client.tool:
        /// command` load may print on stdout.
        #[arg(long)]
        client_result: bool,
    },
    /// Print the shell completion script for SHELL (e.g. to
    /// /etc/bash_completion.d/twlab); see README "Install".
    Completions(CompletionsArgs),
    /// Print twlab's man page (roff), or with --dir write one page per
    /// command (twlab.1, twlab-run.1, …) into DIR, e.g. /usr/local/share/man/man1.
    Man(ManArgs),
    /// Say what this machine can and cannot do, and how to fix it.
    Doctor(DoctorArgs),
    /// Count TCP sockets by state for ADDR:PORT on both ends (local end: the
    /// server side; remote end: the client side) and conntrack entries by
    /// TCP state, here or in a namespace: the seed's netstat and conntrack
    /// pipelines in one command, with the counting code of `twlab run`.
    States(StatesArgs),
    /// Measure the instrument against named peers on this machine: counting
    /// (vs ss, netstat, conntrack -L), sampling overhead, servers and clients
    /// (vs nginx, wrk), lab set-up, memory. Prints medians and ratios.
    Bench(BenchArgs),
    /// Remove every leftover of twlab (namespaces, their veth and processes).
    Clean(CleanArgs),
    /// Run twlab's Tomcat-like HTTP server.
    Serve(ServeArgs),
    /// Run twlab's load generator (wrk's connection semantics).
    Load(LoadArgs),
}

// The arguments of `twlab run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The scenario file (YAML).
    pub scenario: PathBuf,
    /// The run directory [default: runs/<timestamp>-<name>].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Override a scalar of the scenario, e.g. --set client.duration=10s.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Leave the lab of the last run up for inspection (`twlab clean` removes it).
    #[arg(long)]
    pub keep: bool,
    /// Also write the expectations as JUnit XML (one test case each) to FILE.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Run on the real hosts of a lab file (overrides the scenario's `lab:`);
    /// without one, twlab builds its embedded namespaces.
    #[arg(long, value_name = "FILE")]
    pub lab: Option<PathBuf>,
}

// The arguments of `twlab validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    pub scenario: PathBuf,
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Check it against this lab file too.
    #[arg(long, value_name = "FILE")]
    pub lab: Option<PathBuf>,
}

// The arguments of `twlab report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    pub dir: PathBuf,
    /// Also write report.html: one self-contained file with the charts inline.
    #[arg(long)]
    pub html: bool,
}

// The arguments of `twlab compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    pub a: PathBuf,
    pub b: PathBuf,
    /// Also write the comparison as markdown to FILE.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

// The arguments of `twlab completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

// The arguments of `twlab man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

// The arguments of `twlab doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Also check each host of this lab file for real (changing nothing).
    #[arg(long, value_name = "FILE")]
    pub lab: Option<PathBuf>,
}

// The arguments of `twlab states`.
#[derive(Debug, Args)]
pub struct StatesArgs {
    /// The endpoint, e.g. 198.18.0.1:8080 or [::1]:8080.
    #[arg(required_unless_present = "counters")]
    pub endpoint: Option<SocketAddr>,
    /// Show the kernel's TCP and conntrack counters (netstat, snmp,
    /// conntrack statistics) instead; with --watch, their rates.
    #[arg(long, conflicts_with_all = ["endpoint", "no_conntrack"])]
    pub counters: bool,
    /// Look inside this network namespace (a name under /run/netns, or a path).
    #[arg(long, value_name = "NAME")]
    pub netns: Option<String>,
    /// With --counters: read a host of this lab file instead, over SSH as a
    /// run does (changing nothing there).
    #[arg(
        long,
        value_name = "FILE",
        requires = "counters",
        conflicts_with = "netns"
    )]
    pub lab: Option<PathBuf>,
    /// With --lab: which host (server, client, client2, …) [default: server].
    #[arg(long, value_name = "ROLE", requires = "lab")]
    pub host: Option<String>,
    /// Redraw every INTERVAL (default 1s) until interrupted.
    #[arg(long, value_name = "INTERVAL", num_args = 0..=1, default_missing_value = "1s", value_parser = humantime::parse_duration)]
    pub watch: Option<std::time::Duration>,
    /// With --watch: stop after N samples.
    #[arg(long, value_name = "N", requires = "watch")]
    pub count: Option<u64>,
    /// Print JSON, one object per sample (one line each with --watch).
    #[arg(long)]
    pub json: bool,
    /// Count sockets only.
    #[arg(long)]
    pub no_conntrack: bool,
}

// The arguments of `twlab bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Sections to run [default: all].
    #[arg(long, value_enum, value_delimiter = ',')]
    pub only: Vec<crate::ops::bench::Section>,
    /// TIME_WAIT populations of the counting section.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "10000,50000,100000,200000"
    )]
    pub sizes: Vec<u64>,
    /// Counts per method and population.
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// Runs per configuration of the load sections.
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Load duration of one run.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: std::time::Duration,
    /// Duration of the long run of the memory section.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub rss_duration: std::time::Duration,
    /// Where bench.json and bench.md go [default: bench/<timestamp>].
    #[arg(long)]
    pub out: Option<PathBuf>,
}

// The arguments of `twlab clean`.
#[derive(Debug, Args)]
pub struct CleanArgs {
    /// Also remove the labs of twlab runs that are still going.
    #[arg(long)]
    pub force: bool,
}

// The arguments of `twlab serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    #[arg(long, default_value = "[::]:8080")]
    pub listen: SocketAddr,
    /// Close a connection after N requests (Tomcat's maxKeepAliveRequests); 0 = never.
    #[arg(long, default_value_t = 100)]
    pub max_keepalive_requests: u64,
    /// Worker threads; 0 = one per CPU.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Close connections with RST (SO_LINGER 0): no TIME_WAIT on the server.
    #[arg(long)]
    pub linger_zero: bool,
    /// Wait this long (or until the client closes) between a
    /// `Connection: close` response and the server's FIN.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub close_delay: std::time::Duration,
}

// The arguments of `twlab load`.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Server address, e.g. 198.18.0.1:8080.
    #[arg(long)]
    pub target: SocketAddr,
    #[arg(long, default_value = "/abc")]
    pub path: String,
    /// Host header [default: the target address].
    #[arg(long)]
    pub host: Option<String>,
    #[arg(short, long, default_value_t = 100)]
    pub connections: u32,
    #[arg(short, long, default_value_t = 2)]
    pub threads: usize,
    #[arg(short, long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: std::time::Duration,
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub timeout: std::time::Duration,
    /// Close each connection after N requests (the client closes first); 0 = never.
    #[arg(long, default_value_t = 0)]
    pub close_after: u64,
    /// Close connections with RST (SO_LINGER 0): no TIME_WAIT on the client.
    #[arg(long)]
    pub linger_zero: bool,
    /// Open loop: this many requests per second in all, on a fixed
    /// schedule spread over the connections (latency from each
    /// request's scheduled time); without it, closed loop.
    #[arg(long)]
    pub rate: Option<f64>,
    /// After a `Connection: close` response, wait this long before closing.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub close_delay: std::time::Duration,
    /// Print the result as JSON (what `twlab run` reads).
    #[arg(long)]
    pub json: bool,
}

/// The completion script of `shell` for twlab, from the definitions above,
/// so it never lags behind a new command or flag.
pub fn completions(shell: clap_complete::Shell) -> Vec<u8> {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "twlab", &mut script);
    script
}

/// twlab's man page (section 1, roff), from the definitions above: its
/// commands, options and the exit codes.
pub fn man_page() -> std::io::Result<Vec<u8>> {
    use clap::CommandFactory;
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut page)?;
    Ok(page)
}

/// Write one man page per command into `dir` (`twlab.1`, `twlab-run.1`,
/// …), as `man twlab-run` finds them under a `man1` directory.
pub fn write_man_pages(dir: &std::path::Path) -> std::io::Result<()> {
    use clap::CommandFactory;
    clap_mangen::generate_to(Cli::command(), dir)
}
