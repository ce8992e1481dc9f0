//! The parsers on captured outputs of two kernels, the layouts kept between
//! reads, and this machine's counters read in-process.

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

/// `text` with every number of its values lines (netstat/snmp) or rows
/// (conntrack) changed, the names left alone: the next sample's text.
fn next_sample(text: &str, kind: Kind) -> String {
    let mut out = String::new();
    for (i, line) in text.lines().enumerate() {
        let values = match kind {
            Kind::Pairs => {
                line.contains(':')
                    && line
                        .split_whitespace()
                        .nth(1)
                        .is_some_and(|w| w.starts_with(|c: char| c.is_ascii_digit() || c == '-'))
            }
            _ => i > 0,
        };
        if !values {
            out.push_str(line);
        } else {
            let words: Vec<String> = line
                .split_whitespace()
                .map(|w| match kind {
                    Kind::Pairs => w
                        .parse::<u64>()
                        .map_or_else(|_| w.to_string(), |v| (3 * v + 1).to_string()),
                    _ => u64::from_str_radix(w, 16)
                        .map_or_else(|_| w.to_string(), |v| format!("{:08x}", v + 7)),
                })
                .collect();
            out.push_str(&words.join(" "));
        }
        out.push('\n');
    }
    out
}

/// Parse `text` with `fields` (holding an earlier layout) and fresh: the
/// same fields, or the same error.
fn parse_twice(fields: &mut Fields, kind: Kind, text: &str) -> Result<bool, String> {
    let mut fresh = Fields::default();
    let expected = fresh.parse(kind, text);
    let got = fields.parse(kind, text);
    assert_eq!(got.as_ref().err(), expected.as_ref().err(), "{text:?}");
    assert_eq!(*fields, fresh, "{text:?}");
    got
}

#[test]
fn the_quick_path_gives_what_the_full_parse_gives() {
    for (text, kind) in [
        (NETSTAT_6_18, Kind::Pairs),
        (NETSTAT_4_9, Kind::Pairs),
        (SNMP_6_18, Kind::Pairs),
        (SNMP_4_9, Kind::Pairs),
        (CT_6_18, Kind::CtStat),
        (CT_4_9, Kind::CtStat),
    ] {
        let mut fields = Fields::default();
        assert_eq!(parse_twice(&mut fields, kind, text), Ok(true));
        let before = fields.clone();
        let next = next_sample(text, kind);
        assert_ne!(next, text);
        // Same names: the layout is kept, only the values change.
        assert_eq!(parse_twice(&mut fields, kind, &next), Ok(false));
        assert_eq!(fields.keys, before.keys);
        assert_ne!(fields.values, before.values, "{next}");
        assert_eq!(parse_twice(&mut fields, kind, text), Ok(false));
        assert_eq!(fields, before);
    }
    // The 4.9 conntrack table: rows summed by name, entries from the first.
    let mut fields = Fields::default();
    parse_twice(&mut fields, Kind::CtStat, CT_4_9).unwrap();
    parse_twice(
        &mut fields,
        Kind::CtStat,
        &next_sample(CT_4_9, Kind::CtStat),
    )
    .unwrap();
    let at = |k: &str| {
        fields
            .keys
            .iter()
            .position(|x| x == k)
            .and_then(|i| fields.values[i])
    };
    assert_eq!(at("conntrack.insert_failed"), Some(0x10 + 7 + 0x0a + 7));
    assert_eq!(at("conntrack.entries"), Some(0x20 + 7));
}

