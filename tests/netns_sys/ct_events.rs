//! The conntrack event listener against a dump of the same table: after
//! connections, closes, resets and expiries, both count the same.

use crate::common::*;
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};
use twlab::lab::netns::sys as ns;
use twlab::measure::ctnetlink::CtNetlink;
use twlab::measure::ctnetlink::events::CtEvents;

const PORT: u16 = 18095;

/// `n` connections from the client namespace, closed first by the server
/// (TIME_WAIT on both conntrack and the server), or reset by the client
/// (conntrack CLOSE) when `reset`.
fn connections(srv: &str, cli: &str, n: usize, reset: bool) {
    let listener = ns::in_netns(Path::new(srv), || TcpListener::bind((SERVER, PORT)))
        .expect("listen in the server namespace");
    let server = std::thread::spawn(move || {
        for _ in 0..n {
            let (c, _) = listener.accept().expect("accept");
            if !reset {
                drop(c);
            } else {
                let mut c = c;
                let mut b = [0u8; 1];
                let _ = c.read(&mut b);
            }
        }
    });
    ns::in_netns(Path::new(cli), move || {
        for _ in 0..n {
            let s = TcpStream::connect(SocketAddr::from((SERVER, PORT)))?;
            if reset {
                socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO))?;
                drop(s);
            } else {
                let mut s = s;
                let mut b = [0u8; 1];
                while s.read(&mut b)? > 0 {}
            }
        }
        Ok(())
    })
    .expect("connect from the client namespace");
    server.join().expect("server thread");
}

/// Wait until the listener's counts equal a dump's and show what `done`
/// expects (the last ACK of a close may still be on its way when the
/// connections return), failing with both after 3 s.
fn agree(
    events: &CtEvents,
    dump: &mut CtNetlink,
    done: impl Fn(&twlab::common::counts::Counts) -> bool,
) -> twlab::common::counts::Counts {
    let ep = SocketAddr::from((SERVER, PORT));
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let want = dump.count(ep).expect("dump");
        let got = events.counts().expect("event counts");
        if got == want && done(&got) {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "events {got:?} vs dump {want:?} ({} events read)",
            events.events_seen()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn event_counts_equal_a_dump_through_close_reset_and_expiry() {
    if !require_root() {
        return;
    }
    let (srv, cli) = (ns_name("evsrv"), ns_name("evcli"));
    let _guard = NsGuard::add(&[&srv, &cli]);
    ns::veth_pair(&srv, "twlab0", SERVER, &cli, "twlab0", CLIENT, 24).expect("veth");
    ns::enable_conntrack(&srv).expect("conntrack");
    // Short timeouts, in this namespace only, so expiry is seen in seconds.
    ns::sysctl_write(
        &srv,
        "net.netfilter.nf_conntrack_tcp_timeout_time_wait",
        "3",
    )
    .expect("tw");
    ns::sysctl_write(&srv, "net.netfilter.nf_conntrack_tcp_timeout_close", "2").expect("close");

    let path = Path::new(ns::NETNS_RUN_DIR).join(&srv);
    let events = CtEvents::start(&path, SocketAddr::from((SERVER, PORT))).expect("subscribe");
    let mut dump = CtNetlink::open_in_netns(&path).expect("ctnetlink");

    connections(&srv, &cli, 300, false);
    let c = agree(&events, &mut dump, |c| c.get("TIME_WAIT") == Some(&300));
    assert_eq!(c.len(), 1, "{c:?}");
    connections(&srv, &cli, 50, true);
    let c = agree(&events, &mut dump, |c| c.get("CLOSE") == Some(&50));
    assert_eq!(c.get("CLOSE"), Some(&50), "{c:?}");
    // Both expire: the dump skips expired entries, the listener drops them
    // at their timeout, before the kernel's collector sends DESTROY.
    std::thread::sleep(Duration::from_millis(4000));
    let c = agree(&events, &mut dump, |c| c.is_empty());
    assert!(c.is_empty(), "{c:?}");
    assert!(events.events_seen() >= 350 * 3, "{}", events.events_seen());

    // A second listener on a table that holds the endpoint's entries would
    // miss them: refused.
    connections(&srv, &cli, 5, false);
    let err = CtEvents::start(&path, SocketAddr::from((SERVER, PORT)))
        .err()
        .expect("a table with entries is refused");
    assert!(err.to_string().contains("already holds"), "{err}");
}

/// Rewrite `tests/fixtures/ctnetlink/` from a real kernel:
/// `cargo test --test netns_sys capture_ctnetlink_fixtures -- --ignored`
#[test]
#[ignore = "tool: rewrites the committed fixtures"]
fn capture_ctnetlink_fixtures() {
    if !require_root() {
        return;
    }
    let (srv, cli) = (ns_name("capsrv"), ns_name("capcli"));
    let _guard = NsGuard::add(&[&srv, &cli]);
    ns::veth_pair(&srv, "twlab0", SERVER, &cli, "twlab0", CLIENT, 24).expect("veth");
    ns::enable_conntrack(&srv).expect("conntrack");
    connections(&srv, &cli, 7, false);
    connections(&srv, &cli, 2, true);
    let path = Path::new(ns::NETNS_RUN_DIR).join(&srv);
    let mut ct = CtNetlink::open_in_netns(&path).expect("ctnetlink");
    let ep = SocketAddr::from((SERVER, PORT));
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ctnetlink");
    std::fs::create_dir_all(&dir).expect("mkdir");
    // Filtered by the kernel (CTA_FILTER), and the whole table.
    let filtered = ct.dump_raw(ep, Some(0b10_1010)).expect("filtered dump");
    std::fs::write(dir.join("dump_v4_filtered.bin"), filtered).expect("write");
    let all = ct.dump_raw(ep, None).expect("dump");
    std::fs::write(dir.join("dump_v4_all.bin"), all).expect("write");
    let counts = ct.count(ep).expect("count");
    std::fs::write(
        dir.join("expected.txt"),
        format!("{SERVER}:{PORT} {counts:?}\n"),
    )
    .expect("write");
}
