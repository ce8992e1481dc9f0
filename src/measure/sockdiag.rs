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
//! [`Side::Client`]) is appended to it as a
//! [`DefaultNla`](netlink_packet_core::DefaultNla). The kernel then
//! returns only the sockets of that port; the address (and the port again) is
//! checked here on every socket with [`Endpoint::matches`].
//!
//! Decoding (reply bytes to counts) is separate from the socket I/O
//! ([`decode_counts`], in `decode.rs`) so it is tested on replies captured
//! from a real kernel (`tests/fixtures/sockdiag/`); the request bytes are
//! built in `request.rs`. This file holds the socket and its exchanges.

use std::collections::HashSet;
use std::fmt;
use std::fs::File;
use std::io;
use std::net::IpAddr;
use std::path::Path;

use netlink_packet_sock_diag::constants::{AF_INET, AF_INET6};
use netlink_packet_sock_diag::inet::StateFlags;
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

/// `TCP_FIN_WAIT2` and `TCP_TIME_WAIT` (include/net/tcp_states.h).
const TCP_FIN_WAIT2: u8 = 5;
const TCP_TIME_WAIT: u8 = 6;

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

mod decode;
mod full;
mod lazy;
mod request;
mod sockstat;
pub use decode::decode_counts;
use decode::{Progress, Tally, ends_dump, walk};
pub use lazy::LazySockDiag;
use request::{BOTH_FAMILIES, all_states, build_compat_request, build_request};
pub use sockstat::{open_sockstat_in_netns, parse_sockstat_tw, read_sockstat_tw};

#[cfg(test)]
mod tests;
