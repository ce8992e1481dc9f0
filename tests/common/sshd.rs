//! A real `sshd` in a throwaway network namespace, for the SSH host tests.
//!
//! [`SshdHost::start`] builds a namespace `twlabtest-ssh-<tag>` joined to
//! this machine's own namespace by a veth pair (a /30 of 198.18.20.0/24 per
//! fixture, so several can coexist), makes a host key and a client key with
//! `ssh-keygen`, and runs `/usr/sbin/sshd -D` inside the namespace, listening
//! on the namespace's address and accepting the client key for root. The
//! known_hosts file it writes holds the host key for that address, so a
//! strict host key check passes. The namespace shares this machine's
//! filesystem and PID space: what runs "on the host" can be checked locally.
//!
//! Dropping the fixture (also on panic) kills sshd and whatever still runs
//! in the namespace, by PID, and deletes the namespace and the veth pair.
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use twlab::scenario::labfile::{HostSpec, SshDestination};

/// Every namespace of these fixtures starts with this (never `twlab-`,
/// which `twlab clean` owns).
pub const NETNS_PREFIX: &str = "twlabtest-ssh-";

/// Finding a free subnet and claiming it happen under this lock.
static SETUP: Mutex<()> = Mutex::new(());

/// An sshd reachable at [`SshdHost::addr`], inside its own namespace.
pub struct SshdHost {
    /// The namespace sshd runs in.
    pub netns: String,
    /// The address sshd listens on (the namespace's end of the veth pair).
    pub addr: Ipv4Addr,
    /// This machine's end of the veth pair.
    pub root_addr: Ipv4Addr,
    /// The veth end in this machine's namespace.
    pub veth: String,
    /// The client's private key (authorized for root).
    pub identity: PathBuf,
    /// A known_hosts file with the host key for `addr`.
    pub known_hosts: PathBuf,
    dir: tempfile::TempDir,
    sshd: Option<Child>,
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ip(args: &[&str]) {
    run(Command::new("ip").args(args));
}

fn fnv(s: &str) -> u32 {
    s.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// The PIDs of the processes in a namespace (ours: only these fixtures put
/// anything there).
pub fn netns_pids(netns: &str) -> Vec<i32> {
    Command::new("ip")
        .args(["netns", "pids", netns])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn netns_exists(netns: &str) -> bool {
    Path::new("/run/netns").join(netns).exists()
}

fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// Remote pidfiles (`/run/twlab/pids/twlab-*.pid`: the sshd serves root; see `twlab::lab::ssh`) that name
/// one of `pids`: their wrapper shell is killed with them and cannot remove
/// them itself.
fn remove_pidfiles_of(pids: &[i32]) {
    let Ok(entries) = std::fs::read_dir(twlab::lab::ssh::PIDFILE_DIR) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !(name.starts_with("twlab-") && name.ends_with(".pid")) {
            continue;
        }
        let pid = std::fs::read_to_string(e.path())
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Kill everything in the namespace, then delete it and the veth end.
fn teardown(netns: &str, veth: &str) {
    if netns_exists(netns) {
        for _ in 0..50 {
            let pids = netns_pids(netns);
            if pids.is_empty() {
                break;
            }
            remove_pidfiles_of(&pids);
            for pid in pids {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = Command::new("ip").args(["netns", "del", netns]).status();
    }
    if link_exists(veth) {
        let _ = Command::new("ip").args(["link", "del", veth]).status();
    }
}

/// Root-namespace IPv4 addresses in use.
fn addresses_in_use() -> String {
    Command::new("ip")
        .args(["-o", "-4", "addr", "show"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

impl SshdHost {
    /// Build the namespace and start sshd; panics (after cleaning up) when
    /// anything fails.
    pub fn start(tag: &str) -> SshdHost {
        assert!(
            tag.len() <= 16 && tag.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'),
            "fixture tag `{tag}`: at most 16 of [a-z0-9-]"
        );
        let netns = format!("{NETNS_PREFIX}{tag}");
        let hash = fnv(tag);
        let veth = format!("twts{:06x}r", hash & 0xff_ffff);
        let peer = format!("twts{:06x}n", hash & 0xff_ffff);
        let guard = SETUP.lock().unwrap_or_else(|e| e.into_inner());
        // A leftover of an earlier, killed test run of this tag.
        teardown(&netns, &veth);
        // A /30 per fixture: start where the tag's hash points, take the
        // first one no interface of this machine uses.
        let in_use = addresses_in_use();
        let first = (hash % 64) as u8;
        let subnet = (0..64u8)
            .map(|i| (first + i) % 64)
            .find(|k| !in_use.contains(&format!("inet 198.18.20.{}/", k * 4 + 1)))
            .expect("a free /30 in 198.18.20.0/24");
        let root_addr = Ipv4Addr::new(198, 18, 20, subnet * 4 + 1);
        let addr = Ipv4Addr::new(198, 18, 20, subnet * 4 + 2);
        let dir = tempfile::Builder::new()
            .prefix("twlabtest-sshd-")
            .tempdir()
            .expect("tempdir");
        let mut host = SshdHost {
            netns,
            addr,
            root_addr,
            veth,
            identity: dir.path().join("client"),
            known_hosts: dir.path().join("known_hosts"),
            dir,
            sshd: None,
        };
        // From here on, a panic drops `host`, which removes what exists.
        ip(&["netns", "add", &host.netns]);
        ip(&["-n", &host.netns, "link", "set", "lo", "up"]);
        ip(&[
            "link",
            "add",
            &host.veth,
            "type",
            "veth",
            "peer",
            "name",
            &peer,
            "netns",
            &host.netns,
        ]);
        ip(&["addr", "add", &format!("{root_addr}/30"), "dev", &host.veth]);
        ip(&["link", "set", &host.veth, "up"]);
        ip(&[
            "-n",
            &host.netns,
            "addr",
            "add",
            &format!("{addr}/30"),
            "dev",
            &peer,
        ]);
        ip(&["-n", &host.netns, "link", "set", &peer, "up"]);
        drop(guard);
        host.start_sshd();
        host
    }

    fn start_sshd(&mut self) {
        let d = self.dir.path();
        for (key, comment) in [
            ("hostkey", "twlabtest-host"),
            ("client", "twlabtest-client"),
        ] {
            run(Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
                .arg(d.join(key)));
        }
        std::fs::copy(d.join("client.pub"), d.join("authorized_keys")).expect("authorized_keys");
        let config = format!(
            "ListenAddress {addr}\n\
             Port 22\n\
             HostKey {d}/hostkey\n\
             PidFile {d}/sshd.pid\n\
             AuthorizedKeysFile {d}/authorized_keys\n\
             PermitRootLogin prohibit-password\n\
             PubkeyAuthentication yes\n\
             PasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             StrictModes no\n\
             UsePAM no\n\
             AllowTcpForwarding yes\n\
             AllowStreamLocalForwarding yes\n\
             LogLevel VERBOSE\n",
            addr = self.addr,
            d = d.display()
        );
        std::fs::write(d.join("sshd_config"), config).expect("sshd_config");
        // sshd's privilege separation directory.
        std::fs::create_dir_all("/run/sshd").expect("/run/sshd");
        let log = std::fs::File::create(d.join("sshd.log")).expect("sshd.log");
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.netns,
                "/usr/sbin/sshd",
                "-D",
                "-e",
                "-f",
            ])
            .arg(d.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start sshd");
        self.sshd = Some(child);
        let target = SocketAddr::from((self.addr, 22));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if TcpStream::connect_timeout(&target, Duration::from_millis(200)).is_ok() {
                break;
            }
            if let Some(Ok(Some(status))) = self.sshd.as_mut().map(|c| c.try_wait()) {
                panic!("sshd exited ({status}): {}", self.sshd_log());
            }
            assert!(
                Instant::now() < deadline,
                "sshd does not accept on {target}: {}",
                self.sshd_log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let host_pub = std::fs::read_to_string(d.join("hostkey.pub")).expect("hostkey.pub");
        std::fs::write(&self.known_hosts, format!("{} {}", self.addr, host_pub))
            .expect("known_hosts");
    }

    /// What sshd logged so far.
    pub fn sshd_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    /// sshd's PID (it is the `ip netns exec` child: ip execs it).
    pub fn sshd_pid(&self) -> Option<u32> {
        self.sshd.as_ref().map(Child::id)
    }

    /// A directory that lives as long as the fixture.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `root@ADDR`.
    pub fn destination(&self) -> String {
        format!("root@{}", self.addr)
    }

    /// The lab file's view of this host.
    pub fn spec(&self) -> HostSpec {
        HostSpec {
            ssh: Some(SshDestination(self.destination())),
            identity: Some(self.identity.clone()),
            known_hosts: Some(self.known_hosts.clone()),
            address: Some(self.addr.into()),
            ..HostSpec::default()
        }
    }

    /// `ip netns exec NS argv...` to the end, its stdout.
    pub fn exec(&self, argv: &[&str]) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.netns])
            .args(argv)
            .output()
            .expect("ip netns exec");
        assert!(
            out.status.success(),
            "ip netns exec {} {argv:?}: {}",
            self.netns,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for SshdHost {
    fn drop(&mut self) {
        if let Some(mut sshd) = self.sshd.take() {
            if let Ok(pid) = i32::try_from(sshd.id()) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
            let deadline = Instant::now() + Duration::from_secs(3);
            while matches!(sshd.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = sshd.kill();
            let _ = sshd.wait();
        }
        // The per-connection sshd processes and anything they started.
        teardown(&self.netns, &self.veth);
    }
}
