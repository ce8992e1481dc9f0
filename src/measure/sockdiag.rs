//! Counting TCP sockets by state straight from the kernel, over `NETLINK_SOCK_DIAG`.
//!
//! twlab samples socket counts (TIME_WAIT above all) many times per run, on
//! both hosts of the lab, while a load generator may be holding 100k+ sockets.
//! It asks the kernel in-process with an `inet_diag` dump instead of running
//! `ss` or `netstat`, or reading `/proc/net/tcp`, for three reasons:
//!
//! * **Cost.** `ss`/`netstat` mean a fork+exec per sample plus text
//!   formatting and parsing of every socket; `/proc/net/tcp` has the kernel
//!   print every socket of the table as a text line. A sock_diag dump is
//!   binary, filtered in the kernel (by state, and by port with an
//!   `INET_DIAG_REQ_BYTECODE` program, see below), and decoded here without
//!   an allocation per socket.
//! * **Precision.** We get the kernel's own state number and the exact
//!   addresses and ports of every socket, so there is no column layout,
//!   `*`/`[::ffff:…]` spelling or locale to parse, and the match against the
//!   endpoint is [`Endpoint::matches`], the same rule the rest of twlab uses.
//! * **Dual-stack servers.** A server listening on `[::]` (Tomcat and most
//!   Java servers do) holds its IPv4 connections on `AF_INET6` sockets whose
//!   addresses read `::ffff:a.b.c.d`. `ss -4`, `netstat -4` and
//!   `/proc/net/tcp` (the IPv4 table only) do not show those sockets at all,
//!   so an IPv4 experiment counted that way reads zero TIME_WAIT on the
//!   server. [`SockDiag::count`] dumps `AF_INET` and `AF_INET6` both and sums
//!   them, and a v4-mapped address counts as its IPv4 endpoint.
//!
//! A netlink socket reports on the network namespace it was created in, so a
//! lab host (a namespace) gets its own [`SockDiag`] from
//! [`SockDiag::open_in_netns`], made once and reused for every sample.
//!
//! Filtering: the request's state bitmask asks for every TCP state (LISTEN
//! included; the caller decides what to show). The netlink-packet-sock-diag
//! request type has no field for attributes, so the request is emitted with
//! the crate's types and the bytecode attribute (`INET_DIAG_BC_S_EQ` on the
//! local port for [`Side::Server`], `INET_DIAG_BC_D_EQ` on the remote port for
//! [`Side::Client`]) is appended to it as a [`DefaultNla`]. The kernel then
//! returns only the sockets of that port; the address (and the port again) is
//! checked here on every socket with [`Endpoint::matches`].
//!
//! Decoding (reply bytes to counts) is separate from the socket I/O
//! ([`decode_counts`]) so it is tested on replies captured from a real kernel
//! (`tests/fixtures/sockdiag/`).

use std::collections::HashSet;
use std::fmt;
use std::fs::File;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use netlink_packet_core::{
    DefaultNla, Emitable, ErrorBuffer, ErrorMessage, NLM_F_DUMP, NLM_F_REQUEST, NLMSG_DONE,
    NLMSG_ERROR, NLMSG_NOOP, NLMSG_OVERRUN, NetlinkBuffer, NetlinkHeader, Parseable,
};
use netlink_packet_sock_diag::constants::{AF_INET, AF_INET6, IPPROTO_TCP, SOCK_DIAG_BY_FAMILY};
use netlink_packet_sock_diag::inet::{
    ExtensionFlags, InetRequest, InetResponseHeader, SocketId, StateFlags, Timer,
};
use netlink_sys::protocols::NETLINK_SOCK_DIAG;
use netlink_sys::{Socket, SocketAddr as NetlinkAddr};

use crate::common::counts::Counts;
use crate::common::endpoint::{Endpoint, Side};
pub use crate::common::names::socket_state_name as state_name;

