//! twlab's own HTTP/1.1 load generator (`twlab load`), with wrk's connection
//! semantics.
//!
//! # What it reproduces
//!
//! The seed experiment is `wrk -c 100 -t 2 -d 300 http://SERVER:8080/abc`
//! against Tomcat. What matters for TIME_WAIT is how wrk handles connections,
//! which this client copies:
//!
//! * `connections` sockets, each a keep-alive loop sending the next request
//!   as soon as the previous response is complete (no think time, no
//!   pipelining). The request is wrk's default one: `GET path HTTP/1.1` with
//!   only a `Host` header.
//! * When a response says `Connection: close` (Tomcat does so on the
//!   `maxKeepAliveRequests`-th request) or the server closes, the socket is
//!   closed **at once** and a new connection is opened immediately. (The
//!   client can also close first: [`LoadOptions::close_after`].) Closing
//!   before or while the server's FIN arrives makes the close simultaneous,
//!   which is how the client also ends up with TIME_WAIT sockets.
//! * Failures are counted the way wrk splits them: `connect`, `read`
//!   (including EOF or garbage in place of a response), `write`, `timeout`.
//!
//! # Where it deliberately differs from wrk
//!
//! * **A failed connect does not kill the slot.** wrk gives up on a
//!   connection whose connect fails, so a client that runs out of ephemeral
//!   ports (`EADDRNOTAVAIL`, because its TIME_WAIT sockets hold them) quietly
//!   runs with fewer and fewer connections, and its report hides why. Here a
//!   failed connect is counted, by errno name, in
//!   [`ErrorCounts::connect_by_errno`](crate::common::counts::ErrorCounts) and the slot
//!   retries after a 10 ms pause (so a port-exhausted client measures the
//!   exhaustion instead of spinning the CPU on it).
//! * **A timed-out request closes its connection**, which is then reopened;
//!   wrk only counts the timeout and keeps waiting. The timeout covers writing
//!   the request and reading the whole response (and, separately, connecting:
//!   a connect that takes longer counts as an `ETIMEDOUT` connect error).
//!
//! # Who closes: [`LoadOptions::close_after`] and [`LoadOptions::linger_zero`]
//!
//! The side that sends the first FIN (the *active closer*) keeps the
//! connection's TIME_WAIT socket (60 s on Linux); the other side passes
//! through CLOSE_WAIT and LAST_ACK and keeps nothing. Against Tomcat with
//! `maxKeepAliveRequests` that is the server. `close_after = N` makes the
//! client the active closer instead: after the Nth response of a connection
//! it closes the socket itself while the server (with
//! `max_keepalive_requests` 0 or larger than N) is idle waiting for the next
//! request, so the client's FIN is first and the TIME_WAIT moves to the
//! client, on its own ephemeral ports (which is what makes a busy client run
//! out of them).
//!
//! It deliberately does **not** announce the close with `Connection: close`
//! on the Nth request: a server honours that header by closing right after
//! writing the response (Tomcat does, twlab's server does, RFC 9112 §9.6
//! says it must), and its FIN then reaches the client before the client has
//! even read the response, so the server stays the active closer. Measured
//! on loopback with the builtin server (`max_keepalive_requests` 0, 20
//! connections, 3 s, close after 100): with the header 1617 TIME_WAIT
//! sockets on the server and 50 on the client; without it 0 and 971. Closing
//! an idle keep-alive connection unannounced is ordinary HTTP (RFC 9112
//! §9.3: either side may close at any time); connection pools do it.
//!
//! `linger_zero` sets `SO_LINGER {on, 0}` on every client socket (before it
//! connects), so every close of the client (after `close_after`, on the
//! server's `Connection: close`, on a timeout or error, when the run stops)
//! sends RST instead of FIN and frees the socket at once: the client keeps
//! no TIME_WAIT. The RST also resets the server's socket, so when the server
//! had closed first (its FIN already sent, its socket waiting in FIN_WAIT2)
//! the server's TIME_WAIT disappears as well. The price is TCP's orderly
//! close: an RST discards whatever the closer has not had acknowledged, and
//! the peer sees `ECONNRESET` instead of EOF. The client closes between
//! requests (a timeout or the end of the run aside), when nothing of its own
//! is in flight, so here the loss is TIME_WAIT's protection of a reused
//! 4-tuple against the old connection's delayed segments.
//!
//! # Why a hand-written HTTP/1.1 client rather than hyper's
//!
//! The experiment is about *when and how sockets are closed*, so this client
//! must own the socket: close it the instant a `Connection: close` response
//! is read, tell a connect error (with its errno) from a read or write error,
//! and never keep a connection in a pool. hyper's client connection API hides
//! the socket behind a dispatcher task and a body channel, reports errors
//! without saying which side failed, and costs a task and channel hops per
//! request. The protocol subset needed is small: write a fixed request, parse
//! the response head with `httparse`, skip a `Content-Length`, chunked or
//! read-until-EOF body. One task per connection does it all on a reused
//! buffer, which is about as cheap as wrk's event loop.
//!
//! # Latency
//!
//! Each connection task records the latency of its completed requests (from
//! writing the request to the end of the response) in its own HDR histogram
//! at microsecond resolution, 3 significant digits; the histograms are merged
//! at the end. Requests still in flight when the run stops are not counted,
//! as in wrk.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::oneshot;