#[test]
fn a_layout_change_between_reads_re_parses() {
    let mut fields = Fields::default();
    assert_eq!(
        parse_twice(&mut fields, Kind::Pairs, NETSTAT_6_18),
        Ok(true)
    );
    // Another kernel's names: parsed afresh, the new fields found by name.
    assert_eq!(parse_twice(&mut fields, Kind::Pairs, NETSTAT_4_9), Ok(true));
    let map = |f: &Fields| {
        let mut m = KernelCounters::new();
        f.clone().into_map(&mut m);
        m
    };
    assert_eq!(map(&fields), parse_pairs(NETSTAT_4_9).unwrap());
    assert_eq!(map(&fields)["TcpExt.TW"], 4242);
    // One field more at the end of a header, one pair less, a pair more.
    let added: String = NETSTAT_4_9
        .lines()
        .enumerate()
        .map(|(i, l)| match i {
            0 => format!("{l} Newer\n"),
            1 => format!("{l} 5\n"),
            _ => format!("{l}\n"),
        })
        .collect();
    for text in [
        "TcpExt: A B\nTcpExt: 1 2\n",
        "TcpExt: A B C\nTcpExt: 1 2 3\n",
        "TcpExt: A B C\nTcpExt: 1 2 3\nIpExt: X\nIpExt: 9\n",
        "TcpExt: A B C\nTcpExt: 1 2 3\n",
        "TcpExt: A C B\nTcpExt: 1 2 3\n",
        "",
        added.as_str(),
    ] {
        parse_twice(&mut fields, Kind::Pairs, text).ok();
    }
    assert_eq!(
        parse_twice(&mut fields, Kind::Pairs, "TcpExt: A C B\nTcpExt: 1 2 3\n"),
        Ok(true)
    );
    assert_eq!(map(&fields)["TcpExt.C"], 2);
    assert_eq!(
        parse_twice(&mut fields, Kind::Pairs, "TcpExt: A B C\nTcpExt: 1 2 3\n"),
        Ok(true)
    );
    assert_eq!(map(&fields)["TcpExt.C"], 3);
    // A value that turns negative is no counter in that text.
    assert_eq!(
        parse_twice(&mut fields, Kind::Pairs, "TcpExt: A B C\nTcpExt: 1 -1 3\n"),
        Ok(false)
    );
    assert!(!map(&fields).contains_key("TcpExt.B"));
    // The conntrack header changes (a newer kernel's columns).
    assert_eq!(parse_twice(&mut fields, Kind::CtStat, CT_4_9), Ok(true));
    assert_eq!(parse_twice(&mut fields, Kind::CtStat, CT_6_18), Ok(true));
    assert_eq!(
        parse_twice(&mut fields, Kind::CtStat, "entries found\n"),
        Ok(true)
    );
    assert!(fields.values.iter().all(Option::is_none));
}

#[test]
fn any_text_after_a_kept_layout_parses_as_it_would_afresh() {
    // Every line of each file dropped, doubled, cut short or given a
    // stray word, after the file's own layout was kept: the quick path
    // either gives what the full parse gives or hands the text to it.
    for (text, kind) in [
        (NETSTAT_6_18, Kind::Pairs),
        (SNMP_4_9, Kind::Pairs),
        (CT_4_9, Kind::CtStat),
        (CT_6_18, Kind::CtStat),
    ] {
        let lines: Vec<&str> = text.lines().collect();
        for i in 0..lines.len() {
            let line = lines[i];
            let mutations = [
                None,
                Some(format!("{line}\n{line}")),
                Some(line[..line.len() / 2].to_string()),
                Some(format!("{line} 12")),
                Some(format!("{line} zz")),
                Some(line.replacen(' ', "  -1 ", 1)),
                Some(line.replacen(':', "", 1)),
            ];
            for m in mutations {
                let mut changed = lines.clone();
                match &m {
                    None => {
                        changed.remove(i);
                    }
                    Some(s) => changed[i] = s,
                }
                let mutated = changed.join("\n");
                let mut fields = Fields::default();
                fields.parse(kind, text).unwrap();
                let _ = parse_twice(&mut fields, kind, &mutated);
                // And back: the good text parses again.
                parse_twice(&mut fields, kind, text).unwrap();
            }
        }
    }
}

#[test]
fn counter_files_follow_their_files_through_a_change_of_layout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    };
    write("netstat", NETSTAT_6_18);
    write("snmp", SNMP_6_18);
    write("stat/nf_conntrack", CT_4_9);
    let net = dir.path().to_str().expect("utf-8 path");
    let mut files = CounterFiles::open(net).expect("open");
    let expected = |netstat: &str| {
        let mut m = parse_pairs(netstat).unwrap();
        m.extend(parse_pairs(SNMP_6_18).unwrap());
        m.extend(parse_ct_stat(CT_4_9).unwrap());
        m
    };
    let without_proc_sys = |c: KernelCounters| -> KernelCounters {
        c.into_iter()
            .filter(|(k, _)| {
                !(k == "conntrack.count"
                    || k == "conntrack.max"
                    || k.starts_with("conntrack.timeout."))
            })
            .collect()
    };
    let first = files.read().expect("read");
    assert_eq!(without_proc_sys(first.clone()), expected(NETSTAT_6_18));
    // The same open file, rewritten with new values, then with another
    // kernel's layout (fewer fields): each read gives what the file says.
    let next = next_sample(NETSTAT_6_18, Kind::Pairs);
    write("netstat", &next);
    assert_eq!(
        without_proc_sys(files.read().expect("read")),
        expected(&next)
    );
    write("netstat", NETSTAT_4_9);
    let old = files.read().expect("read");
    assert_eq!(without_proc_sys(old.clone()), expected(NETSTAT_4_9));
    assert_eq!(old["TcpExt.TW"], 4242);
    assert!(!old.contains_key("TcpExt.TCPMigrateReqSuccess"));
    // A file that does not parse is an error naming it; the next good text
    // reads again.
    write("netstat", "TcpExt: A B\nTcpExt: 1\n");
    let err = files.read().unwrap_err();
    assert!(err.contains("netstat") && err.contains("line 2"), "{err}");
    write("netstat", NETSTAT_6_18);
    assert_eq!(files.read().expect("read"), first);
    // A file larger than the reader's buffer is read whole.
    let big: String = (0..1000)
        .map(|i| format!("Big{i}: A B\nBig{i}: {i} 2\n"))
        .collect();
    write("netstat", &big);
    let read = files.read().expect("read");
    assert!(big.len() > 16_384);
    assert_eq!(read["Big999.A"], 999);
    assert_eq!(without_proc_sys(read), expected(&big));
}