/// Size of the buffer one reply datagram is read into. The kernel caps a dump
/// datagram at about 32 KiB, so this never truncates; a larger datagram would
/// be reported as an error rather than silently cut (`MSG_TRUNC`).
const RECV_BUF_LEN: usize = 1 << 20;
/// `SO_RCVBUF` asked for (the kernel clamps it to `net.core.rmem_max`).
const SO_RCVBUF_BYTES: libc::c_int = 4 << 20;

/// `TCP_NEW_SYN_RECV` (request sockets); not in netlink-packet-sock-diag's
/// `StateFlags`, so its bit is added by hand.
const TCP_NEW_SYN_RECV: u8 = 12;
/// `TCP_FIN_WAIT2` and `TCP_TIME_WAIT` (include/net/tcp_states.h).
const TCP_FIN_WAIT2: u8 = 5;
const TCP_TIME_WAIT: u8 = 6;
/// `INET_DIAG_REQ_BYTECODE`, the request attribute holding a filter program.
const INET_DIAG_REQ_BYTECODE: u16 = 1;
/// `INET_DIAG_BC_S_EQ`: local port equals the port in the next op's `no`.
const INET_DIAG_BC_S_EQ: u8 = 11;
/// `INET_DIAG_BC_D_EQ`: remote port equals the port in the next op's `no`.
const INET_DIAG_BC_D_EQ: u8 = 12;

/// A `NETLINK_SOCK_DIAG` socket, bound to the network namespace it was
/// created in, that counts TCP sockets per state for an [`Endpoint`].
///
/// Reuse one for every sample: it keeps its receive buffer between dumps.
pub struct SockDiag {
    socket: Socket,
    buf: Vec<u8>,
    seq: u32,
    /// Does this kernel answer the one-walk dump of both families (the
    /// `TCPDIAG_GETSOCK` request, see [`build_compat_request`])? `None`
    /// until the first count tries it.
    one_walk: Option<bool>,
}

impl fmt::Debug for SockDiag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use std::os::fd::AsRawFd;
        f.debug_struct("SockDiag")
            .field("fd", &self.socket.as_raw_fd())
            .field("seq", &self.seq)
            .finish()
    }
}

/// Where a reply stands after the messages seen so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Progress {
    /// More datagrams follow.
    More,
    /// `NLMSG_DONE` was seen: the dump is complete.
    Done,
}

impl SockDiag {
    /// A sock_diag socket in this thread's current network namespace.
    pub fn open() -> io::Result<SockDiag> {
        let mut socket = Socket::new(NETLINK_SOCK_DIAG)?;
        socket.bind_auto()?;
        socket.connect(&NetlinkAddr::new(0, 0))?;
        socket.set_rx_buf_sz(SO_RCVBUF_BYTES)?;
        Ok(SockDiag {
            socket,
            buf: vec![0; RECV_BUF_LEN],
            seq: 0,
            one_walk: None,
        })
    }

    /// Whether counts walk the kernel's socket hash once for both families
    /// (`Some(true)`), once per family (`Some(false)`: this kernel does not
    /// answer the one-walk request), or have not been tried yet (`None`).
    pub fn one_walk(&self) -> Option<bool> {
        self.one_walk
    }

    /// Count with one walk per family from now on (to compare the two ways
    /// in tests and in `twlab bench`).
    pub fn per_family(mut self) -> SockDiag {
        self.one_walk = Some(false);
        self
    }

