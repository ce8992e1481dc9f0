//! conntrack counts kept current from ctnetlink events instead of dumps.
//!
//! # Why
//!
//! A dump costs the kernel a few microseconds per matching entry
//! (`ctnetlink_fill_info`), whoever asks and however it is filtered: at the
//! seed's steady state (~200k entries per namespace) one count takes about
//! half a second of kernel CPU, per side, per sample. Sampling at 1 s would
//! then take a core from the experiment it measures. Events cost per
//! *change* instead: a connection's entry changes state a handful of times
//! in its life, and the kernel sends each change to listeners as it
//! happens. So a listener that keeps a table of the endpoint's entries (id
//! → TCP state, expiry) answers a count at any rate for the price of a
//! lock, and its cost follows the connection rate, not the table size or
//! the sampling interval.
//!
//! # Semantics, and how they match a dump
//!
//! Entries are those a dump counts ([`super::CtNetlink::count`]): TCP,
//! original destination = the endpoint. `NEW` and `UPDATE` events insert
//! or update an entry (an update without `CTA_PROTOINFO` keeps the state it
//! had), `DESTROY` removes it. A dump skips entries whose timeout has passed
//! even before the garbage collector removes them (and sends their
//! `DESTROY`, which can come many seconds later), so the table expires
//! entries itself, from the `CTA_TIMEOUT` of their last event. That figure
//! is whole seconds, rounded down: an entry is taken to expire half a
//! second after it, so a count is within half a second of expiries of a
//! dump's (at the seed's steady state, 1650 entries expire per second:
//! ±0.4% of 200k). Packets that only refresh a timeout send no event (the
//! last ACK of a close, a few milliseconds after its TIME_WAIT event).
//!
//! # When it cannot be trusted, it says so
//!
//! It only sees entries made after it subscribed, so [`CtEvents::start`]
//! refuses a table that already holds entries for the endpoint, and a
//! namespace with events off (`net.netfilter.nf_conntrack_events = 0`). A
//! listener that falls behind loses events (`ENOBUFS`); from then on
//! [`CtEvents::counts`] fails, and the caller goes back to dumps.

use super::{
    CtNetlink, Endpoint, IPCTNL_MSG_CT_NEW, Message, NFNL_SUBSYS_CTNETLINK, next_message,
    parse_entry, state_name, userland_match,
};
use crate::common::counts::Counts;
use netlink_sys::{Socket, SocketAddr as NlAddr, protocols::NETLINK_NETFILTER};
use std::collections::{BTreeSet, HashMap};
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const IPCTNL_MSG_CT_DELETE: u16 = 2;
/// `NFNLGRP_CONNTRACK_NEW`, `_UPDATE` and `_DESTROY` (groups 1, 2, 3).
const GROUPS: u32 = 0b111;
/// Receive buffer asked for with `SO_RCVBUFFORCE` (root may exceed
/// `net.core.rmem_max` for its own socket, which changes no setting): room
/// for ~100k events if the reader is held up for a moment.
const RCVBUF: libc::c_int = 32 << 20;
/// Events read per `recvmmsg` call, each into a slot of its own: the
/// kernel queues one datagram per event, so one `recv` a datagram was a
/// system call per event (a third of the listener's CPU went to entering
/// and leaving them).
const SLOTS: usize = 64;
/// Room for one event; they are a few hundred bytes. A longer one is
/// truncated by the kernel and reported as lost (`MSG_TRUNC`).
const SLOT_LEN: usize = 16 << 10;
/// How often waiting events are read when no count asks for them.
const DRAIN_EVERY: Duration = Duration::from_millis(250);
/// `CTA_TIMEOUT` is rounded down to whole seconds; see the module docs.
const HALF_SECOND: Duration = Duration::from_millis(500);
/// Index of states the kernel may add later (counted as `UNKNOWN`).
const UNKNOWN: usize = crate::common::names::CONNTRACK_STATE_NUMBERS;

struct Tracked {
    state: u8,
    expires: Instant,
}

/// The endpoint's entries as the events tell them.
#[derive(Default)]
struct Table {
    entries: HashMap<u32, Tracked>,
    by_expiry: BTreeSet<(Instant, u32)>,
    per_state: [u64; UNKNOWN + 1],
    events: u64,
    lost: Option<String>,
}

fn index(state: u8) -> usize {
    usize::from(state).min(UNKNOWN)
}

