//! Decoding a sock_diag reply into counts, apart from the socket I/O so that
//! it is tested on replies captured from a real kernel
//! (`tests/fixtures/sockdiag/`): walking the netlink messages, tallying the
//! matching sockets by kernel state, finding the end of a dump.

use std::collections::HashSet;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};

use netlink_packet_core::{
    ErrorBuffer, ErrorMessage, NLMSG_DONE, NLMSG_ERROR, NLMSG_NOOP, NLMSG_OVERRUN, NetlinkBuffer,
    Parseable,
};
use netlink_packet_sock_diag::constants::SOCK_DIAG_BY_FAMILY;
use netlink_packet_sock_diag::inet::{InetResponseHeader, Timer};

use super::request::TCPDIAG_GETSOCK;
use super::{TCP_FIN_WAIT2, state_name};
use crate::common::counts::Counts;
use crate::common::endpoint::{Endpoint, Side};

/// Where a reply stands after the messages seen so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Progress {
    /// More datagrams follow.
    More,
    /// `NLMSG_DONE` was seen: the dump is complete.
    Done,
}

/// Count the sockets of a raw sock_diag reply (netlink messages as received,
/// or several datagrams concatenated, as
/// [`SockDiag::dump_raw`](super::SockDiag::dump_raw) returns them)
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
pub(super) struct Tally {
    by_state: [u64; 256],
    /// Time-wait sockets in the FIN_WAIT2 substate (an orphaned socket
    /// waiting for the peer's FIN): counted as FIN_WAIT2, but part of the
    /// namespace's `tw` figure in /proc/net/sockstat.
    pub(super) fin_wait2_timewait: u64,
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
    pub(super) fn add(
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
    pub(super) fn add_noting(
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

    pub(super) fn into_counts(self) -> Counts {
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
pub(super) fn walk(
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
pub(super) fn ends_dump(mut bytes: &[u8], seq: u32) -> bool {
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

pub(super) fn malformed(e: impl fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("sock_diag: malformed reply: {e}"),
    )
}
