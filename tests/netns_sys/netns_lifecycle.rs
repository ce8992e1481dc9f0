//! add/list/pids/del round trip, checked against iproute2.

use std::io;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::common::*;
use twlab::lab::netns::sys as ns;

#[test]
fn add_list_pids_del_round_trip() {
    if !require_root() {
        return;
    }
    let name = ns_name("life");
    let _guard = NsGuard::add(&[&name]);

    assert!(ns::list_netns().unwrap().contains(&name));
    let ip_list = tool_stdout(&["ip", "netns", "list"]);
    assert!(
        ip_list
            .lines()
            .any(|l| l.split_whitespace().next() == Some(name.as_str())),
        "ip netns list does not show {name}:\n{ip_list}"
    );
    tool(&["ip", "netns", "exec", &name, "true"]);

    // A fresh namespace has only a (down) lo.
    let links = tool_stdout(&["ip", "-n", &name, "-o", "link"]);
    assert_eq!(links.lines().count(), 1, "{links}");
    assert!(links.contains("lo:"), "{links}");

    // Adding the same name again fails and names the path.
    let err = ns::add_netns(&name).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AlreadyExists, "{err}");
    assert!(
        err.to_string().contains(&format!("/run/netns/{name}")),
        "{err}"
    );

    // pids: nothing, then a process we start inside, then nothing again.
    assert!(ns::netns_pids(&name).unwrap().is_empty());
    let mut child = Command::new("ip")
        .args(["netns", "exec", &name, "sleep", "30"])
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn ip netns exec sleep");
    let pid = child.id() as i32;
    let mut seen = false;
    for _ in 0..200 {
        if ns::netns_pids(&name).unwrap().contains(&pid) {
            seen = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let ip_pids = tool_stdout(&["ip", "netns", "pids", &name]);
    let ours = ns::netns_pids(&name).unwrap();
    child.kill().ok();
    child.wait().ok();
    assert!(seen, "netns_pids never showed {pid}");
    let ip_pids: Vec<i32> = ip_pids
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    assert_eq!(ours, ip_pids, "netns_pids and ip netns pids differ");
    assert!(!ours.contains(&(std::process::id() as i32)));

    // in_netns by name and by path see the same namespace, not ours.
    let inode = |p: &str| std::fs::metadata(p).map(|m| std::os::unix::fs::MetadataExt::ino(&m));
    let ns_ino = inode(&format!("/run/netns/{name}")).unwrap();
    let by_name =
        ns::in_netns(Path::new(&name), move || inode("/proc/thread-self/ns/net")).unwrap();
    let p = format!("/run/netns/{name}");
    let by_path = ns::in_netns(Path::new(&p), move || inode("/proc/thread-self/ns/net")).unwrap();
    assert_eq!(by_name, ns_ino);
    assert_eq!(by_path, ns_ino);
    assert_ne!(inode("/proc/thread-self/ns/net").unwrap(), ns_ino);

    ns::del_netns(&name).unwrap();
    assert!(!ns::list_netns().unwrap().contains(&name));
    assert!(!Path::new(&format!("/run/netns/{name}")).exists());
    let ip_list = tool_stdout(&["ip", "netns", "list"]);
    assert!(!ip_list.contains(&name), "{ip_list}");
    // Deleting what is not there is fine.
    ns::del_netns(&name).unwrap();
    // And pids of a missing namespace is an error naming the path.
    let err = ns::netns_pids(&name).unwrap_err();
    assert!(err.to_string().contains(&name), "{err}");
}

#[test]
fn bad_names_are_rejected() {
    for bad in ["", ".", "..", "a/b", "../etc", "x\0y"] {
        let err = ns::add_netns(bad).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{bad:?}: {err}");
        assert_eq!(
            ns::del_netns(bad).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
    }
}

#[test]
fn in_netns_reports_errors_and_panics() {
    if !require_root() {
        return;
    }
    let err = ns::in_netns(Path::new("twlabtest-ns-does-not-exist"), || Ok(())).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
    assert!(
        err.to_string()
            .contains("/run/netns/twlabtest-ns-does-not-exist"),
        "{err}"
    );
    // Not a namespace file: setns fails with EINVAL and says so.
    let err = ns::in_netns(Path::new("/proc/self/status"), || Ok(())).unwrap_err();
    assert!(err.to_string().contains("setns"), "{err}");

    let name = ns_name("panic");
    let _guard = NsGuard::add(&[&name]);
    let err = ns::in_netns(Path::new(&name), || -> io::Result<()> { panic!("boom") }).unwrap_err();
    assert!(err.to_string().contains("panicked"), "{err}");
    let v = ns::in_netns(Path::new(&name), || Ok(41 + 1)).unwrap();
    assert_eq!(v, 42);
}

/// A lab namespace gets a TCP socket hash table of its own, as large as
/// the machine's (so its derived defaults are those of a namespace that
/// shares the machine's), and the machine's `tcp_child_ehash_entries` is
/// not touched: the setting is made in a throwaway namespace.
#[test]
fn a_namespace_has_its_own_tcp_hash_with_the_defaults_of_a_shared_one() {
    if !require_root() {
        return;
    }
    let child = Path::new("/proc/sys/net/ipv4/tcp_child_ehash_entries");
    if !child.exists() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI's kernel should have per-namespace TCP hash tables (Linux ≥ 6.1)"
        );
        eprintln!("SKIPPED: this kernel has no tcp_child_ehash_entries (Linux < 6.1)");
        return;
    }
    let read = |p: &str| std::fs::read_to_string(p).unwrap().trim().to_string();
    let machine_child = read("/proc/sys/net/ipv4/tcp_child_ehash_entries");
    let machine: i64 = read("/proc/sys/net/ipv4/tcp_ehash_entries")
        .parse()
        .unwrap();
    let name = ns_name("ehash");
    let _guard = NsGuard::add(&[&name]);

    // Positive: the namespace owns its table (negative means shared).
    let own: i64 = ns::sysctl_read(&name, "net.ipv4.tcp_ehash_entries")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(own, machine.abs(), "the namespace's own table");
    let tw: i64 = ns::sysctl_read(&name, "net.ipv4.tcp_max_tw_buckets")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        tw,
        machine.abs() / 2,
        "tcp_max_tw_buckets as with a shared table"
    );
    // Namespaces made from this one are not affected either.
    assert_eq!(
        ns::sysctl_read(&name, "net.ipv4.tcp_child_ehash_entries").unwrap(),
        "0"
    );
    assert_eq!(
        read("/proc/sys/net/ipv4/tcp_child_ehash_entries"),
        machine_child,
        "the machine's setting is untouched"
    );
}
