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
    let mut out = KernelCounters::new();
    parse_pairs_into(&mut out, text)?;
    Ok(out)
}

/// Set `out[key] = value`, allocating the key only the first time it is
/// seen: a sampler parses the same few hundred keys at every sample.
fn set(out: &mut KernelCounters, key: &str, value: u64) {
    match out.get_mut(key) {
        Some(slot) => *slot = value,
        None => {
            out.insert(key.to_string(), value);
        }
    }
}

/// [`parse_pairs`] into `out`, updating the keys it already has.
fn parse_pairs_into(out: &mut KernelCounters, text: &str) -> Result<(), String> {
    let mut key = String::with_capacity(64);
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    while let Some((i, head)) = lines.next() {
        let (prefix, names) = split_prefix(head)
            .ok_or_else(|| format!("line {}: expected `Prefix: Name …`, found {head:?}", i + 1))?;
        let Some((j, values)) = lines.next() else {
            return Err(format!("line {}: `{prefix}:` has no line of values", i + 1));
        };
        let (vprefix, values) = split_prefix(values)
            .filter(|(p, _)| *p == prefix)
            .ok_or_else(|| format!("line {}: expected the values of `{prefix}:`", j + 1))?;
        let (n_names, n_values) = (
            names.split_whitespace().count(),
            values.split_whitespace().count(),
        );
        if n_names != n_values {
            return Err(format!(
                "line {}: `{vprefix}:` has {n_names} names and {n_values} values",
                j + 1,
            ));
        }
        for (name, value) in names.split_whitespace().zip(values.split_whitespace()) {
            match value.parse::<u64>() {
                Ok(v) => {
                    key.clear();
                    key.push_str(prefix);
                    key.push('.');
                    key.push_str(name);
                    set(out, &key, v);
                }
                Err(_) if value.parse::<i64>().is_ok() => {}
                Err(_) => {
                    return Err(format!(
                        "line {}: `{prefix}: {name}` is {value:?}, not a number",
                        j + 1
                    ));
                }
            }
        }
    }
    Ok(())
}

/// `Prefix: rest` → `(Prefix, rest)`, the prefix one word of letters.
fn split_prefix(line: &str) -> Option<(&str, &str)> {
    let (prefix, rest) = line.split_once(':')?;
    let ok = !prefix.is_empty() && prefix.bytes().all(|b| b.is_ascii_alphanumeric());
    ok.then_some((prefix, rest))
}

/// Parse `/proc/net/stat/nf_conntrack`: a header of names, then one row of
/// hex numbers per CPU, summed by name into `conntrack.NAME`. `entries`
/// (the table's size, on every row) is taken from the first row.
pub fn parse_ct_stat(text: &str) -> Result<KernelCounters, String> {
    let mut out = KernelCounters::new();
    parse_ct_stat_into(&mut out, text)?;
    Ok(out)
}

/// [`parse_ct_stat`] into `out`, updating the keys it already has.
fn parse_ct_stat_into(out: &mut KernelCounters, text: &str) -> Result<(), String> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let Some(head) = lines.next() else {
        return Ok(());
    };
    let names: Vec<&str> = head.split_whitespace().collect();
    if names
        .iter()
        .any(|n| !n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
    {
        return Err(format!(
            "line 1: expected a header of names, found {head:?}"
        ));
    }
    let mut sums = vec![0u64; names.len()];
    let mut rows = 0usize;
    for (i, row) in lines.enumerate() {
        let mut n = 0;
        for (col, value) in row.split_whitespace().enumerate() {
            let Some(name) = names.get(col) else {
                n = col + 1;
                continue;
            };
            let v = u64::from_str_radix(value, 16)
                .map_err(|_| format!("line {}: `{name}` is {value:?}, not hex", i + 2))?;
            if *name == "entries" {
                if i == 0 {
                    sums[col] = v;
                }
            } else {
                sums[col] = sums[col].saturating_add(v);
            }
            n = col + 1;
        }
        if n != names.len() {
            return Err(format!(
                "line {}: {n} values under {} names",
                i + 2,
                names.len()
            ));
        }
        rows += 1;
    }
    if rows > 0 {
        let mut key = String::with_capacity(48);
        for (name, sum) in names.iter().zip(sums) {
            key.clear();
            key.push_str("conntrack.");
            key.push_str(name);
            set(out, &key, sum);
        }
    }
    Ok(())
}