#[test]
fn a_field_named_twice_keeps_the_later_value_as_before() {
    let map = parse_pairs("TcpExt: A A\nTcpExt: 1 2\n").unwrap();
    assert_eq!(map["TcpExt.A"], 2);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("netstat"), "TcpExt: A A\nTcpExt: 1 2\n").expect("write");
    std::fs::write(dir.path().join("snmp"), "TcpExt: A\nTcpExt: 3\n").expect("write");
    let mut files = CounterFiles::open(dir.path().to_str().expect("utf-8")).expect("open");
    // netstat is read before snmp: snmp's value comes last.
    assert_eq!(files.read().expect("read")["TcpExt.A"], 3);
}

#[test]
fn a_key_that_loses_its_value_leaves_the_reading_and_comes_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let netstat = dir.path().join("netstat");
    std::fs::write(&netstat, "TcpExt: A B C\nTcpExt: 1 2 3\n").expect("write");
    let mut files = CounterFiles::open(dir.path().to_str().expect("utf-8")).expect("open");
    let pairs = |c: KernelCounters| -> Vec<(String, u64)> {
        c.into_iter()
            .filter(|(k, _)| k.starts_with("TcpExt."))
            .collect()
    };
    let expect = |v: &[(&str, u64)]| -> Vec<(String, u64)> {
        v.iter().map(|(k, v)| (format!("TcpExt.{k}"), *v)).collect()
    };
    assert_eq!(
        pairs(files.read().expect("read")),
        expect(&[("A", 1), ("B", 2), ("C", 3)])
    );
    // Values set in place.
    std::fs::write(&netstat, "TcpExt: A B C\nTcpExt: 4 5 6\n").expect("write");
    assert_eq!(
        pairs(files.read().expect("read")),
        expect(&[("A", 4), ("B", 5), ("C", 6)])
    );
    // B is no counter this time: out of the reading, not left at 5.
    std::fs::write(&netstat, "TcpExt: A B C\nTcpExt: 7 -1 9\n").expect("write");
    assert_eq!(
        pairs(files.read().expect("read")),
        expect(&[("A", 7), ("C", 9)])
    );
    std::fs::write(&netstat, "TcpExt: A B C\nTcpExt: 10 11 12\n").expect("write");
    assert_eq!(
        pairs(files.read().expect("read")),
        expect(&[("A", 10), ("B", 11), ("C", 12)])
    );
    // A field that leaves the file leaves the reading.
    std::fs::write(&netstat, "TcpExt: A C\nTcpExt: 13 15\n").expect("write");
    assert_eq!(
        pairs(files.read().expect("read")),
        expect(&[("A", 13), ("C", 15)])
    );
    // Named twice, the later value counts, unless it is none.
    std::fs::write(&netstat, "TcpExt: A A\nTcpExt: 1 -1\n").expect("write");
    assert_eq!(pairs(files.read().expect("read")), expect(&[("A", 1)]));
    assert_eq!(
        parse_pairs("TcpExt: A A\nTcpExt: 1 -1\n").unwrap()["TcpExt.A"],
        1
    );
    std::fs::write(&netstat, "TcpExt: A A\nTcpExt: 1 2\n").expect("write");
    assert_eq!(pairs(files.read().expect("read")), expect(&[("A", 2)]));
}

#[test]
fn the_bundle_script_run_here_gives_the_keys_of_an_in_process_read() {
    // What an SSH host runs, run here: the same counters as the files
    // read in-process (values move between the two reads; keys do not).
    let out = std::process::Command::new("sh")
        .args(["-c", BUNDLE_SCRIPT])
        .output()
        .expect("sh");
    assert!(out.status.success(), "{out:?}");
    let bundle = parse_bundle(&String::from_utf8_lossy(&out.stdout)).expect("parse");
    // The child's /proc/net is this process's namespace.
    let here = read_from("/proc/self/net").expect("read");
    assert!(here.contains_key("TcpExt.TW"));
    assert_eq!(
        bundle.keys().collect::<Vec<_>>(),
        here.keys().collect::<Vec<_>>()
    );
}