use crate::common::counts::{ClientStats, Counts, ErrorCounts, Latency};

/// Options of `twlab load`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadOptions {
    /// Server to connect to.
    pub target: SocketAddr,
    /// Value of the `Host` header (wrk sends the URL's `host[:port]`).
    pub host_header: String,
    /// Request target, e.g. `/abc`. Empty means `/`.
    pub path: String,
    /// Concurrent connections (wrk `-c`).
    pub connections: u32,
    /// Tokio worker threads for [`run_load_blocking`] (wrk `-t`); `0` =
    /// number of CPUs.
    pub threads: usize,
    /// How long to run (wrk `-d`).
    pub duration: Duration,
    /// Per-request timeout (wrk `--timeout`, default [`DEFAULT_TIMEOUT`]),
    /// also used as the connect timeout.
    pub timeout: Duration,
    /// Close each connection from the client side after this many completed
    /// requests: once the Nth response is read the client closes the socket
    /// first (its FIN goes out while the server waits for the next request)
    /// and reconnects, counted in `connections_opened` like any reconnect.
    /// The request stays wrk's, without `Connection: close` (that would make
    /// the server close first; see the module docs, "Who closes"). `0` =
    /// never. Whichever comes first ends the connection: this limit or the
    /// server's `Connection: close` (e.g. a smaller server
    /// `max_keepalive_requests`).
    pub close_after: u64,
    /// Close connections with `SO_LINGER {on, 0}`: every close of the client
    /// (after [`close_after`](Self::close_after), on the server's
    /// `Connection: close`, on a timeout or an error, at the end of the run)
    /// sends RST instead of FIN, so the client keeps no TIME_WAIT socket.
    pub linger_zero: bool,
}

/// wrk's default request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// Pause after a failed connect before the slot tries again.
const CONNECT_RETRY_BACKOFF: Duration = Duration::from_millis(10);

/// Largest response head (or chunk-size / trailer line) accepted.
const MAX_HEAD: usize = 64 * 1024;

/// Read buffer growth step.
const READ_CHUNK: usize = 16 * 1024;

/// Response headers parsed at most.
const MAX_HEADERS: usize = 64;

/// Status-class keys always present in `responses_by_class`.
const CLASSES: [&str; 4] = ["2xx", "3xx", "4xx", "5xx"];

/// Checks options that would make a malformed request or an empty run.
fn validate(opts: &LoadOptions) -> Result<(), String> {
    if opts.connections == 0 {
        return Err("connections must be at least 1".into());
    }
    if opts.timeout.is_zero() {
        return Err("timeout must be positive".into());
    }
    let bad = |s: &str| {
        s.bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    };
    if bad(&opts.path) {
        return Err(format!("invalid request path {:?}", opts.path));
    }
    if opts.host_header.is_empty() || bad(&opts.host_header) {
        return Err(format!("invalid Host header {:?}", opts.host_header));
    }
    Ok(())
}

/// The request every connection sends, byte for byte wrk's default one.
fn request_bytes(opts: &LoadOptions) -> Vec<u8> {
    let path = if opts.path.is_empty() {
        "/"
    } else {
        &opts.path
    };
    format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", opts.host_header).into_bytes()
}

/// What all connection tasks share.
struct Shared {
    target: SocketAddr,
    request: Vec<u8>,
    timeout: Duration,
    /// [`LoadOptions::close_after`].
    close_after: u64,
    /// [`LoadOptions::linger_zero`].
    linger_zero: bool,
}

/// One connection slot's counters; merged into [`ClientStats`] at the end.
struct SlotStats {
    requests: u64,
    /// Responses by status / 100 (index 0..=5; 6 = anything else).
    by_class: [u64; 7],
    connections_opened: u64,
    connect_errors: Counts,
    read: u64,
    write: u64,
    timeout: u64,
    latency_us: Histogram<u64>,
}

impl SlotStats {
    fn new(timeout: Duration) -> Self {
        SlotStats {
            requests: 0,
            by_class: [0; 7],
            connections_opened: 0,
            connect_errors: Counts::new(),
            read: 0,
            write: 0,
            timeout: 0,
            latency_us: new_histogram(timeout),
        }
    }

    fn record(&mut self, status: u16, latency: Duration) {
        self.requests += 1;
        let class = usize::from(status / 100).min(6);
        self.by_class[class] += 1;
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.latency_us.saturating_record(us.max(1));
    }

    fn connect_error(&mut self, errno: String) {
        *self.connect_errors.entry(errno).or_insert(0) += 1;
    }
}

