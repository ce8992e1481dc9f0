//! The kernel's own counters of one host or namespace: *why* the socket and
//! conntrack counts are what they are.
//!
//! Socket and conntrack counts say how many; the kernel's counters say what
//! happened to get there: how many sockets finished TIME_WAIT (`TW`), how
//! many connect()s took a port still in TIME_WAIT (`TWRecycled`), how often
//! `tcp_max_tw_buckets` made a socket skip it (`TCPTimeWaitOverflow`), how
//! many flows the conntrack table refused (`insert_failed`, `drop`). These
//! are what `nstat -az`, `netstat -s` and `conntrack -S` show.
//!
//! What is read, all per network namespace on Linux:
//! - `/proc/net/netstat` and `/proc/net/snmp` (TcpExt, IpExt, Tcp, Ip, Udp,
//!   ...): pairs of lines `Prefix: Name1 Name2 …` / `Prefix: 1 2 …`. Fields
//!   come and go between kernels, so they are matched by header name, never
//!   by position; keys are `Prefix.Name` (`TcpExt.TW`);
//! - `/proc/net/stat/nf_conntrack`: conntrack's statistics, one hex row per
//!   CPU under a header of names (which also changed: 6.x has `clashres`
//!   and `chainlength`, older kernels `searched`, `error`…), summed over
//!   CPUs into `conntrack.NAME` (`entries` is the table's size repeated on
//!   every row: taken once). We read the proc file rather than ctnetlink's
//!   `IPCTNL_MSG_CT_GET_STATS_CPU`: it is per namespace as well, costs one
//!   read, and is the very text an SSH host gives, so one parser serves both;
//! - `nf_conntrack_count` and `nf_conntrack_max` (`conntrack.count`,
//!   `conntrack.max`) and the TCP conntrack timeouts in force
//!   (`conntrack.timeout.time_wait`, …, in seconds).
//!
//! A file that is missing (no conntrack module, an older kernel) gives no
//! keys; a file that does not parse is an error naming it. `/proc/net` is
//! `/proc/self/net`, which follows the *process's* (thread-group leader's)
//! namespace; in-process reads therefore use `/proc/thread-self/net`, from a
//! thread that entered the namespace ([`read_here`]).
//!
//! The files: this file (what is read, the one-off and bundle parsers, what
//! the counters mean), `parse.rs` (one file's fields, with the layout kept
//! between reads), `files.rs` (the files of a namespace kept open and read
//! at every sample, and where a read's time goes).

mod files;
mod parse;
#[cfg(test)]
mod tests;

pub use files::CounterFiles;
use parse::Fields;
use std::collections::BTreeMap;

/// Counter values by key (`TcpExt.TW`, `conntrack.insert_failed`).
pub type KernelCounters = BTreeMap<String, u64>;

/// The TCP conntrack timeouts read, as `(sysctl file, key suffix)`.
pub const CT_TIMEOUTS: [&str; 8] = [
    "time_wait",
    "established",
    "close_wait",
    "fin_wait",
    "last_ack",
    "syn_sent",
    "syn_recv",
    "close",
];

/// Which file a section of a bundle is, by the name [`BUNDLE_SCRIPT`]
/// gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// netstat/snmp pairs of lines.
    Pairs,
    /// The conntrack statistics table.
    CtStat,
    /// One number, stored under this key.
    Value(&'static str),
}

/// The files read, by the name a bundle gives them, and the path under
/// `/proc` (with `NET` for the net directory of the reader).
const FILES: &[(&str, &str, Kind)] = &[
    ("netstat", "NET/netstat", Kind::Pairs),
    ("snmp", "NET/snmp", Kind::Pairs),
    ("nf_conntrack", "NET/stat/nf_conntrack", Kind::CtStat),
    (
        "count",
        "/proc/sys/net/netfilter/nf_conntrack_count",
        Kind::Value("conntrack.count"),
    ),
    (
        "max",
        "/proc/sys/net/netfilter/nf_conntrack_max",
        Kind::Value("conntrack.max"),
    ),
];

