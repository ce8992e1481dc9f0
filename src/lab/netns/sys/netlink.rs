//! One synchronous netlink transaction: send the messages, read the acks,
//! turn the kernel's errno and extended-ack text into an `io::Error`.

use super::*;

// ---------------------------------------------------------------------------
// Netlink plumbing shared by rtnetlink and nf_tables
// ---------------------------------------------------------------------------

/// A netlink sequence number and what its message does, for errors.
pub(super) type Step = (u32, String);
pub(super) static NEXT_SEQ: AtomicU32 = AtomicU32::new(1);
pub(super) fn next_seq() -> u32 {
    NEXT_SEQ.fetch_add(1, Ordering::Relaxed)
}
/// A netlink socket of `protocol`, bound, connected to the kernel, with a
/// receive timeout so a lost answer cannot hang the caller.
pub(super) fn netlink_socket(protocol: isize) -> io::Result<Socket> {
    let mut sock = Socket::new(protocol).map_err(|e| ctx(e, "cannot open a netlink socket"))?;
    sock.bind_auto()
        .map_err(|e| ctx(e, "cannot bind a netlink socket"))?;
    sock.connect(&SocketAddr::new(0, 0))
        .map_err(|e| ctx(e, "cannot connect a netlink socket"))?;
    // Error strings from the kernel (extack), and acks without the echoed request.
    let _ = sock.set_ext_ack(true);
    let _ = sock.set_cap_ack(true);
    let tv = libc::timeval {
        tv_sec: NETLINK_TIMEOUT.as_secs() as libc::time_t,
        tv_usec: 0,
    };
    // SAFETY: valid fd owned by `sock`; `tv` is a live timeval and its exact size is passed.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(ctx(io::Error::last_os_error(), "setsockopt(SO_RCVTIMEO)"));
    }
    Ok(sock)
}
pub(super) fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
pub(super) fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
/// The extack message (`NLMSGERR_ATTR_MSG`) of an `NLMSG_ERROR` payload,
/// if the kernel sent one.
pub(super) fn extack_message(flags: u16, payload: &[u8]) -> Option<String> {
    const NLM_F_CAPPED: u16 = 0x100;
    const NLM_F_ACK_TLVS: u16 = 0x200;
    const NLMSGERR_ATTR_MSG: u16 = 1;
    if flags & NLM_F_ACK_TLVS == 0 {
        return None;
    }
    // error code (4) + the request's header (16), or the whole request.
    let mut at = if flags & NLM_F_CAPPED != 0 {
        20
    } else {
        4 + u32_at(payload, 4)? as usize
    };
    while let (Some(len), Some(kind)) = (u16_at(payload, at), u16_at(payload, at + 2)) {
        let len = len as usize;
        if len < 4 {
            break;
        }
        if kind & 0x3fff == NLMSGERR_ATTR_MSG {
            let raw = payload.get(at + 4..at + len)?;
            let text = raw.split(|&c| c == 0).next().unwrap_or(raw);
            return Some(String::from_utf8_lossy(text).into_owned());
        }
        at += (len + 3) & !3;
    }
    None
}
/// Send `request` (one or more netlink messages in one datagram) and wait
/// for the acks of the sequence numbers in `expect`, each paired with a
/// description for error messages. Returns the first error the kernel
/// reported. `also` describes sequence numbers that are not awaited but may
/// be answered with an error (an nf_tables batch that fails to commit
/// answers for the batch header).
pub(super) fn transact(
    sock: &Socket,
    request: &[u8],
    expect: &[Step],
    also: &[Step],
    what: &str,
) -> io::Result<()> {
    sock.send(request, 0)
        .map_err(|e| ctx(e, format!("{what}: netlink send")))?;
    let mut pending: Vec<u32> = expect.iter().map(|(s, _)| *s).collect();
    let mut first_err: Option<io::Error> = None;
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    while !pending.is_empty() {
        buf.clear();
        let n = match sock.recv(&mut buf, 0) {
            Ok(n) => n.min(buf.len()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(first_err.unwrap_or_else(|| {
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) {
                        io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!("{what}: no answer from the kernel"),
                        )
                    } else {
                        ctx(e, format!("{what}: netlink receive"))
                    }
                }));
            }
        };
        let mut at = 0;
        while at + 16 <= n {
            let (Some(len), Some(kind), Some(flags), Some(seq)) = (
                u32_at(&buf, at),
                u16_at(&buf, at + 4),
                u16_at(&buf, at + 6),
                u32_at(&buf, at + 8),
            ) else {
                break;
            };
            let len = len as usize;
            if len < 16 || at + len > n {
                break;
            }
            if kind == NLMSG_ERROR {
                let payload = &buf[at + 16..at + len];
                let code = payload
                    .get(..4)
                    .and_then(|b| b.try_into().ok())
                    .map(i32::from_ne_bytes)
                    .unwrap_or(-libc::EPROTO);
                pending.retain(|&s| s != seq);
                if code != 0 && first_err.is_none() {
                    let step = expect
                        .iter()
                        .chain(also)
                        .find(|(s, _)| *s == seq)
                        .map_or(what, |(_, d)| d.as_str());
                    let os = io::Error::from_raw_os_error(code.saturating_abs());
                    let detail = match extack_message(flags, payload) {
                        Some(m) => format!("{step}: {os} ({m})"),
                        None => format!("{step}: {os}"),
                    };
                    first_err = Some(io::Error::new(os.kind(), detail));
                }
            }
            at += (len + 3) & !3;
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
