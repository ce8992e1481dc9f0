//! Unit tests of the parent module (builtin).

use super::test_support::{Entry, Sides, TimeWait};
use super::*;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

/// Starts a server on an ephemeral port of `ip`; returns its address and
/// a sender that stops it.
async fn start(
    ip: std::net::IpAddr,
    n: u64,
) -> (
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    start_with(ip, n, false).await
}

/// [`start`] with [`ServeOptions::linger_zero`].
async fn start_with(
    ip: std::net::IpAddr,
    n: u64,
    linger_zero: bool,
) -> (
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let listener = bind(SocketAddr::new(ip, 0)).expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(serve_on_with(
        listener,
        n,
        Closing {
            linger_zero,
            delay: Duration::ZERO,
        },
        async move {
            let _ = rx.await;
        },
    ));
    (addr, tx, handle)
}

/// One parsed response off a raw connection.
struct RawResponse {
    status: u16,
    close: bool,
}

/// Reads one response (Content-Length bodies only) from a blocking stream,
/// keeping extra bytes in `buf`.
fn read_response(s: &mut std::net::TcpStream, buf: &mut Vec<u8>) -> Option<RawResponse> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut resp = httparse::Response::new(&mut headers);
        if let httparse::Status::Complete(head_len) = resp.parse(buf).expect("valid response") {
            let mut len = 0usize;
            let mut close = false;
            for h in resp.headers.iter() {
                if h.name.eq_ignore_ascii_case("content-length") {
                    len = std::str::from_utf8(h.value)
                        .expect("utf8")
                        .trim()
                        .parse()
                        .expect("length");
                }
                if h.name.eq_ignore_ascii_case("connection") {
                    close |= has_token(h.value, b"close");
                }
            }
            let status = resp.code.expect("status");
            while buf.len() < head_len + len {
                let mut chunk = [0u8; 4096];
                let n = s.read(&mut chunk).expect("read body");
                assert!(n > 0, "EOF inside body");
                buf.extend_from_slice(&chunk[..n]);
            }
            buf.drain(..head_len + len);
            return Some(RawResponse { status, close });
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).expect("read head");
        if n == 0 {
            assert!(buf.is_empty(), "EOF inside a response head");
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// How a raw session ended, as the client saw it after the responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The server closed with FIN.
    Eof,
    /// The server closed with RST.
    Reset,
    /// Nothing within the read timeout: the connection is still open.
    Open,
    /// Anything else (unexpected).
    Other(std::io::ErrorKind),
}

/// Sends `count` requests one at a time on one raw connection; returns
/// the responses read (each read in full, or the test panics) and how
/// the connection then ended. The client socket is closed on return.
fn raw_session_end(
    addr: SocketAddr,
    count: u64,
    path: &str,
    extra: &str,
) -> (Vec<RawResponse>, End) {
    let mut s =
        std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("connect");
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let mut buf = Vec::new();
    let mut out = Vec::new();
    for _ in 0..count {
        let req = format!("GET {path} HTTP/1.1\r\nHost: test\r\n{extra}\r\n");
        if s.write_all(req.as_bytes()).is_err() {
            break;
        }
        match read_response(&mut s, &mut buf) {
            Some(r) => {
                let close = r.close;
                out.push(r);
                if close {
                    break;
                }
            }
            None => return (out, End::Eof),
        }
    }
    // After the responses: EOF means the server closed, ECONNRESET that
    // it reset the connection.
    let mut b = [0u8; 1];
    let end = match s.read(&mut b) {
        Ok(0) => End::Eof,
        Ok(_) => End::Other(std::io::ErrorKind::InvalidData),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => End::Reset,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            End::Open
        }
        Err(e) => End::Other(e.kind()),
    };
    (out, end)
}