impl Table {
    fn remove(&mut self, id: u32) -> Option<Tracked> {
        let t = self.entries.remove(&id)?;
        self.by_expiry.remove(&(t.expires, id));
        let n = &mut self.per_state[index(t.state)];
        *n = n.saturating_sub(1);
        Some(t)
    }

    fn upsert(&mut self, id: u32, state: Option<u8>, timeout: Option<u32>, now: Instant) {
        let old = self.remove(id);
        let state = state.or_else(|| old.as_ref().map(|t| t.state)).unwrap_or(0);
        let expires = match (timeout, old) {
            (Some(secs), _) => now + Duration::from_secs(u64::from(secs)) + HALF_SECOND,
            (None, Some(t)) => t.expires,
            // Every NEW and UPDATE event carries CTA_TIMEOUT; without one,
            // the longest TCP timeout (5 days) keeps the entry until DESTROY.
            (None, None) => now + Duration::from_secs(432_000),
        };
        self.entries.insert(id, Tracked { state, expires });
        self.by_expiry.insert((expires, id));
        self.per_state[index(state)] += 1;
    }

    fn prune(&mut self, now: Instant) {
        while let Some(&(expires, id)) = self.by_expiry.first() {
            if expires > now {
                break;
            }
            self.remove(id);
        }
    }

    fn counts(&self) -> Counts {
        self.per_state
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(i, n)| {
                let name = if i == UNKNOWN {
                    "UNKNOWN"
                } else {
                    state_name(i as u8)
                };
                (name.to_string(), *n)
            })
            .collect()
    }

    /// Apply every conntrack event in one datagram.
    fn apply_datagram(&mut self, buf: &[u8], ep: &Endpoint, now: Instant) -> io::Result<()> {
        let mut rest = buf;
        while !rest.is_empty() {
            let Message { ty, payload, .. } = next_message(&mut rest)?;
            if ty >> 8 != NFNL_SUBSYS_CTNETLINK {
                continue;
            }
            let msg = ty & 0xff;
            if msg != IPCTNL_MSG_CT_NEW && msg != IPCTNL_MSG_CT_DELETE {
                continue;
            }
            let e = parse_entry(payload)?;
            self.events += 1;
            let Some(id) = e.id else { continue };
            if !userland_match(ep, &e) {
                continue;
            }
            if msg == IPCTNL_MSG_CT_DELETE {
                self.remove(id);
            } else {
                self.upsert(id, e.state, e.timeout, now);
            }
        }
        Ok(())
    }
}

/// A listener inside one namespace keeping the endpoint's conntrack entries.
pub struct CtEvents {
    inner: Arc<Mutex<Inner>>,
    stop: Arc<AtomicBool>,
    drainer: Option<std::thread::JoinHandle<()>>,
}

/// The subscribed socket and the table it feeds, under one lock: a count
/// and the background drain never read the socket at the same time.
struct Inner {
    sock: Socket,
    buf: Vec<u8>,
    ep: Endpoint,
    table: Table,
}