    /// A sock_diag socket that lives in the network namespace at `netns_path`
    /// (e.g. `/run/netns/NAME`).
    ///
    /// Netlink sockets stay bound to the namespace they were created in, so
    /// the socket is created on a short-lived helper thread that `setns()`'s
    /// into the namespace (setns affects only the calling thread) and is then
    /// returned; the caller's thread never changes namespace.
    pub fn open_in_netns(netns_path: &Path) -> io::Result<SockDiag> {
        let shown = netns_path.display().to_string();
        let ns = File::open(netns_path).map_err(|e| {
            io::Error::new(e.kind(), format!("open network namespace {shown}: {e}"))
        })?;
        let helper = std::thread::Builder::new()
            .name("twlab-sockdiag-setns".to_string())
            .spawn(move || -> io::Result<SockDiag> {
                nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|errno| {
                    let e = io::Error::from(errno);
                    io::Error::new(e.kind(), format!("setns into {shown}: {e}"))
                })?;
                SockDiag::open()
            })?;
        helper
            .join()
            .map_err(|_| io::Error::other("the sock_diag setns helper thread panicked"))?
    }

    /// Count TCP sockets for the endpoint by kernel state, AF_INET and AF_INET6 both.
    ///
    /// [`Side::Server`] counts the sockets whose local end is `endpoint`
    /// (the listener included), [`Side::Client`] those whose remote end is.
    /// Keys are [`state_name`]s; a state with no socket is absent (read a
    /// missing key as 0). IPv4 connections held by a dual-stack `AF_INET6`
    /// socket (`::ffff:a.b.c.d`) count for the IPv4 endpoint.
    pub fn count(&mut self, endpoint: &Endpoint, side: Side) -> io::Result<Counts> {
        Ok(self
            .tally(endpoint, side, all_states(), None)?
            .into_counts())
    }

    /// [`SockDiag::count`] (or, with `sockstat`,
    /// [`SockDiag::count_in_own_namespace`]) that also adds to `peers` the
    /// remote address of every matching server-side socket the dump
    /// reported (IPv4-mapped addresses as IPv4): the client addresses the
    /// server saw, without a dump of its own.
    pub fn count_noting_peers(
        &mut self,
        endpoint: &Endpoint,
        sockstat: Option<&mut File>,
        peers: &mut HashSet<IpAddr>,
    ) -> io::Result<Counts> {
        match sockstat {
            Some(file) => self.count_own(endpoint, Side::Server, file, Some(peers)),
            None => Ok(self
                .tally(endpoint, Side::Server, all_states(), Some(peers))?
                .into_counts()),
        }
    }

    /// [`SockDiag::count`] in a namespace that holds nothing but the
    /// endpoint's connections (an embedded lab's), without asking the kernel
    /// for a message per TIME_WAIT socket: the dump asks for every state but
    /// TIME_WAIT (the kernel still walks its hash table, but formats only the
    /// few live sockets), and TIME_WAIT is the namespace's own figure from
    /// `sockstat` (the open `/proc/net/sockstat` of that namespace), less
    /// the time-wait sockets the dump reported in the FIN_WAIT2 substate.
    /// Both are read within a millisecond of each other; between them, a
    /// socket or two may change state.
    pub fn count_in_own_namespace(
        &mut self,
        endpoint: &Endpoint,
        side: Side,
        sockstat: &mut File,
    ) -> io::Result<Counts> {
        self.count_own(endpoint, side, sockstat, None)
    }

    fn count_own(
        &mut self,
        endpoint: &Endpoint,
        side: Side,
        sockstat: &mut File,
        peers: Option<&mut HashSet<IpAddr>>,
    ) -> io::Result<Counts> {
        let mut states = all_states();
        states.remove(StateFlags::TIME_WAIT);
        let tally = self.tally(endpoint, side, states, peers)?;
        let fw2 = tally.fin_wait2_timewait;
        let tw = read_sockstat_tw(sockstat)?.saturating_sub(fw2);
        let mut counts = tally.into_counts();
        if tw > 0 {
            counts.insert(state_name(TCP_TIME_WAIT).to_string(), tw);
        }
        Ok(counts)
    }

    fn tally(
        &mut self,
        endpoint: &Endpoint,
        side: Side,
        states: StateFlags,
        mut peers: Option<&mut HashSet<IpAddr>>,
    ) -> io::Result<Tally> {
        // One walk of the kernel's socket hash for both families where the
        // kernel takes the older request; else one walk per family. The
        // hash holds every namespace's sockets, and walking it is most of
        // what a count costs in a lab namespace (the bench's lab row).
        if self.one_walk != Some(false) {
            // (A failed try adds nothing to `peers` but real peers.)
            let mut tally = Tally::default();
            let walked = self.exchange(
                BOTH_FAMILIES,
                Some((side, endpoint.port)),
                states.clone(),
                |datagram, seq| {
                    tally.add_noting(datagram, Some(seq), endpoint, side, peers.as_deref_mut())
                },
            );
            match walked {
                Ok(()) => {
                    self.one_walk = Some(true);
                    return Ok(tally);
                }
                // Not answered here: one walk per family from now on.
                Err(_) if self.one_walk.is_none() => self.one_walk = Some(false),
                Err(e) => return Err(e),
            }
        }
        let mut tally = Tally::default();
        for family in [AF_INET, AF_INET6] {
            self.exchange(
                family,
                Some((side, endpoint.port)),
                states.clone(),
                |datagram, seq| {
                    tally.add_noting(datagram, Some(seq), endpoint, side, peers.as_deref_mut())
                },
            )?;
        }
        Ok(tally)
    }

    /// The raw reply to one dump of every TCP state: the datagrams the kernel
    /// sent, concatenated, up to and including `NLMSG_DONE`. `family` is
    /// `AF_INET` or `AF_INET6` (as `u8`); `port_filter` adds the same
    /// kernel-side port filter as [`SockDiag::count`] does. For fixtures and
    /// debugging; [`decode_counts`] reads the bytes back.
    pub fn dump_raw(
        &mut self,
        family: u8,
        port_filter: Option<(Side, u16)>,
    ) -> io::Result<Vec<u8>> {
        if family != AF_INET && family != AF_INET6 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("sock_diag: address family {family} is neither AF_INET nor AF_INET6"),
            ));
        }
        let mut raw = Vec::new();
        self.exchange(family, port_filter, all_states(), |datagram, seq| {
            raw.extend_from_slice(datagram);
            walk(datagram, Some(seq), |_| {})
        })?;
        Ok(raw)
    }

    /// Send one dump request and feed each reply datagram to `on_datagram`
    /// until it reports the end of the dump. On an error the rest of the dump
    /// is drained, so the socket is ready for the next request.
    fn exchange(
        &mut self,
        family: u8,
        port_filter: Option<(Side, u16)>,
        states: StateFlags,
        mut on_datagram: impl FnMut(&[u8], u32) -> io::Result<Progress>,
    ) -> io::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let request = if family == BOTH_FAMILIES {
            build_compat_request(seq, port_filter, states)
        } else {
            build_request(seq, family, port_filter, states)
        };
        let sent = self.socket.send(&request, 0)?;
        if sent != request.len() {
            return Err(io::Error::other(format!(
                "sock_diag: sent {sent} of {} request bytes",
                request.len()
            )));
        }
        loop {
            let result = self.recv(0).and_then(|n| on_datagram(&self.buf[..n], seq));
            match result {
                Ok(Progress::Done) => return Ok(()),
                Ok(Progress::More) => {}
                Err(e) => {
                    self.drain(seq);
                    return Err(e);
                }
            }
        }
    }

    /// Read one datagram into `self.buf`, returning its length.
    fn recv(&mut self, flags: libc::c_int) -> io::Result<usize> {
        loop {
            match self
                .socket
                .recv(&mut &mut self.buf[..], flags | libc::MSG_TRUNC)
            {
                Ok(0) => return Err(io::Error::other("sock_diag: empty reply datagram")),
                Ok(n) if n > self.buf.len() => {
                    return Err(io::Error::other(format!(
                        "sock_diag: a {n}-byte reply datagram was truncated to {} bytes",
                        self.buf.len()
                    )));
                }
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Best effort after a failed dump: read, without blocking, whatever is
    /// left of dump `seq` so the next request neither meets `EBUSY` (a dump
    /// still running) nor stale messages. Messages of older dumps are skipped
    /// by sequence number anyway.
    fn drain(&mut self, seq: u32) {
        while let Ok(n) = self.recv(libc::MSG_DONTWAIT) {
            if ends_dump(&self.buf[..n], seq) {
                return;
            }
        }
    }
}

/// Count the sockets of a raw sock_diag reply (netlink messages as received,
/// or several datagrams concatenated, as [`SockDiag::dump_raw`] returns them)
/// whose end on `side` matches `endpoint`, by [`state_name`].
///
/// The reply must end with `NLMSG_DONE`; an `NLMSG_ERROR` (or a negative
/// `NLMSG_DONE` status) becomes the kernel's errno as an `io::Error`, and
/// malformed bytes an `InvalidData` error.
pub fn decode_counts(reply: &[u8], endpoint: &Endpoint, side: Side) -> io::Result<Counts> {
    let mut tally = Tally::default();
    match tally.add(reply, None, endpoint, side)? {
        Progress::Done => Ok(tally.into_counts()),
        Progress::More => Err(malformed("the reply ends before NLMSG_DONE")),
    }
}

/// Matching sockets by kernel state number; turned into [`Counts`] once at
/// the end so that no string is built per socket.
struct Tally {
    by_state: [u64; 256],
    /// Time-wait sockets in the FIN_WAIT2 substate (an orphaned socket
    /// waiting for the peer's FIN): counted as FIN_WAIT2, but part of the
    /// namespace's `tw` figure in /proc/net/sockstat.
    fin_wait2_timewait: u64,
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            by_state: [0; 256],
            fin_wait2_timewait: 0,
        }
    }
}

