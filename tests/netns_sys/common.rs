//! Shared helpers for the root-only namespace tests.
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use twlab::lab::netns::sys as ns;

pub const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
pub const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

/// These tests create namespaces, veths and nf_tables rules: they need
/// root. Without it they say so and pass, except under `CI=true`, where
/// missing root fails them (CI runs as root).
pub fn require_root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "the namespace tests need root in CI"
    );
    eprintln!("SKIPPED: needs root (network namespaces)");
    false
}

/// A `twlabtest-ns-TAG-PID` namespace name, unique per test and process.
pub fn ns_name(tag: &str) -> String {
    format!("twlabtest-ns-{tag}-{}", std::process::id())
}

/// Deletes the named namespaces when dropped, also when the test panics.
pub struct NsGuard(pub Vec<String>);

impl NsGuard {
    /// Creates each namespace (deleting a leftover of the same name first).
    pub fn add(names: &[&str]) -> NsGuard {
        let guard = NsGuard(names.iter().map(|s| s.to_string()).collect());
        for n in names {
            ns::del_netns(n).expect("delete leftover namespace");
            ns::add_netns(n).unwrap_or_else(|e| panic!("add_netns {n}: {e}"));
        }
        guard
    }
    /// Only deletes, for namespaces someone else creates.
    pub fn watch(names: &[&str]) -> NsGuard {
        NsGuard(names.iter().map(|s| s.to_string()).collect())
    }
}

impl Drop for NsGuard {
    fn drop(&mut self) {
        for n in &self.0 {
            if let Err(e) = ns::del_netns(n) {
                eprintln!("cleanup: del_netns {n}: {e}");
            }
        }
    }
}

/// Runs an external tool (verification only), failing the test with its
/// output if it cannot start or exits non-zero.
pub fn tool(argv: &[&str]) -> Output {
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {:?} ({e}); the tests verify with iproute2, nftables and conntrack: \
                 apt-get install iproute2 nftables conntrack",
                argv[0]
            )
        });
    assert!(
        out.status.success(),
        "{argv:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn tool_stdout(argv: &[&str]) -> String {
    String::from_utf8_lossy(&tool(argv).stdout).into_owned()
}

/// One bounded ping/pong TCP exchange: listener in `server_ns` on
/// `SERVER:0`, client in `client_ns`. Returns the server port.
pub fn tcp_exchange(server_ns: &str, client_ns: &str) -> io::Result<u16> {
    let listener = ns::in_netns(Path::new(server_ns), || TcpListener::bind((SERVER, 0)))?;
    let port = listener.local_addr()?.port();
    let server = std::thread::spawn(move || -> io::Result<()> {
        listener.set_nonblocking(true)?;
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match listener.accept() {
                Ok((mut s, _)) => {
                    s.set_nonblocking(false)?;
                    s.set_read_timeout(Some(Duration::from_secs(5)))?;
                    let mut buf = [0u8; 4];
                    s.read_exact(&mut buf)?;
                    s.write_all(b"pong")?;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => return Err(e),
            }
        }
    });
    let reply = ns::in_netns(Path::new(client_ns), move || {
        let mut s =
            TcpStream::connect_timeout(&SocketAddr::from((SERVER, port)), Duration::from_secs(5))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.write_all(b"ping")?;
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf)?;
        Ok(buf)
    });
    let served = server
        .join()
        .map_err(|_| io::Error::other("server thread panicked"))?;
    let reply = reply?;
    served?;
    if &reply != b"pong" {
        return Err(io::Error::other(format!("unexpected reply {reply:?}")));
    }
    Ok(port)
}