/// A histogram of microseconds able to hold anything up to the timeout (at
/// least 1 s; larger values are clamped, but completed requests cannot take
/// much longer than the timeout). About 100 KB with the 2 s default.
fn new_histogram(timeout: Duration) -> Histogram<u64> {
    let high = u64::try_from(timeout.as_micros())
        .unwrap_or(u64::MAX)
        .max(1_000_000);
    Histogram::new_with_bounds(1, high, 3)
        .or_else(|_| Histogram::new(3))
        .unwrap_or_else(|_| unreachable!("3 significant digits are always valid"))
}

/// Why one exchange on a connection failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    Write,
    /// Read error, EOF before the response ended, or an unparsable response.
    Read,
}

/// How the body of a response is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyKind {
    Empty,
    Length(u64),
    Chunked,
    UntilEof,
}

/// What the client needs from a response head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Head {
    /// Bytes of the head, blank line included.
    len: usize,
    status: u16,
    body: BodyKind,
    /// The server will close after this response.
    close: bool,
}

/// A completed response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Completed {
    status: u16,
    close: bool,
}

/// Whether a comma-separated header value contains `token` (ASCII
/// case-insensitive).
fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

/// Parses a response head at the start of `buf`: `Ok(None)` if incomplete,
/// `Err` if it is not HTTP.
fn parse_head(buf: &[u8]) -> Result<Option<Head>, ()> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(()),
    };
    let status = resp.code.ok_or(())?;
    let http11 = resp.version == Some(1);
    let mut conn_close = false;
    let mut conn_keep_alive = false;
    let mut length: Option<u64> = None;
    let mut transfer_encoding: Option<bool> = None; // Some(last is chunked)
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("connection") {
            conn_close |= has_token(h.value, b"close");
            conn_keep_alive |= has_token(h.value, b"keep-alive");
        } else if h.name.eq_ignore_ascii_case("content-length") {
            let n: u64 = std::str::from_utf8(h.value)
                .map_err(|_| ())?
                .trim()
                .parse()
                .map_err(|_| ())?;
            if length.is_some_and(|l| l != n) {
                return Err(());
            }
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            let last = h.value.rsplit(|&b| b == b',').next().unwrap_or_default();
            transfer_encoding = Some(last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        }
    }
    let mut close = conn_close || (!http11 && !conn_keep_alive);
    let body = if (100..200).contains(&status) || status == 204 || status == 304 {
        BodyKind::Empty
    } else if let Some(chunked) = transfer_encoding {
        if chunked {
            BodyKind::Chunked
        } else {
            BodyKind::UntilEof
        }
    } else if let Some(n) = length {
        BodyKind::Length(n)
    } else {
        BodyKind::UntilEof
    };
    if body == BodyKind::UntilEof {
        close = true;
    }
    Ok(Some(Head {
        len,
        status,
        body,
        close,
    }))
}

/// Reads more bytes into `buf`; `Ok(0)` is EOF.
async fn fill(stream: &mut TcpStream, buf: &mut BytesMut) -> Result<usize, Failure> {
    if buf.capacity() - buf.len() < READ_CHUNK / 4 {
        buf.reserve(READ_CHUNK);
    }
    stream.read_buf(buf).await.map_err(|_| Failure::Read)
}

/// Like [`fill`], but EOF is a failure (the response is not over).
async fn fill_more(stream: &mut TcpStream, buf: &mut BytesMut) -> Result<(), Failure> {
    match fill(stream, buf).await? {
        0 => Err(Failure::Read),
        _ => Ok(()),
    }
}

/// Consumes `n` body bytes, reading as needed.
async fn skip(stream: &mut TcpStream, buf: &mut BytesMut, n: u64) -> Result<(), Failure> {
    let mut remaining = n;
    loop {
        let have = buf.len() as u64;
        if have >= remaining {
            // remaining <= buf.len(), so it fits in usize.
            buf.advance(remaining as usize);
            return Ok(());
        }
        remaining -= have;
        buf.clear();
        fill_more(stream, buf).await?;
    }
}

/// Consumes a chunked body, trailers included.
async fn skip_chunked(stream: &mut TcpStream, buf: &mut BytesMut) -> Result<(), Failure> {
    loop {
        let (idx, size) = loop {
            match httparse::parse_chunk_size(buf) {
                Ok(httparse::Status::Complete(found)) => break found,
                Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => {
                    fill_more(stream, buf).await?
                }
                _ => return Err(Failure::Read),
            }
        };
        buf.advance(idx);
        if size > 0 {
            // Chunk data and its CRLF.
            skip(stream, buf, size.saturating_add(2)).await?;
            continue;
        }
        // Last chunk: trailer lines until an empty one.
        loop {
            match buf.windows(2).position(|w| w == b"\r\n") {
                Some(pos) => {
                    buf.advance(pos + 2);
                    if pos == 0 {
                        return Ok(());
                    }
                }
                None if buf.len() < MAX_HEAD => fill_more(stream, buf).await?,
                None => return Err(Failure::Read),
            }
        }
    }
}