impl Tally {
    fn add(
        &mut self,
        bytes: &[u8],
        seq: Option<u32>,
        endpoint: &Endpoint,
        side: Side,
    ) -> io::Result<Progress> {
        self.add_noting(bytes, seq, endpoint, side, None)
    }

    /// [`Tally::add`], adding the remote address of each matching socket to
    /// `peers` when given (the last one is remembered, so a run of sockets
    /// from one client costs no hash lookup each).
    fn add_noting(
        &mut self,
        bytes: &[u8],
        seq: Option<u32>,
        endpoint: &Endpoint,
        side: Side,
        mut peers: Option<&mut HashSet<IpAddr>>,
    ) -> io::Result<Progress> {
        let mut last_peer: Option<IpAddr> = None;
        walk(bytes, seq, |sock| {
            let id = &sock.socket_id;
            let end = match side {
                Side::Server => SocketAddr::new(id.source_address, id.source_port),
                Side::Client => SocketAddr::new(id.destination_address, id.destination_port),
            };
            if endpoint.matches(end) {
                if let Some(set) = peers.as_deref_mut()
                    && !id.destination_address.is_unspecified()
                    && last_peer != Some(id.destination_address)
                {
                    last_peer = Some(id.destination_address);
                    set.insert(crate::common::endpoint::canonical(id.destination_address));
                }
                self.by_state[usize::from(sock.state)] += 1;
                if sock.state == TCP_FIN_WAIT2 && sock.timer == Some(Timer::TimeWait) {
                    self.fin_wait2_timewait += 1;
                }
            }
        })
    }

