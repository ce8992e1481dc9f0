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
//! # Open loop: [`LoadOptions::rate`]
//!
//! By default the load is closed-loop, as wrk's: each connection sends its
//! next request as soon as the last response is in, so the request rate —
//! and with it the close rate that sets every TIME_WAIT count — is
//! whatever this machine allows. With a rate the load is open-loop, as
//! wrk2's `-R`: the requests per second are spread evenly over the
//! connections (connection `i` of `c` sends its `k`-th request at
//! `start + (i + k·c) / rate`), each is sent when its time comes, and a
//! connection closed in between is opened again only when its next request
//! is due (so with `close_after: 1` the rate is a connection rate). A
//! request whose connection is still busy, or whose client fell behind, is
//! sent as soon as it can and counted *late*; its latency is measured from
//! its **scheduled** time, not from when it was sent (the coordinated
//! omission correction: a stalled server would otherwise hide its stall
//! in requests never sent). The service time (from writing the request)
//! is reported beside it. A failed connect uses up its request's time, so
//! the attempts keep the rate.
//!
//! # Who closes on `Connection: close`: [`LoadOptions::close_delay`]
//!
//! wrk closes the instant it reads a `Connection: close` response, racing
//! the server's own FIN. `close_delay` waits that long before closing: a
//! server that closes right after its response then sends the first FIN
//! and keeps the TIME_WAIT, and the client, closing second, keeps none
//! (it models a client that lingers over a response before releasing
//! the connection).
//!
//! # Latency
//!
//! Each connection task records the latency of its completed requests (from
//! writing the request to the end of the response; with a rate, from the
//! request's scheduled time) in its own HDR histogram at microsecond
//! resolution, 3 significant digits; the histograms are merged at the end.
//! Requests still in flight when the run stops are not counted, as in wrk.

mod http;
mod stats;
use http::*;
use stats::*;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::oneshot;

use crate::common::counts::{ClientStats, Counts, ErrorCounts};

/// Options of `twlab load`.
#[derive(Debug, Clone, PartialEq)]
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
    /// Requests per second over the whole load, spread over the
    /// connections on a fixed schedule (open loop, see the module docs);
    /// `None` = closed loop, as fast as responses come back.
    pub rate: Option<f64>,
    /// After reading a `Connection: close` response, wait this long
    /// before closing (see the module docs); zero = at once, as wrk.
    pub close_delay: Duration,
}

/// The highest `rate` a load accepts: a million requests per second is
/// far beyond what one client host sends.
pub const MAX_RATE: f64 = 1_000_000.0;

/// wrk's default request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// Pause after a failed connect before the slot tries again.
const CONNECT_RETRY_BACKOFF: Duration = Duration::from_millis(10);

