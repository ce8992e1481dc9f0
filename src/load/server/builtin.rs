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
//! # Who closes first: [`ServeOptions::close_delay`]
//!
//! The side whose FIN goes first keeps the TIME_WAIT. Tomcat's NIO
//! connector closes right after it writes the `Connection: close`
//! response, and wrk closes the instant it reads it: the two FINs race,
//! and which side wins is an accident of timing (on two hosts both often
//! win: a simultaneous close leaves TIME_WAIT on both sides). A close
//! delay fixes the order: the server waits that long after its last
//! response before its FIN, reading meanwhile, and closes at once when the
//! client's FIN comes first. With a delay longer than the client's
//! reaction time the client always closes first and the server, closing
//! second, keeps no TIME_WAIT (a proxy or server that waits for the client
//! to close); zero is Tomcat's immediate close; a delay near the client's
//! reaction time makes the closes simultaneous. The client has the
//! matching knob (`twlab load --close-delay`) to make itself the second.
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
    /// Between a `Connection: close` response and the server's FIN, wait
    /// this long or until the client closes, whichever comes first (see
    /// the module docs, "Who closes first"). Zero: at once, as Tomcat.
    pub close_delay: Duration,
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
        Closing {
            linger_zero: opts.linger_zero,
            delay: opts.close_delay,
        },
        shutdown,
    )
    .await
}

/// How the server closes a connection ([`ServeOptions::linger_zero`],
/// [`ServeOptions::close_delay`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Closing {
    pub linger_zero: bool,
    pub delay: Duration,
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
    serve_on_with(
        listener,
        max_keepalive_requests,
        Closing::default(),
        shutdown,
    )
    .await
}

/// [`serve_on`] with how to close ([`Closing`]): with `linger_zero`, every
/// connection the server closes is closed with RST (`SO_LINGER {on, 0}`)
/// once the peer has acknowledged the last response; with a `delay`, the
/// close waits for it or for the client's own close.
pub async fn serve_on_with(
    listener: TcpListener,
    max_keepalive_requests: u64,
    closing: Closing,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let local = listener.local_addr()?;
    let how = match (closing.linger_zero, closing.delay.is_zero()) {
        (true, true) => "with RST (SO_LINGER 0)".to_string(),
        (false, true) => "with FIN".to_string(),
        (lz, false) => format!(
            "with {} {} after the last response or at the client's close, whichever is first",
            if lz { "RST (SO_LINGER 0)" } else { "FIN" },
            humantime::format_duration(closing.delay)
        ),
    };
    if max_keepalive_requests == 0 {
        errln!(
            "twlab serve: listening on {local}, never closing keep-alive connections (max keep-alive requests 0); closes {how}"
        );
    } else {
        errln!(
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
                        ServerStream::new(stream, closing),
                        max_keepalive_requests,
                    ));
                }
                Err(e) => {
                    // EMFILE, ECONNABORTED, ...: the listener is still fine.
                    errln!("twlab serve: accept failed: {e}");
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
///
/// With a close delay, `poll_shutdown` first waits for the delay or the
/// client's EOF, whichever comes first, reading (and discarding) whatever
/// the client still sends.
struct ServerStream {
    stream: TcpStream,
    linger_zero: bool,
    /// Set while `poll_shutdown` waits for the send queue to drain.
    drain: Option<Drain>,
    /// [`ServeOptions::close_delay`].
    close_delay: Duration,
    /// Set while `poll_shutdown` waits out the close delay.
    delay: Option<crate::load::precise_delay::PreciseDelay>,
    /// The close delay is over (or the client closed).
    delayed: bool,
}

/// State of the wait for the send queue to drain.
struct Drain {
    deadline: tokio::time::Instant,
    tick: Pin<Box<tokio::time::Sleep>>,
}

impl ServerStream {
    fn new(stream: TcpStream, closing: Closing) -> Self {
        ServerStream {
            stream,
            linger_zero: closing.linger_zero,
            drain: None,
            close_delay: closing.delay,
            delay: None,
            delayed: closing.delay.is_zero(),
        }
    }

    /// Waits out the close delay, ending early at the client's EOF (or a
    /// read error: the connection is over either way).
    fn poll_close_delay(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.delayed {
            return Poll::Ready(());
        }
        let mut scratch = [0u8; 1024];
        loop {
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut self.stream).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => continue,
                Poll::Ready(_) => {
                    self.delayed = true;
                    return Poll::Ready(());
                }
                Poll::Pending => break,
            }
        }
        let delay = self.close_delay;
        let wait = self
            .delay
            .get_or_insert_with(|| crate::load::precise_delay::PreciseDelay::new(delay));
        std::task::ready!(wait.poll_elapsed(cx));
        self.delayed = true;
        Poll::Ready(())
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
        std::task::ready!(self.poll_close_delay(cx));
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

/// Blocking entry for `twlab serve`: builds a multi-thread tokio runtime with
/// `opts.threads` workers (`0` = number of CPUs), serves until SIGINT or
/// SIGTERM, closes, says which signal stopped it on stderr, and then dies
/// of that signal, as a program that handles one should: its parent (twlab,
/// a shell) sees "killed by SIGTERM", never "exited with status 0", and a
/// server that someone else stopped mid-run is reported as such.
pub fn serve_blocking(opts: ServeOptions) -> std::io::Result<()> {
    use nix::sys::signal::Signal;
    use tokio::signal::unix::{SignalKind, signal};
    let (runtime, stop) = crate::shutdown::runtime_until_stopped(opts.threads)?;
    // The same two signals, told apart (the handlers stay installed).
    drop(stop);
    let (mut int, mut term) = runtime.block_on(async {
        Ok::<_, std::io::Error>((
            signal(SignalKind::interrupt())?,
            signal(SignalKind::terminate())?,
        ))
    })?;
    let stopped_by = std::sync::OnceLock::new();
    runtime.block_on(serve(opts, async {
        let sig = tokio::select! {
            _ = int.recv() => Signal::SIGINT,
            _ = term.recv() => Signal::SIGTERM,
        };
        let _ = stopped_by.set(sig);
    }))?;
    drop(runtime);
    if let Some(&sig) = stopped_by.get() {
        errln!("twlab serve: stopped by {sig}");
        // SAFETY: restoring the default action of a signal installs no
        // handler; the process ends on the raise below.
        unsafe {
            let _ = nix::sys::signal::signal(sig, nix::sys::signal::SigHandler::SigDfl);
        }
        let _ = nix::sys::signal::raise(sig);
    }
    Ok(())
}

/// Counting TIME_WAIT sockets of one port for the tests of this module and
/// of the builtin client, from `/proc/net/tcp` and `/proc/net/tcp6` (state
/// `06`) of the test's own network namespace.
#[cfg(test)]
pub(crate) mod test_support;

#[cfg(test)]
mod tests;
