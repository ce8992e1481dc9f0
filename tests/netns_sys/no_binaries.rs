//! The whole lab comes up with no external program available.
//!
//! The test re-runs this test binary as a child with an empty environment
//! and `PATH=/nonexistent`, selecting only the ignored `child_builds_lab`
//! test, so any attempt to run `ip`, `sysctl`, `nft`, `conntrack` (or
//! anything else found via PATH) would fail in the child.

use std::io;
use std::process::Command;

use crate::common::*;
use twlab::lab::netns::sys as ns;

const CHILD_ENV: &str = "NSLAB_NOBIN_CHILD";

#[test]
fn lab_works_without_any_binary_on_path() {
    if !require_root() {
        return;
    }
    let (srv, cli) = (ns_name("nobin-s"), ns_name("nobin-c"));
    // The child creates and deletes them; the guard cleans up if it dies.
    let _guard = NsGuard::watch(&[&srv, &cli]);
    let exe = std::env::current_exe().expect("current_exe");
    let out = Command::new(exe)
        .args([
            "no_binaries::child_builds_lab",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env_clear()
        .env("PATH", "/nonexistent")
        .env(CHILD_ENV, format!("{srv},{cli}"))
        .output()
        .expect("re-run the test binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("LAB OK"),
        "child did not run the lab:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("1 passed"), "{stdout}");
    let left = ns::list_netns().unwrap();
    assert!(!left.contains(&srv) && !left.contains(&cli), "{left:?}");
}

/// Only meaningful as the child of the test above.
#[test]
#[ignore = "run by lab_works_without_any_binary_on_path in a clean environment"]
fn child_builds_lab() {
    let spec = std::env::var(CHILD_ENV).expect("run by lab_works_without_any_binary_on_path");
    let (srv, cli) = spec.split_once(',').expect("SERVER,CLIENT");
    assert_eq!(std::env::var("PATH").as_deref(), Ok("/nonexistent"));
    assert_eq!(std::env::vars_os().count(), 2, "environment not cleared");
    let _guard = NsGuard::watch(&[srv, cli]);
    build_and_check(srv, cli).unwrap();
    ns::del_netns(srv).unwrap();
    ns::del_netns(cli).unwrap();
    println!("LAB OK");
}

fn build_and_check(srv: &str, cli: &str) -> io::Result<()> {
    ns::add_netns(srv)?;
    ns::add_netns(cli)?;
    let names = ns::list_netns()?;
    assert!(names.iter().any(|n| n == srv) && names.iter().any(|n| n == cli));
    assert!(ns::netns_pids(srv)?.is_empty());
    ns::veth_pair(srv, "twlab0", SERVER, cli, "twlab0", CLIENT, 24)?;
    for n in [srv, cli] {
        ns::sysctl_write(n, "net.ipv4.tcp_tw_reuse", "1")?;
        assert_eq!(ns::sysctl_read(n, "net.ipv4.tcp_tw_reuse")?, "1");
    }
    ns::enable_conntrack(srv)?;
    tcp_exchange(srv, cli)?;
    // Without the conntrack tool: the namespace's own entry counter.
    let count: u64 = ns::sysctl_read(srv, "net.netfilter.nf_conntrack_count")?
        .trim()
        .parse()
        .map_err(io::Error::other)?;
    assert!(count >= 1, "no conntrack entry in {srv}");
    assert_eq!(
        ns::sysctl_read(cli, "net.netfilter.nf_conntrack_count")?,
        "0"
    );
    Ok(())
}
