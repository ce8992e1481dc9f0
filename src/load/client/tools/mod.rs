//! The load tools behind one seam: every `client.tool` is a [`LoadTool`].
//!
//! People bring their own load generator, and each one used to cost a
//! dozen `== ClientTool::Wrk` edits across the scenario checks, preflight,
//! doctor and the runner, with the compiler pointing at none of them. Here
//! each tool answers every question the rest of twlab asks of it — how to
//! find it and its version, which scenario keys it can honour, its argument
//! vector, the signal on which it stops early and still reports, and how
//! its output becomes a [`ClientStats`] — in one file, and [`TOOLS`] lists
//! them (as `output::FORMATS` lists the output formats). Adding a tool is
//! one file here and one entry in [`TOOLS`]; the scenario's `client.tool`
//! values, its JSON schema, `twlab doctor`, env.json and the refusals of
//! unsupported keys all follow from the list.
//!
//! Where it runs does not matter to a tool: the same argv runs in an
//! embedded client namespace, through an SSH host's `Host::spawn`, in a
//! container whose entrypoint is the program (when the tool has an image)
//! or as a Swarm service's tasks, and the same parser reads what it printed.

pub mod ab;
pub mod builtin;
pub mod command;
pub mod h2load;
pub mod hey;
pub mod httperf;
pub mod oha;
pub mod wrk;

use crate::common::counts::ClientStats;
use crate::common::endpoint::Endpoint;
use crate::common::names::{LOAD_METRICS, LoadMetric, load_metric_names};
use crate::scenario::{ClientSpec, ClientVia};
use nix::sys::signal::Signal;
use std::path::Path;

/// Every load tool twlab can drive, in the order doctor and the schema
/// list them. The first is the default (`client.tool` left out).
pub static TOOLS: &[&dyn LoadTool] = &[
    &builtin::Builtin,
    &wrk::Wrk,
    &httperf::Httperf,
    &ab::Ab,
    &hey::Hey,
    &h2load::H2load,
    &oha::Oha,
    &command::Command,
];

/// A scenario key of the `client:` block that a tool may not be able to
/// honour. A key is *asked for* when its value differs from what every
/// tool does anyway (its default); a tool that cannot honour an asked key
/// is refused at that key's line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Connections,
    Threads,
    Duration,
    Timeout,
    Path,
    Rate,
    CloseAfter,
    CloseDelay,
    LingerZero,
}

impl Key {
    pub const ALL: [Key; 9] = [
        Key::Connections,
        Key::Threads,
        Key::Duration,
        Key::Timeout,
        Key::Path,
        Key::Rate,
        Key::CloseAfter,
        Key::CloseDelay,
        Key::LingerZero,
    ];

    /// Its name under `client:`.
    pub fn name(&self) -> &'static str {
        match self {
            Key::Connections => "connections",
            Key::Threads => "threads",
            Key::Duration => "duration",
            Key::Timeout => "timeout",
            Key::Path => "path",
            Key::Rate => "rate",
            Key::CloseAfter => "close_after",
            Key::CloseDelay => "close_delay",
            Key::LingerZero => "linger_zero",
        }
    }

    /// Does `spec` ask for something with this key (a value other than
    /// its default)? The duration and the path are always asked for: every
    /// tool must honour them.
    pub fn asked(&self, spec: &ClientSpec) -> bool {
        let d = ClientSpec::default();
        match self {
            Key::Connections => spec.connections != d.connections,
            Key::Threads => spec.threads != d.threads,
            Key::Duration | Key::Path => true,
            Key::Timeout => spec.timeout != d.timeout,
            Key::Rate => spec.rate.is_some(),
            Key::CloseAfter => spec.close_after > 0,
            Key::CloseDelay => !spec.close_delay.0.is_zero(),
            Key::LingerZero => spec.linger_zero,
        }
    }
}

/// Where the load goes and what a tool's argv may need besides its spec.
pub struct Target<'a> {
    pub endpoint: Endpoint,
    /// twlab's binary on the client host (the builtin client runs it).
    pub exe: &'a Path,
}

impl Target<'_> {
    /// `http://ADDR:PORT/path` for `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.endpoint)
    }
}

/// One load generator: everything twlab asks of it.
pub trait LoadTool: Sync {
    /// Its `client.tool` value (also `ClientStats::tool`).
    fn name(&self) -> &'static str;

    /// One line for the JSON schema, doctor and README.
    fn describe(&self) -> &'static str;

