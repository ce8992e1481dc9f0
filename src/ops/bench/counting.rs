//! How long one count of an endpoint takes: twlab's in-process counters
//! against the pipelines a person types (the seed's own among them), over
//! populations of TIME_WAIT sockets.
//!
//! Every method is timed once per round, in an order rotated each round;
//! each also reports the TIME_WAIT it saw, so the table shows that the
//! methods agree (a fast count of the wrong thing is worth nothing). The
//! floors are what no per-endpoint count can beat: `/proc/net/sockstat`
//! (one global TIME_WAIT figure, read from an open file) and `conntrack -C`
//! (the table's size).

use super::population::Population;
use super::{BenchOptions, Row, Section, median, round_order};
use crate::common::endpoint::{Endpoint, Side};
use crate::error::{Error, Result};
use crate::lab::Host;
use crate::lab::netns::sys;
use crate::measure::ctnetlink::CtNetlink;
use crate::measure::sockdiag::SockDiag;
use std::fs::File;
use std::net::SocketAddr;
use std::time::Instant;

/// The event row's remark when its listener lost events.
const EVENTS_LOST: &str = "the event listener lost events while the population was built";

/// One way of counting.
enum Method {
    /// The embedded lab's socket count: the socket gauge's map, TIME_WAIT
    /// from the namespace's sockstat.
    Gauge,
    Sockets(SockDiag),
    /// The embedded lab's socket count before the gauge (and where it
    /// cannot load): every state but TIME_WAIT dumped, TIME_WAIT from the
    /// namespace's sockstat.
    LabSockets(SockDiag, File),
    /// The embedded lab's conntrack count: a lookup in the event listener's table.
    Events,
    Conntrack(CtNetlink),
    /// `/proc/net/sockstat` of the namespace, opened inside it.
    Sockstat(File),
    /// A shell pipeline run inside the namespace; `needs` is the peer tool.
    Shell {
        script: String,
        needs: &'static str,
        parse: fn(&str) -> Option<u64>,
    },
}

struct Timed {
    what: String,
    /// Said in the row's notes before what the method saw.
    remark: &'static str,
    method: Method,
    /// Milliseconds per count.
    times: Vec<f64>,
    /// TIME_WAIT seen by each count.
    seen: Vec<f64>,
}

pub async fn run(opts: &BenchOptions) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for &n in &opts.sizes {
        let pop = Population::build(n).await?;
        errln!(
            "  {n} connections made in {:.1}s",
            pop.built_in.as_secs_f64()
        );
        let measured = measure(&pop, n, opts.rounds).await;
        pop.destroy().await;
        rows.extend(measured?);
    }
    Ok(rows)
}

async fn measure(pop: &Population, n: u64, rounds: usize) -> Result<Vec<Row>> {
    let condition = format!("{} TIME_WAIT", human(n));
    let (sockets, conntrack) = methods(pop)?;
    let mut rows = Vec::new();
    for mut group in [sockets, conntrack] {
        for round in 0..rounds {
            for i in round_order(group.len(), round) {
                time_once(pop, &mut group[i]).await?;
            }
        }
        let Some((first, peers)) = group.split_first() else {
            continue;
        };
        let twlab = row(first, &condition);
        for peer in peers {
            rows.push(row(peer, &condition).against(&twlab));
        }
        rows.insert(rows.len() - peers.len(), twlab);
    }
    Ok(rows)
}

fn row(t: &Timed, condition: &str) -> Row {
    let seen = median(&t.seen);
    let note = if seen.is_finite() {
        format!("{}saw {seen:.0} TIME_WAIT", t.remark)
    } else {
        if t.remark == EVENTS_LOST {
            format!("not run: {EVENTS_LOST}")
        } else {
            "not run: the tool is not installed".to_string()
        }
    };
    Row::new(Section::Counting, t.what.clone(), condition)
        .values("ms", t.times.clone())
        .note(note)
}

