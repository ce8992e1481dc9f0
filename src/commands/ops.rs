//! The machine's own commands: `twlab doctor`, `states`, `bench`, `clean`.

use super::runtime;
use crate::cli::{BenchArgs, CleanArgs, DoctorArgs, StatesArgs};
use crate::error::{Error, Result, exit_code};
use crate::ops::bench::{BenchOptions, Section};
use crate::ops::states::{CountersOptions, StatesOptions};
use crate::ops::{self, clean, doctor};

/// `twlab doctor [--lab FILE]`: exit 3 when a required check fails.
pub fn doctor(args: &DoctorArgs) -> Result<i32> {
    let checks = runtime()?.block_on(doctor::run(args.lab.as_deref()))?;
    out!("{}", doctor::render(&checks));
    Ok(if checks.iter().all(|c| c.ok) {
        exit_code::OK
    } else {
        exit_code::ENVIRONMENT
    })
}

/// What `twlab states` was asked to count.
pub enum States {
    /// `--counters`: the kernel's TCP and conntrack counters.
    Counters(CountersOptions),
    /// `ADDR:PORT`: sockets (and conntrack entries) of one endpoint.
    Endpoint(StatesOptions),
}

impl TryFrom<&StatesArgs> for States {
    type Error = Error;

    fn try_from(a: &StatesArgs) -> Result<States> {
        if a.counters && a.endpoint.is_none() {
            return Ok(States::Counters(CountersOptions {
                netns: a.netns.clone(),
                lab_host: a
                    .lab
                    .clone()
                    .map(|lab| (lab, a.host.clone().unwrap_or_else(|| "server".into()))),
                watch: a.watch,
                count: a.count,
                json: a.json,
            }));
        }
        let endpoint = a
            .endpoint
            .ok_or_else(|| Error::invalid("give the endpoint (ADDR:PORT), or --counters"))?;
        Ok(States::Endpoint(StatesOptions {
            endpoint,
            netns: a.netns.clone(),
            watch: a.watch,
            count: a.count,
            json: a.json,
            conntrack: !a.no_conntrack,
        }))
    }
}

/// `twlab states ADDR:PORT …` or `twlab states --counters …`.
pub fn states(args: &StatesArgs) -> Result<i32> {
    match States::try_from(args)? {
        States::Counters(opts) => ops::states::run_counters(&opts)?,
        States::Endpoint(opts) => ops::states::run(&opts)?,
    }
    Ok(exit_code::OK)
}

impl TryFrom<&BenchArgs> for BenchOptions {
    type Error = Error;

    fn try_from(a: &BenchArgs) -> Result<BenchOptions> {
        if a.rounds == 0 || a.runs == 0 || a.duration.as_secs() == 0 || a.sizes.contains(&0) {
            return Err(Error::invalid(
                "--rounds, --runs, --sizes and --duration must be at least 1 (second)",
            ));
        }
        if a.sizes.iter().any(|&n| n > 500_000) {
            return Err(Error::invalid(
                "--sizes: at most 500000 (the population lives in one conntrack table of nf_conntrack_max entries)",
            ));
        }
        let exe = std::env::current_exe()
            .map_err(|e| Error::env(format!("cannot find the twlab binary: {e}")))?;
        Ok(BenchOptions {
            sections: if a.only.is_empty() {
                vec![
                    Section::Counting,
                    Section::Lab,
                    Section::Overhead,
                    Section::Servers,
                    Section::Rss,
                ]
            } else {
                a.only.clone()
            },
            sizes: a.sizes.clone(),
            rounds: a.rounds,
            runs: a.runs,
            duration: a.duration,
            rss_duration: a.rss_duration,
            out: a.out.clone().unwrap_or_else(|| {
                std::path::PathBuf::from("bench")
                    .join(chrono::Local::now().format("%Y%m%d-%H%M%S").to_string())
            }),
            exe,
        })
    }
}

/// `twlab bench …`.
pub fn bench(args: &BenchArgs) -> Result<i32> {
    let opts = BenchOptions::try_from(args)?;
    runtime()?.block_on(ops::bench::run(&opts))?;
    Ok(exit_code::OK)
}

/// `twlab clean [--force]`: exit 3 when something could not be undone.
pub fn clean(args: &CleanArgs) -> Result<i32> {
    let force = args.force;
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