/// Reads one complete response (interim 1xx responses skipped).
async fn read_response(stream: &mut TcpStream, buf: &mut BytesMut) -> Result<Completed, Failure> {
    loop {
        let head = loop {
            match parse_head(buf) {
                Ok(Some(head)) => break head,
                Ok(None) if buf.len() < MAX_HEAD => fill_more(stream, buf).await?,
                _ => return Err(Failure::Read),
            }
        };
        buf.advance(head.len);
        if (100..200).contains(&head.status) && head.status != 101 {
            continue;
        }
        match head.body {
            BodyKind::Empty => {}
            BodyKind::Length(n) => skip(stream, buf, n).await?,
            BodyKind::Chunked => skip_chunked(stream, buf).await?,
            BodyKind::UntilEof => loop {
                buf.clear();
                if fill(stream, buf).await? == 0 {
                    break;
                }
            },
        }
        return Ok(Completed {
            status: head.status,
            close: head.close || head.status == 101,
        });
    }
}

/// Sends the request and reads its response.
async fn exchange(
    stream: &mut TcpStream,
    request: &[u8],
    buf: &mut BytesMut,
) -> Result<Completed, Failure> {
    stream
        .write_all(request)
        .await
        .map_err(|_| Failure::Write)?;
    read_response(stream, buf).await
}

/// The errno name of a connect error (`ECONNREFUSED`, ...), or its kind when
/// the OS gave no errno.
fn errno_name(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => format!("{:?}", nix::errno::Errno::from_raw(code)),
        None => format!("{:?}", e.kind()),
    }
}

/// Connects to the target. With [`LoadOptions::linger_zero`] the socket gets
/// `SO_LINGER {on, 0}` before it connects, so that every `close()` of it
/// sends RST and frees it at once, even the close of a connect abandoned
/// half-way (the run stopped, or the connect timed out) after the kernel had
/// completed the handshake.
async fn connect(shared: &Shared) -> std::io::Result<TcpStream> {
    let socket = if shared.target.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if shared.linger_zero {
        socket2::SockRef::from(&socket).set_linger(Some(Duration::ZERO))?;
    }
    socket.connect(shared.target).await
}

/// One connection's life: connect, keep-alive loop, close at once when the
/// server says so, after `close_after` requests, or when anything fails.
/// Returns when the socket is closed (also when the future is dropped
/// mid-request at the end of the run).
async fn connection(shared: &Shared, st: &mut SlotStats, buf: &mut BytesMut) {
    buf.clear();
    let mut stream = match tokio::time::timeout(shared.timeout, connect(shared)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            st.connect_error(errno_name(&e));
            tokio::time::sleep(CONNECT_RETRY_BACKOFF).await;
            return;
        }
        Err(_) => {
            st.connect_error(format!("{:?}", nix::errno::Errno::ETIMEDOUT));
            tokio::time::sleep(CONNECT_RETRY_BACKOFF).await;
            return;
        }
    };
    st.connections_opened += 1;
    // Not fatal: requests are written in one piece anyway.
    let _ = stream.set_nodelay(true);
    let mut completed = 0u64;
    loop {
        let start = Instant::now();
        let outcome =
            tokio::time::timeout(shared.timeout, exchange(&mut stream, &shared.request, buf)).await;
        match outcome {
            Ok(Ok(done)) => {
                st.record(done.status, start.elapsed());
                completed += 1;
                // The server's `Connection: close` or our own limit, whichever
                // comes first. Under our limit the server has not closed and
                // is waiting for the next request: our FIN is the first one.
                if done.close || completed == shared.close_after {
                    // Dropping the stream closes the socket right now (with
                    // RST under linger zero).
                    return;
                }
            }
            Ok(Err(Failure::Write)) => {
                st.write += 1;
                return;
            }
            Ok(Err(Failure::Read)) => {
                st.read += 1;
                return;
            }
            Err(_) => {
                st.timeout += 1;
                return;
            }
        }
    }
}

/// One connection slot: reconnects until told to stop (`stop` fires or its
/// sender is dropped). Each slot has its own oneshot: polling it on every
/// wake-up is a lock-free check, where a shared `watch` or `Notify` would
/// take one mutex shared by all slots for every request.
async fn slot(shared: Arc<Shared>, mut stop: oneshot::Receiver<()>) -> SlotStats {
    let mut st = SlotStats::new(shared.timeout);
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    loop {
        tokio::select! {
            biased;
            _ = &mut stop => break,
            () = connection(&shared, &mut st, &mut buf) => {}
        }
    }
    st
}

