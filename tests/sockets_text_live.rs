//! `twlab::measure::sockets_text` against live `ss` and `netstat`, compared with
//! sock_diag on the same sockets.
//!
//! Each test builds a namespace pair joined by a veth (`198.18.10.1/24`
//! server, `198.18.10.2/24` client; IPv6 is disabled on the veth so nothing
//! but those two addresses is ever used), runs `twlab serve` in the server
//! namespace and `twlab load` from the client, and compares, for both sides,
//! [`parse_ss`] (on the output of [`ss_argv`]) and [`parse_netstat`] (on
//! [`netstat_argv`]) with [`SockDiag::count`]:
//!
//! * during the load, the text is read between two sock_diag counts. No
//!   TIME_WAIT socket expires during a test (they last 60 s), so the text's
//!   TIME_WAIT must lie between the two counts (±2% for safety); LISTEN must
//!   be equal;
//! * after the load, every state must agree (TIME_WAIT ±2%, LISTEN exactly,
//!   the last closing handshakes ±2).
//!
//! Needs root (network namespaces). Without root the tests say so and pass,
//! unless `CI=true`, where they fail. Namespaces are named `twlabtest-ss-*`
//! (not `twlab-*`, which `twlab clean` owns); they and the processes started
//! here (by PID) are removed at the end, on panic too ([`Lab`] is a drop
//! guard). nextest runs this binary in the serialized `lab` group.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::require_root;
use twlab::common::counts::Counts;
use twlab::common::endpoint::{Endpoint, Side};
use twlab::measure::sockdiag::SockDiag;
use twlab::measure::sockets_text::{netstat_argv, parse_netstat, parse_ss, ss_argv};

const SERVER_ADDR: &str = "198.18.10.1";
const CLIENT_ADDR: &str = "198.18.10.2";
const IFACE: &str = "veth-twt";

/// A namespace pair and the processes started in it; all removed on drop.
struct Lab {
    server: String,
    client: String,
    children: Vec<Child>,
}

