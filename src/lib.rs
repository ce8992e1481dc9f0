//! twlab: reproducible TCP TIME_WAIT and conntrack experiments.
//!
//! A scenario file names a server, a load and the sysctl variants to
//! compare; `twlab run` builds a lab (by default two network namespaces
//! joined by a veth pair), runs every variant, samples TCP-state and
//! conntrack counts for the server endpoint on both sides, and writes a run
//! directory with a markdown report and machine-readable results.
//!
//! [`run()`] is the whole program; `main` only exits with its code.
//!
//! The modules follow the pipeline, each depending only on those before it:
//!
//! | stage | module |
//! |---|---|
//! | shared names (endpoint, sides, counts, state names) | [`common`] |
//! | the input files, parsed and validated once | [`scenario`] (with the lab file) |
//! | where things run: hosts, namespaces, sysctls, restore journal | [`lab`] |
//! | counting sockets and conntrack entries on one host | [`measure`] |
//! | the server and the load client | [`load`] |
//! | one scenario from plan to results, and the sampler | [`run`](mod@run) |
//! | the run directory contract | [`results`] |
//! | statistics, metrics, expectations, validity | [`analysis`] |
//! | report, terminal, charts, HTML, JUnit, compare | [`output`] |
//! | doctor and clean | [`ops`] |
//!
//! Beside them: [`cli`] (the command line), [`error`] (the two tiers of
//! errors and their exit codes), [`process`] (supervised children) and
//! [`docker`] (the engine, through bollard). CONTRIBUTING.md says where
//! each kind of addition goes.

/// `println!` that never panics. Rust ignores SIGPIPE, so a write to a
/// closed pipe (`twlab run | head -1`, a terminal gone) fails with EPIPE,
/// and `println!` turns that into a panic (exit 101) in the middle of a
/// run, with a lab up and sysctls applied. What twlab prints is a copy of
/// what it writes to files; losing it is no reason to stop.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// `print!` that never panics (see [`outln!`]).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let mut stdout = std::io::stdout();
        let _ = write!(stdout, $($arg)*);
        let _ = stdout.flush();
    }};
}

/// `eprintln!` that never panics (see [`outln!`]): stderr closed or a
/// broken pipe must not end a run that is restoring a machine.
macro_rules! errln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

pub mod analysis;
pub mod cli;
pub mod common;
pub mod docker;
pub mod error;
pub mod lab;
pub mod load;
pub mod measure;
pub mod ops;
pub mod output;
pub mod process;
pub mod results;
pub mod run;
pub mod scenario;

use clap::Parser;
use cli::{Cli, Command};
use error::{Error, Result, exit_code};
use load::{client, server};
use ops::{clean, doctor};
use output::{compare, html, junit, report};

/// Parse the command line, do what it says, and return the exit code.
pub fn run() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help/version to stdout (exit 0) and usage errors
            // to stderr (exit 2, our "invalid input").
            let _ = e.print();
            return if e.use_stderr() {
                exit_code::INVALID_INPUT
            } else {
                exit_code::OK
            };
        }
    };
    match dispatch(cli.command) {
        Ok(code) => code,
        Err(e) => {
            errln!("twlab: error: {e}");
            e.exit_code()
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::env(format!("cannot start the async runtime: {e}")))
}