/// Runs the load for `opts.duration` or until `stop` resolves, whichever is
/// first, and returns what was counted until then (graceful: an early stop
/// still gives partial statistics).
///
/// The connection tasks run on the caller's tokio runtime (use a
/// multi-thread runtime, or [`run_load_blocking`]). Invalid options
/// (no connections, a zero timeout, whitespace in the path or Host header)
/// give empty statistics with a note saying why.
pub async fn run_load(opts: LoadOptions, stop: impl Future<Output = ()>) -> ClientStats {
    if let Err(why) = validate(&opts) {
        return ClientStats {
            tool: "builtin".into(),
            responses_by_class: Some(Counts::new()),
            connections_opened: Some(0),
            errors: ErrorCounts {
                connect_by_errno: Some(Counts::new()),
                ..ErrorCounts::default()
            },
            notes: vec![format!("invalid load options: {why}")],
            ..ClientStats::default()
        };
    }
    let shared = Arc::new(Shared {
        target: opts.target,
        request: request_bytes(&opts),
        timeout: opts.timeout,
        close_after: opts.close_after,
        linger_zero: opts.linger_zero,
    });
    let started = Instant::now();
    let (stops, tasks): (Vec<_>, Vec<_>) = (0..opts.connections)
        .map(|_| {
            let (tx, rx) = oneshot::channel::<()>();
            (tx, tokio::spawn(slot(Arc::clone(&shared), rx)))
        })
        .unzip();
    tokio::select! {
        () = tokio::time::sleep(opts.duration) => {}
        () = stop => {}
    }
    let elapsed = started.elapsed();
    for tx in stops {
        // A failed send only means that task is already gone.
        let _ = tx.send(());
    }

    let mut slots = Vec::with_capacity(tasks.len());
    let mut lost_tasks = 0u64;
    for task in tasks {
        match task.await {
            Ok(st) => slots.push(st),
            Err(_) => lost_tasks += 1,
        }
    }
    let mut stats = merge(slots, elapsed, opts.timeout);
    if lost_tasks > 0 {
        stats.notes.push(format!(
            "{lost_tasks} connection task(s) failed; their counts are missing"
        ));
    }
    stats
}

/// Sums the slots into the report.
fn merge(slots: Vec<SlotStats>, elapsed: Duration, timeout: Duration) -> ClientStats {
    let mut hist = new_histogram(timeout);
    let mut by_class = [0u64; 7];
    let mut requests = 0;
    let mut opened = 0;
    let mut errors = ErrorCounts {
        connect_by_errno: Some(Counts::new()),
        ..ErrorCounts::default()
    };
    let mut by_errno = Counts::new();
    for st in slots {
        requests += st.requests;
        opened += st.connections_opened;
        for (total, n) in by_class.iter_mut().zip(st.by_class) {
            *total += n;
        }
        for (name, n) in st.connect_errors {
            errors.connect += n;
            *by_errno.entry(name).or_insert(0) += n;
        }
        errors.read += st.read;
        errors.write += st.write;
        errors.timeout += st.timeout;
        // Same bounds everywhere, so adding cannot fail; if it did, the
        // latency would only miss that slot.
        let _ = hist.add(&st.latency_us);
    }
    errors.connect_by_errno = Some(by_errno);

    let mut classes: Counts = CLASSES
        .iter()
        .enumerate()
        .map(|(i, name)| (name.to_string(), by_class[i + 2]))
        .collect();
    if by_class[1] > 0 {
        classes.insert("1xx".into(), by_class[1]);
    }
    let other = by_class[0] + by_class[6];
    if other > 0 {
        classes.insert("other".into(), other);
    }
    let non_2xx_3xx = requests - by_class[2] - by_class[3];

    let ms = |us: u64| us as f64 / 1000.0;
    let latency = if hist.is_empty() {
        Latency {
            p75_ms: Some(0.0),
            ..Latency::default()
        }
    } else {
        Latency {
            mean_ms: hist.mean() / 1000.0,
            p50_ms: ms(hist.value_at_quantile(0.50)),
            p75_ms: Some(ms(hist.value_at_quantile(0.75))),
            p90_ms: ms(hist.value_at_quantile(0.90)),
            p99_ms: ms(hist.value_at_quantile(0.99)),
            max_ms: ms(hist.max()),
        }
    };

    let secs = elapsed.as_secs_f64();
    let mut notes = Vec::new();
    if errors.connect > 0 {
        notes.push(format!(
            "{} failed connects were retried after {} ms (wrk would have dropped those connection slots)",
            errors.connect,
            CONNECT_RETRY_BACKOFF.as_millis()
        ));
    }
    if errors.timeout > 0 {
        notes.push(format!(
            "{} timed-out requests closed their connection, which was reopened (wrk keeps waiting)",
            errors.timeout
        ));
    }
    ClientStats {
        tool: "builtin".into(),
        duration_secs: secs,
        requests,
        requests_per_sec: if secs > 0.0 {
            requests as f64 / secs
        } else {
            0.0
        },
        responses_by_class: Some(classes),
        non_2xx_3xx,
        connections_opened: Some(opened),
        errors,
        latency,
        cpu_secs: process_cpu_secs(),
        notes,
    }
}

