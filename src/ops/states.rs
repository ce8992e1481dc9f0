//! `twlab states ADDR:PORT`: the seed's `netstat -ant | grep | awk | sort |
//! uniq -c` and `conntrack -L | awk | sort | uniq -c`, on both ends, in one
//! command and in a few milliseconds.
//!
//! It counts with the very code the sampler uses during a run (sock_diag
//! for sockets, ctnetlink for conntrack, both in-process and filtered in the
//! kernel), so it is also how a user — or `twlab bench` — checks the
//! collector against the tools they trust. `--netns NAME` looks inside a
//! namespace (a twlab lab's, or any under /run/netns); `--watch` redraws on
//! an interval; `--json` prints one JSON object per sample for scripts.
//!
//! `--counters` shows the kernel's TCP and conntrack counters instead
//! (`nstat -az`/`netstat -s` and `conntrack -S` in one view, the same
//! counters a run records: [`crate::measure::kernel_counters`]); with
//! `--watch`, the rates of those that moved.

use crate::common::counts::Counts;
use crate::common::endpoint::{Endpoint, HostRole, Side};
use crate::error::{Error, Result};
use crate::measure::ctnetlink::CtNetlink;
use crate::measure::kernel_counters::{self, KernelCounters};
use crate::measure::sockdiag::SockDiag;
use crate::scenario::MIN_SAMPLE_INTERVAL;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What `twlab states` was asked for.
#[derive(Debug, Clone)]
pub struct StatesOptions {
    pub endpoint: SocketAddr,
    /// A namespace name under /run/netns, or a path to a namespace file.
    pub netns: Option<String>,
    /// Redraw every interval until interrupted.
    pub watch: Option<Duration>,
    /// At most this many samples (with `watch`).
    pub count: Option<u64>,
    pub json: bool,
    /// Count conntrack entries too.
    pub conntrack: bool,
}

/// One look at the endpoint.
#[derive(Debug, Clone, Serialize)]
pub struct StatesSample {
    pub endpoint: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub netns: Option<String>,
    /// Seconds since the Unix epoch.
    pub time: f64,
    /// Sockets whose local end is the endpoint (the server side).
    pub server: Counts,
    /// Sockets whose remote end is the endpoint (the client side).
    pub client: Counts,
    /// conntrack entries whose original destination is the endpoint, by TCP
    /// state; absent when not counted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conntrack: Option<Counts>,
    /// How long counting took, in milliseconds.
    pub took_ms: f64,
}

/// The counters of one namespace, opened once and reused for every sample.
pub struct Counter {
    endpoint: Endpoint,
    netns: Option<String>,
    diag: SockDiag,
    ct: Option<CtNetlink>,
}

impl Counter {
    /// Open the counters, in `netns` when given (else this namespace).
    pub fn open(endpoint: SocketAddr, netns: Option<&str>, conntrack: bool) -> Result<Counter> {
        let path = netns.map(netns_path);
        let shown = |e: std::io::Error, what: &str| match &path {
            Some(p) => Error::env(format!("{what} in {}: {e}", p.display())),
            None => Error::env(format!("{what}: {e}")),
        };
        if let Some(p) = &path
            && !p.exists()
        {
            return Err(Error::invalid(format!(
                "--netns {}: no such network namespace ({} does not exist)",
                netns.unwrap_or_default(),
                p.display()
            )));
        }
        let diag = match &path {
            Some(p) => SockDiag::open_in_netns(p),
            None => SockDiag::open(),
        }
        .map_err(|e| shown(e, "cannot open a sock_diag socket"))?;
        let ct = if conntrack {
            let ct = match &path {
                Some(p) => CtNetlink::open_in_netns(p),
                None => CtNetlink::open(),
            }
            .map_err(|e| {
                shown(
                    e,
                    "cannot open a ctnetlink socket (is nf_conntrack loaded?)",
                )
            })?;
            Some(ct)
        } else {
            None
        };
        Ok(Counter {
            endpoint: Endpoint::new(endpoint.ip(), endpoint.port()),
            netns: netns.map(String::from),
            diag,
            ct,
        })
    }

