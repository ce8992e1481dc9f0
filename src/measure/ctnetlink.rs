//! In-process conntrack counting over ctnetlink.
//!
//! # Why
//!
//! twlab used to run
//! `conntrack -L -f ipv4 -p tcp --orig-dst A --orig-port-dst P` and count
//! the output lines by TCP state. That costs a fork/exec per sample, and the
//! `conntrack` tool dumps the *whole* table over netlink, formats every entry
//! as text (which twlab then parses again) and only then applies its
//! `--orig-*` filters in userland. With 100k entries that is a few hundred
//! milliseconds of CPU per sample on a 2-core machine, competing with the
//! experiment it measures. This module sends the same dump request itself
//! (`IPCTNL_MSG_CT_GET` with `NLM_F_DUMP` on a `NETLINK_NETFILTER` socket),
//! decodes only the handful of attributes it needs, without allocating per
//! entry, and reuses one 1 MiB receive buffer.
//!
//! # Semantics
//!
//! An entry is counted when its ORIGINAL tuple has the endpoint's destination
//! address, L4 protocol TCP (6) and the endpoint's destination port — the
//! same as the `conntrack -L` line above. Counts are keyed by the state name
//! as conntrack-tools spells it (`TIME_WAIT`, `SYN_SENT2`, ...). An
//! IPv4-mapped IPv6 endpoint (`::ffff:a.b.c.d`) is treated as IPv4.
//!
//! # Kernel-side filtering (`CTA_FILTER`, Linux >= 5.8)
//!
//! Since Linux 5.8 a dump request may carry `CTA_FILTER` (a nest holding
//! `CTA_FILTER_ORIG_FLAGS`, a `u32` bit set) together with a partial
//! `CTA_TUPLE_ORIG`; the kernel then only serialises entries whose original
//! tuple matches the fields selected by the flags (`ctnetlink_alloc_filter`
//! / `ctnetlink_filter_match` in `net/netfilter/nf_conntrack_netlink.c`).
//! Only the flagged fields must be present: no source address or port is
//! needed. The flag values live in the kernel-private `nf_internals.h`
//! (`CTA_FILTER_F_CTA_IP_DST` = 1<<1, `..._PROTO_NUM` = 1<<3,
//! `..._PROTO_DST_PORT` = 1<<5), not in the uapi header.
//!
//! * IPv4: the kernel filters on destination address, protocol and port.
//! * IPv6: the kernel filters on protocol and port only. The IPv6 address
//!   comparison in `ctnetlink_filter_match_tuple` is written as
//!   `!ipv6_addr_cmp(..)`, i.e. inverted (it drops the entries that *match*);
//!   asking for it would silently yield zero counts on such kernels, so the
//!   address is checked in userland only.
//!
//! Fallbacks:
//!
//! * A kernel that knows `CTA_FILTER` but rejects the request
//!   (`EOPNOTSUPP`, `EINVAL`) gets an unfiltered dump of that address family
//!   instead, and the fallback is remembered for the socket's lifetime.
//! * A kernel older than 5.8 silently ignores the unknown attribute (nfnetlink
//!   parses leniently) and sends the whole family. That is detected in-band:
//!   if a "filtered" dump contains any entry the filter should have excluded,
//!   the family is marked as unfiltered.
//!
//! The userland filter is always applied as well, so results are correct in
//! all cases; [`CtNetlink::kernel_filtered`] only tells which path was taken.
//!
//! # Robustness
//!
//! `SO_RCVTIMEO` (5 s) bounds every receive ([`std::io::ErrorKind::TimedOut`]);
//! `EINTR` is retried; `ENOBUFS`, `NLM_F_DUMP_INTR` and `NLMSG_OVERRUN` make
//! the dump be read to its end and then repeated (at most
//! [`MAX_DUMP_ATTEMPTS`] times). A dump abandoned half-way (timeout, decode
//! error) is drained before the next request, since the kernel refuses a new
//! dump on a socket with one still running (`EBUSY`).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

use netlink_sys::{Socket, protocols::NETLINK_NETFILTER};

pub mod events;

/// Entry counts keyed by conntrack-tools TCP state name.
pub use crate::common::counts::Counts;