impl Lab {
    fn create(tag: &str) -> Lab {
        let pid = std::process::id();
        let lab = Lab {
            server: format!("twlabtest-ss-{tag}-{pid}-srv"),
            client: format!("twlabtest-ss-{tag}-{pid}-cli"),
            children: Vec::new(),
        };
        for ns in [&lab.server, &lab.client] {
            // A leftover of an earlier, killed run of this pid: start clean.
            if netns_path(ns).exists() {
                let _ = Command::new("ip").args(["netns", "del", ns]).status();
            }
            ip(&["netns", "add", ns]);
        }
        // Created directly inside the namespaces: no device in the host's.
        ip(&[
            "link",
            "add",
            IFACE,
            "netns",
            &lab.server,
            "type",
            "veth",
            "peer",
            "name",
            IFACE,
            "netns",
            &lab.client,
        ]);
        for (ns, addr) in [(&lab.server, SERVER_ADDR), (&lab.client, CLIENT_ADDR)] {
            // No IPv6 on the veth: no link-local address, no DAD or router
            // solicitation; the only addresses in use are 198.18.10.1 and .2.
            let off = format!("net.ipv6.conf.{IFACE}.disable_ipv6=1");
            run_ok(Command::new("ip").args(["netns", "exec", ns, "sysctl", "-qw", &off]));
            ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", IFACE]);
            ip(&["-n", ns, "link", "set", IFACE, "up"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        lab
    }

    fn ns(&self, side: Side) -> &str {
        match side {
            Side::Server => &self.server,
            Side::Client => &self.client,
        }
    }

    /// Start `twlab ARGS...` in the namespace of `side`; the child is
    /// `twlab` itself (`ip netns exec` execs it), so its PID is ours to kill.
    fn spawn_twlab(&mut self, side: Side, args: &[&str]) -> usize {
        let child = Command::new("ip")
            .args(["netns", "exec", self.ns(side), env!("CARGO_BIN_EXE_twlab")])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn ip netns exec twlab");
        self.children.push(child);
        self.children.len() - 1
    }

    /// Wait for child `index` to exit (at most `timeout`).
    fn wait(&mut self, index: usize, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        let child = &mut self.children[index];
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "child {} still running after {timeout:?}",
                child.id()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `argv` run in the namespace of `side`, its stdout.
    fn run(&self, side: Side, argv: &[String]) -> String {
        let out = run_ok(
            Command::new("ip")
                .args(["netns", "exec", self.ns(side)])
                .args(argv),
        );
        String::from_utf8(out).expect("utf-8 output")
    }

    fn sockdiag(&self, side: Side) -> SockDiag {
        SockDiag::open_in_netns(&netns_path(self.ns(side))).expect("open sock_diag in the netns")
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Only the processes started here, by their PID.
        for child in &mut self.children {
            if let Ok(None) = child.try_wait() {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
        for ns in [&self.server, &self.client] {
            match Command::new("ip").args(["netns", "del", ns]).status() {
                Ok(s) if s.success() => {}
                other => eprintln!("warning: ip netns del {ns}: {other:?}"),
            }
        }
    }
}

fn netns_path(name: &str) -> PathBuf {
    PathBuf::from("/run/netns").join(name)
}

fn run_ok(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn ip(args: &[&str]) {
    run_ok(Command::new("ip").args(args));
}

fn ep(s: &str) -> Endpoint {
    let addr: SocketAddr = s.parse().expect("endpoint literal");
    Endpoint::new(addr.ip(), addr.port())
}

fn get(counts: &Counts, state: &str) -> u64 {
    counts.get(state).copied().unwrap_or(0)
}

/// ±2% of `n`, at least 1.
fn two_percent(n: u64) -> u64 {
    n.div_ceil(50).max(1)
}

/// Is netstat there? In CI it must be (`.ci/run` installs net-tools).
fn have_netstat() -> bool {
    let found = Command::new("netstat")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    found
        || common::cannot_run(
            "the netstat comparisons",
            "no netstat (apt-get install net-tools)",
        )
}

/// The three counts of one comparison: sock_diag before, the text, sock_diag after.
struct Reading {
    tool: &'static str,
    endpoint: Endpoint,
    side: Side,
    before: Counts,
    text: Counts,
    after: Counts,
}

impl Reading {
    fn what(&self) -> String {
        format!(
            "{} {} side {}: sock_diag before {:?}, text {:?}, sock_diag after {:?}",
            self.tool, self.endpoint, self.side, self.before, self.text, self.after
        )
    }

    /// During the load: TIME_WAIT only grows, so the text's count lies
    /// between the two sock_diag counts (±2%); LISTEN is equal.
    fn check_during(&self) {
        let (lo, hi) = (
            get(&self.before, "TIME_WAIT"),
            get(&self.after, "TIME_WAIT"),
        );
        let tw = get(&self.text, "TIME_WAIT");
        let tol = two_percent(hi);
        assert!(
            lo.saturating_sub(tol) <= tw && tw <= hi + tol,
            "TIME_WAIT out of range: {}",
            self.what()
        );
        self.check_listen();
    }

    /// After the load: every state agrees.
    fn check_after(&self) {
        let states: BTreeSet<&String> = self
            .before
            .keys()
            .chain(self.text.keys())
            .chain(self.after.keys())
            .collect();
        for state in states {
            let (a, b) = (get(&self.before, state), get(&self.after, state));
            let (lo, hi) = (a.min(b), a.max(b));
            let n = get(&self.text, state);
            let tol = match state.as_str() {
                "LISTEN" => 0,
                "TIME_WAIT" => two_percent(hi),
                // The last FIN/ACK exchanges of the load, settling.
                _ => 2,
            };
            assert!(
                lo.saturating_sub(tol) <= n && n <= hi + tol,
                "{state} differs: {}",
                self.what()
            );
        }
        self.check_listen();
    }

    fn check_listen(&self) {
        let listen = get(&self.text, "LISTEN");
        assert_eq!(listen, get(&self.before, "LISTEN"), "{}", self.what());
        assert_eq!(listen, get(&self.after, "LISTEN"), "{}", self.what());
    }
}

/// Read `endpoint` on `side` with sock_diag, then ss (and netstat), then
/// sock_diag again. Returns the readings and the raw ss text.
fn read_all(
    lab: &Lab,
    diag: &mut SockDiag,
    endpoint: Endpoint,
    side: Side,
    netstat: bool,
) -> (Vec<Reading>, String) {
    let mut readings = Vec::new();
    let before = diag.count(&endpoint, side).expect("sock_diag count");
    let ss_text = lab.run(side, &ss_argv(endpoint, side));
    let after = diag.count(&endpoint, side).expect("sock_diag count");
    readings.push(Reading {
        tool: "ss",
        endpoint,
        side,
        before,
        text: parse_ss(&ss_text, endpoint, side),
        after,
    });
    if netstat {
        let before = diag.count(&endpoint, side).expect("sock_diag count");
        let text = lab.run(side, &netstat_argv());
        let after = diag.count(&endpoint, side).expect("sock_diag count");
        readings.push(Reading {
            tool: "netstat",
            endpoint,
            side,
            before,
            text: parse_netstat(&text, endpoint, side),
            after,
        });
    }
    (readings, ss_text)
}

/// The whole comparison for a server listening on `listen`.
fn compare_with_sockdiag(tag: &str, listen: &str, dual_stack: bool) {
    let netstat = have_netstat();
    let port = listen.parse::<SocketAddr>().expect("listen literal").port();
    let target = format!("{SERVER_ADDR}:{port}");
    let server_ep = ep(&target);
    let any_ep = ep(&format!("[::]:{port}"));

    let mut lab = Lab::create(tag);
    let mut srv = lab.sockdiag(Side::Server);
    let mut cli = lab.sockdiag(Side::Client);
    lab.spawn_twlab(
        Side::Server,
        &[
            "serve",
            "--listen",
            listen,
            "--max-keepalive-requests",
            "100",
        ],
    );
    // Ready when it listens ([::]:PORT matches any address of the port).
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(&srv.count(&any_ep, Side::Server).expect("count"), "LISTEN") != 1 {
        assert!(Instant::now() < deadline, "twlab serve never listened");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The readiness check itself, from text.
    let text = lab.run(Side::Server, &ss_argv(any_ep, Side::Server));
    assert_eq!(
        get(&parse_ss(&text, any_ep, Side::Server), "LISTEN"),
        1,
        "{text}"
    );

    let load = lab.spawn_twlab(
        Side::Client,
        &[
            "load", "--target", &target, "-c", "20", "-t", "1", "-d", "3s",
        ],
    );
    std::thread::sleep(Duration::from_millis(1500));

    let cases = [
        (server_ep, Side::Server),
        (any_ep, Side::Server),
        (server_ep, Side::Client),
    ];
    let mut during = Vec::new();
    let mut mapped_lines = 0;
    for (endpoint, side) in cases {
        let diag = match side {
            Side::Server => &mut srv,
            Side::Client => &mut cli,
        };
        let (readings, ss_text) = read_all(&lab, diag, endpoint, side, netstat);
        if side == Side::Server {
            mapped_lines += ss_text.matches("[::ffff:").count();
        }
        during.extend(readings);
    }
    let status = lab.wait(load, Duration::from_secs(30));
    assert!(status.success(), "twlab load: {status}");

    let mut after = Vec::new();
    for (endpoint, side) in cases {
        let diag = match side {
            Side::Server => &mut srv,
            Side::Client => &mut cli,
        };
        after.extend(read_all(&lab, diag, endpoint, side, netstat).0);
    }

    for r in &during {
        eprintln!("during: {}", r.what());
        r.check_during();
    }
    for r in &after {
        eprintln!("after: {}", r.what());
        r.check_after();
    }
    // Not a vacuous comparison: the server closed connections (TIME_WAIT
    // on its side), the listener was seen, and the dual-stack server's
    // sockets really were the ::ffff: kind.
    let server_after = &after[0];
    assert!(
        get(&server_after.text, "TIME_WAIT") >= 100,
        "{}",
        server_after.what()
    );
    let any_after = after
        .iter()
        .find(|r| r.endpoint == any_ep)
        .expect("the [::] reading");
    assert_eq!(get(&any_after.text, "LISTEN"), 1, "{}", any_after.what());
    if dual_stack {
        assert!(mapped_lines >= 100, "expected ::ffff: lines in ss output");
    } else {
        assert_eq!(mapped_lines, 0, "an IPv4 listener has no ::ffff: sockets");
    }

    let names = [lab.server.clone(), lab.client.clone()];
    drop(lab);
    for ns in names {
        assert!(!netns_path(&ns).exists(), "namespace {ns} left behind");
    }
}

#[test]
fn ss_and_netstat_agree_with_sockdiag_dual_stack() {
    if !require_root("ss_and_netstat_agree_with_sockdiag_dual_stack") {
        return;
    }
    compare_with_sockdiag("dual", "[::]:8080", true);
}

#[test]
fn ss_and_netstat_agree_with_sockdiag_ipv4_only() {
    if !require_root("ss_and_netstat_agree_with_sockdiag_ipv4_only") {
        return;
    }
    compare_with_sockdiag("v4", "0.0.0.0:8080", false);
}