    /// The program looked up on the client host's PATH; `None` when it is
    /// twlab itself or named by the scenario (`command`).
    fn program(&self) -> Option<&'static str>;

    /// Is its program twlab itself (which then must be on the client host)?
    fn runs_twlab(&self) -> bool {
        false
    }

    /// How to install the program (doctor's and preflight's fix).
    fn install(&self) -> &'static str;

    /// The argv that prints its version (`None`: nothing to ask).
    fn version_argv(&self) -> Option<Vec<String>>;

    /// Its version from what [`LoadTool::version_argv`] printed (stdout,
    /// then stderr): by default the first non-empty line.
    fn version(&self, output: &str) -> Option<String> {
        output
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .map(String::from)
    }

    /// Can it honour `key` when asked for?
    fn supports(&self, key: Key) -> bool;

    /// What it needs beyond [`LoadTool::supports`] (httperf needs a rate,
    /// `command` a template): a message starting with the `client.KEY` it
    /// is about, so that the refusal points at that key's line.
    fn check(&self, _spec: &ClientSpec) -> Result<(), String> {
        Ok(())
    }

    /// The argv that runs the load of `spec` against `target`.
    fn argv(&self, spec: &ClientSpec, target: &Target<'_>) -> Vec<String>;

    /// The signal on which it stops early and still prints what it measured.
    fn stop_signal(&self) -> Signal {
        Signal::SIGINT
    }

    /// The exit codes after which its stdout still holds its report (ab
    /// ends with 1 when stopped by SIGINT).
    fn exit_codes_with_report(&self) -> &'static [i32] {
        &[0]
    }

    /// Its stdout turned into [`ClientStats`] (`spec` for what the output
    /// leaves out, such as the rate asked for); an error says what is
    /// missing or wrong.
    fn parse(&self, stdout: &str, spec: &ClientSpec) -> Result<ClientStats, String>;

    /// Does the output carry figures at all? `command` without a JSON
    /// result does not: the run then has counts and no client figures.
    fn reports_figures(&self, stdout: &str) -> bool {
        let _ = stdout;
        true
    }

    /// The default image of a `via: docker` or `via: swarm` client, whose
    /// entrypoint is the program; `None`: it does not run there.
    fn image(&self, via: ClientVia) -> Option<&'static str> {
        let _ = via;
        None
    }
}

/// The tool named `name`.
pub fn find(name: &str) -> Option<&'static dyn LoadTool> {
    TOOLS.iter().copied().find(|t| t.name() == name)
}

/// The names of the tools that support `key`, for refusals.
pub fn supporting(key: Key) -> Vec<&'static str> {
    TOOLS
        .iter()
        .filter(|t| t.supports(key))
        .map(|t| t.name())
        .collect()
}

/// The names of the tools with an image for `via`.
pub fn with_image(via: ClientVia) -> Vec<&'static str> {
    TOOLS
        .iter()
        .filter(|t| t.image(via).is_some())
        .map(|t| t.name())
        .collect()
}

/// Every tool's name, for the error of an unknown one.
pub fn names() -> Vec<&'static str> {
    TOOLS.iter().map(|t| t.name()).collect()
}

/// Refuse what `spec`'s tool cannot do: each asked key it does not
/// support (the message names the tools that do), then its own needs.
pub fn check(spec: &ClientSpec) -> Result<(), String> {
    let tool = spec.tool.get();
    for key in Key::ALL {
        if key.asked(spec) && !tool.supports(key) {
            return Err(format!(
                "client.{} is not supported by client.tool: {}; the tools that support it: {}",
                key.name(),
                tool.name(),
                supporting(key).join(", ")
            ));
        }
    }
    tool.check(spec)
}

/// The note of a tool that reports no latency percentiles: `ClientStats`
/// has no place for "not measured", so the zeros are explained here.
/// The latency percentiles no tool of `unreported_note` reports.
pub(crate) const PERCENTILES: [&str; 3] = load_metric_names([
    LoadMetric::LatencyP50,
    LoadMetric::LatencyP90,
    LoadMetric::LatencyP99,
]);

/// Every metric a run's client figures give (all of them are missing from
/// a `command` run without a result): every load metric but the last, the
/// connections opened, which not every tool counts.
pub(crate) const CLIENT_METRICS: &[&str] = LOAD_METRICS.split_at(LOAD_METRICS.len() - 1).0;

pub(crate) fn unreported_note(tool: &str, what: &str) -> String {
    format!(
        "{tool} reports no latency percentiles: its latency mean is {what}; p50, p90, p99 (and max where it is 0) are not measured, not zero"
    )
}