/// The methods for sockets and for conntrack, twlab's first in each.
fn methods(pop: &Population) -> Result<(Vec<Timed>, Vec<Timed>)> {
    let ns = pop.netns_path();
    let ep = pop.endpoint;
    let open_err = |what: &str, e: std::io::Error| Error::env(format!("bench: {what}: {e}"));
    let diag = SockDiag::open_in_netns(&ns).map_err(|e| open_err("sock_diag", e))?;
    let ct = CtNetlink::open_in_netns(&ns).map_err(|e| open_err("ctnetlink", e))?;
    let sockstat = sys::in_netns(&ns, || File::open("/proc/thread-self/net/sockstat"))
        .map_err(|e| open_err("/proc/net/sockstat", e))?;
    let timed = |what: String, method| Timed {
        what,
        remark: "",
        method,
        times: Vec::new(),
        seen: Vec::new(),
    };
    // The row is named by the command itself, so a reader can rerun it.
    let shell = |script: String, needs, parse: fn(&str) -> Option<u64>| {
        timed(
            script.clone(),
            Method::Shell {
                script,
                needs,
                parse,
            },
        )
    };
    let lab_diag = SockDiag::open_in_netns(&ns).map_err(|e| open_err("sock_diag", e))?;
    let lab_sockstat = crate::measure::sockdiag::open_sockstat_in_netns(&ns)
        .map_err(|e| open_err("/proc/net/sockstat", e))?;
    // The same with one walk of the kernel's socket hash per family, as
    // before the one-walk request: what that request saves.
    let lab_diag_per_family = SockDiag::open_in_netns(&ns)
        .map_err(|e| open_err("sock_diag", e))?
        .per_family();
    let lab_sockstat_2 = crate::measure::sockdiag::open_sockstat_in_netns(&ns)
        .map_err(|e| open_err("/proc/net/sockstat", e))?;
    let mut sockets = vec![
        timed("twlab sockets (sock_diag)".into(), Method::Sockets(diag)),
        Timed {
            remark: "the embedded lab's way without the gauge; ",
            ..timed(
                "twlab sockets, lab namespace, walked (live sockets dumped + sockstat)".into(),
                Method::LabSockets(lab_diag, lab_sockstat),
            )
        },
        timed(
            "twlab sockets, lab namespace, one hash walk per family (before)".into(),
            Method::LabSockets(lab_diag_per_family, lab_sockstat_2),
        ),
        shell(
            format!("ss -tanH state all src {ep} | awk '{{print $1}}' | sort | uniq -c"),
            "ss",
            parse_uniq_tw,
        ),
        shell(
            format!("ss -tan | awk '$4 == \"{ep}\" {{print $1}}' | sort | uniq -c"),
            "ss",
            parse_uniq_tw,
        ),
        shell(
            format!("netstat -antpl | grep '{ep}' | awk '{{ print $6 }}' | sort | uniq -c"),
            "netstat",
            parse_uniq_tw,
        ),
        timed(
            "/proc/net/sockstat (floor: one global figure)".into(),
            Method::Sockstat(sockstat),
        ),
    ];
    if pop.gauge.is_some() {
        sockets.insert(
            0,
            Timed {
                remark: "the embedded lab's way; ",
                ..timed(
                    "twlab sockets, lab namespace (socket gauge: BPF map + sockstat)".into(),
                    Method::Gauge,
                )
            },
        );
    }
    let (ip, port) = (ep.ip(), ep.port());
    let mut conntrack = vec![
        timed("twlab conntrack (ctnetlink)".into(), Method::Conntrack(ct)),
        shell(
            format!(
                "conntrack -L -p tcp --orig-dst {ip} --dport {port} 2>/dev/null | awk '{{print $4}}' | sort | uniq -c"
            ),
            "conntrack",
            parse_uniq_tw,
        ),
        shell(
            "conntrack -L -o extended 2>/dev/null | awk '{print $6 \" \" $7 \" \" $8}' | sort | uniq -c | sort -nr | head -n 10".into(),
            "conntrack",
            parse_seed_conntrack,
        ),
        shell("conntrack -C".into(), "conntrack", |s| s.trim().parse().ok()),
    ];
    if pop.events.is_some() {
        conntrack.insert(
            1,
            Timed {
                remark: "the embedded lab's way; ",
                ..timed(
                    "twlab conntrack, lab namespace (event listener's table)".into(),
                    Method::Events,
                )
            },
        );
    }
    // The seed's pipeline shows the 10 largest src/dst groups only.
    if let Some(seed) = conntrack.iter_mut().find(|t| t.what.contains("head -n 10")) {
        seed.remark = "the seed's `head -n 10` keeps 10 src/dst groups; ";
    }
    Ok((sockets, conntrack))
}

