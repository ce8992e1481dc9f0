//! twlab's own Tomcat-like HTTP/1.1 server (`twlab serve`).
//!
//! # Why it exists
//!
//! The seed experiment runs Tomcat 8.5 under `wrk -c 100 -t 2 -d 300
//! http://SERVER:8080/abc` and watches TIME_WAIT sockets pile up. The part of
//! Tomcat that matters for TIME_WAIT is not the servlet container but its
//! HTTP/1.1 connector's keep-alive policy, which this module reproduces
//! without a JVM:
//!
//! * **`maxKeepAliveRequests`** (Tomcat default 100): on the Nth request of a
//!   connection Tomcat answers with `Connection: close` and closes the socket
//!   itself. The server is therefore the *active closer* and its side of the
//!   connection goes to TIME_WAIT. [`ServeOptions::max_keepalive_requests`]
//!   is that knob (`0` = never close, Tomcat's `-1`). `1` closes after every
//!   response, like `maxKeepAliveRequests="1"`.
//! * A request carrying `Connection: close` is honoured: the response says
//!   `Connection: close` and the server closes (again the active closer).
//! * **Dual stack**: Tomcat listens on `[::]` with `IPV6_V6ONLY` off, so IPv4
//!   clients show up as `::ffff:a.b.c.d` sockets in `ss`. [`bind`] does the
//!   same explicitly (it does not rely on `net.ipv6.bindv6only`).
//! * `TCP_NODELAY` on accepted sockets and `SO_REUSEADDR` on the listener, as
//!   Tomcat (NIO connector, JVM defaults) sets them, so the server can be
//!   restarted while its port has TIME_WAIT sockets.
//! * Idle keep-alive connections are closed after 20 s without a complete
//!   request head (Tomcat's default `connectionTimeout="20000"`, which also
//!   serves as its keep-alive timeout). Under a wrk-like load this never
//!   fires; it only keeps abandoned connections from living forever.
//!
//! # What it answers
//!
//! Every path gets `404 Not Found` with a small HTML body in the style of
//! Tomcat's error page (the seed requests `/abc`, which Tomcat 404s), except
//! `/` which gets `200 OK` with a small HTML body (like Tomcat's ROOT app
//! would, but a few hundred bytes rather than the 11 KB welcome page). Both
//! bodies are static, have a `Content-Length`, and carry
//! `Content-Type: text/html;charset=utf-8` as Tomcat's do.
//!
//! # Implementation
//!
//! hyper's HTTP/1 server connection does the protocol work. The per-connection
//! request counter lives in the service; on the Nth request the response gets
//! a `Connection: close` header, and hyper, seeing it, stops keep-alive,
//! flushes the response, shuts the write side down (FIN) and drops the socket
//! without waiting for the client: exactly Tomcat's active close. The server
//! is not meant to be the bottleneck of an experiment: on a 2-core machine it
//! keeps up with what wrk (or twlab's builtin client) can send to it.

use std::cell::Cell;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONNECTION, CONTENT_LANGUAGE, CONTENT_TYPE, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// Options of `twlab serve`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeOptions {
    /// Address to listen on. `[::]:8080` listens dual-stack, like Tomcat.
    pub listen: SocketAddr,
    /// Close a keep-alive connection after this many requests, answering the
    /// last one with `Connection: close` (Tomcat's `maxKeepAliveRequests`,
    /// default 100). `0` = never close.
    pub max_keepalive_requests: u64,
    /// Tokio worker threads for [`serve_blocking`]; `0` = number of CPUs.
    pub threads: usize,
}

/// Tomcat's `maxKeepAliveRequests` default.
pub const TOMCAT_MAX_KEEPALIVE_REQUESTS: u64 = 100;

/// Tomcat's default `connectionTimeout`, also its keep-alive (idle) timeout.
const IDLE_TIMEOUT: Duration = Duration::from_secs(20);

/// Listen backlog. Tomcat's `acceptCount` is 100; a larger queue keeps the
/// server from dropping SYNs when many clients reconnect at once (the
/// kernel caps it at `net.core.somaxconn` anyway).
const BACKLOG: i32 = 1024;

/// Pause after a failed `accept` (e.g. `EMFILE`) so the loop does not spin.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(10);

const NOT_FOUND_BODY: &str = "<!doctype html><html lang=\"en\"><head><title>HTTP Status 404 \u{2013} Not Found</title></head>\
<body><h1>HTTP Status 404 \u{2013} Not Found</h1><hr class=\"line\" /><p><b>Type</b> Status Report</p>\
<p><b>Description</b> The origin server did not find a current representation for the target resource \
or is not willing to disclose that one exists.</p><hr class=\"line\" /><h3>twlab builtin server</h3></body></html>";

const ROOT_BODY: &str = "<!doctype html><html lang=\"en\"><head><title>twlab</title></head>\
<body><h1>twlab builtin server</h1><p>A Tomcat-like HTTP/1.1 server for TIME_WAIT experiments. \
Every other path answers 404, as Tomcat does for <code>/abc</code>.</p></body></html>";