// --- netlink / nfnetlink / ctnetlink constants (linux/netlink.h,
// linux/netfilter/nfnetlink.h, linux/netfilter/nfnetlink_conntrack.h).
const NLMSG_HDRLEN: usize = 16;
const NLMSG_NOOP: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSG_OVERRUN: u16 = 4;
const NLM_F_REQUEST: u16 = 0x01;
const NLM_F_DUMP: u16 = 0x300; // NLM_F_ROOT | NLM_F_MATCH
const NLM_F_DUMP_INTR: u16 = 0x10;
/// Set by the kernel on dump replies when a filter object was in use.
pub const NLM_F_DUMP_FILTERED: u16 = 0x20;

const NLA_F_NESTED: u16 = 1 << 15;
const NLA_F_NET_BYTEORDER: u16 = 1 << 14;
const NLA_TYPE_MASK: u16 = !(NLA_F_NESTED | NLA_F_NET_BYTEORDER);

const NFGENMSG_LEN: usize = 4;
const NFNETLINK_V0: u8 = 0;
const NFNL_SUBSYS_CTNETLINK: u16 = 1;
const IPCTNL_MSG_CT_NEW: u16 = 0;
const IPCTNL_MSG_CT_GET: u16 = 1;

const CTA_TUPLE_ORIG: u16 = 1;
const CTA_PROTOINFO: u16 = 4;
const CTA_TIMEOUT: u16 = 7;
const CTA_ID: u16 = 12;
const CTA_FILTER: u16 = 25;
const CTA_TUPLE_IP: u16 = 1;
const CTA_TUPLE_PROTO: u16 = 2;
const CTA_IP_V4_DST: u16 = 2;
const CTA_IP_V6_DST: u16 = 4;
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_DST_PORT: u16 = 3;
const CTA_PROTOINFO_TCP: u16 = 1;
const CTA_PROTOINFO_TCP_STATE: u16 = 1;
const CTA_FILTER_ORIG_FLAGS: u16 = 1;

/// `CTA_FILTER_F_CTA_IP_DST` (kernel `nf_internals.h`).
pub const CTA_FILTER_F_IP_DST: u32 = 1 << 1;
/// `CTA_FILTER_F_CTA_PROTO_NUM`.
pub const CTA_FILTER_F_PROTO_NUM: u32 = 1 << 3;
/// `CTA_FILTER_F_CTA_PROTO_DST_PORT`.
pub const CTA_FILTER_F_PROTO_DST_PORT: u32 = 1 << 5;

const IPPROTO_TCP: u8 = 6;
const AF_INET: u8 = libc::AF_INET as u8;
const AF_INET6: u8 = libc::AF_INET6 as u8;

/// How often one `count()` may repeat an interrupted / overrun dump.
pub const MAX_DUMP_ATTEMPTS: u32 = 4;
const RECV_BUF_LEN: usize = 1 << 20;
const SO_RCVBUF_WANTED: libc::c_int = 4 << 20;
const RECV_TIMEOUT: Duration = Duration::from_secs(5);

/// TCP_CONNTRACK_* numbers to conntrack-tools names.
use crate::common::names::conntrack_state_name as state_name;

fn invalid(msg: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

const fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Endpoint with IPv4-mapped IPv6 folded to IPv4.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Endpoint {
    ip: IpAddr,
    port: u16,
}

impl Endpoint {
    fn new(sa: SocketAddr) -> Self {
        let ip = match sa.ip() {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(v6),
            },
            v4 => v4,
        };
        Endpoint {
            ip,
            port: sa.port(),
        }
    }

    fn family(&self) -> u8 {
        match self.ip {
            IpAddr::V4(_) => AF_INET,
            IpAddr::V6(_) => AF_INET6,
        }
    }

    /// The kernel filter flags we trust for this family (see module docs).
    fn default_flags(&self) -> u32 {
        match self.ip {
            IpAddr::V4(_) => {
                CTA_FILTER_F_IP_DST | CTA_FILTER_F_PROTO_NUM | CTA_FILTER_F_PROTO_DST_PORT
            }
            IpAddr::V6(_) => CTA_FILTER_F_PROTO_NUM | CTA_FILTER_F_PROTO_DST_PORT,
        }
    }
}

mod decode;
pub use decode::decode_dump;
use decode::*;

// ---------------------------------------------------------------------------
// Requests

