//! enable_conntrack makes the namespace track connections.

use crate::common::*;
use twlab::lab::netns::sys as ns;

/// conntrack entries in `ns` towards SERVER:port.
fn entries(ns_name: &str, port: u16) -> Vec<String> {
    let out = tool_stdout(&[
        "ip",
        "netns",
        "exec",
        ns_name,
        "conntrack",
        "-L",
        "-p",
        "tcp",
    ]);
    let want = format!("dport={port} ");
    out.lines()
        .filter(|l| l.contains("dst=198.18.0.1") && l.contains(&want))
        .map(str::to_string)
        .collect()
}

#[test]
fn enable_conntrack_tracks_connections() {
    if !require_root() {
        return;
    }
    let (srv, cli) = (ns_name("ctsrv"), ns_name("ctcli"));
    let _guard = NsGuard::add(&[&srv, &cli]);
    ns::veth_pair(&srv, "twlab0", SERVER, &cli, "twlab0", CLIENT, 24).unwrap();

    // Control: without a hook that needs it, nothing is tracked.
    let port = tcp_exchange(&srv, &cli).unwrap();
    assert!(
        entries(&srv, port).is_empty(),
        "tracked before enable_conntrack"
    );

    ns::enable_conntrack(&srv).unwrap();
    // Idempotent: a second call replaces the table, it does not add rules.
    ns::enable_conntrack(&srv).unwrap();

    let port = tcp_exchange(&srv, &cli).unwrap();
    let found = entries(&srv, port);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("tcp "), "{found:?}");
    // Nothing was enabled in the client namespace.
    assert!(entries(&cli, port).is_empty());

    let rules = tool_stdout(&["ip", "netns", "exec", &srv, "nft", "list", "ruleset"]);
    assert_eq!(rules.matches("table inet twlab_ct").count(), 1, "{rules}");
    assert_eq!(rules.matches("ct state").count(), 2, "{rules}");
    for want in [
        "chain pre {",
        "type filter hook prerouting priority mangle; policy accept;",
        "chain out {",
        "type filter hook output priority mangle; policy accept;",
        "established",
        "related",
        "new",
        "invalid",
    ] {
        assert!(rules.contains(want), "missing {want:?} in:\n{rules}");
    }
    // The rules were evaluated (their counters moved).
    assert!(!rules.contains("counter packets 0 bytes 0"), "{rules}");
    // nft can parse its own listing of our table (it is a normal ruleset).
    let check = std::process::Command::new("ip")
        .args(["netns", "exec", &srv, "nft", "-c", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().map(|mut i| i.write_all(rules.as_bytes()));
            c.wait_with_output()
        })
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
}

#[test]
fn enable_conntrack_missing_namespace_is_an_error() {
    if !require_root() {
        return;
    }
    let err = ns::enable_conntrack("twlabtest-ns-not-there").unwrap_err();
    assert!(
        err.to_string()
            .contains("/run/netns/twlabtest-ns-not-there"),
        "{err}"
    );
}