/// Where a tool's program is on this machine (`None`: not installed, or
/// the tool has no program of its own).
pub fn local_path(tool: &dyn LoadTool) -> Option<std::path::PathBuf> {
    tool.program().and_then(crate::lab::which)
}

/// The version of a tool installed on this machine, asked within `limit`
/// (a tool that hangs, even on `--version`, must not hold a run); `None`
/// when it is not installed or says nothing usable.
pub async fn local_version(tool: &dyn LoadTool, limit: std::time::Duration) -> Option<String> {
    local_path(tool)?;
    let argv = tool.version_argv()?;
    let (program, args) = argv.split_first()?;
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args);
    let out = crate::process::output_within(cmd, limit).await?;
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    tool.version(&text)
}

/// Helpers the parsers share.
pub(crate) mod text {
    /// A count (`1234`).
    pub fn count(s: &str) -> Result<u64, String> {
        s.trim()
            .parse()
            .map_err(|_| format!("`{}` is not a count", s.trim()))
    }

    /// A finite number (`12.5`).
    pub fn number(s: &str) -> Result<f64, String> {
        match s.trim().parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(v),
            _ => Err(format!("`{}` is not a number", s.trim())),
        }
    }

    /// `v` rounded to `1/scale`, so decimal figures stay exact.
    pub fn round_to(v: f64, scale: f64) -> f64 {
        (v * scale).round() / scale
    }

    /// The first field after `label` on a line that starts with it:
    /// `field("Complete requests:      29", "Complete requests:")` → `29`.
    pub fn after<'a>(line: &'a str, label: &str) -> Option<&'a str> {
        line.trim_start()
            .strip_prefix(label)
            .and_then(|r| r.split_whitespace().next())
    }

    /// The first non-empty line, for "not X output" errors.
    pub fn first_line(text: &str) -> &str {
        text.lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("")
    }
}

/// A captured output under `tests/fixtures/DIR/NAME`, for the parsers' tests.
#[cfg(test)]
pub(crate) fn fixture(dir: &str, name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir)
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_metrics_are_every_load_metric_but_the_connections_opened() {
        assert_eq!(CLIENT_METRICS.len(), LOAD_METRICS.len() - 1);
        assert!(!CLIENT_METRICS.contains(&LoadMetric::ConnectionsOpened.name()));
        assert!(PERCENTILES.iter().all(|p| CLIENT_METRICS.contains(p)));
    }

    #[test]
    fn names_are_unique_and_every_tool_runs_the_duration_and_path() {
        let names = names();
        for (i, n) in names.iter().enumerate() {
            assert!(!names[..i].contains(n), "{n} twice");
            let tool = find(n).expect("found by name");
            assert!(
                tool.supports(Key::Duration) && tool.supports(Key::Path),
                "{n}"
            );
            assert!(!tool.describe().is_empty(), "{n}");
        }
        assert_eq!(names[0], "builtin", "the default comes first");
    }

    /// README's table of load tools says what `supports` says: a row per
    /// tool, `–` exactly where a key is not supported.
    #[test]
    fn the_readme_table_matches_the_tools() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
            .expect("README.md");
        let columns = [
            Key::Connections,
            Key::Threads,
            Key::Timeout,
            Key::Rate,
            Key::CloseAfter,
            Key::CloseDelay,
        ];
        for tool in TOOLS {
            let start = format!("| `{}` |", tool.name());
            let row = readme
                .lines()
                .find(|l| l.starts_with(&start))
                .unwrap_or_else(|| {
                    panic!("README's Load tools table has no row for {}", tool.name())
                });
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            // "", name, program, then the key columns.
            for (i, key) in columns.iter().enumerate() {
                let cell = cells.get(3 + i).copied().unwrap_or("");
                let said = !cell.starts_with('–');
                assert_eq!(
                    said,
                    tool.supports(*key),
                    "README says `{cell}` for {} and {}",
                    tool.name(),
                    key.name()
                );
            }
            assert_eq!(
                tool.supports(Key::CloseDelay),
                tool.supports(Key::LingerZero),
                "one README column holds both close_delay and linger_zero"
            );
        }
    }

    #[test]
    fn the_builtin_client_supports_every_key() {
        assert_eq!(supporting(Key::LingerZero), vec!["builtin"]);
        for key in Key::ALL {
            assert!(supporting(key).contains(&"builtin"), "{key:?}");
        }
    }
}