fn put_attr(buf: &mut Vec<u8>, ty: u16, value: &[u8]) {
    let len = 4 + value.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&ty.to_ne_bytes());
    buf.extend_from_slice(value);
    buf.resize(align4(buf.len()), 0);
}

/// Start a nest; returns the offset to pass to `end_nest`.
fn begin_nest(buf: &mut Vec<u8>, ty: u16) -> usize {
    let at = buf.len();
    buf.extend_from_slice(&[0, 0]);
    buf.extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
    at
}

fn end_nest(buf: &mut [u8], at: usize) {
    let len = (buf.len() - at) as u16;
    buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
}

/// Build an `IPCTNL_MSG_CT_GET` dump request into `buf`. With `orig_flags`,
/// a `CTA_TUPLE_ORIG` (dst address, protocol TCP, dst port) and a
/// `CTA_FILTER { CTA_FILTER_ORIG_FLAGS = flags }` are attached.
fn build_request(buf: &mut Vec<u8>, seq: u32, ep: &Endpoint, orig_flags: Option<u32>) {
    buf.clear();
    buf.resize(NLMSG_HDRLEN, 0);
    // nfgenmsg
    buf.extend_from_slice(&[ep.family(), NFNETLINK_V0, 0, 0]);
    if let Some(flags) = orig_flags {
        let tuple = begin_nest(buf, CTA_TUPLE_ORIG);
        let ip = begin_nest(buf, CTA_TUPLE_IP);
        match ep.ip {
            IpAddr::V4(a) => put_attr(buf, CTA_IP_V4_DST, &a.octets()),
            IpAddr::V6(a) => put_attr(buf, CTA_IP_V6_DST, &a.octets()),
        }
        end_nest(buf, ip);
        let proto = begin_nest(buf, CTA_TUPLE_PROTO);
        put_attr(buf, CTA_PROTO_NUM, &[IPPROTO_TCP]);
        put_attr(buf, CTA_PROTO_DST_PORT, &ep.port.to_be_bytes());
        end_nest(buf, proto);
        end_nest(buf, tuple);
        let filter = begin_nest(buf, CTA_FILTER);
        put_attr(buf, CTA_FILTER_ORIG_FLAGS, &flags.to_ne_bytes());
        end_nest(buf, filter);
    }
    let len = buf.len() as u32;
    let ty = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET;
    let flags = NLM_F_REQUEST | NLM_F_DUMP;
    buf[0..4].copy_from_slice(&len.to_ne_bytes());
    buf[4..6].copy_from_slice(&ty.to_ne_bytes());
    buf[6..8].copy_from_slice(&flags.to_ne_bytes());
    buf[8..12].copy_from_slice(&seq.to_ne_bytes());
    // nlmsg_pid = 0: addressed to the kernel.
}

// ---------------------------------------------------------------------------
// Socket

/// A ctnetlink socket with a reused receive buffer.
pub struct CtNetlink {
    sock: Socket,
    buf: Vec<u8>,
    req: Vec<u8>,
    seq: u32,
    /// A dump we stopped reading before its end (its sequence number).
    in_flight: Option<u32>,
    /// Per family (0 = IPv4, 1 = IPv6): kernel filter known not to work.
    no_kernel_filter: [bool; 2],
    last_kernel_filtered: bool,
    timeout: Duration,
}

fn fam_index(family: u8) -> usize {
    usize::from(family == AF_INET6)
}

/// Outcome of reading one dump to its end.
struct DumpResult {
    counts: Counts,
    retry: bool,
    leaked: u64,
}