/// [`raw_session_end`]; the flag says whether the server then closed
/// with FIN (EOF).
fn raw_session(addr: SocketAddr, count: u64, path: &str, extra: &str) -> (Vec<RawResponse>, bool) {
    let (out, end) = raw_session_end(addr, count, path, extra);
    (out, end == End::Eof)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closes_after_exactly_n_requests() {
    let (addr, stop, handle) = start(Ipv4Addr::LOCALHOST.into(), 5).await;
    let (resps, eof) = tokio::task::spawn_blocking(move || raw_session(addr, 10, "/abc", ""))
        .await
        .expect("join");
    assert_eq!(resps.len(), 5, "server must answer exactly N requests");
    assert!(resps.iter().all(|r| r.status == 404));
    assert!(
        resps[..4].iter().all(|r| !r.close),
        "no close before the Nth"
    );
    assert!(resps[4].close, "the Nth response says Connection: close");
    assert!(eof, "the server closes the connection itself");
    let _ = stop.send(());
    handle.await.expect("join").expect("serve");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_closes_every_response_and_root_is_200() {
    let (addr, stop, handle) = start(Ipv4Addr::LOCALHOST.into(), 1).await;
    let (resps, eof) = tokio::task::spawn_blocking(move || raw_session(addr, 3, "/", ""))
        .await
        .expect("join");
    assert_eq!(resps.len(), 1);
    assert_eq!(resps[0].status, 200);
    assert!(resps[0].close && eof);
    let _ = stop.send(());
    handle.await.expect("join").expect("serve");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_never_closes() {
    let (addr, stop, handle) = start(Ipv4Addr::LOCALHOST.into(), 0).await;
    let (resps, eof) = tokio::task::spawn_blocking(move || raw_session(addr, 250, "/abc", ""))
        .await
        .expect("join");
    assert_eq!(resps.len(), 250);
    assert!(resps.iter().all(|r| !r.close && r.status == 404));
    assert!(!eof, "connection must stay open");
    let _ = stop.send(());
    handle.await.expect("join").expect("serve");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honours_request_connection_close() {
    let (addr, stop, handle) = start(Ipv4Addr::LOCALHOST.into(), 100).await;
    let (resps, eof) =
        tokio::task::spawn_blocking(move || raw_session(addr, 3, "/abc", "Connection: close\r\n"))
            .await
            .expect("join");
    assert_eq!(resps.len(), 1);
    assert!(resps[0].close && eof);
    let _ = stop.send(());
    handle.await.expect("join").expect("serve");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_any_is_dual_stack() {
    let listener = match bind(SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), 0)) {
        Ok(l) => l,
        // No IPv6 in this sandbox: nothing to check.
        Err(e) if e.raw_os_error() == Some(libc::EAFNOSUPPORT) => return,
        Err(e) => panic!("bind [::]: {e}"),
    };
    let port = listener.local_addr().expect("addr").port();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(serve_on(listener, 2, async move {
        let _ = rx.await;
    }));
    let v4 = SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port);
    let (resps, eof) = tokio::task::spawn_blocking(move || raw_session(v4, 5, "/abc", ""))
        .await
        .expect("join");
    assert_eq!(resps.len(), 2, "IPv4 client served by the [::] listener");
    assert!(eof);
    let _ = tx.send(());
    handle.await.expect("join").expect("serve");
}

#[tokio::test]
async fn shutdown_stops_accepting() {
    let (addr, stop, handle) = start(Ipv4Addr::LOCALHOST.into(), 100).await;
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(5), handle)
        .await
        .expect("serve returns promptly")
        .expect("join")
        .expect("serve");
    assert!(std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err());
}

/// Outcome of [`close_sessions`].
struct Closed {
    sessions: Vec<(Vec<RawResponse>, End)>,
    tw: Sides,
    /// Sockets of the port still closing when the counts were taken.
    busy: Vec<Entry>,
}

/// Runs `sessions` raw sessions one after the other, each sending up to
/// `count` requests (with `extra` header lines), against a server that
/// closes after `n` requests, with or without linger zero; then counts
/// the new TIME_WAIT sockets of its port (waiting, at most 5 s, for the
/// closes to finish and for `enough`) before stopping the server.
async fn close_sessions(
    linger_zero: bool,
    n: u64,
    sessions: usize,
    count: u64,
    extra: &'static str,
    enough: fn(Sides, usize) -> bool,
) -> Closed {
    let (addr, stop, handle) = start_with(Ipv4Addr::LOCALHOST.into(), n, linger_zero).await;
    let watch = TimeWait::new(addr.port());
    let closed = tokio::task::spawn_blocking(move || {
        let sessions: Vec<_> = (0..sessions)
            .map(|_| raw_session_end(addr, count, "/abc", extra))
            .collect();
        let wanted = sessions.len();
        let tw = watch.wait_for(Duration::from_secs(5), |s| enough(s, wanted));
        let busy = watch.settle(Duration::ZERO);
        Closed { sessions, tw, busy }
    })
    .await
    .expect("join");
    let _ = stop.send(());
    handle.await.expect("join").expect("serve");
    closed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linger_zero_resets_after_the_full_response_and_leaves_no_time_wait() {
    const N: u64 = 3;
    const SESSIONS: usize = 4;
    // Closes finished is enough: a TIME_WAIT would be there by then.
    let closed = close_sessions(true, N, SESSIONS, 10, "", |_, _| true).await;
    for (resps, end) in &closed.sessions {
        // read_response panics on a response cut short, so each one
        // arrived whole before the reset.
        assert_eq!(resps.len() as u64, N);
        assert!(resps.iter().all(|r| r.status == 404));
        assert!(resps[..2].iter().all(|r| !r.close));
        assert!(resps[2].close, "the Nth response says Connection: close");
        assert_eq!(*end, End::Reset, "closed with RST, not FIN");
    }
    assert_eq!(
        closed.tw.server, 0,
        "no TIME_WAIT on the server with linger zero ({:?}, still closing: {:?})",
        closed.tw, closed.busy
    );

    // The request's `Connection: close` takes the same way out.
    let closed = close_sessions(true, 100, SESSIONS, 3, "Connection: close\r\n", |_, _| true).await;
    for (resps, end) in &closed.sessions {
        assert_eq!(resps.len(), 1);
        assert!(resps[0].close);
        assert_eq!(*end, End::Reset);
    }
    assert_eq!(closed.tw.server, 0, "{:?} {:?}", closed.tw, closed.busy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_linger_zero_the_server_keeps_time_wait() {
    const N: u64 = 3;
    const SESSIONS: usize = 4;
    let closed = close_sessions(false, N, SESSIONS, 10, "", |s, wanted| s.server >= wanted).await;
    for (resps, end) in &closed.sessions {
        assert_eq!(resps.len() as u64, N);
        assert_eq!(*end, End::Eof, "closed with FIN");
    }
    // One per session, unless the kernel recycled one for a new
    // connection on the same 4-tuple (possible, not likely).
    assert!(
        closed.tw.server >= 1,
        "the active closer (the server) has TIME_WAIT: {:?}, still closing: {:?}",
        closed.tw,
        closed.busy
    );
    assert_eq!(closed.tw.client, 0, "the client closed second");
}

#[tokio::test]
async fn unacked_bytes_of_an_idle_connection_is_zero() {
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    let client = client.expect("connect");
    let (server, _) = accepted.expect("accept");
    assert_eq!(unacked_bytes(&client), Some(0));
    assert_eq!(unacked_bytes(&server), Some(0));
}

#[test]
fn token_matching() {
    assert!(has_token(b"close", b"close"));
    assert!(has_token(b"Keep-Alive, Close", b"close"));
    assert!(!has_token(b"keep-alive", b"close"));
    assert!(!has_token(b"closed", b"close"));
}