    /// Count both ends and conntrack once.
    pub fn sample(&mut self) -> Result<StatesSample> {
        let started = Instant::now();
        let err = |e: std::io::Error| Error::env(format!("counting {}: {e}", self.endpoint));
        let server = self.diag.count(&self.endpoint, Side::Server).map_err(err)?;
        let client = self.diag.count(&self.endpoint, Side::Client).map_err(err)?;
        let conntrack = match &mut self.ct {
            Some(ct) => Some(ct.count(self.endpoint.socket_addr()).map_err(err)?),
            None => None,
        };
        Ok(StatesSample {
            endpoint: self.endpoint.to_string(),
            netns: self.netns.clone(),
            time: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
            server,
            client,
            conntrack,
            took_ms: (started.elapsed().as_secs_f64() * 1e6).round() / 1e3,
        })
    }
}

/// `/run/netns/NAME` for a name, the path itself for a path.
fn netns_path(netns: &str) -> PathBuf {
    if netns.contains('/') {
        PathBuf::from(netns)
    } else {
        PathBuf::from(crate::lab::netns::sys::NETNS_RUN_DIR).join(netns)
    }
}

/// Refuse what `twlab run` would refuse too, before a socket is opened:
/// port 0 (no server listens there), a `--watch` interval under the
/// sampler's floor ([`MIN_SAMPLE_INTERVAL`]), `--count 0` (no sample is no
/// answer), and a `--netns` that names no namespace file (empty, `.`,
/// `..`, a directory or any file that is not of nsfs).
pub fn check(opts: &StatesOptions) -> Result<()> {
    if opts.endpoint.port() == 0 {
        return Err(Error::invalid(format!(
            "{}: port 0 is no endpoint (nothing listens on it): give the server's port",
            opts.endpoint
        )));
    }
    check_where_and_when(opts.netns.as_deref(), opts.watch, opts.count)
}

/// The checks of `--netns`, `--watch` and `--count`, shared with
/// `--counters`.
fn check_where_and_when(
    netns: Option<&str>,
    watch: Option<Duration>,
    count: Option<u64>,
) -> Result<()> {
    if let Some(w) = watch
        && w < MIN_SAMPLE_INTERVAL
    {
        return Err(Error::invalid(format!(
            "--watch {}: too short, at least {} (as a scenario's collect.interval): counting faster measures mostly the counting",
            humantime::format_duration(w),
            humantime::format_duration(MIN_SAMPLE_INTERVAL)
        )));
    }
    if count == Some(0) {
        return Err(Error::invalid(
            "--count 0: at least 1 sample (leave --count out to watch until interrupted)",
        ));
    }
    if let Some(ns) = netns {
        if ns.is_empty() || ns == "." || ns == ".." {
            return Err(Error::invalid(format!(
                "--netns `{ns}`: not a namespace name: give a name under {} or the path of a namespace file",
                crate::lab::netns::sys::NETNS_RUN_DIR
            )));
        }
        // A namespace file (/run/netns/NAME, /proc/PID/ns/net) is an inode
        // of nsfs; anything else that exists is no namespace (a missing one
        // is reported when it is opened).
        let path = netns_path(ns);
        if let Ok(fs) = nix::sys::statfs::statfs(&path)
            && fs.filesystem_type() != nix::sys::statfs::NSFS_MAGIC
        {
            return Err(Error::invalid(format!(
                "--netns {ns}: {} is not a network namespace file (one under {} or /proc/PID/ns/net)",
                path.display(),
                crate::lab::netns::sys::NETNS_RUN_DIR
            )));
        }
    }
    Ok(())
}