/// Parse one file's text of kind `kind` into `out`.
fn parse_into(out: &mut KernelCounters, name: &str, kind: Kind, text: &str) -> Result<(), String> {
    match kind {
        Kind::Pairs => parse_pairs_into(out, text),
        Kind::CtStat => parse_ct_stat_into(out, text),
        Kind::Value(key) => match text.trim() {
            "" => Ok(()),
            t => t
                .parse::<u64>()
                .map(|v| set(out, key, v))
                .map_err(|_| format!("{t:?} is not a number")),
        },
    }
    .map_err(|e| format!("{name}: {e}"))
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

/// The counter files of one namespace, opened once and read again at every
/// sample.
///
/// A sample reads five small files; opening them is a third of the cost of
/// reading them, and entering a namespace (a thread that joins it) costs
/// more than all of it. An open proc file stays bound to the namespace it
/// was opened in, so the files are opened once from a thread inside the
/// namespace and then read from any thread: each read seeks to the start,
/// which makes the kernel produce the file afresh. The conntrack timeouts
/// are settings, not counters: they are read when the files are opened
/// (as a run's sysctls are in force by then) and given with every read,
/// which saves eight reads per sample. A file that does not exist (no
/// conntrack module, an older kernel) is left out.
pub struct CounterFiles {
    files: Vec<(String, Kind, std::fs::File)>,
    /// The last reading, updated in place (its keys allocated once),
    /// starting from the timeouts read at opening.
    counters: KernelCounters,
    /// Reused between reads (the largest file, netstat, is ~4 KB).
    buf: String,
}

impl CounterFiles {
    /// The files of the calling thread's namespace.
    pub fn open_here() -> Result<CounterFiles, String> {
        Self::open("/proc/thread-self/net")
    }

    /// The files with the net directory given (see [`read_from`]).
    pub fn open(net_dir: &str) -> Result<CounterFiles, String> {
        let open = |path: String, kind: Kind| match std::fs::File::open(&path) {
            Ok(f) => Ok(Some((path, kind, f))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{path}: {e}")),
        };
        let mut files = Vec::with_capacity(FILES.len());
        for (_, path, kind) in FILES {
            files.extend(open(path.replace("NET", net_dir), *kind)?);
        }
        let mut timeouts = Vec::with_capacity(CT_TIMEOUTS.len());
        for t in CT_TIMEOUTS {
            let path = format!("/proc/sys/net/netfilter/nf_conntrack_tcp_timeout_{t}");
            timeouts.extend(open(path, Kind::Value(timeout_key(t)))?);
        }
        let mut buf = String::with_capacity(8192);
        let mut counters = KernelCounters::new();
        read_into(&mut counters, &mut timeouts, &mut buf)?;
        Ok(CounterFiles {
            files,
            counters,
            buf,
        })
    }

    /// Every counter, as the kernel gives it now (the timeouts as opened).
    pub fn read(&mut self) -> Result<KernelCounters, String> {
        read_into(&mut self.counters, &mut self.files, &mut self.buf)?;
        Ok(self.counters.clone())
    }
}

/// Read each open file from its start and parse it into `out`.
fn read_into(
    out: &mut KernelCounters,
    files: &mut [(String, Kind, std::fs::File)],
    buf: &mut String,
) -> Result<(), String> {
    use std::io::{Read, Seek, SeekFrom};
    for (path, kind, file) in files {
        buf.clear();
        file.seek(SeekFrom::Start(0))
            .and_then(|_| file.read_to_string(buf))
            .map_err(|e| format!("{path}: {e}"))?;
        parse_into(out, path, *kind, buf)?;
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    const NETSTAT_6_18: &str = include_str!("../../../tests/fixtures/kernel/netstat-6.18");
    const SNMP_6_18: &str = include_str!("../../../tests/fixtures/kernel/snmp-6.18");
    const CT_6_18: &str = include_str!("../../../tests/fixtures/kernel/nf_conntrack-6.18");
    const NETSTAT_4_9: &str = include_str!("../../../tests/fixtures/kernel/netstat-4.9");
    const SNMP_4_9: &str = include_str!("../../../tests/fixtures/kernel/snmp-4.9");
    const CT_4_9: &str = include_str!("../../../tests/fixtures/kernel/nf_conntrack-4.9");

    #[test]
    fn open_files_give_fresh_counters_at_every_read() {
        let mut files = CounterFiles::open_here().expect("open");
        let before = files.read().expect("read");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        for _ in 0..3 {
            let _c = std::net::TcpStream::connect(addr).expect("connect");
            let _ = listener.accept().expect("accept");
        }
        let after = files.read().expect("read again");
        let opens = |c: &KernelCounters| c.get("Tcp.ActiveOpens").copied().unwrap_or(0);
        // Other tests may connect too: at least ours.
        assert!(opens(&after) >= opens(&before) + 3, "{before:?} {after:?}");
        assert_eq!(read_here().expect("one-off").len(), after.len());
    }

    #[test]
    fn fields_are_found_by_their_header_names_on_both_kernels() {
        let new = parse_pairs(NETSTAT_6_18).unwrap();
        let old = parse_pairs(NETSTAT_4_9).unwrap();
        for c in [&new, &old] {
            for k in [
                "TcpExt.TW",
                "TcpExt.TWRecycled",
                "TcpExt.TWKilled",
                "TcpExt.PAWSActive",
            ] {
                assert!(c.contains_key(k), "{k}");
            }
        }
        // The old layout lacks fields the new one has; positions differ.
        assert!(new.contains_key("TcpExt.TCPTimeWaitOverflow"));
        assert!(new.contains_key("TcpExt.PAWSTimewait"));
        assert!(old.contains_key("TcpExt.PAWSPassive"));
        assert!(!old.contains_key("TcpExt.TCPMigrateReqSuccess"));
        assert!(new.contains_key("TcpExt.TCPMigrateReqSuccess"));
        assert_eq!(old["TcpExt.TW"], 4242);
        assert_eq!(old["TcpExt.TWRecycled"], 17);
        assert!(new.keys().any(|k| k.starts_with("IpExt.")));
        let snmp = parse_pairs(SNMP_6_18).unwrap();
        assert!(snmp.contains_key("Tcp.ActiveOpens"));
        // MaxConn is -1: not a counter, left out.
        assert!(!snmp.contains_key("Tcp.MaxConn"));
        assert!(
            parse_pairs(SNMP_4_9)
                .unwrap()
                .contains_key("Udp.InDatagrams")
        );
    }

    #[test]
    fn conntrack_statistics_are_summed_over_cpus_by_name() {
        let new = parse_ct_stat(CT_6_18).unwrap();
        assert!(new.contains_key("conntrack.clashres"));
        assert!(!new.contains_key("conntrack.searched"));
        let old = parse_ct_stat(CT_4_9).unwrap();
        // Two CPUs: 0x10 + 0x0a insert_failed, entries once (0x20).
        assert_eq!(old["conntrack.insert_failed"], 0x1a);
        assert_eq!(old["conntrack.entries"], 0x20);
        assert_eq!(old["conntrack.searched"], 0x100 + 0x200);
        assert!(!old.contains_key("conntrack.clashres"));
    }

    #[test]
    fn a_bundle_from_a_host_reads_as_the_files_do() {
        let text = format!(
            "@@ netstat\n{NETSTAT_4_9}@@ snmp\n{SNMP_4_9}@@ nf_conntrack\n{CT_4_9}@@ count\n32\n@@ max\n@@ timeout.time_wait\n120\n@@ future\nwhatever\n"
        );
        let c = parse_bundle(&text).unwrap();
        assert_eq!(c["TcpExt.TW"], 4242);
        assert_eq!(c["conntrack.count"], 32);
        assert!(!c.contains_key("conntrack.max"));
        assert_eq!(c["conntrack.timeout.time_wait"], 120);
        assert_eq!(c["conntrack.insert_failed"], 0x1a);
        let err = parse_bundle("@@ count\nmany\n").unwrap_err();
        assert!(err.contains("count"), "{err}");
    }

    #[test]
    fn broken_files_are_errors_naming_the_line() {
        assert!(
            parse_pairs("TcpExt: A B\nTcpExt: 1\n")
                .unwrap_err()
                .contains("line 2")
        );
        assert!(parse_pairs("TcpExt: A B\nIpExt: 1 2\n").is_err());
        assert!(parse_pairs("TcpExt: A\n").is_err());
        assert!(
            parse_ct_stat("entries found\n0001 zz\n")
                .unwrap_err()
                .contains("line 2")
        );
    }

    #[test]
    fn this_machines_counters_read_in_process() {
        let c = read_here().unwrap();
        assert!(
            c.contains_key("TcpExt.TW"),
            "{:?}",
            c.keys().take(5).collect::<Vec<_>>()
        );
        assert!(c.contains_key("Tcp.ActiveOpens"));
    }
}
