//! What each `twlab` command does with its arguments, one file per idea.
//!
//! Each command's clap arguments ([`crate::cli`]) are turned into the
//! options of the code that does the work once, by a `TryFrom` next to
//! the command, and the argument checks clap cannot express live in that
//! conversion (exit 2, nothing started). Then the command runs and prints.
//! [`crate::dispatch`] only routes; this module sits above every other
//! (it is the program's top), so nothing below imports it.

pub mod input;
pub mod local;
pub mod manual;
pub mod ops;
pub mod results;

use crate::error::{Error, Result};

/// The async runtime of the commands that need one: two workers are
/// plenty for what twlab drives, and leave the CPUs to the load.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::env(format!("cannot start the async runtime: {e}")))
}

#[cfg(test)]
mod tests {
    use crate::cli::{Cli, Command};
    use crate::error::{Error, exit_code};
    use crate::load::client::builtin::LoadOptions;
    use crate::ops::bench::BenchOptions;
    use clap::Parser;

    fn parse(args: &[&str]) -> Command {
        let argv = std::iter::once("twlab").chain(args.iter().copied());
        match Cli::try_parse_from(argv) {
            Ok(cli) => cli.command,
            Err(e) => panic!("{args:?} does not parse: {e}"),
        }
    }

    fn is_invalid(e: &Error) -> bool {
        e.exit_code() == exit_code::INVALID_INPUT
    }

    #[test]
    fn load_refuses_more_threads_than_connections_and_defaults_the_host_header() {
        let Command::Load(a) =
            parse(&["load", "--target", "198.18.0.1:8080", "-c", "2", "-t", "3"])
        else {
            panic!("not load")
        };
        assert!(LoadOptions::try_from(&a).is_err_and(|e| is_invalid(&e)));
        let Command::Load(a) =
            parse(&["load", "--target", "198.18.0.1:8080", "-c", "4", "-t", "2"])
        else {
            panic!("not load")
        };
        let opts = LoadOptions::try_from(&a).expect("valid");
        assert_eq!(opts.host_header, "198.18.0.1:8080");
        assert_eq!((opts.connections, opts.threads), (4, 2));
    }

    #[test]
    fn bench_refuses_zero_and_oversized_populations_and_defaults_to_every_section() {
        for bad in [
            &["bench", "--rounds", "0"][..],
            &["bench", "--sizes", "10,0"],
            &["bench", "--sizes", "500001"],
            &["bench", "--duration", "500ms"],
        ] {
            let Command::Bench(a) = parse(bad) else {
                panic!("not bench")
            };
            assert!(
                BenchOptions::try_from(&a).is_err_and(|e| is_invalid(&e)),
                "{bad:?} was accepted"
            );
        }
        let Command::Bench(a) = parse(&["bench"]) else {
            panic!("not bench")
        };
        let opts = BenchOptions::try_from(&a).expect("valid");
        assert_eq!(opts.sections.len(), 5);
        assert!(opts.out.starts_with("bench"));
    }

    #[test]
    fn states_is_counters_or_an_endpoint() {
        use super::ops::States;
        let Command::States(a) = parse(&["states", "--counters", "--json"]) else {
            panic!("not states")
        };
        assert!(matches!(States::try_from(&a), Ok(States::Counters(o)) if o.json));
        let Command::States(a) = parse(&["states", "198.18.0.1:8080", "--no-conntrack"]) else {
            panic!("not states")
        };
        assert!(matches!(States::try_from(&a), Ok(States::Endpoint(o)) if !o.conntrack));
    }
}