/// Checks options that would make a malformed request or an empty run.
fn validate(opts: &LoadOptions) -> Result<(), String> {
    if opts.connections == 0 {
        return Err("connections must be at least 1".into());
    }
    if opts.timeout.is_zero() {
        return Err("timeout must be positive".into());
    }
    if let Some(rate) = opts.rate
        && !(rate > 0.0 && rate <= MAX_RATE)
    {
        return Err(format!(
            "rate must be more than 0 and at most {MAX_RATE} requests per second, not {rate}"
        ));
    }
    if opts.close_delay >= opts.timeout {
        return Err("close delay must be shorter than the request timeout".into());
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
    /// With a rate: the time between two requests of one connection.
    interval: Option<Duration>,
    /// [`LoadOptions::close_delay`].
    close_delay: Duration,
}

/// A connection slot's place on an open-loop schedule.
struct Due {
    /// When its next request is due.
    next: tokio::time::Instant,
    /// Between two of its requests.
    interval: Duration,
}

impl Due {
    /// Wait for the next request's time; returns that time (to measure
    /// latency from) and moves the schedule on by one request.
    async fn wait(&mut self) -> tokio::time::Instant {
        let at = self.next;
        tokio::time::sleep_until(at).await;
        self.next += self.interval;
        at
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
///
/// On an open-loop schedule (`due`), the connection is opened when its
/// first request is due (a failed connect uses that request's time, so
/// the attempts keep the rate), and every request waits for its time;
/// latency is measured from that time.
async fn connection(
    shared: &Shared,
    st: &mut SlotStats,
    buf: &mut BytesMut,
    due: &mut Option<Due>,
) {
    buf.clear();
    let mut first = match due {
        Some(d) => {
            let at = d.wait().await;
            st.due(at.elapsed());
            Some(at)
        }
        None => None,
    };
    let mut stream = match tokio::time::timeout(shared.timeout, connect(shared)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            st.connect_error(errno_name(&e));
            if due.is_none() {
                tokio::time::sleep(CONNECT_RETRY_BACKOFF).await;
            }
            return;
        }
        Err(_) => {
            st.connect_error(format!("{:?}", nix::errno::Errno::ETIMEDOUT));
            if due.is_none() {
                tokio::time::sleep(CONNECT_RETRY_BACKOFF).await;
            }
            return;
        }
    };
    st.connections_opened += 1;
    // Not fatal: requests are written in one piece anyway.
    let _ = stream.set_nodelay(true);
    let mut completed = 0u64;
    loop {
        // The request's time: the connection's first was waited for
        // before connecting; the others are waited for here.
        let scheduled = match (first.take(), due.as_mut()) {
            (Some(at), _) => Some(at),
            (None, Some(d)) => {
                let at = d.wait().await;
                st.due(at.elapsed());
                Some(at)
            }
            (None, None) => None,
        };
        let start = Instant::now();
        let outcome =
            tokio::time::timeout(shared.timeout, exchange(&mut stream, &shared.request, buf)).await;
        match outcome {
            Ok(Ok(done)) => {
                let service = start.elapsed();
                let latency = scheduled.map_or(service, |at| at.elapsed());
                st.record(done.status, latency, service);
                completed += 1;
                // The server's `Connection: close` or our own limit, whichever
                // comes first. Under our limit the server has not closed and
                // is waiting for the next request: our FIN is the first one.
                if done.close && !shared.close_delay.is_zero() {
                    // Let the server's FIN come first (see the module docs),
                    // without holding the slot: its next request goes out
                    // on a new connection meanwhile, on time.
                    let delay = shared.close_delay;
                    tokio::spawn(async move {
                        crate::load::precise_delay::PreciseDelay::new(delay).await;
                        drop(stream);
                    });
                    return;
                }
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
///
/// `first_due`: on an open-loop schedule, when the slot's first request is
/// due (the slots are staggered over one interval).
async fn slot(
    shared: Arc<Shared>,
    first_due: Option<tokio::time::Instant>,
    mut stop: oneshot::Receiver<()>,
) -> SlotStats {
    let mut st = SlotStats::new(shared.timeout, first_due.is_some());
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut due = first_due
        .zip(shared.interval)
        .map(|(next, interval)| Due { next, interval });
    loop {
        tokio::select! {
            biased;
            _ = &mut stop => break,
            () = connection(&shared, &mut st, &mut buf, &mut due) => {}
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
        interval: opts
            .rate
            .map(|r| Duration::from_secs_f64(f64::from(opts.connections) / r)),
        close_delay: opts.close_delay,
    });
    let started = Instant::now();
    let origin = tokio::time::Instant::from_std(started);
    // Slot `i` of `c` starts `i / rate` in: the requests of all slots
    // together come evenly, `1 / rate` apart.
    let first_due = |i: u32| {
        opts.rate
            .map(|r| origin + Duration::from_secs_f64(f64::from(i) / r))
    };
    let (stops, tasks): (Vec<_>, Vec<_>) = (0..opts.connections)
        .map(|i| {
            let (tx, rx) = oneshot::channel::<()>();
            (
                tx,
                tokio::spawn(slot(Arc::clone(&shared), first_due(i), rx)),
            )
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
    let mut stats = merge(slots, elapsed, opts.timeout, opts.rate);
    if lost_tasks > 0 {
        stats.notes.push(format!(
            "{lost_tasks} connection task(s) failed; their counts are missing"
        ));
    }
    stats
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
    let (runtime, stop) = crate::shutdown::runtime_until_stopped(opts.threads)?;
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
mod tests;
