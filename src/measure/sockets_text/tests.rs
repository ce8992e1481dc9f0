//! Unit tests of the parent module (sockets_text).

//! Fixtures: `tests/fixtures/ss/README.md` says how each was captured.
//! Every expected count was computed from the fixture file with the awk
//! command written next to it (run in `tests/fixtures/ss/`), not by this
//! parser. `$1` is ss's state column, `$4`/`$5` its local/peer columns;
//! for netstat `$4`/`$5` are local/foreign and `$6` the state.
use super::*;

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/ss/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read fixture {path}: {e}"))
}

fn ep(s: &str) -> Endpoint {
    let addr: SocketAddr = s.parse().expect("endpoint literal");
    Endpoint::new(addr.ip(), addr.port())
}

fn counts(pairs: &[(&str, u64)]) -> Counts {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

const SERVER: &str = "198.18.10.1:8080";

#[test]
fn ss_argv_filters_by_port_in_one_element() {
    assert_eq!(
        ss_argv(ep(SERVER), Side::Server),
        ["ss", "-t", "-a", "-n", "state", "all", "( sport = :8080 )"]
    );
    assert_eq!(
        ss_argv(ep("[::]:443"), Side::Client),
        ["ss", "-t", "-a", "-n", "state", "all", "( dport = :443 )"]
    );
}

#[test]
fn netstat_argv_is_wide_numeric_and_in_the_c_locale() {
    assert_eq!(
        netstat_argv(),
        ["env", "LC_ALL=C", "netstat", "-t", "-a", "-n", "-W"]
    );
}

#[test]
fn ss_and_netstat_state_names_map_to_sockdiag_names() {
    let pairs = [
        ("ESTAB", "ESTABLISHED"),
        ("SYN-SENT", "SYN_SENT"),
        ("SYN-RECV", "SYN_RECV"),
        ("FIN-WAIT-1", "FIN_WAIT1"),
        ("FIN-WAIT-2", "FIN_WAIT2"),
        ("TIME-WAIT", "TIME_WAIT"),
        ("UNCONN", "CLOSE"),
        ("CLOSED", "CLOSE"),
        ("CLOSE-WAIT", "CLOSE_WAIT"),
        ("LAST-ACK", "LAST_ACK"),
        ("LISTEN", "LISTEN"),
        ("CLOSING", "CLOSING"),
        ("NEW-SYN-RECV", "NEW_SYN_RECV"),
        ("UNKNOWN", "UNKNOWN"),
    ];
    for (ss, want) in pairs {
        let n = ss_state(ss).unwrap_or_else(|| panic!("ss state {ss}"));
        assert_eq!(state_name(n), want, "ss {ss}");
        // netstat prints the sockdiag spelling itself.
        assert_eq!(netstat_state(want), Some(n), "netstat {want}");
    }
    assert_eq!(ss_state("State"), None);
    assert_eq!(netstat_state("TIME-WAIT"), None);
}

#[test]
fn addresses_in_every_spelling() {
    let cases = [
        // Real spellings, from the fixtures.
        ("198.18.10.1:8080", "198.18.10.1:8080"),
        ("[::ffff:198.18.10.1]:8080", "[::ffff:198.18.10.1]:8080"),
        ("*:8080", "[::]:8080"),
        ("*:*", "[::]:0"),
        ("0.0.0.0:*", "0.0.0.0:0"),
        ("[::]:*", "[::]:0"),
        ("[::1]:8083", "[::1]:8083"),
        ("127.0.0.1%lo:8082", "127.0.0.1:8082"),
        (
            "[fe80::d0a3:e3ff:fec6:9b7a]%twlabtest-ss0:8081",
            "[fe80::d0a3:e3ff:fec6:9b7a]:8081",
        ),
        (":::8080", "[::]:8080"),
        (":::*", "[::]:0"),
        ("::1:8083", "[::1]:8083"),
        (
            "fe80::d0a3:e3ff:fec6:9b7a:8081",
            "[fe80::d0a3:e3ff:fec6:9b7a]:8081",
        ),
        // Older spellings (older ss without brackets, other net-tools
        // versions keeping ::ffff:), not producible on this machine.
        ("::ffff:198.18.10.1:8080", "[::ffff:198.18.10.1]:8080"),
        ("fe80::1%eth0:22", "[fe80::1]:22"),
        ("[fe80::1%eth0]:22", "[fe80::1]:22"),
    ];
    for (text, want) in cases {
        let want: SocketAddr = want.parse().expect("literal");
        assert_eq!(socket_addr(text), Some(want), "{text}");
    }
    for bad in [
        "",
        "8080",
        "Address:Port",
        "[::1:8080",
        "[::1]8080",
        "[::1]x:8080",
        "198.18.10.1:99999",
        "198.18.10.1:",
        "host.example:80",
    ] {
        assert_eq!(socket_addr(bad), None, "{bad:?}");
    }
}

/// The same 127.0.0.1/::1 scenario the sock_diag unit tests decode:
/// `tests/fixtures/sockdiag/ss-tanoe.txt` is `ss -tanoe` (header line,
/// `-o -e` detail columns) taken right after the netlink dumps. parse_ss
/// must give exactly the table of tests/fixtures/sockdiag/README.md,
/// which `src/sockdiag.rs` asserts on the binary replies.
#[test]
fn ss_agrees_with_sockdiag_on_the_sockdiag_fixture() {
    let path = format!(
        "{}/tests/fixtures/sockdiag/ss-tanoe.txt",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let cases = [
        // awk '$4=="127.0.0.1:18080"{n[$1]++} END{for(s in n) print s,n[s]}'
        (
            "127.0.0.1:18080",
            Side::Server,
            counts(&[
                ("ESTABLISHED", 3),
                ("FIN_WAIT2", 1),
                ("LISTEN", 1),
                ("TIME_WAIT", 4),
            ]),
        ),
        // awk '$5=="127.0.0.1:18080"{n[$1]++} END{...}'
        (
            "127.0.0.1:18080",
            Side::Client,
            counts(&[("CLOSE_WAIT", 1), ("ESTABLISHED", 3), ("TIME_WAIT", 2)]),
        ),
        // awk '$4=="[::ffff:127.0.0.1]:18081"{n[$1]++} END{...}'
        (
            "127.0.0.1:18081",
            Side::Server,
            counts(&[("ESTABLISHED", 2), ("TIME_WAIT", 3)]),
        ),
        // awk '$5=="127.0.0.1:18081"{n[$1]++} END{...}'
        (
            "127.0.0.1:18081",
            Side::Client,
            counts(&[("ESTABLISHED", 2)]),
        ),
        // awk '$4=="[::1]:18081"{n[$1]++} END{...}'
        (
            "[::1]:18081",
            Side::Server,
            counts(&[("ESTABLISHED", 1), ("TIME_WAIT", 1)]),
        ),
        // awk '$4 ~ /:18081$/{n[$1]++} END{...}'  (the `*:18081` listener too)
        (
            "[::]:18081",
            Side::Server,
            counts(&[("ESTABLISHED", 3), ("LISTEN", 1), ("TIME_WAIT", 4)]),
        ),
        // awk '$5 ~ /:18081$/{n[$1]++} END{...}'
        ("0.0.0.0:18081", Side::Client, counts(&[("ESTABLISHED", 3)])),
        // awk '$4=="127.0.0.1:18082"{n[$1]++} END{...}'
        (
            "127.0.0.1:18082",
            Side::Server,
            counts(&[("ESTABLISHED", 1), ("LISTEN", 1), ("TIME_WAIT", 1)]),
        ),
        ("127.0.0.1:18099", Side::Server, Counts::new()),
    ];
    for (endpoint, side, want) in cases {
        assert_eq!(
            parse_ss(&text, ep(endpoint), side),
            want,
            "{endpoint} side {side}"
        );
    }
}

/// Dual-stack `twlab serve --listen [::]:8080`, during the load: every
/// IPv4 connection is an AF_INET6 `[::ffff:198.18.10.1]:8080` socket.
#[test]
fn ss_dual_stack_server_during_load() {
    let text = fixture("dual-during-srv-ss.txt");
    // awk '$4=="[::ffff:198.18.10.1]:8080" || $4=="198.18.10.1:8080" {n[$1]++}
    //      END {for (s in n) print s, n[s]}' dual-during-srv-ss.txt
    //   -> ESTAB 6, TIME-WAIT 142
    let want = counts(&[("ESTABLISHED", 6), ("TIME_WAIT", 142)]);
    assert_eq!(parse_ss(&text, ep(SERVER), Side::Server), want);
    // The v4-mapped spelling of the endpoint is the same endpoint.
    assert_eq!(
        parse_ss(&text, ep("[::ffff:198.18.10.1]:8080"), Side::Server),
        want
    );
    // awk '$4 ~ /:8080$/ {n[$1]++} END {...}'  -> LISTEN 1 (`*:8080`), ESTAB 6, TIME-WAIT 142
    let any = counts(&[("ESTABLISHED", 6), ("LISTEN", 1), ("TIME_WAIT", 142)]);
    assert_eq!(parse_ss(&text, ep("[::]:8080"), Side::Server), any);
    assert_eq!(parse_ss(&text, ep("0.0.0.0:8080"), Side::Server), any);
    // Nothing here has the server as its peer, and no other address matches.
    assert_eq!(parse_ss(&text, ep(SERVER), Side::Client), Counts::new());
    assert_eq!(
        parse_ss(&text, ep("198.18.10.2:8080"), Side::Server),
        Counts::new()
    );
}

#[test]
fn ss_client_side_during_load() {
    // awk '$5=="198.18.10.1:8080" {n[$1]++} END {...}' dual-during-cli-ss.txt
    //   -> ESTAB 20, TIME-WAIT 7
    let text = fixture("dual-during-cli-ss.txt");
    let want = counts(&[("ESTABLISHED", 20), ("TIME_WAIT", 7)]);
    assert_eq!(parse_ss(&text, ep(SERVER), Side::Client), want);
    assert_eq!(parse_ss(&text, ep("0.0.0.0:8080"), Side::Client), want);
    assert_eq!(parse_ss(&text, ep(SERVER), Side::Server), Counts::new());

    // awk '$5=="198.18.10.1:8080" {n[$1]++} END {...}' v4-during-cli-ss.txt
    //   -> ESTAB 20, TIME-WAIT 1
    let text = fixture("v4-during-cli-ss.txt");
    assert_eq!(
        parse_ss(&text, ep(SERVER), Side::Client),
        counts(&[("ESTABLISHED", 20), ("TIME_WAIT", 1)])
    );
}

/// IPv4-only `twlab serve --listen 0.0.0.0:8080`: plain IPv4 lines, the
/// listener as `0.0.0.0:8080`.
#[test]
fn ss_ipv4_only_server_during_load() {
    let text = fixture("v4-during-srv-ss.txt");
    // awk '$4=="198.18.10.1:8080" {n[$1]++} END {...}' v4-during-srv-ss.txt
    //   -> ESTAB 4, TIME-WAIT 144
    assert_eq!(
        parse_ss(&text, ep(SERVER), Side::Server),
        counts(&[("ESTABLISHED", 4), ("TIME_WAIT", 144)])
    );
    // awk '$4 ~ /:8080$/ {n[$1]++} END {...}'  -> LISTEN 1, ESTAB 4, TIME-WAIT 144
    assert_eq!(
        parse_ss(&text, ep("[::]:8080"), Side::Server),
        counts(&[("ESTABLISHED", 4), ("LISTEN", 1), ("TIME_WAIT", 144)])
    );
}

/// `-H` output (no header) parses the same as output with the header.
#[test]
fn ss_without_header() {
    let text = fixture("dual-after-srv-ssH.txt");
    // awk '$4=="[::ffff:198.18.10.1]:8080" {n[$1]++} END {...}' dual-after-srv-ssH.txt
    //   -> TIME-WAIT 79
    assert_eq!(
        parse_ss(&text, ep(SERVER), Side::Server),
        counts(&[("TIME_WAIT", 79)])
    );
    // awk '$4 ~ /:8080$/ {n[$1]++} END {...}'  -> LISTEN 1, TIME-WAIT 79
    assert_eq!(
        parse_ss(&text, ep("[::]:8080"), Side::Server),
        counts(&[("LISTEN", 1), ("TIME_WAIT", 79)])
    );
}

/// Unfiltered `ss -tan` (header line), with listeners on other ports:
/// `127.0.0.1%lo:8082` (bound to a device), `[fe80::…]%twlabtest-ss0:8081`
/// (link-local, scoped), `[::1]:8083`.
#[test]
fn ss_unfiltered_with_scoped_and_device_bound_listeners() {
    let text = fixture("dual-after-srv-ss-tan.txt");
    // awk '$4 ~ /:8080$/ {n[$1]++} END {...}' dual-after-srv-ss-tan.txt
    //   -> LISTEN 1, TIME-WAIT 75
    assert_eq!(
        parse_ss(&text, ep("[::]:8080"), Side::Server),
        counts(&[("LISTEN", 1), ("TIME_WAIT", 75)])
    );
    // awk '$4=="[::ffff:198.18.10.1]:8080" {n[$1]++} END {...}'  -> TIME-WAIT 75
    assert_eq!(
        parse_ss(&text, ep(SERVER), Side::Server),
        counts(&[("TIME_WAIT", 75)])
    );
    let listen = counts(&[("LISTEN", 1)]);
    // grep -c '127.0.0.1%lo:8082 ' -> 1
    assert_eq!(parse_ss(&text, ep("127.0.0.1:8082"), Side::Server), listen);
    // grep -c '\[fe80::d0a3:e3ff:fec6:9b7a\]%twlabtest-ss0:8081 ' -> 1
    assert_eq!(
        parse_ss(&text, ep("[fe80::d0a3:e3ff:fec6:9b7a]:8081"), Side::Server),
        listen
    );
    assert_eq!(parse_ss(&text, ep("[::]:8081"), Side::Server), listen);
    // grep -c '\[::1\]:8083 ' -> 1
    assert_eq!(parse_ss(&text, ep("[::1]:8083"), Side::Server), listen);
    // Every line but the header is a socket line:
    // awk 'NR>1' dual-after-srv-ss-tan.txt | wc -l -> 79
    let read = text
        .lines()
        .filter_map(|l| ss_line(l, Side::Server))
        .count();
    assert_eq!(read, 79);
}

/// What the ss parser skips, on real lines.
#[test]
fn ss_lines_it_skips() {
    // The header of iproute2 6.1 (`Peer Address:PortProcess` is one word).
    let header = fixture("dual-during-srv-ss.txt");
    let header = header.lines().next().expect("header line");
    assert!(header.starts_with("State"));
    assert_eq!(ss_line(header, Side::Server), None);
    // The header of the older `ss -tanoe` layout.
    let old = format!(
        "{}/tests/fixtures/sockdiag/ss-tanoe.txt",
        env!("CARGO_MANIFEST_DIR")
    );
    let old = std::fs::read_to_string(&old).expect("ss-tanoe.txt");
    assert_eq!(
        ss_line(old.lines().next().expect("header"), Side::Server),
        None
    );

    // `state listening` (a single state) drops the State column: real
    // output `0      1024   *:8080 *:*`. Without a state the line
    // cannot be counted, so it is skipped; ss_argv asks `state all`.
    let single = fixture("dual-srv-ss-single-state.txt");
    assert_eq!(single.lines().count(), 1);
    assert!(single.starts_with("0 "));
    assert_eq!(ss_line(single.trim_end(), Side::Server), None);
    assert_eq!(
        parse_ss(&single, ep("[::]:8080"), Side::Server),
        Counts::new()
    );

    // Blank, continuation (ss -i / -e detail lines start with blanks and
    // no state) and cut-off lines.
    for line in [
        "",
        "   ",
        "\t cubic wscale:7,7 rto:204 rtt:0.03/0.015",
        "TIME-WAIT 0      0",
        "TIME-WAIT 0      0      198.18.10.1:8080",
        "ESTAB x y 198.18.10.1:8080 198.18.10.2:1",
    ] {
        assert_eq!(ss_line(line, Side::Server), None, "{line:?}");
    }
    // The server side reads the local address only: a peer that does
    // not parse does not matter to it, but does to the client side.
    let line = "ESTAB 0 0 198.18.10.1:8080 garbage";
    assert!(ss_line(line, Side::Server).is_some());
    assert_eq!(ss_line(line, Side::Client), None);
}

/// A Netid column (`ss -an` without `-t`, older layouts) is read too.
#[test]
fn ss_with_a_netid_column() {
    // The first line of dual-during-cli-ss.txt with a Netid word put in front.
    let text = fixture("dual-during-cli-ss.txt");
    let line = text.lines().nth(1).expect("a socket line");
    let with_netid = format!("tcp   {line}");
    assert_eq!(
        ss_line(&with_netid, Side::Client),
        ss_line(line, Side::Client)
    );
    assert!(ss_line(line, Side::Client).is_some());
}

#[test]
fn netstat_dual_stack_server_during_load() {
    let text = fixture("dual-during-srv-netstat.txt");
    // net-tools 2.10 prints the v4-mapped tcp6 sockets dotted:
    // awk '/^tcp/ && $4=="198.18.10.1:8080" {n[$6]++} END {...}' dual-during-srv-netstat.txt
    //   -> ESTABLISHED 6, TIME_WAIT 138
    let want = counts(&[("ESTABLISHED", 6), ("TIME_WAIT", 138)]);
    assert_eq!(parse_netstat(&text, ep(SERVER), Side::Server), want);
    // awk '/^tcp/ && $4 ~ /:8080$/ {n[$6]++} END {...}'  -> + LISTEN 1 (`:::8080`)
    assert_eq!(
        parse_netstat(&text, ep("[::]:8080"), Side::Server),
        counts(&[("ESTABLISHED", 6), ("LISTEN", 1), ("TIME_WAIT", 138)])
    );
    // awk '/^tcp/ && $4=="127.0.0.1:8082"' -> 1 LISTEN (netstat drops the %lo)
    assert_eq!(
        parse_netstat(&text, ep("127.0.0.1:8082"), Side::Server),
        counts(&[("LISTEN", 1)])
    );
    // awk '/^tcp/ && $4=="fe80::d0a3:e3ff:fec6:9b7a:8081"' -> 1 LISTEN
    assert_eq!(
        parse_netstat(&text, ep("[fe80::d0a3:e3ff:fec6:9b7a]:8081"), Side::Server),
        counts(&[("LISTEN", 1)])
    );
    assert_eq!(
        parse_netstat(&text, ep(SERVER), Side::Client),
        Counts::new()
    );
}

#[test]
fn netstat_ipv4_only_server_during_load() {
    let text = fixture("v4-during-srv-netstat.txt");
    // awk '/^tcp/ && $4=="198.18.10.1:8080" {n[$6]++} END {...}' v4-during-srv-netstat.txt
    //   -> ESTABLISHED 10, TIME_WAIT 136
    assert_eq!(
        parse_netstat(&text, ep(SERVER), Side::Server),
        counts(&[("ESTABLISHED", 10), ("TIME_WAIT", 136)])
    );
    // awk '/^tcp/ && $4 ~ /:8080$/ {n[$6]++} END {...}'  -> + LISTEN 1 (`0.0.0.0:8080`)
    assert_eq!(
        parse_netstat(&text, ep("[::]:8080"), Side::Server),
        counts(&[("ESTABLISHED", 10), ("LISTEN", 1), ("TIME_WAIT", 136)])
    );
}

#[test]
fn netstat_after_load_and_client_side() {
    // awk '/^tcp/ && $4 ~ /:8080$/ {n[$6]++} END {...}' dual-after-srv-netstat.txt
    //   -> LISTEN 1, TIME_WAIT 74
    let text = fixture("dual-after-srv-netstat.txt");
    assert_eq!(
        parse_netstat(&text, ep("[::]:8080"), Side::Server),
        counts(&[("LISTEN", 1), ("TIME_WAIT", 74)])
    );
    // awk '/^tcp/ && $5=="198.18.10.1:8080" {n[$6]++} END {...}' dual-during-cli-netstat.txt
    //   -> ESTABLISHED 20, TIME_WAIT 7
    let text = fixture("dual-during-cli-netstat.txt");
    assert_eq!(
        parse_netstat(&text, ep(SERVER), Side::Client),
        counts(&[("ESTABLISHED", 20), ("TIME_WAIT", 7)])
    );
    // awk '/^tcp/ && $5=="198.18.10.1:8080" {n[$6]++} END {...}' v4-during-cli-netstat.txt
    //   -> ESTABLISHED 20, TIME_WAIT 1
    let text = fixture("v4-during-cli-netstat.txt");
    assert_eq!(
        parse_netstat(&text, ep(SERVER), Side::Client),
        counts(&[("ESTABLISHED", 20), ("TIME_WAIT", 1)])
    );
}

/// Why `-W`: the same listeners with and without it. Narrow netstat cuts
/// the link-local address to `fe80::d0a3:e3ff:fe:8081`, which still parses,
/// as another address.
#[test]
fn netstat_needs_wide_output() {
    let wide = fixture("v4-srv-netstat-tlnW.txt");
    let narrow = fixture("v4-srv-netstat-tln-narrow.txt");
    let link_local = ep("[fe80::d0a3:e3ff:fec6:9b7a]:8081");
    let listen = counts(&[("LISTEN", 1)]);
    assert_eq!(parse_netstat(&wide, link_local, Side::Server), listen);
    assert_eq!(
        parse_netstat(&narrow, link_local, Side::Server),
        Counts::new()
    );
    assert_eq!(
        parse_netstat(&narrow, ep("[fe80::d0a3:e3ff:fe]:8081"), Side::Server),
        listen
    );
    // The other listeners read the same either way; ss agrees with -W.
    let ss = fixture("v4-srv-ss-tln.txt");
    for e in ["0.0.0.0:8080", "127.0.0.1:8082", "[::1]:8083"] {
        assert_eq!(parse_netstat(&wide, ep(e), Side::Server), listen, "{e}");
        assert_eq!(parse_netstat(&narrow, ep(e), Side::Server), listen, "{e}");
        assert_eq!(parse_ss(&ss, ep(e), Side::Server), listen, "{e}");
    }
    assert_eq!(parse_ss(&ss, link_local, Side::Server), listen);
}

/// What the netstat parser skips, on real lines and a few broken ones.
#[test]
fn netstat_lines_it_skips() {
    let text = fixture("v4-srv-netstat-tlnW.txt");
    let mut lines = text.lines();
    // "Active Internet connections (only servers)" and the column header.
    for _ in 0..2 {
        let header = lines.next().expect("header line");
        assert_eq!(netstat_line(header, Side::Server), None, "{header:?}");
    }
    // awk '/^tcp/' v4-srv-netstat-tlnW.txt | wc -l -> 4: every other line is read.
    assert_eq!(
        lines.filter_map(|l| netstat_line(l, Side::Server)).count(),
        4
    );
    for line in [
        "",
        // udp and unix sockets, if someone ran netstat -an.
        "udp        0      0 0.0.0.0:68              0.0.0.0:*",
        "unix  2      [ ACC ]     STREAM     LISTENING     21436    /run/x.sock",
        // A localized state name (why netstat runs with LC_ALL=C).
        "tcp        0      0 198.18.10.1:8080        198.18.10.2:40456       VERBUNDEN",
        "tcp        0      0 198.18.10.1:8080        198.18.10.2:40456",
        "tcp        x      0 198.18.10.1:8080        198.18.10.2:40456       TIME_WAIT",
    ] {
        assert_eq!(netstat_line(line, Side::Server), None, "{line:?}");
    }
    // Other net-tools versions keep the ::ffff: prefix (not producible here).
    let mapped = "tcp6       0      0 ::ffff:198.18.10.1:8080 ::ffff:198.18.10.2:40456 TIME_WAIT";
    assert_eq!(
        parse_netstat(mapped, ep(SERVER), Side::Server),
        counts(&[("TIME_WAIT", 1)])
    );
}