fn dispatch(command: Command) -> Result<i32> {
    match command {
        Command::Run {
            scenario,
            out,
            set,
            keep,
            junit,
            lab,
        } => {
            // Before anything is read or started: a --junit that cannot be
            // written (or is an input) would fail only after the whole run.
            if let Some(path) = &junit {
                let mut inputs = vec![scenario.clone()];
                inputs.extend(lab.clone());
                output::paths::check_run_output_file("--junit", path, out.as_deref(), &inputs)?;
            }
            let opts = run::RunOptions {
                scenario_path: scenario,
                overrides: set,
                out,
                keep,
                lab,
            };
            let outcome = runtime()?.block_on(run::run(&opts))?;
            let summary = &outcome.summary;
            outln!("{}", report::render_terminal(summary));
            outln!(
                "report: {}",
                outcome.dir.join(results::REPORT_FILE).display()
            );
            if let Some(path) = junit {
                output::export(&junit::Junit, summary, &outcome.dir, &path)?;
                outln!("junit: {}", path.display());
            }
            if outcome.interrupted {
                errln!("twlab: interrupted; the results above cover what ran");
                return Ok(exit_code::INTERRUPTED);
            }
            if !outcome.incomplete.is_empty() {
                for why in &outcome.incomplete {
                    errln!("twlab: not complete: {why}");
                }
                errln!(
                    "twlab: the result is not complete: {} run(s) did not happen as planned and are left out of the comparisons and expectations",
                    outcome.incomplete.len()
                );
                return Ok(exit_code::ENVIRONMENT);
            }
            let failed: Vec<_> = summary.expectations.iter().filter(|e| !e.passed).collect();
            if !failed.is_empty() {
                for e in &failed {
                    errln!("twlab: expectation failed: {}: {}", e.text, e.detail);
                }
                return Ok(exit_code::EXPECTATION_FAILED);
            }
            Ok(exit_code::OK)
        }
        Command::Schema { client_result } => {
            if client_result {
                outln!("{}", load::client::tools::command::client_result_schema());
            } else {
                outln!("{}", scenario::json_schema());
            }
            Ok(exit_code::OK)
        }
        Command::Validate { scenario, set, lab } => {
            let text = scenario::Scenario::read(&scenario)?;
            let origin = scenario.display().to_string();
            let s = scenario::Scenario::parse(&text, &origin, &set)?;
            let lab_spec = run::resolve_lab(&s, lab.as_deref())?;
            s.check_lab(&origin, &text, lab_spec.as_ref())?;
            let axes = s.sweep_axes();
            let sweep = if axes.is_empty() {
                String::new()
            } else {
                let each: Vec<String> = axes
                    .iter()
                    .map(|(k, n)| format!("{k}: {n} value(s)"))
                    .collect();
                format!(" (generated by the matrix: {})", each.join(" x "))
            };
            outln!(
                "{}: valid: scenario `{}`, {} variant(s){sweep} x {} repeat(s), {} for {} per run, on {}",
                scenario.display(),
                s.name,
                s.variants.len(),
                s.repeat,
                s.client.tool.as_str(),
                s.client.duration,
                match &lab_spec {
                    Some(l) => format!(
                        "real hosts (server {}, client {})",
                        l.hosts.server.describe(),
                        l.hosts
                            .client_hosts()
                            .iter()
                            .map(|c| c.describe())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    None => "the embedded lab".to_string(),
                }
            );
            Ok(exit_code::OK)
        }
        Command::Report { dir, html } => {
            // Every file report writes, checked before the first is written.
            let mut pages: Vec<(&dyn output::Format, std::path::PathBuf)> =
                output::every_run(&dir).collect();
            if html {
                pages.push((&html::Html, dir.join(results::HTML_FILE)));
            }
            let summary = results::read_summary(&dir)?;
            // What report reads: the summary, and the charts the HTML page inlines.
            let mut inputs = vec![dir.join(results::SUMMARY_FILE)];
            inputs.extend(summary.charts.iter().map(|c| dir.join(&c.path)));
            for (_, path) in &pages {
                output::paths::check_output_file("report", path, &inputs)?;
            }
            // A sweep's charts are drawn from the summary alone: again here
            // (the time series need the samples, and are kept as they are).
            let sweep = output::charts::plan_sweep(&summary);
            for e in output::charts::write_sweep(&dir, &sweep).errors {
                errln!("twlab: {e}");
            }
            for (format, path) in &pages {
                output::export(*format, &summary, &dir, path)?;
                outln!("{}", path.display());
            }
            Ok(exit_code::OK)
        }
        Command::Compare { a, b, out } => {
            if let Some(path) = &out {
                output::paths::check_output_file("--out", path, &compare::inputs(&a, &b))?;
            }
            let c = compare::compare_dirs(&a, &b)?;
            outln!("{}", compare::render_terminal(&c));
            if let Some(path) = out {
                output::write_to(&path, &compare::render_markdown(&c))?;
                outln!("comparison: {}", path.display());
            }
            Ok(exit_code::OK)
        }
        Command::Doctor { lab } => {
            let checks = runtime()?.block_on(doctor::run(lab.as_deref()))?;
            out!("{}", doctor::render(&checks));
            Ok(if checks.iter().all(|c| c.ok) {
                exit_code::OK
            } else {
                exit_code::ENVIRONMENT
            })
        }
        Command::States {
            endpoint,
            counters: true,
            netns,
            watch,
            count,
            json,
            ..
        } if endpoint.is_none() => {
            ops::states::run_counters(&ops::states::CountersOptions {
                netns,
                watch,
                count,
                json,
            })?;
            Ok(exit_code::OK)
        }
        Command::States {
            endpoint,
            netns,
            watch,
            count,
            json,
            no_conntrack,
            ..
        } => {
            let endpoint = endpoint
                .ok_or_else(|| Error::invalid("give the endpoint (ADDR:PORT), or --counters"))?;
            ops::states::run(&ops::states::StatesOptions {
                endpoint,
                netns,
                watch,
                count,
                json,
                conntrack: !no_conntrack,
            })?;
            Ok(exit_code::OK)
        }
        Command::Bench {
            only,
            sizes,
            rounds,
            runs,
            duration,
            rss_duration,
            out,
        } => {
            use ops::bench::Section;
            if rounds == 0 || runs == 0 || duration.as_secs() == 0 || sizes.contains(&0) {
                return Err(Error::invalid(
                    "--rounds, --runs, --sizes and --duration must be at least 1 (second)",
                ));
            }
            if sizes.iter().any(|&n| n > 500_000) {
                return Err(Error::invalid(
                    "--sizes: at most 500000 (the population lives in one conntrack table of nf_conntrack_max entries)",
                ));
            }
            let exe = std::env::current_exe()
                .map_err(|e| Error::env(format!("cannot find the twlab binary: {e}")))?;
            let opts = ops::bench::BenchOptions {
                sections: if only.is_empty() {
                    vec![
                        Section::Counting,
                        Section::Lab,
                        Section::Overhead,
                        Section::Servers,
                        Section::Rss,
                    ]
                } else {
                    only
                },
                sizes,
                rounds,
                runs,
                duration,
                rss_duration,
                out: out.unwrap_or_else(|| {
                    std::path::PathBuf::from("bench")
                        .join(chrono::Local::now().format("%Y%m%d-%H%M%S").to_string())
                }),
                exe,
            };
            runtime()?.block_on(ops::bench::run(&opts))?;
            Ok(exit_code::OK)
        }
        Command::Clean { force } => {
            let done = runtime()?.block_on(clean::clean(force))?;
            if done.removed.is_empty() && done.left.is_empty() && done.failed.is_empty() {
                outln!("nothing to clean");
            }
            for r in &done.removed {
                outln!("removed {r}");
            }
            for r in &done.left {
                outln!("{}", r.line(force));
            }
            for r in &done.failed {
                errln!("twlab: could not undo: {r}");
            }
            Ok(if done.failed.is_empty() {
                exit_code::OK
            } else {
                exit_code::ENVIRONMENT
            })
        }
        Command::Serve {
            listen,
            max_keepalive_requests,
            threads,
            linger_zero,
            close_delay,
        } => {
            server::builtin::serve_blocking(server::builtin::ServeOptions {
                listen,
                max_keepalive_requests,
                threads,
                linger_zero,
                close_delay,
            })
            .map_err(|e| Error::env(format!("twlab serve on {listen}: {e}")))?;
            Ok(exit_code::OK)
        }
        Command::Load {
            target,
            path,
            host,
            connections,
            threads,
            duration,
            timeout,
            close_after,
            linger_zero,
            rate,
            close_delay,
            json,
        } => {
            if connections == 0 || threads == 0 || threads > connections as usize {
                return Err(Error::invalid(
                    "--connections and --threads must be at least 1, and threads at most connections",
                ));
            }
            let opts = client::builtin::LoadOptions {
                target,
                host_header: host.unwrap_or_else(|| target.to_string()),
                path,
                connections,
                threads,
                duration,
                timeout,
                close_after,
                linger_zero,
                rate,
                close_delay,
            };
            let stats = client::builtin::run_load_blocking(opts).map_err(|e| {
                let text = format!("twlab load against {target}: {e}");
                if e.kind() == std::io::ErrorKind::InvalidInput {
                    Error::invalid(text)
                } else {
                    Error::env(text)
                }
            })?;
            if json {
                let text = serde_json::to_string(&stats)
                    .map_err(|e| Error::env(format!("cannot encode the result: {e}")))?;
                outln!("{text}");
            } else {
                outln!(
                    "{}",
                    serde_json::to_string_pretty(&stats).unwrap_or_default()
                );
            }
            Ok(exit_code::OK)
        }
    }
}
