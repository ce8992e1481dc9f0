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
//!
//! # Closing with RST: [`ServeOptions::linger_zero`]
//!
//! Whoever sends the first FIN (the *active closer*) ends in TIME_WAIT for
//! 60 s on Linux; the other side goes through CLOSE_WAIT and LAST_ACK and
//! keeps nothing. A server that closes keep-alive connections itself (Tomcat
//! after `maxKeepAliveRequests`) therefore collects TIME_WAIT sockets. The
//! classic way out is `SO_LINGER {on, 0}` (Tomcat's `soLinger="0"`, HAProxy's
//! `option nolinger`): `close()` then sends RST instead of FIN and the socket
//! is freed at once, so no TIME_WAIT is left anywhere — the peer's socket is
//! reset too, whatever state it is in (a client closing at the same moment
//! gets no TIME_WAIT either).
//!
//! The price is TCP's delivery guarantee at the close: an RST throws away
//! whatever the sender has not had acknowledged yet, and the receiver may
//! see `ECONNRESET` instead of a clean EOF (Linux still lets it read data
//! that already arrived). TIME_WAIT's own job — keeping delayed segments of
//! the old connection out of a new one on the same 4-tuple — is gone too.
//! To keep the response safe, the RST is sent only once the client's kernel
//! has acknowledged every byte of the last response (bounded wait, see
//! `ServerStream`).
//!
//! How it is wired into hyper: the accepted `TcpStream` is wrapped in a
//! `ServerStream` that hyper owns as its IO. hyper ends a connection (after
//! the `Connection: close` response is flushed, or on the client's EOF) by
//! calling `poll_shutdown` on its IO and then the connection future is
//! dropped. With linger zero, `poll_shutdown` sends no FIN but waits for the
//! send queue (`SIOCOUTQ`) to drain, and the wrapper's `Drop` sets
//! `SO_LINGER {on, 0}` right before the descriptor is closed. Since it is
//! done on drop, it covers every close the server makes: the Nth request,
//! a request's `Connection: close`, the idle timeout, a protocol error, the
//! server's shutdown, and also the close after the client's own FIN (then
//! the server is the passive closer and has no TIME_WAIT anyway, but the
//! RST also erases the client's: as with the real socket option, *every*
//! close of the server is an RST).

use std::cell::Cell;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONNECTION, CONTENT_LANGUAGE, CONTENT_TYPE, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use socket2::{Domain, Protocol, SockRef, Socket, Type};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
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
    /// Close connections with `SO_LINGER {on, 0}`: the kernel sends RST
    /// instead of FIN and the server keeps no TIME_WAIT socket (see the
    /// module docs, "Closing with RST"). `false` is Tomcat's default FIN close.
    pub linger_zero: bool,
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
    serve_on_with(
        listener,
        opts.max_keepalive_requests,
        opts.linger_zero,
        shutdown,
    )
    .await
}

/// Serves on an already bound `listener` (see [`bind`]) until `shutdown`
/// resolves; then stops accepting, drops the open connections and returns.
/// Connections are closed with a FIN (no [`ServeOptions::linger_zero`]); see
/// [`serve_on_with`].
///
/// `max_keepalive_requests` is [`ServeOptions::max_keepalive_requests`].
/// Prints one line on stderr once listening.
pub async fn serve_on(
    listener: TcpListener,
    max_keepalive_requests: u64,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    serve_on_with(listener, max_keepalive_requests, false, shutdown).await
}