/// Run `twlab states`: print one sample, or one per interval with `watch`.
/// The screen is cleared between samples only on a terminal: a pipe or a
/// file gets the tables one after another.
pub fn run(opts: &StatesOptions) -> Result<()> {
    use std::io::{IsTerminal as _, Write as _};
    check(opts)?;
    let clear = opts.watch.is_some() && std::io::stdout().is_terminal();
    let mut counter = Counter::open(opts.endpoint, opts.netns.as_deref(), opts.conntrack)?;
    let mut taken = 0u64;
    loop {
        let tick = Instant::now();
        let sample = counter.sample()?;
        let text = if opts.json {
            let line = serde_json::to_string(&sample)
                .map_err(|e| Error::env(format!("cannot encode the sample: {e}")))?;
            format!("{line}\n")
        } else if clear {
            // Clear the screen and redraw, like watch(1).
            format!("\x1b[2J\x1b[H{}", render(&sample))
        } else {
            render(&sample)
        };
        let mut out = std::io::stdout().lock();
        if out
            .write_all(text.as_bytes())
            .and_then(|_| out.flush())
            .is_err()
        {
            // The reader went away (a closed pipe): nothing left to do.
            return Ok(());
        }
        taken += 1;
        let Some(interval) = opts.watch else {
            return Ok(());
        };
        if opts.count.is_some_and(|n| taken >= n) {
            return Ok(());
        }
        std::thread::sleep(interval.saturating_sub(tick.elapsed()));
    }
}

/// The sample as a table: one row per state, server end, client end and
/// conntrack side by side.
pub fn render(s: &StatesSample) -> String {
    let mut states: BTreeSet<&String> = s.server.keys().chain(s.client.keys()).collect();
    if let Some(ct) = &s.conntrack {
        states.extend(ct.keys());
    }
    let mut b = tabled::builder::Builder::default();
    let mut head = vec![
        "state".to_string(),
        "sockets, server end".into(),
        "sockets, client end".into(),
    ];
    if s.conntrack.is_some() {
        head.push("conntrack".into());
    }
    b.push_record(head);
    let cell = |m: &Counts, k: &str| m.get(k).map_or("-".to_string(), u64::to_string);
    for state in &states {
        let mut row = vec![
            state.to_string(),
            cell(&s.server, state),
            cell(&s.client, state),
        ];
        if let Some(ct) = &s.conntrack {
            row.push(cell(ct, state));
        }
        b.push_record(row);
    }
    let mut table = b.build();
    table.with(tabled::settings::Style::sharp());
    let place = match &s.netns {
        Some(ns) => format!(" in netns {ns}"),
        None => String::new(),
    };
    let empty = if states.is_empty() {
        "\nno socket and no conntrack entry for this endpoint\n"
    } else {
        ""
    };
    format!(
        "{}{place}: sockets by state (server end = local {}, client end = remote {}), conntrack by original destination; counted in {:.1} ms\n{table}\n{empty}",
        s.endpoint, s.endpoint, s.endpoint, s.took_ms
    )
}

/// What `twlab states --counters` was asked for.
#[derive(Debug, Clone)]
pub struct CountersOptions {
    /// A namespace name under /run/netns, or a path to a namespace file.
    pub netns: Option<String>,
    /// A host of a lab file, read over SSH: the file and the role
    /// (`server`, `client`, `client2`…).
    pub lab_host: Option<(PathBuf, String)>,
    /// Print rates every interval until interrupted.
    pub watch: Option<Duration>,
    /// At most this many samples (with `watch`).
    pub count: Option<u64>,
    pub json: bool,
}

/// One reading of the kernel's counters (`--counters --json`).
#[derive(Debug, Clone, Serialize)]
pub struct CountersSample {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub netns: Option<String>,
    /// Where the counters were read: `this host`, `netns NAME`, or a lab
    /// file's host (`client (root@198.18.0.2)`).
    pub place: String,
    /// Seconds since the Unix epoch.
    pub time: f64,
    /// Every counter, as the kernel gives it.
    pub counters: KernelCounters,
    /// Per second since the previous sample, of the counters that moved
    /// (not levels such as `conntrack.count`); absent in the first sample.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rates: Option<BTreeMap<String, f64>>,
    /// How long reading took, in milliseconds.
    pub took_ms: f64,
}

