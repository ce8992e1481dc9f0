//! Decoding ctnetlink replies and events: netlink messages, attributes,
//! the few fields of an entry twlab needs (original tuple, TCP state, id,
//! timeout), and the scan of a dump reply into counts. Bounds-checked and
//! allocation-free per entry; malformed bytes are errors, never panics.

use super::*;

/// Iterator over netlink attributes (`struct nlattr`), bounds-checked.
pub(super) struct Attrs<'a> {
    pub(super) buf: &'a [u8],
}

impl<'a> Iterator for Attrs<'a> {
    type Item = io::Result<(u16, &'a [u8])>;

    fn next(&mut self) -> Option<Self::Item> {
        let b = self.buf;
        if b.is_empty() {
            return None;
        }
        self.buf = &[];
        let (Some(&l0), Some(&l1), Some(&t0), Some(&t1)) =
            (b.first(), b.get(1), b.get(2), b.get(3))
        else {
            return Some(Err(invalid("ctnetlink: truncated attribute header")));
        };
        let len = usize::from(u16::from_ne_bytes([l0, l1]));
        let ty = u16::from_ne_bytes([t0, t1]) & NLA_TYPE_MASK;
        let Some(value) = (len >= 4).then(|| b.get(4..len)).flatten() else {
            return Some(Err(invalid("ctnetlink: bad attribute length")));
        };
        self.buf = b.get(align4(len)..).unwrap_or(&[]);
        Some(Ok((ty, value)))
    }
}

pub(super) fn attrs(buf: &[u8]) -> Attrs<'_> {
    Attrs { buf }
}

/// What the decoder pulled out of one conntrack entry.
#[derive(Default)]
pub(super) struct Entry {
    pub(super) v4_dst: Option<[u8; 4]>,
    pub(super) v6_dst: Option<[u8; 16]>,
    pub(super) proto: Option<u8>,
    pub(super) dst_port: Option<u16>,
    pub(super) state: Option<u8>,
    /// `CTA_ID`: the entry's id, stable for its life (events name it).
    pub(super) id: Option<u32>,
    /// `CTA_TIMEOUT`: whole seconds left before the entry expires.
    pub(super) timeout: Option<u32>,
}

