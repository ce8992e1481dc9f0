//! sysctls written inside a namespace stay there.

use std::io;

use crate::common::*;
use twlab::lab::netns::sys as ns;

const HOST_FILE: &str = "/proc/sys/net/ipv4/tcp_tw_reuse";

fn host_value() -> String {
    std::fs::read_to_string(HOST_FILE)
        .unwrap()
        .trim_end()
        .to_string()
}

#[test]
fn sysctl_write_stays_in_namespace() {
    if !require_root() {
        return;
    }
    let name = ns_name("sysctl");
    let _guard = NsGuard::add(&[&name]);
    let host_before = host_value();
    // The brief's case is 1; if the machine happens to be at 1, use 0 so a
    // leak would still show.
    let want = if host_before == "1" { "0" } else { "1" };

    ns::sysctl_write(&name, "net.ipv4.tcp_tw_reuse", want).unwrap();
    assert_eq!(
        ns::sysctl_read(&name, "net.ipv4.tcp_tw_reuse").unwrap(),
        want
    );

    // The machine's value, read from this (main) thread and from a fresh
    // thread, is unchanged.
    assert_eq!(host_value(), host_before);
    assert_eq!(std::thread::spawn(host_value).join().unwrap(), host_before);
    // iproute2's view of the namespace agrees.
    let seen = tool_stdout(&["ip", "netns", "exec", &name, "cat", HOST_FILE]);
    assert_eq!(seen.trim_end(), want);

    // Multi-field values round-trip as the kernel prints them (tabs).
    ns::sysctl_write(&name, "net.ipv4.ip_local_port_range", "40000 50000").unwrap();
    assert_eq!(
        ns::sysctl_read(&name, "net.ipv4.ip_local_port_range").unwrap(),
        "40000\t50000"
    );
    // A value the kernel refuses is an error naming the sysctl.
    let err = ns::sysctl_write(&name, "net.ipv4.tcp_tw_reuse", "banana").unwrap_err();
    assert!(err.to_string().contains("net.ipv4.tcp_tw_reuse"), "{err}");
    // A sysctl that does not exist is NotFound.
    let err = ns::sysctl_read(&name, "net.ipv4.no_such_thing").unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
    assert_eq!(host_value(), host_before);
}

#[test]
fn sysctl_names_are_validated() {
    for bad in [
        "",
        "net",
        "net.",
        "kernel.pid_max",
        "net..ipv4",
        "net.ipv4.",
        "net.ipv4/../../kernel/pid_max",
        "net.ipv4.conf.eth0/x",
        "net.IPV4.tcp_tw_reuse",
        "net.ipv4 .x",
        "/proc/sys/net/ipv4/tcp_tw_reuse",
    ] {
        let err = ns::sysctl_read("whatever", bad).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{bad:?}: {err}");
        let err = ns::sysctl_write("whatever", bad, "1").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{bad:?}: {err}");
    }
    assert_eq!(
        ns::sysctl_path("net.ipv4.conf.twlab0.rp_filter").unwrap(),
        std::path::Path::new("/proc/sys/net/ipv4/conf/twlab0/rp_filter")
    );
    let err = ns::sysctl_write("whatever", "net.ipv4.tcp_tw_reuse", "1\n2").unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
}