/// Read the counters of `netns` (or of this namespace), from a thread
/// inside it.
pub fn read_counters(netns: Option<&str>) -> Result<KernelCounters> {
    open_counters(netns)?
        .read()
        .map_err(|e| Error::env(format!("reading the kernel's counters: {e}")))
}

/// The counter files of `netns` (or of this namespace), opened from a
/// thread inside it and readable from here on (see
/// [`kernel_counters::CounterFiles`]).
fn open_counters(netns: Option<&str>) -> Result<kernel_counters::CounterFiles> {
    let open = || kernel_counters::CounterFiles::open_here().map_err(std::io::Error::other);
    let out = match netns {
        Some(ns) => {
            let path = netns_path(ns);
            if !path.exists() {
                return Err(Error::invalid(format!(
                    "--netns {ns}: no such network namespace ({} does not exist)",
                    path.display()
                )));
            }
            crate::lab::netns::sys::in_netns(&path, open)
        }
        None => open(),
    };
    out.map_err(|e| Error::env(format!("reading the kernel's counters: {e}")))
}

/// Run `twlab states --counters`: every counter once; with `watch`, then
/// the rates of those that moved, every interval.
pub fn run_counters(opts: &CountersOptions) -> Result<()> {
    if let Some((lab, role)) = &opts.lab_host {
        return run_counters_on_lab_host(opts, lab, role);
    }
    check_where_and_when(opts.netns.as_deref(), opts.watch, opts.count)?;
    let mut files = open_counters(opts.netns.as_deref())?;
    let place = match &opts.netns {
        Some(ns) => format!("netns {ns}"),
        None => "this host".to_string(),
    };
    watch_counters(opts, &place, || {
        files
            .read()
            .map_err(|e| Error::env(format!("reading the kernel's counters: {e}")))
    })
}

/// `twlab states --counters --lab FILE --host ROLE`: the counters of one
/// host of a lab file, read over SSH as a run reads them (the same proc
/// files, one `sh -c` per sample), changing nothing on the host.
fn run_counters_on_lab_host(opts: &CountersOptions, lab: &Path, role: &str) -> Result<()> {
    check_where_and_when(None, opts.watch, opts.count)?;
    let spec = crate::scenario::labfile::LabSpec::load(lab)?;
    let role = parse_role(role, lab, &spec)?;
    let Some(h) = spec.hosts.at(role) else {
        return Err(Error::invalid(format!(
            "--host {role}: {} has no such host",
            lab.display()
        )));
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| Error::env(format!("cannot start the async runtime: {e}")))?;
    let control = tempfile::Builder::new()
        .prefix("twlab-states-")
        .tempdir()
        .map_err(|e| {
            Error::env(format!(
                "cannot make a folder for the SSH control socket: {e}"
            ))
        })?;
    let host = rt.block_on(crate::lab::real::RealHost::connect(h, role, control.path()))?;
    let place = format!("{role} ({})", h.describe());
    let watched = watch_counters(opts, &place, || {
        rt.block_on(host.as_host().kernel_counters())
    });
    rt.block_on(host.close());
    watched
}

/// `server`, `client`, `client2`…: a host of the lab file.
fn parse_role(
    text: &str,
    lab: &Path,
    spec: &crate::scenario::labfile::LabSpec,
) -> Result<HostRole> {
    let role = match text {
        "server" => Some(HostRole::SERVER),
        "client" => Some(HostRole::client(0)),
        t => t
            .strip_prefix("client")
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| *n >= 1)
            .map(|n| HostRole::client(n - 1)),
    };
    role.filter(|r| spec.hosts.at(*r).is_some()).ok_or_else(|| {
        let known: Vec<String> = spec
            .hosts
            .roles()
            .iter()
            .map(|(r, _)| match (r.side, r.index) {
                (Side::Client, i) if i > 0 => format!("client{}", i + 1),
                (side, _) => side.to_string(),
            })
            .collect();
        Error::invalid(format!(
            "--host {text}: not a host of {} (it has: {})",
            lab.display(),
            known.join(", ")
        ))
    })
}