    fn into_counts(self) -> Counts {
        let mut counts = Counts::new();
        for (state, &n) in self.by_state.iter().enumerate() {
            if n > 0 {
                let name = u8::try_from(state).map_or("UNKNOWN", state_name);
                *counts.entry(name.to_string()).or_insert(0) += n;
            }
        }
        counts
    }
}

/// Walk the netlink messages in `bytes`, calling `on_socket` with the header
/// of every socket reported. Messages whose sequence number is not `seq`
/// (when given) are skipped: leftovers of an earlier, abandoned dump.
///
/// Only the fixed `inet_diag_msg` header is decoded (with the crate's
/// [`InetResponseHeader`]); the attributes after it are not needed to count
/// and are skipped, which keeps this allocation-free per socket.
fn walk(
    mut bytes: &[u8],
    seq: Option<u32>,
    mut on_socket: impl FnMut(&InetResponseHeader),
) -> io::Result<Progress> {
    while !bytes.is_empty() {
        let msg = NetlinkBuffer::new_checked(bytes).map_err(malformed)?;
        let len = msg.length() as usize;
        if seq.is_none_or(|seq| msg.sequence_number() == seq) {
            let payload = msg.payload();
            match msg.message_type() {
                SOCK_DIAG_BY_FAMILY | TCPDIAG_GETSOCK => {
                    let sock = InetResponseHeader::parse(payload).map_err(malformed)?;
                    on_socket(&sock);
                }
                NLMSG_DONE => {
                    // The dump's final status: 0, or a negative errno.
                    let status = payload
                        .first_chunk::<4>()
                        .map_or(0, |b| i32::from_ne_bytes(*b));
                    if status < 0 {
                        return Err(io::Error::from_raw_os_error(-status));
                    }
                    return Ok(Progress::Done);
                }
                NLMSG_ERROR => {
                    let error = ErrorBuffer::new_checked(&payload)
                        .and_then(|buf| ErrorMessage::parse(&buf))
                        .map_err(malformed)?;
                    if error.code.is_some() {
                        return Err(error.to_io());
                    }
                    // A plain ACK (code 0): nothing to count.
                }
                NLMSG_NOOP => {}
                NLMSG_OVERRUN => {
                    return Err(io::Error::other(
                        "sock_diag: NLMSG_OVERRUN, the kernel lost part of the dump",
                    ));
                }
                other => {
                    return Err(malformed(format!(
                        "unexpected netlink message type {other}"
                    )));
                }
            }
        }
        // Messages are 4-byte aligned; the last one may lack its padding.
        let step = len.next_multiple_of(4).min(bytes.len());
        bytes = &bytes[step..];
    }
    Ok(Progress::More)
}