/// A shell script (no user text in it) that prints every file of
/// [`FILES`] and the timeouts, each after a line `@@ NAME`; a missing file
/// prints nothing after its line. Run with `sh -c` on SSH hosts.
pub const BUNDLE_SCRIPT: &str = "for f in netstat snmp stat/nf_conntrack; do echo \"@@ ${f##*/}\"; cat /proc/net/$f 2>/dev/null; done; \
for f in count max; do echo \"@@ $f\"; cat /proc/sys/net/netfilter/nf_conntrack_$f 2>/dev/null; done; \
for t in time_wait established close_wait fin_wait last_ack syn_sent syn_recv close; do echo \"@@ timeout.$t\"; cat /proc/sys/net/netfilter/nf_conntrack_tcp_timeout_$t 2>/dev/null; done; true";

/// The argv that prints the bundle on a host (`sh -c BUNDLE_SCRIPT`).
pub fn bundle_argv() -> Vec<String> {
    vec!["sh".into(), "-c".into(), BUNDLE_SCRIPT.into()]
}

/// Counters that are levels, not running totals: a run reports where they
/// went, not a rate.
pub fn is_gauge(key: &str) -> bool {
    matches!(
        key,
        "conntrack.count"
            | "conntrack.max"
            | "conntrack.entries"
            | "conntrack.chainlength"
            | "Tcp.CurrEstab"
            | "Tcp.RtoAlgorithm"
            | "Tcp.RtoMin"
            | "Tcp.RtoMax"
            | "Tcp.MaxConn"
            | "Ip.Forwarding"
            | "Ip.DefaultTTL"
    ) || key.starts_with("conntrack.timeout.")
}

/// Parse `/proc/net/netstat` or `/proc/net/snmp`: each header line
/// `Prefix: A B C` is followed by its values `Prefix: 1 2 3`. Values that
/// are not counters (`Tcp: MaxConn` is -1) are left out. A values line
/// without its header, or with another number of fields, is an error.
pub fn parse_pairs(text: &str) -> Result<KernelCounters, String> {
    parse_alone(Kind::Pairs, text)
}

/// Parse `/proc/net/stat/nf_conntrack`: a header of names, then one row of
/// hex numbers per CPU, summed by name into `conntrack.NAME`. `entries`
/// (the table's size, on every row) is taken from the first row.
pub fn parse_ct_stat(text: &str) -> Result<KernelCounters, String> {
    parse_alone(Kind::CtStat, text)
}

/// One file's text of kind `kind` as a map.
fn parse_alone(kind: Kind, text: &str) -> Result<KernelCounters, String> {
    let mut fields = Fields::default();
    fields.parse(kind, text)?;
    let mut out = KernelCounters::new();
    fields.into_map(&mut out);
    Ok(out)
}

/// Parse one file's text of kind `kind` into `out`.
fn parse_into(out: &mut KernelCounters, name: &str, kind: Kind, text: &str) -> Result<(), String> {
    let mut fields = Fields::default();
    fields
        .parse(kind, text)
        .map_err(|e| format!("{name}: {e}"))?;
    fields.into_map(out);
    Ok(())
}

/// The kind of a bundle section, by its name.
fn kind_of(name: &str) -> Option<(Kind, String)> {
    if let Some(t) = name.strip_prefix("timeout.") {
        let key = CT_TIMEOUTS.iter().find(|k| **k == t)?;
        return Some((Kind::Value(timeout_key(key)), name.to_string()));
    }
    FILES
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(n, _, k)| (*k, n.to_string()))
}

/// `conntrack.timeout.NAME` for a timeout of [`CT_TIMEOUTS`].
fn timeout_key(name: &str) -> &'static str {
    match name {
        "time_wait" => "conntrack.timeout.time_wait",
        "established" => "conntrack.timeout.established",
        "close_wait" => "conntrack.timeout.close_wait",
        "fin_wait" => "conntrack.timeout.fin_wait",
        "last_ack" => "conntrack.timeout.last_ack",
        "syn_sent" => "conntrack.timeout.syn_sent",
        "syn_recv" => "conntrack.timeout.syn_recv",
        _ => "conntrack.timeout.close",
    }
}