impl Inner {
    /// Apply every event waiting in the socket, without blocking.
    fn drain(&mut self) {
        while self.table.lost.is_none() {
            let got = recv_batch(&self.sock, &mut self.buf);
            let now = Instant::now();
            match got {
                // Read until the queue is empty (WouldBlock), also after a
                // short batch: an error met after some datagrams (ENOBUFS:
                // events lost) comes with the next call, and a count must
                // not be given from a table that has lost events.
                Ok(lens) => {
                    for (slot, len) in self.buf.chunks(SLOT_LEN).zip(lens) {
                        let Some(len) = len else {
                            self.table.lost = Some(format!(
                                "a conntrack event longer than {SLOT_LEN} bytes was cut short"
                            ));
                            return;
                        };
                        let datagram = &slot[..len.min(SLOT_LEN)];
                        if let Err(e) = self.table.apply_datagram(datagram, &self.ep, now) {
                            self.table.lost =
                                Some(format!("a conntrack event could not be read: {e}"));
                            return;
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    self.table.lost = Some(
                        "conntrack events were lost (the listener's buffer overflowed)".into(),
                    );
                }
                Err(e) => self.table.lost = Some(format!("reading conntrack events: {e}")),
            }
        }
    }
}

/// Read up to [`SLOTS`] waiting datagrams in one `recvmmsg`, without
/// blocking, datagram `i` into `buf[i * SLOT_LEN..]`. Gives each one's
/// length, or `None` for one the kernel truncated.
fn recv_batch(sock: &impl std::os::fd::AsRawFd, buf: &mut [u8]) -> io::Result<Vec<Option<usize>>> {
    if buf.len() < SLOTS * SLOT_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "recv_batch: the buffer holds fewer than SLOTS slots",
        ));
    }
    // SAFETY: iovec and mmsghdr are plain C structs for which all-zero is
    // a valid value (null pointers, zero lengths).
    let mut iov: [libc::iovec; SLOTS] = unsafe { std::mem::zeroed() };
    let mut msgs: [libc::mmsghdr; SLOTS] = unsafe { std::mem::zeroed() };
    for ((v, m), slot) in iov
        .iter_mut()
        .zip(msgs.iter_mut())
        .zip(buf.chunks_mut(SLOT_LEN))
    {
        v.iov_base = slot.as_mut_ptr().cast();
        v.iov_len = slot.len();
        m.msg_hdr.msg_iov = v;
        m.msg_hdr.msg_iovlen = 1;
    }
    // SAFETY: every msg_hdr points at one iovec of `iov`, and each iovec at
    // a distinct SLOT_LEN chunk of `buf`; both outlive the call, which
    // writes at most iov_len bytes into each and fills msg_len/msg_flags.
    let n = unsafe {
        libc::recvmmsg(
            sock.as_raw_fd(),
            msgs.as_mut_ptr(),
            SLOTS as libc::c_uint,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(msgs[..n as usize]
        .iter()
        .map(|m| (m.msg_hdr.msg_flags & libc::MSG_TRUNC == 0).then_some(m.msg_len as usize))
        .collect())
}

impl CtEvents {
    /// Subscribe inside the namespace at `netns_path` and keep the entries
    /// of `endpoint`. Fails when events are off there, or when the table
    /// already holds entries for the endpoint (they would never be seen).
    ///
    /// Events wait in the socket's buffer and are read in batches: by each
    /// count, and by a background thread every [`DRAIN_EVERY`] so a long
    /// interval cannot overflow the buffer. Reading each event as it comes
    /// would wake a thread thousands of times a second on the machine that
    /// runs the load (measured: 10% fewer requests/s than batches).
    pub fn start(netns_path: &Path, endpoint: SocketAddr) -> io::Result<CtEvents> {
        let ep = Endpoint::new(endpoint);
        let path: PathBuf = netns_path.to_path_buf();
        let sock = std::thread::Builder::new()
            .name("twlab-ct-subscribe".into())
            .spawn(move || subscribe(&path, ep))?
            .join()
            .map_err(|_| io::Error::other("the conntrack subscribe thread panicked"))??;
        let inner = Arc::new(Mutex::new(Inner {
            sock,
            buf: vec![0u8; SLOTS * SLOT_LEN],
            ep,
            table: Table::default(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (i, st) = (inner.clone(), stop.clone());
        let drainer = std::thread::Builder::new()
            .name("twlab-ct-events".into())
            .spawn(move || {
                while !st.load(Ordering::Relaxed) {
                    std::thread::park_timeout(DRAIN_EVERY);
                    match i.lock() {
                        Ok(mut inner) => inner.drain(),
                        Err(_) => return,
                    }
                }
            })?;
        Ok(CtEvents {
            inner,
            stop,
            drainer: Some(drainer),
        })
    }

    /// The endpoint's entries by TCP state now, as a dump would count them.
    pub fn counts(&self) -> io::Result<Counts> {
        let mut inner = self
            .inner
            .lock()
            .map_err(|_| io::Error::other("the conntrack event table's lock is poisoned"))?;
        inner.drain();
        if let Some(why) = &inner.table.lost {
            return Err(io::Error::other(why.clone()));
        }
        inner.table.prune(Instant::now());
        Ok(inner.table.counts())
    }

    /// Events read so far (of every entry, not only the endpoint's).
    pub fn events_seen(&self) -> u64 {
        self.inner.lock().map_or(0, |i| i.table.events)
    }
}

impl Drop for CtEvents {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(d) = self.drainer.take() {
            d.thread().unpark();
            let _ = d.join();
        }
    }
}

/// On a thread of its own: enter the namespace, check events are on,
/// subscribe, and check the endpoint has no entry yet.
fn subscribe(path: &Path, ep: Endpoint) -> io::Result<Socket> {
    let ns = std::fs::File::open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
    let setting = std::fs::read_to_string("/proc/sys/net/netfilter/nf_conntrack_events")
        .map_err(|e| io::Error::new(e.kind(), format!("nf_conntrack_events: {e}")))?;
    if setting.trim() == "0" {
        return Err(io::Error::other(
            "conntrack events are off here (net.netfilter.nf_conntrack_events = 0)",
        ));
    }
    let mut sock = Socket::new(NETLINK_NETFILTER)?;
    sock.bind(&NlAddr::new(0, GROUPS))?;
    force_rcvbuf(&sock);
    let already = CtNetlink::open()?.count(SocketAddr::new(ep.ip, ep.port))?;
    let n: u64 = already.values().sum();
    if n > 0 {
        return Err(io::Error::other(format!(
            "the conntrack table already holds {n} entries for the endpoint: events would miss them"
        )));
    }
    Ok(sock)
}

fn force_rcvbuf(sock: &Socket) {
    use std::os::fd::AsRawFd;
    let v: libc::c_int = RCVBUF;
    // SAFETY: a plain setsockopt on a socket this function borrows, with a
    // pointer to a c_int that lives across the call.
    let forced = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if forced != 0 {
        // Not root: as much as net.core.rmem_max allows.
        let _ = sock.set_rx_buf_sz(RCVBUF as usize);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_follows_inserts_updates_and_deletes_and_expires_on_time() {
        let mut t = Table::default();
        let now = Instant::now();
        t.upsert(1, Some(1), Some(120), now); // SYN_SENT
        t.upsert(2, Some(3), Some(432_000), now); // ESTABLISHED
        t.upsert(1, Some(3), Some(432_000), now); // 1 established
        t.upsert(1, None, Some(100), now); // status change only: keeps its state
        assert_eq!(t.counts().get("ESTABLISHED"), Some(&2));
        t.upsert(1, Some(7), Some(2), now); // TIME_WAIT, 2 s left
        assert_eq!(t.counts().get("TIME_WAIT"), Some(&1));
        t.prune(now + Duration::from_millis(2400));
        assert_eq!(t.counts().get("TIME_WAIT"), Some(&1), "2 s + half a second");
        t.prune(now + Duration::from_millis(2600));
        assert_eq!(t.counts().get("TIME_WAIT"), None);
        t.remove(2);
        assert!(t.counts().is_empty());
        assert!(t.entries.is_empty() && t.by_expiry.is_empty());
        t.upsert(9, Some(200), Some(5), now);
        assert_eq!(t.counts().get("UNKNOWN"), Some(&1));
    }

    #[test]
    fn a_batch_reads_up_to_slots_datagrams_and_marks_the_cut_ones() {
        let (tx, rx) = std::os::unix::net::UnixDatagram::pair().expect("socketpair");
        let mut buf = vec![0u8; SLOTS * SLOT_LEN];
        // Nothing waiting: WouldBlock, as drain expects.
        let e = recv_batch(&rx, &mut buf).expect_err("empty socket");
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        tx.send(b"one").expect("send");
        tx.send(&vec![7u8; SLOT_LEN + 1]).expect("send a long one");
        tx.send(b"three!").expect("send");
        let got = recv_batch(&rx, &mut buf).expect("batch");
        assert_eq!(got, vec![Some(3), None, Some(6)]);
        assert_eq!(&buf[..3], b"one");
        assert_eq!(&buf[2 * SLOT_LEN..2 * SLOT_LEN + 6], b"three!");
        for i in 0..SLOTS + 6 {
            tx.send(&[i as u8]).expect("send");
        }
        assert_eq!(recv_batch(&rx, &mut buf).expect("first").len(), SLOTS);
        assert_eq!(buf[(SLOTS - 1) * SLOT_LEN], (SLOTS - 1) as u8);
        assert_eq!(recv_batch(&rx, &mut buf).expect("rest").len(), 6);
        let short = recv_batch(&rx, &mut [0u8; 16]).expect_err("a small buffer");
        assert_eq!(short.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn garbage_datagrams_are_errors_not_panics() {
        let ep = Endpoint::new("198.18.0.1:8080".parse().expect("addr"));
        let mut t = Table::default();
        let now = Instant::now();
        for bad in [&[1u8, 2, 3][..], &[0xff; 20][..], &[16, 0, 0, 0, 0, 1][..]] {
            let _ = t.apply_datagram(bad, &ep, now);
        }
        for n in 0..64u8 {
            let buf: Vec<u8> = (0..n).map(|i| i.wrapping_mul(37)).collect();
            let _ = t.apply_datagram(&buf, &ep, now);
        }
    }
}