/// [`serve_on`] with [`ServeOptions::linger_zero`]: when `linger_zero`, every
/// connection the server closes is closed with RST (`SO_LINGER {on, 0}`)
/// once the peer has acknowledged the last response.
pub async fn serve_on_with(
    listener: TcpListener,
    max_keepalive_requests: u64,
    linger_zero: bool,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let local = listener.local_addr()?;
    let how = if linger_zero {
        "with RST (SO_LINGER 0)"
    } else {
        "with FIN"
    };
    if max_keepalive_requests == 0 {
        eprintln!(
            "twlab serve: listening on {local}, never closing keep-alive connections (max keep-alive requests 0); closes {how}"
        );
    } else {
        eprintln!(
            "twlab serve: listening on {local}, closing connections after {max_keepalive_requests} requests {how}"
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
                    // Wrapped before the task starts, so that even a connection
                    // dropped unserved (shutdown) closes the linger-zero way.
                    conns.spawn(serve_connection(
                        builder.clone(),
                        ServerStream::new(stream, linger_zero),
                        max_keepalive_requests,
                    ));
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
    io: ServerStream,
    max_keepalive_requests: u64,
) {
    // Not fatal: the connection works without it, only slower.
    let _ = io.stream.set_nodelay(true);
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
    // connection is over either way, as in Tomcat. The socket is closed when
    // the connection future (which owns `io`) is dropped, right after this.
    let _ = builder.serve_connection(TokioIo::new(io), service).await;
}

/// Longest wait, on a linger-zero close, for the peer to acknowledge the
/// last response before the RST is sent anyway. Above Linux's largest
/// delayed ACK (200 ms) and its minimum retransmission timeout (200 ms), so
/// a live peer always gets there first.
const LINGER_DRAIN_TIMEOUT: Duration = Duration::from_secs(1);

/// How often the unacknowledged byte count is checked during that wait.
const LINGER_DRAIN_POLL: Duration = Duration::from_millis(1);

/// An accepted socket as hyper sees it: the [`TcpStream`], plus the
/// linger-zero close when [`ServeOptions::linger_zero`] is on.
///
/// hyper ends a connection (after writing a `Connection: close` response,
/// or on the client's EOF) by flushing its buffer and calling
/// `poll_shutdown` on the IO, then the connection future is dropped, which
/// drops the IO and closes the socket. With linger zero:
///
/// * `poll_shutdown` sends no FIN (a FIN would start the normal close);
///   instead it waits until the kernel's send queue is empty, i.e. the
///   client's kernel has acknowledged every byte of the last response, at
///   most [`LINGER_DRAIN_TIMEOUT`]. An RST discards whatever the sender has
///   not yet had acknowledged, so closing any earlier could cost the client
///   its last response on a lossy or congested path.
/// * `Drop` sets `SO_LINGER {on, 0}` right before the socket is closed, so
///   `close()` sends RST and frees the socket at once: no FIN_WAIT, no
///   TIME_WAIT. Drop also covers the closes without `poll_shutdown`: idle
///   timeout, protocol errors, server shutdown.
struct ServerStream {
    stream: TcpStream,
    linger_zero: bool,
    /// Set while `poll_shutdown` waits for the send queue to drain.
    drain: Option<Drain>,
}

/// State of the wait for the send queue to drain.
struct Drain {
    deadline: tokio::time::Instant,
    tick: Pin<Box<tokio::time::Sleep>>,
}

impl ServerStream {
    fn new(stream: TcpStream, linger_zero: bool) -> Self {
        ServerStream {
            stream,
            linger_zero,
            drain: None,
        }
    }

    /// Waits (bounded) until every byte written has been acknowledged.
    fn poll_drained(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            // An error (not a TCP socket any more?) ends the wait: the RST
            // goes out regardless.
            if unacked_bytes(&self.stream).is_none_or(|n| n == 0) {
                return Poll::Ready(());
            }
            let drain = self.drain.get_or_insert_with(|| {
                let now = tokio::time::Instant::now();
                Drain {
                    deadline: now + LINGER_DRAIN_TIMEOUT,
                    tick: Box::pin(tokio::time::sleep_until(now + LINGER_DRAIN_POLL)),
                }
            });
            if tokio::time::Instant::now() >= drain.deadline {
                return Poll::Ready(());
            }
            std::task::ready!(drain.tick.as_mut().poll(cx));
            let next = tokio::time::Instant::now() + LINGER_DRAIN_POLL;
            drain.tick.as_mut().reset(next);
        }
    }
}

/// Bytes written to `stream` that the peer has not acknowledged yet, sent or
/// not, from the `SIOCOUTQ` ioctl (Linux answers `write_seq - snd_una`,
/// whatever tcp(7) says about "unsent"); `None` if the ioctl fails.
fn unacked_bytes(stream: &TcpStream) -> Option<u32> {
    use std::os::fd::AsRawFd;
    let mut queued: libc::c_int = 0;
    // SAFETY: SIOCOUTQ (same number as TIOCOUTQ) on a TCP socket writes one
    // int to the pointer, which points to a live c_int; the descriptor is
    // valid for as long as `stream` is borrowed.
    let rc = unsafe { libc::ioctl(stream.as_raw_fd(), libc::TIOCOUTQ, &mut queued) };
    if rc == 0 {
        u32::try_from(queued).ok()
    } else {
        None
    }
}

impl Drop for ServerStream {
    fn drop(&mut self) {
        if self.linger_zero {
            // Nothing to do if it fails: the close is then a normal one.
            let _ = SockRef::from(&self.stream).set_linger(Some(Duration::ZERO));
        }
        // `stream` is dropped (closed) right after this.
    }
}

impl AsyncRead for ServerStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for ServerStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if self.linger_zero {
            // No FIN: Drop resets the connection once the peer has it all.
            self.poll_drained(cx).map(Ok)
        } else {
            Pin::new(&mut self.stream).poll_shutdown(cx)
        }
    }
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
/// Blocking entry for `twlab serve`: builds a multi-thread tokio runtime with
/// `opts.threads` workers (`0` = number of CPUs), serves until SIGINT or
/// SIGTERM, then returns.
pub fn serve_blocking(opts: ServeOptions) -> std::io::Result<()> {
    let (runtime, stop) = crate::load::shutdown::runtime_until_stopped(opts.threads)?;
    runtime.block_on(serve(opts, stop.recv()))
}