/// Read with `read` once, or every `opts.watch` until `opts.count`
/// samples or a closed stdout, and print each reading.
fn watch_counters(
    opts: &CountersOptions,
    place: &str,
    mut read: impl FnMut() -> Result<KernelCounters>,
) -> Result<()> {
    use std::io::Write as _;
    let mut previous: Option<(Instant, KernelCounters)> = None;
    let mut taken = 0u64;
    loop {
        let tick = Instant::now();
        let counters = read()?;
        let took_ms = (tick.elapsed().as_secs_f64() * 1e6).round() / 1e3;
        let rates = previous
            .as_ref()
            .map(|(at, before)| rates(before, &counters, tick.duration_since(*at).as_secs_f64()));
        let sample = CountersSample {
            netns: opts.netns.clone(),
            place: place.to_string(),
            time: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
            counters,
            rates,
            took_ms,
        };
        let text = if opts.json {
            let line = serde_json::to_string(&sample)
                .map_err(|e| Error::env(format!("cannot encode the sample: {e}")))?;
            format!("{line}\n")
        } else {
            render_counters(&sample)
        };
        let mut out = std::io::stdout().lock();
        if out
            .write_all(text.as_bytes())
            .and_then(|_| out.flush())
            .is_err()
        {
            return Ok(());
        }
        taken += 1;
        let Some(interval) = opts.watch else {
            return Ok(());
        };
        if opts.count.is_some_and(|n| taken >= n) {
            return Ok(());
        }
        previous = Some((tick, sample.counters));
        std::thread::sleep(interval.saturating_sub(tick.elapsed()));
    }
}

/// Per second over `secs`, of the counters (not levels) that moved.
pub fn rates(before: &KernelCounters, now: &KernelCounters, secs: f64) -> BTreeMap<String, f64> {
    if secs <= 0.0 {
        return BTreeMap::new();
    }
    now.iter()
        .filter(|(k, _)| !kernel_counters::is_gauge(k))
        .filter_map(|(k, v)| {
            let b = before.get(k).copied().unwrap_or(0);
            (*v > b).then(|| (k.clone(), ((*v - b) as f64 / secs * 100.0).round() / 100.0))
        })
        .collect()
}

/// The first sample: every counter that is not zero; the next ones: the
/// rates of those that moved.
pub fn render_counters(s: &CountersSample) -> String {
    let mut b = tabled::builder::Builder::default();
    let place = &s.place;
    let title = match &s.rates {
        None => {
            b.push_record(["counter", "value", "meaning"]);
            for (k, v) in s.counters.iter().filter(|(_, v)| **v != 0) {
                b.push_record([k.clone(), v.to_string(), meaning(k)]);
            }
            format!(
                "{place}: the kernel's counters that are not zero (read in {:.2} ms)",
                s.took_ms
            )
        }
        Some(rates) => {
            b.push_record(["counter", "per second", "total", "meaning"]);
            for (k, r) in rates {
                let total = s.counters.get(k).copied().unwrap_or(0);
                b.push_record([k.clone(), format!("{r}"), total.to_string(), meaning(k)]);
            }
            if rates.is_empty() {
                format!("{place}: no counter moved")
            } else {
                format!("{place}: counters that moved, per second")
            }
        }
    };
    let mut table = b.build();
    table.with(tabled::settings::Style::sharp());
    format!("{title}\n{table}\n")
}

fn meaning(key: &str) -> String {
    kernel_counters::meaning(key).unwrap_or("").to_string()
}