/// Number of worker threads to use for `threads` (`0` = number of CPUs).
/// Blocking entry for `twlab load`: builds a multi-thread tokio runtime with
/// `opts.threads` workers (`0` = number of CPUs) and runs [`run_load`];
/// SIGINT or SIGTERM stop the run early and the statistics counted so far
/// are still returned.
///
/// Fails with `InvalidInput` on invalid options (see [`run_load`]), or when
/// the runtime or the signal handlers cannot be set up.
pub fn run_load_blocking(opts: LoadOptions) -> std::io::Result<ClientStats> {
    validate(&opts).map_err(|why| std::io::Error::new(std::io::ErrorKind::InvalidInput, why))?;
    let (runtime, stop) = crate::load::shutdown::runtime_until_stopped(opts.threads)?;
    Ok(runtime.block_on(run_load(opts, stop.recv())))
}

/// CPU time (user + system) this process has used so far, in seconds: the
/// load generator's own cost, used to tell when it was the bottleneck.
fn process_cpu_secs() -> Option<f64> {
    use nix::sys::resource::{UsageWho, getrusage};
    let usage = getrusage(UsageWho::RUSAGE_SELF).ok()?;
    let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    Some(secs(usage.user_time()) + secs(usage.system_time()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::server::builtin::test_support::{Entry, Sides, TimeWait};
    use crate::load::server::builtin::{bind, serve_on, serve_on_with};
    use std::net::Ipv4Addr;
    use tokio::io::AsyncBufReadExt;

    fn opts(target: SocketAddr, connections: u32, duration: Duration) -> LoadOptions {
        LoadOptions {
            target,
            host_header: target.to_string(),
            path: "/abc".into(),
            connections,
            threads: 2,
            duration,
            timeout: DEFAULT_TIMEOUT,
            close_after: 0,
            linger_zero: false,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn load_against_builtin_server_counts_reconnects() {
        const N: u64 = 10;
        let listener = bind(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 0)).expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve_on(listener, N, async move {
            let _ = rx.await;
        }));

        let connections = 8;
        let stats = tokio::time::timeout(
            Duration::from_secs(10),
            run_load(
                opts(addr, connections, Duration::from_secs(1)),
                std::future::pending(),
            ),
        )
        .await
        .expect("run ends after its duration");
        let _ = tx.send(());
        server.await.expect("join").expect("serve");

        assert_eq!(stats.tool, "builtin");
        assert!(stats.requests > 0, "{stats:?}");
        let classes = stats.responses_by_class.as_ref().expect("classes");
        assert_eq!(classes.get("4xx"), Some(&stats.requests));
        assert_eq!(classes.get("2xx"), Some(&0));
        assert_eq!(stats.non_2xx_3xx, stats.requests);
        let opened = stats.connections_opened.expect("opened");
        // Each connection carries exactly N requests, except those still open
        // (or mid-request) when the run stopped.
        assert!(
            opened >= stats.requests / N,
            "{opened} < {}/{N}",
            stats.requests
        );
        assert!(
            opened <= stats.requests / N + u64::from(connections),
            "{opened} connections for {} requests",
            stats.requests
        );
        assert_eq!(stats.errors.total(), 0, "{:?}", stats.errors);
        assert!((0.9..3.0).contains(&stats.duration_secs));
        assert!(stats.requests_per_sec > 0.0);
        assert!(stats.latency.p50_ms > 0.0 && stats.latency.max_ms >= stats.latency.p99_ms);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn refused_connects_are_counted_by_errno_and_retried() {
        // A port nobody listens on: bind, learn it, close.
        let port = {
            let l = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
            l.local_addr().expect("addr").port()
        };
        let target = SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port);
        let connections = 2;
        let stats = tokio::time::timeout(
            Duration::from_secs(10),
            run_load(
                opts(target, connections, Duration::from_millis(300)),
                std::future::pending(),
            ),
        )
        .await
        .expect("run ends");
        assert_eq!(stats.requests, 0);
        assert_eq!(stats.connections_opened, Some(0));
        assert!(
            stats.errors.connect > u64::from(connections),
            "slots must keep retrying: {:?}",
            stats.errors
        );
        let by_errno = stats.errors.connect_by_errno.as_ref().expect("by errno");
        assert_eq!(by_errno.get("ECONNREFUSED"), Some(&stats.errors.connect));
        assert!(!stats.notes.is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stop_future_ends_the_run_early() {
        let listener = bind(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 0)).expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve_on(listener, 0, async move {
            let _ = rx.await;
        }));
        let stats = tokio::time::timeout(
            Duration::from_secs(10),
            run_load(
                opts(addr, 4, Duration::from_secs(3600)),
                tokio::time::sleep(Duration::from_millis(300)),
            ),
        )
        .await
        .expect("stop is honoured");
        let _ = tx.send(());
        server.await.expect("join").expect("serve");
        assert!(stats.duration_secs < 2.0);
        assert!(stats.requests > 0);
        // max_keepalive_requests 0: connections are never closed by the server.
        assert_eq!(stats.connections_opened, Some(4));
    }

    /// A tiny scripted server: answers each request on a connection with the
    /// next of `responses`, then closes.
    async fn scripted_server(responses: Vec<&'static str>) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let responses = responses.clone();
                tokio::spawn(async move {
                    let mut stream = tokio::io::BufReader::new(stream);
                    for resp in responses {
                        // Read one request head.
                        loop {
                            let mut line = String::new();
                            match stream.read_line(&mut line).await {
                                Ok(0) | Err(_) => return,
                                Ok(_) if line == "\r\n" => break,
                                Ok(_) => {}
                            }
                        }
                        if stream.get_mut().write_all(resp.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn chunked_interim_and_until_eof_bodies() {
        let addr = scripted_server(vec![
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;x=y\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n",
            "HTTP/1.1 301 Moved\r\nContent-Length: 3\r\n\r\nabc",
            "HTTP/1.1 503 Busy\r\n\r\nuntil eof",
        ])
        .await;
        let stats = run_load(
            opts(addr, 1, Duration::from_millis(300)),
            std::future::pending(),
        )
        .await;
        let classes = stats.responses_by_class.as_ref().expect("classes");
        assert!(stats.requests >= 3, "{stats:?}");
        assert_eq!(stats.errors.total(), 0, "{:?}", stats.errors);
        // Every connection is closed by the until-EOF 503.
        let opened = stats.connections_opened.expect("opened");
        assert_eq!(classes["5xx"], stats.requests / 3);
        assert!(opened >= stats.requests / 3);
        assert_eq!(
            classes["2xx"] + classes["3xx"] + classes["5xx"],
            stats.requests
        );
        assert!(
            !classes.contains_key("1xx"),
            "interim responses are not counted"
        );
        assert_eq!(stats.non_2xx_3xx, classes["5xx"]);
    }

    /// What [`load_and_count`] saw.
    struct Counted {
        stats: ClientStats,
        /// New TIME_WAIT sockets on each side of the server port.
        tw: Sides,
        /// Sockets of the port still closing when the counts were taken.
        busy: Vec<Entry>,
    }

    /// Runs `load` for 300 ms against a builtin server on 127.0.0.1 that
    /// closes after `server_n` requests (`0` = never); then counts the new
    /// TIME_WAIT sockets of the server port, waiting (at most 5 s) for the
    /// closes to finish and for `enough`, before stopping the server.
    async fn load_and_count(
        server_n: u64,
        load: impl FnOnce(SocketAddr) -> LoadOptions,
        enough: fn(&ClientStats, Sides) -> bool,
    ) -> Counted {
        let listener = bind(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 0)).expect("bind");
        let addr = listener.local_addr().expect("addr");
        let watch = TimeWait::new(addr.port());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve_on(listener, server_n, async move {
            let _ = rx.await;
        }));
        let stats = tokio::time::timeout(
            Duration::from_secs(10),
            run_load(load(addr), std::future::pending()),
        )
        .await
        .expect("run ends after its duration");
        let (stats, tw, busy) = tokio::task::spawn_blocking(move || {
            let tw = watch.wait_for(Duration::from_secs(5), |s| enough(&stats, s));
            (stats, tw, watch.settle(Duration::ZERO))
        })
        .await
        .expect("join");
        let _ = tx.send(());
        server.await.expect("join").expect("serve");
        Counted { stats, tw, busy }
    }

    /// Load options for the close tests: 2 connections for 300 ms.
    fn close_opts(target: SocketAddr, close_after: u64, linger_zero: bool) -> LoadOptions {
        LoadOptions {
            close_after,
            linger_zero,
            ..opts(target, 2, Duration::from_millis(300))
        }
    }

    /// Each connection carried exactly `n` requests, except those still open
    /// (or mid-request) when the run stopped.
    fn assert_reconnects_every(stats: &ClientStats, n: u64) {
        let opened = stats.connections_opened.expect("opened");
        let connections = 2;
        assert!(stats.requests > 0, "{stats:?}");
        assert!(
            opened >= stats.requests / n && opened <= stats.requests / n + connections,
            "{opened} connections for {} requests at {n} per connection",
            stats.requests
        );
        assert_eq!(stats.errors.total(), 0, "{:?}", stats.errors);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn close_after_makes_the_client_the_active_closer() {
        const N: u64 = 10;
        // The server never closes: every connection ends by the client's
        // close after N, so each leaves one TIME_WAIT on the client once the
        // server's FIN has come back. (The 2 still open when the run stops
        // are dropped mid-request, with a response arriving: closing a
        // socket with unread data sends RST, no TIME_WAIT.)
        let c = load_and_count(
            0,
            |addr| close_opts(addr, N, false),
            |stats, s| s.client as u64 + 2 >= stats.connections_opened.unwrap_or(0),
        )
        .await;
        assert_reconnects_every(&c.stats, N);
        let opened = c.stats.connections_opened.expect("opened");
        assert!(
            c.tw.client as u64 >= opened.saturating_sub(2).div_ceil(2).max(1),
            "TIME_WAIT on the client for most of its {opened} closes: {:?}, still closing: {:?}",
            c.tw,
            c.busy
        );
        assert_eq!(
            c.tw.server, 0,
            "the server closed second, it has no TIME_WAIT ({:?}, still closing: {:?})",
            c.tw, c.busy
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn close_after_or_server_close_whichever_comes_first() {
        // The server closes after 3, before the client's 5: the server's
        // Connection: close wins, and the server is the active closer.
        let c = load_and_count(3, |addr| close_opts(addr, 5, false), |_, s| s.server > 0).await;
        assert_reconnects_every(&c.stats, 3);
        assert!(c.tw.server > 0, "{:?} {:?}", c.tw, c.busy);
        // And the other way round: the client's 2 comes before the server's 5.
        let c = load_and_count(5, |addr| close_opts(addr, 2, false), |_, _| true).await;
        assert_reconnects_every(&c.stats, 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn linger_zero_client_leaves_no_time_wait() {
        const N: u64 = 10;
        // Its own close after N: RST instead of FIN, nothing on either side.
        let c = load_and_count(0, |addr| close_opts(addr, N, true), |_, _| true).await;
        assert_reconnects_every(&c.stats, N);
        assert_eq!(
            c.tw,
            Sides {
                server: 0,
                client: 0
            },
            "still closing: {:?}",
            c.busy
        );
        // On the server's Connection: close the client's RST also resets
        // the server's socket waiting in FIN_WAIT2: no TIME_WAIT anywhere.
        let c = load_and_count(N, |addr| close_opts(addr, 0, true), |_, _| true).await;
        assert_reconnects_every(&c.stats, N);
        assert_eq!(
            c.tw,
            Sides {
                server: 0,
                client: 0
            },
            "still closing: {:?}",
            c.busy
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn linger_zero_server_resets_a_client_that_closed_first() {
        // The client closes first; the server's close after the client's
        // FIN is an RST, which also resets the client's FIN_WAIT2 socket.
        let listener = bind(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 0)).expect("bind");
        let addr = listener.local_addr().expect("addr");
        let watch = TimeWait::new(addr.port());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve_on_with(listener, 0, true, async move {
            let _ = rx.await;
        }));
        let stats = tokio::time::timeout(
            Duration::from_secs(10),
            run_load(close_opts(addr, 10, false), std::future::pending()),
        )
        .await
        .expect("run ends");
        let (tw, busy) = tokio::task::spawn_blocking(move || {
            (
                watch.wait_for(Duration::from_secs(5), |_| true),
                watch.settle(Duration::ZERO),
            )
        })
        .await
        .expect("join");
        let _ = tx.send(());
        server.await.expect("join").expect("serve");
        assert_reconnects_every(&stats, 10);
        assert_eq!(
            tw,
            Sides {
                server: 0,
                client: 0
            },
            "still closing: {busy:?}"
        );
    }

    #[test]
    fn parse_head_cases() {
        let h = parse_head(b"HTTP/1.1 404 \r\nContent-Length: 10\r\n\r\n")
            .expect("ok")
            .expect("complete");
        assert_eq!(
            (h.status, h.body, h.close),
            (404, BodyKind::Length(10), false)
        );
        let h = parse_head(b"HTTP/1.1 404 \r\nconnection: Close\r\ncontent-length: 0\r\n\r\n")
            .expect("ok")
            .expect("complete");
        assert!(h.close);
        let h = parse_head(b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n")
            .expect("ok")
            .expect("complete");
        assert!(h.close, "HTTP/1.0 without keep-alive closes");
        let h =
            parse_head(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n")
                .expect("ok")
                .expect("complete");
        assert!(!h.close);
        let h = parse_head(b"HTTP/1.1 204 No Content\r\n\r\n")
            .expect("ok")
            .expect("complete");
        assert_eq!(h.body, BodyKind::Empty);
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\nContent-"), Ok(None));
        assert!(parse_head(b"garbage\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n").is_err());
    }

    #[test]
    fn request_is_wrks() {
        let o = opts(
            "127.0.0.1:8080".parse().expect("addr"),
            1,
            Duration::from_secs(1),
        );
        assert_eq!(
            request_bytes(&o),
            b"GET /abc HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n".to_vec()
        );
        let mut bad = o.clone();
        bad.path = "/a b".into();
        assert!(validate(&bad).is_err());
        bad = o.clone();
        bad.connections = 0;
        assert!(run_load_blocking(bad).is_err());
    }

    #[test]
    fn errno_names() {
        let e = std::io::Error::from_raw_os_error(libc::EADDRNOTAVAIL);
        assert_eq!(errno_name(&e), "EADDRNOTAVAIL");
        let e = std::io::Error::from_raw_os_error(libc::ECONNREFUSED);
        assert_eq!(errno_name(&e), "ECONNREFUSED");
    }
}