/// Counting TIME_WAIT sockets of one port for the tests of this module and
/// of the builtin client, from `/proc/net/tcp` and `/proc/net/tcp6` (state
/// `06`) of the test's own network namespace.
#[cfg(test)]
pub(crate) mod test_support {
    use std::collections::HashSet;
    use std::time::{Duration, Instant};

    /// `/proc/net/tcp` state numbers.
    const TIME_WAIT: u8 = 0x06;
    const LISTEN: u8 = 0x0A;

    /// One socket: local and remote `ADDR:PORT` in the kernel's hex, ports
    /// decoded, state number.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub(crate) struct Entry {
        pub local: String,
        pub remote: String,
        pub local_port: u16,
        pub remote_port: u16,
        pub state: u8,
    }

    fn port_of(hex_addr: &str) -> Option<u16> {
        let (_, port) = hex_addr.rsplit_once(':')?;
        u16::from_str_radix(port, 16).ok()
    }

    /// Every TCP socket (IPv4 and IPv6) with `port` as local or remote port.
    pub(crate) fn sockets_on_port(port: u16) -> Vec<Entry> {
        let mut out = Vec::new();
        for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
            // No tcp6 without IPv6: nothing to count there.
            let Ok(text) = std::fs::read_to_string(file) else {
                continue;
            };
            for line in text.lines().skip(1) {
                let mut fields = line.split_whitespace().skip(1);
                let (Some(local), Some(remote), Some(state)) =
                    (fields.next(), fields.next(), fields.next())
                else {
                    continue;
                };
                let (Some(local_port), Some(remote_port), Ok(state)) = (
                    port_of(local),
                    port_of(remote),
                    u8::from_str_radix(state, 16),
                ) else {
                    continue;
                };
                if local_port == port || remote_port == port {
                    out.push(Entry {
                        local: local.to_string(),
                        remote: remote.to_string(),
                        local_port,
                        remote_port,
                        state,
                    });
                }
            }
        }
        out
    }

    /// TIME_WAIT sockets of a server port that appear after [`TimeWait::new`]
    /// (tuples already in TIME_WAIT then, e.g. left by an earlier test run
    /// that had the same ephemeral port, are ignored). Take the counts while
    /// the server still listens: its bound port keeps other connections of
    /// this machine from using it as their local port.
    pub(crate) struct TimeWait {
        port: u16,
        before: HashSet<(String, String)>,
    }

    /// New TIME_WAIT sockets on each side of the server port.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) struct Sides {
        /// Local port = the server port: the server's sockets.
        pub server: usize,
        /// Remote port = the server port: its clients' sockets.
        pub client: usize,
    }

    impl TimeWait {
        pub(crate) fn new(port: u16) -> Self {
            let before = sockets_on_port(port)
                .into_iter()
                .filter(|e| e.state == TIME_WAIT)
                .map(|e| (e.local, e.remote))
                .collect();
            TimeWait { port, before }
        }

        /// Waits (at most `timeout`) until no socket on the port is in a
        /// state other than LISTEN and TIME_WAIT, i.e. every close has
        /// finished; returns the sockets still in the way, if any.
        pub(crate) fn settle(&self, timeout: Duration) -> Vec<Entry> {
            let deadline = Instant::now() + timeout;
            loop {
                let busy: Vec<Entry> = sockets_on_port(self.port)
                    .into_iter()
                    .filter(|e| e.state != TIME_WAIT && e.state != LISTEN)
                    .collect();
                if busy.is_empty() || Instant::now() >= deadline {
                    return busy;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }

        /// The new TIME_WAIT sockets now.
        pub(crate) fn sides(&self) -> Sides {
            let mut sides = Sides {
                server: 0,
                client: 0,
            };
            for e in sockets_on_port(self.port) {
                if e.state != TIME_WAIT || self.before.contains(&(e.local, e.remote)) {
                    continue;
                }
                if e.local_port == self.port {
                    sides.server += 1;
                } else if e.remote_port == self.port {
                    sides.client += 1;
                }
            }
            sides
        }

        /// Settles, then polls [`sides`](Self::sides) until `done` holds or
        /// `timeout` passes; returns the last counts.
        pub(crate) fn wait_for(&self, timeout: Duration, done: impl Fn(Sides) -> bool) -> Sides {
            let deadline = Instant::now() + timeout;
            self.settle(timeout);
            loop {
                let sides = self.sides();
                if done(sides) || Instant::now() >= deadline {
                    return sides;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

#[cfg(test)]
mod tests {
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
        let handle = tokio::spawn(serve_on_with(listener, n, linger_zero, async move {
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
    fn raw_session(
        addr: SocketAddr,
        count: u64,
        path: &str,
        extra: &str,
    ) -> (Vec<RawResponse>, bool) {
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
        let closed =
            close_sessions(true, 100, SESSIONS, 3, "Connection: close\r\n", |_, _| true).await;
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
        let closed =
            close_sessions(false, N, SESSIONS, 10, "", |s, wanted| s.server >= wanted).await;
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
}