pub(super) fn parse_tuple_orig(buf: &[u8], e: &mut Entry) -> io::Result<()> {
    for a in attrs(buf) {
        let (ty, val) = a?;
        match ty {
            CTA_TUPLE_IP => {
                for a in attrs(val) {
                    let (ty, val) = a?;
                    match ty {
                        CTA_IP_V4_DST => {
                            e.v4_dst = Some(
                                val.try_into()
                                    .map_err(|_| invalid("ctnetlink: bad CTA_IP_V4_DST"))?,
                            )
                        }
                        CTA_IP_V6_DST => {
                            e.v6_dst = Some(
                                val.try_into()
                                    .map_err(|_| invalid("ctnetlink: bad CTA_IP_V6_DST"))?,
                            )
                        }
                        _ => {}
                    }
                }
            }
            CTA_TUPLE_PROTO => {
                for a in attrs(val) {
                    let (ty, val) = a?;
                    match ty {
                        CTA_PROTO_NUM => {
                            e.proto = Some(
                                *val.first()
                                    .ok_or_else(|| invalid("ctnetlink: bad CTA_PROTO_NUM"))?,
                            )
                        }
                        CTA_PROTO_DST_PORT => {
                            let p: [u8; 2] = val
                                .get(..2)
                                .and_then(|s| s.try_into().ok())
                                .ok_or_else(|| invalid("ctnetlink: bad CTA_PROTO_DST_PORT"))?;
                            e.dst_port = Some(u16::from_be_bytes(p));
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

pub(super) fn parse_protoinfo(buf: &[u8], e: &mut Entry) -> io::Result<()> {
    for a in attrs(buf) {
        let (ty, val) = a?;
        if ty != CTA_PROTOINFO_TCP {
            continue;
        }
        for a in attrs(val) {
            let (ty, val) = a?;
            if ty == CTA_PROTOINFO_TCP_STATE {
                e.state = Some(
                    *val.first()
                        .ok_or_else(|| invalid("ctnetlink: bad CTA_PROTOINFO_TCP_STATE"))?,
                );
            }
        }
    }
    Ok(())
}

pub(super) fn be_u32(val: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(val.get(..4)?.try_into().ok()?))
}

pub(super) fn parse_entry(payload: &[u8]) -> io::Result<Entry> {
    let body = payload
        .get(NFGENMSG_LEN..)
        .ok_or_else(|| invalid("ctnetlink: message shorter than nfgenmsg"))?;
    let mut e = Entry::default();
    for a in attrs(body) {
        let (ty, val) = a?;
        match ty {
            CTA_TUPLE_ORIG => parse_tuple_orig(val, &mut e)?,
            CTA_PROTOINFO => parse_protoinfo(val, &mut e)?,
            CTA_TIMEOUT => e.timeout = be_u32(val),
            CTA_ID => e.id = be_u32(val),
            _ => {}
        }
    }
    Ok(e)
}

/// The part of the match the kernel was asked to do (for in-band detection
/// of kernels that ignore `CTA_FILTER`).
#[derive(Clone, Copy)]
pub(super) struct KernelFilter {
    pub(super) flags: u32,
    pub(super) ep: Endpoint,
}

impl KernelFilter {
    fn passes(&self, e: &Entry) -> bool {
        if self.flags & CTA_FILTER_F_PROTO_NUM != 0 && e.proto != Some(IPPROTO_TCP) {
            return false;
        }
        if self.flags & CTA_FILTER_F_PROTO_DST_PORT != 0 && e.dst_port != Some(self.ep.port) {
            return false;
        }
        if self.flags & CTA_FILTER_F_IP_DST != 0 {
            let ok = match self.ep.ip {
                IpAddr::V4(a) => e.v4_dst == Some(a.octets()),
                IpAddr::V6(a) => e.v6_dst == Some(a.octets()),
            };
            if !ok {
                return false;
            }
        }
        true
    }
}

pub(super) fn userland_match(ep: &Endpoint, e: &Entry) -> bool {
    let addr_ok = match ep.ip {
        IpAddr::V4(a) => e.v4_dst == Some(a.octets()),
        IpAddr::V6(a) => e.v6_dst == Some(a.octets()),
    };
    addr_ok && e.proto == Some(IPPROTO_TCP) && e.dst_port == Some(ep.port)
}

#[derive(Debug)]
pub(super) enum ScanError {
    /// The kernel reported this errno (NLMSG_ERROR, or NLMSG_DONE carrying
    /// an error). The dump is over.
    Kernel(i32),
    /// Malformed data. The dump may still be running.
    Decode(io::Error),
}

impl From<io::Error> for ScanError {
    fn from(e: io::Error) -> Self {
        ScanError::Decode(e)
    }
}

impl From<ScanError> for io::Error {
    fn from(e: ScanError) -> Self {
        match e {
            ScanError::Kernel(errno) => io::Error::from_raw_os_error(errno),
            ScanError::Decode(e) => e,
        }
    }
}

#[derive(Default, Debug, Clone, Copy)]
pub(super) struct Scan {
    pub(super) done: bool,
    /// NLM_F_DUMP_INTR or NLMSG_OVERRUN seen: the dump must be repeated.
    pub(super) intr: bool,
    /// Conntrack entries seen (before the userland filter).
    pub(super) entries: u64,
    /// Entries the kernel filter should have dropped.
    pub(super) leaked: u64,
}

pub(super) fn read_i32(b: &[u8]) -> Option<i32> {
    Some(i32::from_ne_bytes(b.get(..4)?.try_into().ok()?))
}

/// Walk the netlink messages in `buf`. Messages whose sequence number differs
/// from `seq` (when given) are skipped: they belong to an abandoned dump.
/// One netlink message: its header fields and payload.
pub(super) struct Message<'a> {
    pub(super) ty: u16,
    pub(super) flags: u16,
    pub(super) seq: u32,
    pub(super) payload: &'a [u8],
}

/// Take the next netlink message off the front of `rest` (a datagram, or
/// what is left of it), bounds-checked.
pub(super) fn next_message<'a>(rest: &mut &'a [u8]) -> io::Result<Message<'a>> {
    let b: &'a [u8] = rest;
    let hdr = b
        .get(..NLMSG_HDRLEN)
        .ok_or_else(|| invalid("ctnetlink: truncated netlink header"))?;
    let len = u32::from_ne_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]) as usize;
    if len < NLMSG_HDRLEN {
        return Err(invalid("ctnetlink: netlink message length too small"));
    }
    let payload = b
        .get(NLMSG_HDRLEN..len)
        .ok_or_else(|| invalid("ctnetlink: netlink message overruns buffer"))?;
    *rest = b.get(align4(len)..).unwrap_or(&[]);
    Ok(Message {
        ty: u16::from_ne_bytes([hdr[4], hdr[5]]),
        flags: u16::from_ne_bytes([hdr[6], hdr[7]]),
        seq: u32::from_ne_bytes([hdr[8], hdr[9], hdr[10], hdr[11]]),
        payload,
    })
}

pub(super) fn scan(
    buf: &[u8],
    ep: &Endpoint,
    seq: Option<u32>,
    kfilter: Option<KernelFilter>,
    counts: &mut Counts,
) -> Result<Scan, ScanError> {
    let mut out = Scan::default();
    let mut rest = buf;
    while !rest.is_empty() {
        let Message {
            ty,
            flags,
            seq: mseq,
            payload,
        } = next_message(&mut rest)?;

        if seq.is_some_and(|s| s != mseq) {
            continue;
        }
        if flags & NLM_F_DUMP_INTR != 0 {
            out.intr = true;
        }
        match ty {
            NLMSG_NOOP => {}
            NLMSG_OVERRUN => out.intr = true,
            NLMSG_ERROR => {
                let err =
                    read_i32(payload).ok_or_else(|| invalid("ctnetlink: truncated NLMSG_ERROR"))?;
                if err == 0 {
                    continue; // plain ACK
                }
                let errno = err
                    .checked_neg()
                    .filter(|e| *e > 0)
                    .ok_or_else(|| invalid("ctnetlink: bad errno in NLMSG_ERROR"))?;
                return Err(ScanError::Kernel(errno));
            }
            NLMSG_DONE => {
                // Since Linux 4.x the DONE payload carries the dump's result.
                if let Some(err) = read_i32(payload)
                    && err < 0
                {
                    let errno = err
                        .checked_neg()
                        .ok_or_else(|| invalid("ctnetlink: bad errno in NLMSG_DONE"))?;
                    return Err(ScanError::Kernel(errno));
                }
                out.done = true;
                return Ok(out);
            }
            _ if ty >> 8 == NFNL_SUBSYS_CTNETLINK
                && matches!(ty & 0xff, IPCTNL_MSG_CT_NEW | IPCTNL_MSG_CT_GET) =>
            {
                let e = parse_entry(payload)?;
                out.entries += 1;
                if kfilter.is_some_and(|kf| !kf.passes(&e)) {
                    out.leaked += 1;
                }
                if userland_match(ep, &e)
                    && let Some(st) = e.state
                {
                    *counts.entry(state_name(st).to_owned()).or_insert(0) += 1;
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Pure decoder: tally one ctnetlink dump reply buffer (one or more netlink
/// messages, e.g. several received datagrams concatenated) into `counts`,
/// keeping only TCP entries whose original destination is `endpoint`
/// (IPv4-mapped IPv6 endpoints are treated as IPv4).
///
/// Returns whether `NLMSG_DONE` was seen (processing stops there). An
/// `NLMSG_ERROR` with a non-zero errno (or an `NLMSG_DONE` carrying one) is
/// returned as that OS error. Malformed input gives `InvalidData`; entries
/// tallied before the malformed part stay in `counts`. The
/// `NLM_F_DUMP_INTR` flag is ignored here ([`CtNetlink::count`] handles it).
/// Never panics.
pub fn decode_dump(buf: &[u8], endpoint: SocketAddr, counts: &mut Counts) -> io::Result<bool> {
    let ep = Endpoint::new(endpoint);
    Ok(scan(buf, &ep, None, None, counts)?.done)
}