impl CtNetlink {
    /// Socket in the calling thread's current network namespace.
    pub fn open() -> io::Result<CtNetlink> {
        let mut sock = Socket::new(NETLINK_NETFILTER)?;
        sock.bind_auto()?;
        // Best effort: capped by net.core.rmem_max, which we never change.
        let _ = sock.set_rx_buf_sz(SO_RCVBUF_WANTED);
        set_rcvtimeo(&sock, RECV_TIMEOUT)?;
        let seq = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() | 1)
            .unwrap_or(1);
        Ok(CtNetlink {
            sock,
            buf: vec![0; RECV_BUF_LEN],
            req: Vec::with_capacity(128),
            seq,
            in_flight: None,
            no_kernel_filter: [false; 2],
            last_kernel_filtered: false,
            timeout: RECV_TIMEOUT,
        })
    }

    /// Socket inside the namespace at `netns_path` (e.g. /run/netns/NAME): it
    /// is created from a short-lived thread that did `setns(CLONE_NEWNET)`
    /// into it, then returned; a netlink socket stays bound to the namespace
    /// it was created in. The caller's thread is never moved.
    pub fn open_in_netns(netns_path: &Path) -> io::Result<CtNetlink> {
        let path = netns_path.to_path_buf();
        std::thread::Builder::new()
            .name("ctnl-setns".into())
            .spawn(move || -> io::Result<CtNetlink> {
                let ns = std::fs::File::open(&path)?;
                nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(io::Error::from)?;
                CtNetlink::open()
            })?
            .join()
            .map_err(|_| io::Error::other("ctnl-setns thread panicked"))?
    }

    /// TCP entries whose original destination is `endpoint`, by state name
    /// as conntrack-tools spells them (NONE SYN_SENT SYN_RECV ESTABLISHED
    /// FIN_WAIT CLOSE_WAIT LAST_ACK TIME_WAIT CLOSE SYN_SENT2). States with
    /// no entries are absent. IPv4-mapped IPv6 endpoints count as IPv4.
    pub fn count(&mut self, endpoint: SocketAddr) -> io::Result<Counts> {
        let ep = Endpoint::new(endpoint);
        let fi = fam_index(ep.family());
        let deadline = Instant::now() + self.timeout;
        self.last_kernel_filtered = false;
        if let Some(old) = self.in_flight {
            self.drain(old, deadline)?;
        }
        let mut attempts = 0;
        loop {
            attempts += 1;
            let flags = (!self.no_kernel_filter[fi]).then(|| ep.default_flags());
            match self.dump(&ep, flags, deadline) {
                Ok(r) if r.retry => {
                    if attempts >= MAX_DUMP_ATTEMPTS {
                        return Err(io::Error::new(
                            io::ErrorKind::Interrupted,
                            "ctnetlink: dump interrupted/overrun on every attempt",
                        ));
                    }
                }
                Ok(r) => {
                    if flags.is_some() && r.leaked > 0 {
                        // Kernel ignored CTA_FILTER (< 5.8): stop sending it.
                        self.no_kernel_filter[fi] = true;
                    }
                    self.last_kernel_filtered = flags.is_some() && r.leaked == 0;
                    return Ok(r.counts);
                }
                Err(ScanError::Kernel(e))
                    if flags.is_some() && (e == libc::EOPNOTSUPP || e == libc::EINVAL) =>
                {
                    self.no_kernel_filter[fi] = true;
                    attempts -= 1; // the fallback is not a retry
                }
                Err(ScanError::Kernel(libc::ENOBUFS)) if attempts < MAX_DUMP_ATTEMPTS => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Whether the last successful [`count`](Self::count) had the kernel do
    /// the filtering (request carried `CTA_FILTER`, it was accepted, and no
    /// entry outside the filter came back).
    pub fn kernel_filtered(&self) -> bool {
        self.last_kernel_filtered
    }

    /// Diagnostics / fixture capture: run one dump for `endpoint`'s family
    /// and return the raw reply datagrams concatenated (up to and including
    /// `NLMSG_DONE` or the error). `orig_flags`: `None` for an unfiltered
    /// dump, `Some(CTA_FILTER_F_*)` to attach `CTA_FILTER` with exactly these
    /// flags (the tuple always carries dst address, TCP and dst port).
    pub fn dump_raw(
        &mut self,
        endpoint: SocketAddr,
        orig_flags: Option<u32>,
    ) -> io::Result<Vec<u8>> {
        let ep = Endpoint::new(endpoint);
        let deadline = Instant::now() + self.timeout;
        if let Some(old) = self.in_flight {
            self.drain(old, deadline)?;
        }
        let seq = self.send_request(&ep, orig_flags)?;
        let mut out = Vec::new();
        loop {
            let n = self.recv(deadline)?;
            let Some(chunk) = self.buf.get(..n) else {
                return Err(invalid("ctnetlink: receive length"));
            };
            let mut scratch = Counts::new();
            let end = match scan(chunk, &ep, Some(seq), None, &mut scratch) {
                Ok(s) => s.done,
                Err(ScanError::Kernel(_)) => true,
                Err(ScanError::Decode(e)) => return Err(e),
            };
            out.extend_from_slice(chunk);
            if end {
                self.in_flight = None;
                return Ok(out);
            }
        }
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    fn send_request(&mut self, ep: &Endpoint, orig_flags: Option<u32>) -> io::Result<u32> {
        let seq = self.next_seq();
        build_request(&mut self.req, seq, ep, orig_flags);
        let kernel = netlink_sys::SocketAddr::new(0, 0);
        loop {
            match self.sock.send_to(&self.req, &kernel, 0) {
                Ok(_) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        self.in_flight = Some(seq);
        Ok(seq)
    }

    /// One receive into `self.buf`; returns the datagram length. Maps the
    /// receive timeout to `TimedOut`, retries `EINTR`; `ENOBUFS` is returned
    /// as is (callers decide).
    fn recv(&mut self, deadline: Instant) -> io::Result<usize> {
        loop {
            if Instant::now() > deadline {
                return Err(timed_out());
            }
            let mut dst: &mut [u8] = &mut self.buf[..];
            match self.sock.recv(&mut dst, libc::MSG_TRUNC) {
                Ok(n) if n > self.buf.len() => {
                    return Err(invalid("ctnetlink: datagram larger than receive buffer"));
                }
                Ok(n) => return Ok(n),
                Err(e) => match e.raw_os_error() {
                    Some(libc::EINTR) => continue,
                    Some(libc::EAGAIN) => return Err(timed_out()),
                    _ => return Err(e),
                },
            }
        }
    }

    /// Send one dump request and read it to its end.
    fn dump(
        &mut self,
        ep: &Endpoint,
        orig_flags: Option<u32>,
        deadline: Instant,
    ) -> Result<DumpResult, ScanError> {
        let seq = self.send_request(ep, orig_flags)?;
        let kf = orig_flags.map(|flags| KernelFilter { flags, ep: *ep });
        let mut res = DumpResult {
            counts: Counts::new(),
            retry: false,
            leaked: 0,
        };
        loop {
            let n = match self.recv(deadline) {
                Ok(n) => n,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    // Something was dropped: finish reading, then repeat.
                    res.retry = true;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let chunk = self.buf.get(..n).unwrap_or(&[]);
            match scan(chunk, ep, Some(seq), kf, &mut res.counts) {
                Ok(s) => {
                    res.retry |= s.intr;
                    res.leaked += s.leaked;
                    if s.done {
                        self.in_flight = None;
                        return Ok(res);
                    }
                }
                Err(ScanError::Kernel(e)) => {
                    self.in_flight = None;
                    return Err(ScanError::Kernel(e));
                }
                Err(ScanError::Decode(e)) => {
                    // Leave the socket usable: read the rest of this dump.
                    let _ = self.drain(seq, deadline);
                    return Err(ScanError::Decode(e));
                }
            }
        }
    }

    /// Read and discard the rest of dump `seq`.
    fn drain(&mut self, seq: u32, deadline: Instant) -> io::Result<()> {
        let ep = Endpoint {
            ip: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            port: 0,
        };
        loop {
            let n = match self.recv(deadline) {
                Ok(n) => n,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => continue,
                Err(e) => return Err(e),
            };
            let chunk = self.buf.get(..n).unwrap_or(&[]);
            let mut scratch = Counts::new();
            let end = match scan(chunk, &ep, Some(seq), None, &mut scratch) {
                Ok(s) => s.done,
                Err(ScanError::Kernel(_)) => true,
                // Undecodable: we cannot find the end; give up on the socket state
                // and let the next request tell (EBUSY) if the dump still runs.
                Err(ScanError::Decode(_)) => true,
            };
            if end {
                self.in_flight = None;
                return Ok(());
            }
        }
    }
}

fn timed_out() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "ctnetlink: no reply before timeout",
    )
}

fn set_rcvtimeo(sock: &Socket, d: Duration) -> io::Result<()> {
    let tv = libc::timeval {
        tv_sec: d.as_secs() as libc::time_t,
        tv_usec: d.subsec_micros() as libc::suseconds_t,
    };
    // SAFETY: valid fd owned by `sock`, pointer/length describe `tv`.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests;