/// Parse what [`BUNDLE_SCRIPT`] printed. Sections of unknown names are
/// skipped (a newer script's); a section that does not parse is an error
/// naming it.
pub fn parse_bundle(text: &str) -> Result<KernelCounters, String> {
    let mut out = KernelCounters::new();
    let mut sections: Vec<(&str, String)> = Vec::new();
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("@@ ") {
            sections.push((name.trim(), String::new()));
        } else if let Some((_, body)) = sections.last_mut() {
            body.push_str(line);
            body.push('\n');
        } else if !line.trim().is_empty() {
            return Err(format!("expected `@@ NAME` first, found {line:?}"));
        }
    }
    for (name, body) in &sections {
        if let Some((kind, shown)) = kind_of(name) {
            parse_into(&mut out, &shown, kind, body)?;
        }
    }
    Ok(out)
}

/// Read every counter of the network namespace of the calling *thread*
/// (`/proc/thread-self/net`, `/proc/sys/net`). Call it from a thread that
/// entered the namespace to read a lab host's.
pub fn read_here() -> Result<KernelCounters, String> {
    CounterFiles::open_here()?.read()
}

/// [`read_here`] with the net directory given (`/proc/net` for a
/// single-threaded reader, a test's copy of the files).
pub fn read_from(net_dir: &str) -> Result<KernelCounters, String> {
    CounterFiles::open(net_dir)?.read()
}

/// The sum of several hosts' counters (the client side of a lab with
/// several client hosts), key by key.
pub fn sum(all: &[KernelCounters]) -> KernelCounters {
    let mut out = KernelCounters::new();
    for c in all {
        for (k, v) in c {
            let slot = out.entry(k.clone()).or_insert(0);
            *slot = slot.saturating_add(*v);
        }
    }
    out
}

/// What one TIME_WAIT-related counter means, in one line, for the report.
pub fn meaning(key: &str) -> Option<&'static str> {
    Some(match key {
        "TcpExt.TW" => {
            "sockets that entered TIME_WAIT for its 60 s (counted on entry since Linux 4.1)"
        }
        "TcpExt.TWRecycled" => "connect() took a port still in TIME_WAIT (tcp_tw_reuse)",
        "TcpExt.TWKilled" => "sockets that entered TIME_WAIT for a short time (4 s or less)",
        "TcpExt.PAWSTimewait" => "a segment refused by a TIME_WAIT socket (old timestamp)",
        "TcpExt.PAWSOldAck" | "TcpExt.PAWSActive" => "a segment refused by PAWS (old timestamp)",
        "TcpExt.TCPTimeWaitOverflow" => "tcp_max_tw_buckets was full: a socket skipped TIME_WAIT",
        "TcpExt.TCPTWReuse" => "TIME_WAIT reused by a new SYN",
        "TcpExt.ListenOverflows" => "the accept queue was full: a SYN or ACK was dropped",
        "TcpExt.ListenDrops" => "a connection dropped at the listener",
        "Tcp.ActiveOpens" => "connect()s: connections this side opened",
        "Tcp.PassiveOpens" => "connections this side accepted",
        "Tcp.AttemptFails" => "connects that failed (RST or timeout in SYN)",
        "Tcp.EstabResets" => "established connections reset",
        "Tcp.RetransSegs" => "segments retransmitted",
        "conntrack.insert_failed" => "the conntrack table refused a new flow (insert failed)",
        "conntrack.drop" => "conntrack dropped a packet: the table was full",
        "conntrack.early_drop" => "conntrack evicted an entry to make room (table full)",
        "conntrack.invalid" => "packets conntrack could not match to a state",
        "conntrack.new" => "new conntrack entries",
        "conntrack.clashres" => "a clash between two new entries was resolved",
        _ => return None,
    })
}

/// The conntrack statistics that mean the table refused flows: a run in
/// which they moved had packets dropped by conntrack, not the server.
pub const CT_REFUSALS: [&str; 3] = [
    "conntrack.drop",
    "conntrack.early_drop",
    "conntrack.insert_failed",
];