/// Does this datagram hold the end (`NLMSG_DONE` or `NLMSG_ERROR`) of dump
/// `seq`? Malformed bytes count as an end: there is nothing sane left to read.
fn ends_dump(mut bytes: &[u8], seq: u32) -> bool {
    while !bytes.is_empty() {
        let Ok(msg) = NetlinkBuffer::new_checked(bytes) else {
            return true;
        };
        if msg.sequence_number() == seq && matches!(msg.message_type(), NLMSG_DONE | NLMSG_ERROR) {
            return true;
        }
        let step = (msg.length() as usize).next_multiple_of(4).min(bytes.len());
        bytes = &bytes[step..];
    }
    false
}

/// Every TCP state, `NEW_SYN_RECV` included (the kernel reports request
/// sockets as `SYN_RECV` anyway).
fn all_states() -> StateFlags {
    StateFlags::from_bits_retain(StateFlags::all().bits() | 1 << TCP_NEW_SYN_RECV)
}

/// A `SOCK_DIAG_BY_FAMILY` dump request for TCP sockets of `family` in every
/// state, with an optional kernel-side port filter.
fn build_request(
    seq: u32,
    family: u8,
    port_filter: Option<(Side, u16)>,
    states: StateFlags,
) -> Vec<u8> {
    let request = InetRequest {
        family,
        protocol: IPPROTO_TCP,
        extensions: ExtensionFlags::empty(),
        states,
        socket_id: if family == AF_INET6 {
            SocketId::new_v6()
        } else {
            SocketId::new_v4()
        },
    };
    let mut body = vec![0; request.buffer_len()];
    request.emit(&mut body);
    dump_request(seq, SOCK_DIAG_BY_FAMILY, &body, port_filter)
}