/// Binds a listening TCP socket on `listen` the way Tomcat does: dual-stack
/// when `listen` is IPv6 (`IPV6_V6ONLY` off, so `[::]` also accepts IPv4
/// clients as `::ffff:` addresses), `SO_REUSEADDR` on.
///
/// Must be called inside a tokio runtime. Useful on its own to learn the port
/// when listening on port 0 (then pass the listener to [`serve_on`]).
pub fn bind(listen: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = Socket::new(
        Domain::for_address(listen),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    if listen.is_ipv6() {
        socket.set_only_v6(false)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&listen.into())?;
    socket.listen(BACKLOG)?;
    TcpListener::from_std(socket.into())
}

/// Serves on `opts.listen` until `shutdown` resolves; then stops accepting,
/// drops the open connections and returns.
///
/// `opts.threads` is ignored here (the caller's runtime runs the server); see
/// [`serve_blocking`]. Prints one line on stderr once listening.
pub async fn serve(opts: ServeOptions, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
    let listener = bind(opts.listen)?;
    serve_on(listener, opts.max_keepalive_requests, shutdown).await
}

/// Serves on an already bound `listener` (see [`bind`]) until `shutdown`
/// resolves; then stops accepting, drops the open connections and returns.
///
/// `max_keepalive_requests` is [`ServeOptions::max_keepalive_requests`].
/// Prints one line on stderr once listening.
pub async fn serve_on(
    listener: TcpListener,
    max_keepalive_requests: u64,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let local = listener.local_addr()?;
    if max_keepalive_requests == 0 {
        eprintln!(
            "twlab serve: listening on {local}, never closing keep-alive connections (max keep-alive requests 0)"
        );
    } else {
        eprintln!(
            "twlab serve: listening on {local}, closing connections after {max_keepalive_requests} requests"
        );
    }

    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .keep_alive(true)
        .timer(TokioTimer::new())
        .header_read_timeout(IDLE_TIMEOUT);

    // Connection tasks live in the set so that returning drops (closes) them.
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    conns.spawn(serve_connection(builder.clone(), stream, max_keepalive_requests));
                }
                Err(e) => {
                    // EMFILE, ECONNABORTED, ...: the listener is still fine.
                    eprintln!("twlab serve: accept failed: {e}");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                }
            },
        }
    }
    drop(listener);
    conns.shutdown().await;
    Ok(())
}

/// Runs one keep-alive connection to its end.
async fn serve_connection(
    builder: hyper::server::conn::http1::Builder,
    stream: TcpStream,
    max_keepalive_requests: u64,
) {
    // Not fatal: the connection works without it, only slower.
    let _ = stream.set_nodelay(true);
    // Requests seen on this connection. The service is owned by this one
    // connection future, so a Cell is enough.
    let served = Cell::new(0u64);
    let service = service_fn(move |req: Request<Incoming>| {
        let n = served.get() + 1;
        served.set(n);
        let last =
            (max_keepalive_requests != 0 && n >= max_keepalive_requests) || wants_close(&req);
        std::future::ready(Ok::<_, Infallible>(respond(&req, last)))
    });
    // Errors here are the client's doing (reset, garbage, idle timeout): the
    // connection is over either way, as in Tomcat.
    let _ = builder
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

/// Whether the request asks to close the connection after the response
/// (`Connection: close`; HTTP/1.0 without keep-alive is handled by hyper).
fn wants_close(req: &Request<Incoming>) -> bool {
    req.headers()
        .get_all(CONNECTION)
        .iter()
        .any(|v| has_token(v.as_bytes(), b"close"))
}

/// Whether a comma-separated header value contains `token` (ASCII
/// case-insensitive).
fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

/// The response to any request: 200 for `/`, Tomcat-like 404 otherwise;
/// `Connection: close` when this is the connection's last response.
fn respond(req: &Request<Incoming>, last: bool) -> Response<Full<Bytes>> {
    let (status, body) = if req.uri().path() == "/" {
        (StatusCode::OK, ROOT_BODY)
    } else {
        (StatusCode::NOT_FOUND, NOT_FOUND_BODY)
    };
    let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html;charset=utf-8"),
    );
    headers.insert(CONTENT_LANGUAGE, HeaderValue::from_static("en"));
    if last {
        // hyper sees this header, ends keep-alive and closes after writing.
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// Number of worker threads to use for `threads` (`0` = number of CPUs).
fn worker_threads(threads: usize) -> usize {
    if threads > 0 {
        threads
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}

/// Blocking entry for `twlab serve`: builds a multi-thread tokio runtime with
/// `opts.threads` workers (`0` = number of CPUs), serves until SIGINT or
/// SIGTERM, then returns.
pub fn serve_blocking(opts: ServeOptions) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(worker_threads(opts.threads))
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let mut sigint = signal(SignalKind::interrupt())?;
        let mut sigterm = signal(SignalKind::terminate())?;
        let shutdown = async move {
            tokio::select! {
                _ = sigint.recv() => {}
                _ = sigterm.recv() => {}
            }
        };
        serve(opts, shutdown).await
    })
}

#[cfg(test)]
mod tests {
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
        let listener = bind(SocketAddr::new(ip, 0)).expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(serve_on(listener, n, async move {
            let _ = rx.await;
        }));
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

    /// Sends `count` requests one at a time on one raw connection; returns
    /// the responses read and whether the server then closed (EOF).
    fn raw_session(
        addr: SocketAddr,
        count: u64,
        path: &str,
        extra: &str,
    ) -> (Vec<RawResponse>, bool) {
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
                None => return (out, true),
            }
        }
        // After the responses: EOF means the server closed.
        let mut b = [0u8; 1];
        let eof = matches!(s.read(&mut b), Ok(0));
        (out, eof)
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
        let (resps, eof) = tokio::task::spawn_blocking(move || {
            raw_session(addr, 3, "/abc", "Connection: close\r\n")
        })
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

    #[test]
    fn token_matching() {
        assert!(has_token(b"close", b"close"));
        assert!(has_token(b"Keep-Alive, Close", b"close"));
        assert!(!has_token(b"keep-alive", b"close"));
        assert!(!has_token(b"closed", b"close"));
    }
}