async fn time_once(pop: &Population, t: &mut Timed) -> Result<()> {
    let ep = Endpoint::from(pop.endpoint);
    let started = Instant::now();
    let seen = match &mut t.method {
        Method::Gauge => {
            let gauge = pop
                .gauge
                .as_ref()
                .ok_or_else(|| Error::env("bench: no socket gauge"))?;
            let c = gauge
                .lock()
                .map_err(|_| Error::env("bench: socket gauge lock poisoned"))?
                .count()
                .map_err(|e| Error::env(format!("bench: socket gauge: {e}")))?;
            Some(c.get("TIME_WAIT").copied().unwrap_or(0))
        }
        Method::Sockets(diag) => {
            let c = diag
                .count(&ep, Side::Server)
                .map_err(|e| Error::env(format!("bench: sock_diag count: {e}")))?;
            Some(c.get("TIME_WAIT").copied().unwrap_or(0))
        }
        Method::LabSockets(diag, sockstat) => {
            let c = diag
                .count_in_own_namespace(&ep, Side::Server, sockstat)
                .map_err(|e| Error::env(format!("bench: lab socket count: {e}")))?;
            Some(c.get("TIME_WAIT").copied().unwrap_or(0))
        }
        Method::Events => {
            let events = pop
                .events
                .as_ref()
                .ok_or_else(|| Error::env("bench: no conntrack event listener"))?;
            match events.counts() {
                Ok(c) => Some(c.get("TIME_WAIT").copied().unwrap_or(0)),
                // Building the population makes events faster than any
                // reader (tens of thousands of connections a second): a
                // listener that lost some has no figure, and says so.
                Err(e) => {
                    if t.remark != EVENTS_LOST {
                        errln!("  conntrack events: {e}: that row has no figure");
                    }
                    t.remark = EVENTS_LOST;
                    return Ok(());
                }
            }
        }
        Method::Conntrack(ct) => {
            let c = ct
                .count(pop.endpoint)
                .map_err(|e| Error::env(format!("bench: ctnetlink count: {e}")))?;
            Some(c.get("TIME_WAIT").copied().unwrap_or(0))
        }
        Method::Sockstat(file) => Some(
            crate::measure::sockdiag::read_sockstat_tw(file)
                .map_err(|e| Error::env(format!("bench: /proc/net/sockstat: {e}")))?,
        ),
        Method::Shell {
            script,
            needs,
            parse,
        } => {
            if !tool_installed(needs) {
                return Ok(());
            }
            let (mut cmd, _) = pop
                .lab
                .server
                .command(&["sh".into(), "-c".into(), script.clone()]);
            let out = cmd
                .stderr(std::process::Stdio::null())
                .output()
                .await
                .map_err(|e| Error::env(format!("bench: `{script}`: {e}")))?;
            parse(&String::from_utf8_lossy(&out.stdout))
        }
    };
    t.times.push(started.elapsed().as_secs_f64() * 1000.0);
    t.seen.push(seen.map_or(f64::NAN, |v| v as f64));
    Ok(())
}

/// Whether `tool` is on PATH.
pub fn tool_installed(tool: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| {
        std::env::split_paths(&p).any(|d| {
            let f = d.join(tool);
            f.is_file()
        })
    })
}

/// The TIME_WAIT line of `uniq -c` output (`ss` spells it TIME-WAIT).
fn parse_uniq_tw(text: &str) -> Option<u64> {
    let mut total = 0;
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let (Some(n), Some(state)) = (f.next(), f.next()) else {
            continue;
        };
        if matches!(state, "TIME_WAIT" | "TIME-WAIT") {
            total += n.parse::<u64>().ok()?;
        }
    }
    Some(total)
}

/// The seed's conntrack view: `COUNT TIME_WAIT src=… dst=…` lines; the
/// TIME_WAIT entries towards the population's address, summed.
fn parse_seed_conntrack(text: &str) -> Option<u64> {
    let mut total = 0;
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() >= 4 && f[1] == "TIME_WAIT" && f[3] == "dst=127.0.0.1" {
            total += f[0].parse::<u64>().ok()?;
        }
    }
    Some(total)
}

/// 200000 as `200k`.
fn human(n: u64) -> String {
    if n >= 1000 && n.is_multiple_of(1000) {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}

impl From<SocketAddr> for Endpoint {
    fn from(a: SocketAddr) -> Endpoint {
        Endpoint::new(a.ip(), a.port())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_output_is_read_as_the_person_would() {
        let ss = "      3 ESTAB\n 199990 TIME-WAIT\n      1 LISTEN\n";
        assert_eq!(parse_uniq_tw(ss), Some(199_990));
        let netstat = "  12 TIME_WAIT\n   1 LISTEN\n";
        assert_eq!(parse_uniq_tw(netstat), Some(12));
        assert_eq!(parse_uniq_tw(""), Some(0));
        let seed = " 1200 TIME_WAIT src=127.1.0.1 dst=127.0.0.1\n  3 ESTABLISHED src=10.0.0.1 dst=10.0.0.2\n 800 TIME_WAIT src=127.1.0.2 dst=127.0.0.1\n";
        assert_eq!(parse_seed_conntrack(seed), Some(2000));
        let sockstat =
            "sockets: used 5\nTCP: inuse 1 orphan 0 tw 49876 alloc 2 mem 0\nUDP: inuse 0 mem 0\n";
        assert_eq!(
            crate::measure::sockdiag::parse_sockstat_tw(sockstat),
            Some(49_876)
        );
        assert_eq!(human(200_000), "200k");
        assert_eq!(human(1234), "1234");
    }
}
