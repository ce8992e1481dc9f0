//! veth_pair between two fresh namespaces.

use std::io;

use crate::common::*;
use twlab::lab::netns::sys as ns;

#[test]
fn veth_pair_addresses_and_tcp() {
    if !require_root() {
        return;
    }
    let (a, b) = (ns_name("vetha"), ns_name("vethb"));
    let _guard = NsGuard::add(&[&a, &b]);

    ns::veth_pair(&a, "twlab0", SERVER, &b, "twlab0", CLIENT, 24).unwrap();

    let addr_a = tool_stdout(&["ip", "-n", &a, "addr"]);
    assert!(addr_a.contains("inet 198.18.0.1/24"), "{addr_a}");
    assert!(addr_a.contains("twlab0@"), "{addr_a}");
    let addr_b = tool_stdout(&["ip", "-n", &b, "addr", "show", "twlab0"]);
    assert!(addr_b.contains("inet 198.18.0.2/24"), "{addr_b}");
    for n in [&a, &b] {
        for dev in ["twlab0", "lo"] {
            let link = tool_stdout(&["ip", "-n", n, "-o", "link", "show", dev]);
            assert!(link.contains(",UP"), "{n} {dev} not up: {link}");
        }
        let lo = tool_stdout(&["ip", "-n", n, "-o", "addr", "show", "lo"]);
        assert!(lo.contains("127.0.0.1/8"), "{n}: {lo}");
    }
    // The peer of A's end lives in B, and nothing appeared here.
    let detail = tool_stdout(&["ip", "-n", &a, "-d", "link", "show", "twlab0"]);
    assert!(detail.contains("veth"), "{detail}");
    let here = std::process::Command::new("ip")
        .args(["link", "show", "twlab0"])
        .output()
        .expect("run ip");
    assert!(
        !here.status.success(),
        "twlab0 exists in the caller's namespace"
    );

    tcp_exchange(&a, &b).unwrap();

    // Creating it again fails with EEXIST and says what it was doing.
    let err = ns::veth_pair(&a, "twlab0", SERVER, &b, "twlab0", CLIENT, 24).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AlreadyExists, "{err}");
    assert!(err.to_string().contains("veth"), "{err}");
}

#[test]
fn veth_pair_rejects_bad_input() {
    let e = ns::veth_pair("a", "this-name-is-too-long", SERVER, "b", "x", CLIENT, 24).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    let e = ns::veth_pair("a", "x", SERVER, "b", "y", CLIENT, 33).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    let e = ns::veth_pair("a/..", "x", SERVER, "b", "y", CLIENT, 24).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
}

#[test]
fn veth_pair_with_taken_peer_name_fails_cleanly() {
    if !require_root() {
        return;
    }
    let (a, b) = (ns_name("vfaila"), ns_name("vfailb"));
    let _guard = NsGuard::add(&[&a, &b]);
    // The peer name is taken in B: the kernel refuses the whole pair, and
    // no half of it is left in A.
    ns::veth_pair(&a, "v0", SERVER, &b, "p0", CLIENT, 24).unwrap();
    let err = ns::veth_pair(&a, "v1", SERVER, &b, "p0", CLIENT, 24).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AlreadyExists, "{err}");
    assert!(err.to_string().contains("create veth v1"), "{err}");
    let links = tool_stdout(&["ip", "-n", &a, "-o", "link"]);
    assert!(!links.contains("v1"), "{links}");
}
