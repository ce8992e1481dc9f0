//! The socket gauge (BPF programs that count the endpoint's sockets as the
//! kernel changes their state) against the walk it replaces: at every step
//! of a connection's life — open, close by either side, reset, FIN_WAIT2
//! and TIME_WAIT expiry — and at 10k and 100k sockets, the gauge's counts
//! equal a full sock_diag dump's. Also: the committed BPF object is what
//! its source compiles to.
//!
//! The connections live in a fresh embedded lab's server namespace, on its
//! loopback (127.0.0.1 and client sources in 127.0.0.0/8): nothing leaves
//! the machine and the lab is removed at the end.

mod common;

use socket2::{Domain, SockAddr, Socket, Type};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};
use twlab::common::counts::Counts;
use twlab::common::endpoint::{Endpoint, Side};
use twlab::lab::netns::{NetnsLab, SERVER_ADDR, sys};
use twlab::lab::run_id::{random_id, reserve_run_id};
use twlab::measure::sock_gauge::NetnsGauge;
use twlab::measure::sockdiag::SockDiag;

const PORT: u16 = 18181;

/// Rebuilding the object from its source gives the committed bytes.
#[test]
fn the_committed_object_is_what_its_source_compiles_to() {
    let have = |tool: &str| {
        std::process::Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !(have("clang") && have("llvm-strip")) {
        common::cannot_run(
            "the_committed_object_is_what_its_source_compiles_to",
            "clang and llvm-strip are not installed (apt-get install clang llvm)",
        );
        return;
    }
    let dir = common::manifest_dir();
    let out = std::env::temp_dir().join(format!("twlab-sock-gauge-{}.o", std::process::id()));
    let built = std::process::Command::new("sh")
        .arg(dir.join("scripts/build-bpf.sh"))
        .arg(&out)
        .output()
        .expect("run scripts/build-bpf.sh");
    assert!(
        built.status.success(),
        "scripts/build-bpf.sh failed: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    let rebuilt = std::fs::read(&out).expect("read the rebuilt object");
    let _ = std::fs::remove_file(&out);
    let committed = std::fs::read(dir.join("src/measure/sock_gauge/sock_gauge.bpf.o"))
        .expect("read the committed object");
    assert!(
        rebuilt == committed,
        "src/measure/sock_gauge/sock_gauge.bpf.o is not what sock_gauge.bpf.c compiles to: \
         run scripts/build-bpf.sh and commit the object"
    );
}

/// A fresh embedded lab whose two namespaces the gauge watches from
/// before their first socket, with a full walk beside each.
struct Watched {
    lab: NetnsLab,
    gauges: [NetnsGauge; 2],
    walks: [SockDiag; 2],
    endpoint: Endpoint,
}

impl Watched {
    /// `endpoint` on the server namespace's loopback (`local`) or on the lab's veth.
    async fn new(test: &str, local: bool) -> Option<Watched> {
        if !common::require_root(test) {
            return None;
        }
        let lab = NetnsLab::create(&reserve_run_id(|| format!("g{}", random_id())))
            .await
            .expect("create a lab");
        for host in [&lab.server, &lab.client] {
            for (k, v) in [
                ("net.ipv4.ip_local_port_range", "10000 65000"),
                ("net.ipv4.tcp_max_tw_buckets", "300000"),
                // Orphans in FIN_WAIT2 expire after this: the expiry step waits it out.
                ("net.ipv4.tcp_fin_timeout", "2"),
            ] {
                sys::sysctl_write(host.name(), k, v).expect("set a sysctl in the lab namespace");
            }
        }
        let addr = if local {
            Ipv4Addr::LOCALHOST
        } else {
            SERVER_ADDR
        };
        let endpoint = Endpoint::new(IpAddr::V4(addr), PORT);
        let watch = |path: &Path, side| match NetnsGauge::watch(path, side, &endpoint) {
            Ok(g) => g,
            Err(e) => panic!("{test}: the socket gauge cannot count here: {e}"),
        };
        let gauges = [
            watch(&lab.server.path(), Side::Server),
            watch(&lab.client.path(), Side::Client),
        ];
        let walks = [
            SockDiag::open_in_netns(&lab.server.path()).expect("sock_diag"),
            SockDiag::open_in_netns(&lab.client.path()).expect("sock_diag"),
        ];
        Some(Watched {
            lab,
            gauges,
            walks,
            endpoint,
        })
    }

    /// Each side's counts from the gauge and from a full walk of its namespace.
    fn both(&mut self) -> ([Counts; 2], [Counts; 2]) {
        let mut gauged = [Counts::new(), Counts::new()];
        let mut walked = [Counts::new(), Counts::new()];
        for (i, side) in [Side::Server, Side::Client].into_iter().enumerate() {
            gauged[i] = self.gauges[i].count().expect("gauge count");
            walked[i] = self.walks[i]
                .count(&self.endpoint, side)
                .expect("sock_diag count");
            walked[i].remove("CLOSE");
        }
        (gauged, walked)
    }

    /// The gauge agrees with a full walk on both sides once the last
    /// segments have landed (the same counts twice, 200 ms apart, within
    /// `settle`): every state equal, but that an orphan in FIN_WAIT2 kept
    /// as a time-wait socket is TIME_WAIT to the gauge and FIN_WAIT2 to the
    /// walk. Returns the gauge's counts.
    fn assert_agree(&mut self, step: &str, settle: Duration) -> [Counts; 2] {
        let started = Instant::now();
        let mut last = None;
        loop {
            let (gauged, walked) = self.both();
            if gauged.iter().zip(&walked).all(|(g, w)| agree(g, w)) {
                if last.as_ref() == Some(&walked) {
                    return gauged;
                }
                last = Some(walked);
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
            last = None;
            assert!(
                started.elapsed() < settle,
                "{step}: the gauge and a full walk disagree\n gauge (server, client): {gauged:?}\n walk  (server, client): {walked:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    async fn destroy(self) {
        drop(self.gauges);
        self.lab.destroy().await;
    }
}

fn agree(gauge: &Counts, walk: &Counts) -> bool {
    let waiting = |c: &Counts| get(c, "TIME_WAIT") + get(c, "FIN_WAIT2");
    let others = |c: &Counts| {
        c.iter()
            .filter(|(k, _)| *k != "TIME_WAIT" && *k != "FIN_WAIT2")
            .map(|(k, v)| (k.clone(), *v))
            .collect::<Vec<_>>()
    };
    waiting(gauge) == waiting(walk)
        && get(gauge, "FIN_WAIT2") <= get(walk, "FIN_WAIT2")
        && others(gauge) == others(walk)
}

/// `n` connections from `ns` (source `src`, or the namespace's own address)
/// to `to`, accepted by `listener`: (clients, accepted).
fn connect(
    ns: &Path,
    listener: &TcpListener,
    src: Option<Ipv4Addr>,
    to: SocketAddr,
    n: usize,
) -> (Vec<TcpStream>, Vec<TcpStream>) {
    let listener = listener.try_clone().expect("clone the listener");
    let clients = sys::in_netns(ns, move || {
        let mut clients = Vec::with_capacity(n);
        for _ in 0..n {
            let s = Socket::new(Domain::IPV4, Type::STREAM, None)?;
            if let Some(src) = src {
                s.bind(&SockAddr::from(SocketAddr::from((src, 0))))?;
            }
            s.connect(&SockAddr::from(to))?;
            clients.push(TcpStream::from(s));
        }
        Ok(clients)
    });
    let mut accepted = Vec::with_capacity(n);
    listener
        .set_nonblocking(false)
        .expect("a blocking listener");
    let clients = clients.expect("connect in the lab namespace");
    for _ in 0..n {
        accepted.push(listener.accept().expect("accept").0);
    }
    (clients, accepted)
}

fn listen(ns: &Path, at: SocketAddr) -> TcpListener {
    sys::in_netns(ns, move || {
        let s = Socket::new(Domain::IPV4, Type::STREAM, None)?;
        s.set_reuse_address(true)?;
        s.bind(&SockAddr::from(at))?;
        s.listen(8192)?;
        Ok(TcpListener::from(s))
    })
    .expect("listen in the lab namespace")
}

fn reset(s: TcpStream) {
    Socket::from(s)
        .set_linger(Some(Duration::ZERO))
        .expect("SO_LINGER 0");
}

fn get(c: &Counts, k: &str) -> u64 {
    c.get(k).copied().unwrap_or(0)
}

const SETTLE: Duration = Duration::from_secs(10);

/// 4,000 connections (8k sockets) across the lab's veth, through every
/// step of their life.
#[tokio::test(flavor = "multi_thread")]
async fn the_gauge_counts_what_a_walk_counts_through_close_reset_and_expiry() {
    let test = "the_gauge_counts_what_a_walk_counts_through_close_reset_and_expiry";
    let Some(mut w) = Watched::new(test, false).await else {
        return;
    };
    let to = SocketAddr::from((SERVER_ADDR, PORT));
    let listener = listen(&w.lab.server.path(), to);
    let [s, _] = w.assert_agree("listening", SETTLE);
    assert_eq!(get(&s, "LISTEN"), 1);

    let n = 4000;
    let (mut clients, mut accepted) = connect(&w.lab.client.path(), &listener, None, to, n);
    let [s, c] = w.assert_agree("established", SETTLE);
    assert_eq!(
        (get(&s, "ESTABLISHED"), get(&c, "ESTABLISHED")),
        (n as u64, n as u64)
    );

    // After lost changes a count walks once and sets the gauge right.
    for g in &mut w.gauges {
        g.recount_next();
    }
    let before: Vec<u64> = w.gauges.iter().map(|g| g.recounts()).collect();
    w.assert_agree("recounted", SETTLE);
    w.assert_agree("after the recount", SETTLE);
    let after: Vec<u64> = w.gauges.iter().map(|g| g.recounts()).collect();
    assert_eq!(
        before
            .iter()
            .zip(&after)
            .map(|(b, a)| a - b)
            .collect::<Vec<_>>(),
        [1, 1],
        "one recount each, then map reads"
    );

    // The server closes 2,000 first: its orphans wait for the clients' FIN
    // (FIN_WAIT2, kept as time-wait sockets), the clients in CLOSE_WAIT.
    drop(accepted.drain(..2000).collect::<Vec<_>>());
    let their_clients: Vec<_> = clients.drain(..2000).collect();
    let [s, c] = w.assert_agree("the server closed first", SETTLE);
    assert_eq!(get(&s, "FIN_WAIT2") + get(&s, "TIME_WAIT"), 2000);
    assert_eq!(get(&c, "CLOSE_WAIT"), 2000);

    // Half of those clients close: their FIN moves the server's sockets to
    // TIME_WAIT proper. The other half never do: those orphans expire after
    // tcp_fin_timeout (2 s here).
    let mut their_clients = their_clients.into_iter();
    drop(their_clients.by_ref().take(1000).collect::<Vec<_>>());
    let [s, c] = w.assert_agree("the clients' FIN", SETTLE);
    assert_eq!(get(&s, "FIN_WAIT2") + get(&s, "TIME_WAIT"), 2000);
    assert_eq!(get(&c, "CLOSE_WAIT"), 1000);
    std::thread::sleep(Duration::from_secs(4));
    let [s, _] = w.assert_agree("the orphans expired", SETTLE);
    assert_eq!(get(&s, "FIN_WAIT2") + get(&s, "TIME_WAIT"), 1000, "{s:?}");
    drop(their_clients.collect::<Vec<_>>());

    // 1,000 clients close first (TIME_WAIT on their side); 1,000 reset
    // (SO_LINGER 0: no TIME_WAIT on either side).
    drop(clients.drain(..1000).collect::<Vec<_>>());
    for s in clients.drain(..1000) {
        reset(s);
    }
    let [s, c] = w.assert_agree("client closes and resets", SETTLE);
    assert_eq!(get(&c, "TIME_WAIT"), 1000, "{c:?}");
    assert_eq!(get(&s, "CLOSE_WAIT"), 1000, "{s:?}");
    drop(accepted);
    drop(listener);
    let [s, c] = w.assert_agree("everything closed", SETTLE);
    assert_eq!(get(&s, "LISTEN"), 0);
    assert_eq!(get(&s, "ESTABLISHED") + get(&c, "ESTABLISHED"), 0);
    w.destroy().await;
}

/// 100,000 TIME_WAIT sockets (from 200 sources on the server namespace's
/// loopback, the server closing first), counted as a walk counts them,
/// and again after they expire (60 s).
#[tokio::test(flavor = "multi_thread")]
async fn the_gauge_counts_100k_time_wait_sockets_and_their_expiry() {
    let test = "the_gauge_counts_100k_time_wait_sockets_and_their_expiry";
    let Some(mut w) = Watched::new(test, true).await else {
        return;
    };
    let ns = w.lab.server.path();
    let to = SocketAddr::from((Ipv4Addr::LOCALHOST, PORT));
    let listener = listen(&ns, to);
    let total = 100_000;
    let per_source = 500;
    for i in 0..total / per_source {
        let src = Ipv4Addr::new(127, 1, (i / 250) as u8, (i % 250 + 1) as u8);
        let (clients, accepted) = connect(&ns, &listener, Some(src), to, per_source);
        drop(accepted);
        std::thread::sleep(Duration::from_millis(5));
        drop(clients);
    }
    let [s, _] = w.assert_agree("100k TIME_WAIT", SETTLE);
    // A few 4-tuples come round again (a port reused while its TIME_WAIT
    // lives recycles it): nearly all of them stay.
    let waiting = get(&s, "TIME_WAIT") + get(&s, "FIN_WAIT2");
    assert!(waiting >= total as u64 * 99 / 100, "{s:?}");
    drop(listener);
    // TIME_WAIT lasts 60 s on Linux.
    std::thread::sleep(Duration::from_secs(62));
    let [s, _] = w.assert_agree("expired", Duration::from_secs(20));
    assert_eq!(get(&s, "TIME_WAIT"), 0);
    w.destroy().await;
}