/// A netlink dump request of `message_type` with `body` and, with
/// `port_filter`, the port program ([`port_bytecode`]) as its one attribute.
fn dump_request(
    seq: u32,
    message_type: u16,
    body: &[u8],
    port_filter: Option<(Side, u16)>,
) -> Vec<u8> {
    let bytecode = port_filter
        .map(|(side, port)| DefaultNla::new(INET_DIAG_REQ_BYTECODE, port_bytecode(side, port)));
    let mut header = NetlinkHeader::default();
    let header_len = header.buffer_len();
    let total = header_len + body.len() + bytecode.as_ref().map_or(0, |nla| nla.buffer_len());
    header.length = total as u32;
    header.message_type = message_type;
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    header.sequence_number = seq;
    let mut bytes = vec![0; total];
    let (head, rest) = bytes.split_at_mut(header_len);
    header.emit(head);
    let (req, attrs) = rest.split_at_mut(body.len());
    req.copy_from_slice(body);
    if let Some(nla) = bytecode {
        nla.emit(attrs);
    }
    bytes
}

/// `TCPDIAG_GETSOCK`: the request type of the `inet_diag_req` layout that
/// came before `SOCK_DIAG_BY_FAMILY` (linux/inet_diag.h); the kernel still
/// answers it, with replies of the same type.
const TCPDIAG_GETSOCK: u16 = 18;

/// The "family" of a dump of both families in one walk ([`build_compat_request`]).
const BOTH_FAMILIES: u8 = 0;

/// A `TCPDIAG_GETSOCK` dump request: TCP sockets of both families in the
/// states of `states`, with the same bytecode filter as [`build_request`].
///
/// The kernel turns it into a `SOCK_DIAG_BY_FAMILY` dump of family
/// `AF_UNSPEC`, which `inet_diag_dump_icsk` serves in one walk of its
/// socket hash, where a request per family walks it twice (the hash is
/// one for both families and every namespace). The layout is `struct
/// inet_diag_req`: family, source and destination prefix lengths and
/// extensions (one byte each), the 48-byte `inet_diag_sockid` (zero: no
/// socket in particular), the state mask and `idiag_dbs` (`u32` each).
fn build_compat_request(seq: u32, port_filter: Option<(Side, u16)>, states: StateFlags) -> Vec<u8> {
    const REQ_LEN: usize = 4 + 48 + 4 + 4;
    let mut body = [0u8; REQ_LEN];
    body[52..56].copy_from_slice(&states.bits().to_ne_bytes());
    dump_request(seq, TCPDIAG_GETSOCK, &body, port_filter)
}

/// An `inet_diag` bytecode program that accepts the sockets whose local
/// ([`Side::Server`]) or remote ([`Side::Client`]) port is `port`.
///
/// Two `struct inet_diag_bc_op { u8 code; u8 yes; u16 no; }` (host byte
/// order): the comparison, whose `yes` (8) jumps to the end of the program,
/// which accepts, and whose `no` (12) jumps past it, which rejects; then the
/// operand op, which carries the port in its `no` field. This is the program
/// `ss` builds for `sport = :PORT` / `dport = :PORT`.
fn port_bytecode(side: Side, port: u16) -> Vec<u8> {
    let code = match side {
        Side::Server => INET_DIAG_BC_S_EQ,
        Side::Client => INET_DIAG_BC_D_EQ,
    };
    let mut program = Vec::with_capacity(8);
    program.extend_from_slice(&[code, 8]);
    program.extend_from_slice(&12u16.to_ne_bytes());
    program.extend_from_slice(&[0, 0]);
    program.extend_from_slice(&port.to_ne_bytes());
    program
}

fn malformed(e: impl fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("sock_diag: malformed reply: {e}"),
    )
}

mod full;
mod lazy;
mod sockstat;
pub use lazy::LazySockDiag;
pub use sockstat::{open_sockstat_in_netns, parse_sockstat_tw, read_sockstat_tw};

#[cfg(test)]
mod tests;
