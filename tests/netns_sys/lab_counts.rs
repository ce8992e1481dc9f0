//! The embedded lab's cheap counts (TIME_WAIT from the namespace's
//! sockstat, conntrack from events) equal full dumps of the same
//! namespaces, on both sides, with TIME_WAIT, ESTABLISHED and LISTEN
//! sockets present.

use crate::common::*;
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};
use twlab::common::endpoint::{Endpoint, Side};
use twlab::lab::Host;
use twlab::lab::netns::{NetnsLab, sys as ns};
use twlab::lab::run_id::new_run_id;
use twlab::measure::ctnetlink::CtNetlink;
use twlab::measure::sockdiag::SockDiag;

const PORT: u16 = 18096;

#[test]
fn lab_counts_equal_full_dumps_on_both_sides() {
    if !require_root() {
        return;
    }
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let lab = NetnsLab::create(&format!("t{}", new_run_id()))
            .await
            .expect("lab");
        let ep = Endpoint::new(SERVER.into(), PORT);
        for side in Side::BOTH {
            lab.host(side).enable_conntrack().await.expect("conntrack");
            lab.host(side).watch_conntrack(ep).await;
        }
        let (srv, cli) = (lab.server.name().to_string(), lab.client.name().to_string());
        let listener =
            ns::in_netns(Path::new(&srv), || TcpListener::bind((SERVER, PORT))).expect("listen");
        let n = 400;
        let server = std::thread::spawn(move || {
            let mut kept = Vec::new();
            for i in 0..n + 3 {
                let (c, _) = listener.accept().expect("accept");
                if i >= n {
                    kept.push(c); // 3 stay ESTABLISHED
                }
            }
            (listener, kept)
        });
        let open = ns::in_netns(Path::new(&cli), move || {
            let mut open = Vec::new();
            for i in 0..n + 3 {
                let mut s = TcpStream::connect(SocketAddr::from((SERVER, PORT)))?;
                if i < n {
                    let mut b = [0u8; 1];
                    while s.read(&mut b)? > 0 {}
                } else {
                    open.push(s);
                }
            }
            Ok(open)
        })
        .expect("connect");
        let (_listener, _kept) = server.join().expect("server");

        let deadline = Instant::now() + Duration::from_secs(3);
        let mut last: Option<String> = None;
        loop {
            let mut same = true;
            let mut shown = String::new();
            for side in Side::BOTH {
                let host = lab.host(side);
                let fast = host.socket_counts(ep).await.expect("lab count");
                let full = SockDiag::open_in_netns(&host.path())
                    .and_then(|mut d| d.count(&ep, side))
                    .expect("full dump");
                let ct_fast = host.conntrack_counts(ep).await.expect("lab conntrack");
                let ct_full = CtNetlink::open_in_netns(&host.path())
                    .and_then(|mut c| c.count(ep.socket_addr()))
                    .expect("conntrack dump");
                same &= fast == full && ct_fast == ct_full;
                shown += &format!(
                    "{side}: sockets {fast:?} vs {full:?}; conntrack {ct_fast:?} vs {ct_full:?}\n"
                );
            }
            // The last ACK of a close may still be on its way: wait for all
            // 400 (server sockets, server and client conntrack; each shown
            // twice), or for the same figures twice 200 ms apart when a
            // client port came round again onto a 4-tuple still in
            // TIME_WAIT on the server (the SYN recycles it: 399 TIME_WAIT
            // and a CLOSE entry in conntrack, in both ways of counting).
            let tws = time_waits(&shown);
            let settled = same && last.as_deref() == Some(shown.as_str());
            if same
                && tws.len() == 6
                && (tws.iter().all(|&t| t == n) || (settled && tws.iter().all(|&t| t + 3 >= n)))
            {
                assert!(shown.contains("\"LISTEN\": 1"), "{shown}");
                break;
            }
            last = Some(shown.clone());
            assert!(Instant::now() < deadline, "{shown}");
            std::thread::sleep(Duration::from_millis(200));
        }
        drop(open);
        lab.destroy().await;
    });
}

/// Every TIME_WAIT figure in `shown`, in order.
fn time_waits(shown: &str) -> Vec<u64> {
    shown
        .split("\"TIME_WAIT\": ")
        .skip(1)
        .filter_map(|rest| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .collect()
}
