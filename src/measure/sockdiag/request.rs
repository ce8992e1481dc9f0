//! Building the dump requests sent to the kernel: the `SOCK_DIAG_BY_FAMILY`
//! request per family, the older `TCPDIAG_GETSOCK` one that walks both
//! families at once, and the `inet_diag` bytecode that filters by port in
//! the kernel. Bytes out only; nothing here touches a socket.

use netlink_packet_core::{DefaultNla, Emitable, NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader};
use netlink_packet_sock_diag::constants::{AF_INET6, IPPROTO_TCP, SOCK_DIAG_BY_FAMILY};
use netlink_packet_sock_diag::inet::{ExtensionFlags, InetRequest, SocketId, StateFlags};

use crate::common::endpoint::Side;

/// `TCP_NEW_SYN_RECV` (request sockets); not in netlink-packet-sock-diag's
/// `StateFlags`, so its bit is added by hand.
pub(super) const TCP_NEW_SYN_RECV: u8 = 12;
/// `INET_DIAG_REQ_BYTECODE`, the request attribute holding a filter program.
pub(super) const INET_DIAG_REQ_BYTECODE: u16 = 1;
/// `INET_DIAG_BC_S_EQ`: local port equals the port in the next op's `no`.
pub(super) const INET_DIAG_BC_S_EQ: u8 = 11;
/// `INET_DIAG_BC_D_EQ`: remote port equals the port in the next op's `no`.
pub(super) const INET_DIAG_BC_D_EQ: u8 = 12;

/// Every TCP state, `NEW_SYN_RECV` included (the kernel reports request
/// sockets as `SYN_RECV` anyway).
pub(super) fn all_states() -> StateFlags {
    StateFlags::from_bits_retain(StateFlags::all().bits() | 1 << TCP_NEW_SYN_RECV)
}

/// A `SOCK_DIAG_BY_FAMILY` dump request for TCP sockets of `family` in every
/// state, with an optional kernel-side port filter.
pub(super) fn build_request(
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
pub(super) fn dump_request(
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
pub(super) const TCPDIAG_GETSOCK: u16 = 18;

/// The "family" of a dump of both families in one walk ([`build_compat_request`]).
pub(super) const BOTH_FAMILIES: u8 = 0;

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
pub(super) fn build_compat_request(
    seq: u32,
    port_filter: Option<(Side, u16)>,
    states: StateFlags,
) -> Vec<u8> {
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
pub(super) fn port_bytecode(side: Side, port: u16) -> Vec<u8> {
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
