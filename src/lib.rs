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
//! | counting sockets and conntrack entries on one host | [`measure`] |
//! | the run directory contract | [`results`] |
//! | where things run: hosts, namespaces, sysctls, restore journal, locks, run ids | [`lab`] |
//! | the server and the load client | [`load`] |
//! | statistics, metrics, expectations, validity | [`analysis`] |
//! | report, terminal, charts, HTML, JUnit, compare | [`output`] |
//! | one scenario from plan to results, and the sampler | [`run`](mod@run) |
//! | doctor, clean, states, bench | [`ops`] |
//!
//! (`tests/import_order.rs` holds the code to this order.)
//!
//! Above them: [`cli`] (the command line) and `commands` (what each
//! command does with it). Beside them, for every layer: [`error`] (the two
//! tiers of errors and their exit codes), [`process`] (supervised
//! children), [`docker`] (the engine, through bollard) and [`shutdown`]
//! (the signals that stop a run). CONTRIBUTING.md says where
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
mod commands;
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
pub mod shutdown;

use clap::Parser;
use cli::{Cli, Command};
use error::{Result, exit_code};

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

/// Route a command to its file in [`commands`], where its arguments
/// become its options once and it runs.
fn dispatch(command: Command) -> Result<i32> {
    use commands::{input, local, manual, ops, results};
    match command {
        Command::Run(args) => input::run(&args),
        Command::Validate(args) => input::validate(&args),
        Command::Report(args) => results::report(&args),
        Command::Compare(args) => results::compare(&args),
        Command::Schema { client_result } => manual::schema(client_result),
        Command::Completions(args) => manual::completions(&args),
        Command::Man(args) => manual::man(&args),
        Command::Doctor(args) => ops::doctor(&args),
        Command::States(args) => ops::states(&args),
        Command::Bench(args) => ops::bench(&args),
        Command::Clean(args) => ops::clean(&args),
        Command::Serve(args) => local::serve(&args),
        Command::Load(args) => local::load(&args),
    }
}
