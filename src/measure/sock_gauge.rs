//! Counting without walking: the kernel keeps the endpoint's socket counts
//! by state as sockets change state, and a sample reads them.
//!
//! Why: a sock_diag count walks the namespace's whole TCP hash table
//! (262,144 buckets here, ~2 ms even when nearly empty) and then every
//! matching socket (~0.2 µs each), taking bucket locks on the cores that
//! carry the load. So a count costs more as TIME_WAIT fills, and at 100 ms
//! sampling the walks were most of what sampling took from the load.
//!
//! How: a small BPF program (`sock_gauge/sock_gauge.bpf.c`, compiled into
//! the committed `sock_gauge.bpf.o` by `scripts/build-bpf.sh`) on the
//! `inet_sock_set_state` tracepoint adds to per-namespace, per-state
//! counters in a BPF map as full sockets change state. Time-wait sockets
//! replace a full socket and no tracepoint reports them: their count is
//! the namespace's own, sockstat's `tw`, which is why the gauge is for a
//! namespace that holds nothing but one side of the endpoint's connections
//! (an embedded lab's). A count ([`NetnsGauge::count`]) is one map lookup
//! and one read of sockstat, whatever the population. Loaded with aya,
//! which relocates the program's struct fields against the running
//! kernel's BTF.
//!
//! One difference from a walk: an orphan in FIN_WAIT2 (its application
//! closed, the peer's FIN not yet in) that Linux keeps as a time-wait
//! socket is counted in TIME_WAIT, as sockstat counts it, where `ss` shows
//! FIN-WAIT-2. Such sockets live until the peer's FIN, usually well under
//! a millisecond; a scenario that studies them (a peer that holds its FIN,
//! `tcp_fin_timeout`) counts by walking (`collect.socket_gauge: false`).
//!
//! Limits, each falling back to the walk (the caller says so in env.json):
//! the kernel must let twlab load BPF (root, BTF at
//! `/sys/kernel/btf/vmlinux`); the endpoint must be IPv4 (the lab's are);
//! and the namespace must be watched before its first socket for the
//! endpoint exists, since a gauge counts changes (an embedded lab's
//! namespaces are, as they are made for the run).
//!
//! Nothing outlives twlab: the programs and maps belong to its file
//! descriptors (nothing is pinned), so the kernel detaches them when the
//! process ends, however it ends.

use crate::common::counts::Counts;
use crate::common::endpoint::{Endpoint, Side};
use crate::common::names::socket_state_name;
use aya::maps::{HashMap as BpfHashMap, MapData};
use aya::programs::RawTracePoint;
use aya::{Btf, Ebpf};
use std::fs::File;
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The compiled programs (see `scripts/build-bpf.sh`).
static OBJECT: &[u8] = aya::include_bytes_aligned!("sock_gauge/sock_gauge.bpf.o");

/// Per-state slots in the map (TCP states are 1..=12).
const STATES: usize = 16;
const TCP_TIME_WAIT: usize = 6;
const TCP_CLOSE: usize = 7;

/// One namespace's entry in the `gauges` map; the layout of `struct gauge`
/// in the C source.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Gauge {
    addr: u32,
    port: u16,
    pad: u16,
    pad2: u32,
    pad3: u32,
    live: [[i64; STATES]; 2],
}

// SAFETY: `Gauge` is `repr(C)` plain integers with no implicit padding
// (the explicit pads fill it to an 8-byte boundary), so any bytes the
// kernel writes are a valid value.
unsafe impl aya::Pod for Gauge {}

/// A key of the `peers` map: a client address the server side saw.
#[repr(C)]
#[derive(Clone, Copy)]
struct Peer {
    inum: u32,
    addr: u32,
}

// SAFETY: two `u32`s, no padding.
unsafe impl aya::Pod for Peer {}

/// The loaded and attached programs and their maps.
pub struct SockGauge {
    /// Holds the programs and their links (dropping it detaches them).
    ebpf: Ebpf,
    gauges: BpfHashMap<MapData, u32, Gauge>,
    peers: BpfHashMap<MapData, Peer, u8>,
    rescued: aya::maps::Array<MapData, u64>,
}

impl SockGauge {
    /// Load and attach the program. The error says what the kernel refused.
    pub fn load() -> Result<SockGauge, String> {
        let btf = Btf::from_sys_fs().map_err(|e| format!("kernel BTF: {e}"))?;
        let mut ebpf = aya::EbpfLoader::new()
            .btf(Some(&btf))
            .load(OBJECT)
            .map_err(|e| format!("loading the socket gauge: {}", chain(&e)))?;
        for name in ["set_state", "set_state_nested"] {
            let p: &mut RawTracePoint = program(&mut ebpf, name)?;
            p.load()
                .map_err(|e| format!("loading {name}: {}", chain(&e)))?;
            p.attach("inet_sock_set_state")
                .map_err(|e| format!("attaching {name} to inet_sock_set_state: {}", chain(&e)))?;
        }
        let gauges = take_map(&mut ebpf, "gauges")?;
        let peers = take_map(&mut ebpf, "peers")?;
        let rescued = ebpf
            .take_map("rescued")
            .ok_or_else(|| "the socket gauge object has no map rescued".to_string())
            .and_then(|m| aya::maps::Array::try_from(m).map_err(|e| format!("map rescued: {e}")))?;
        Ok(SockGauge {
            ebpf,
            gauges,
            peers,
            rescued,
        })
    }

    /// Start counting `endpoint`'s sockets in the namespace `inum` (from
    /// [`netns_inode`]), from zero: call it before the namespace has any.
    pub fn watch(&mut self, inum: u32, endpoint: &Endpoint) -> Result<(), String> {
        let IpAddr::V4(v4) = endpoint.addr else {
            return Err(format!(
                "{endpoint} is IPv6; the socket gauge counts IPv4 endpoints"
            ));
        };
        let g = Gauge {
            addr: u32::from_ne_bytes(v4.octets()),
            port: endpoint.port,
            ..Gauge::default()
        };
        self.gauges
            .insert(inum, g, 0)
            .map_err(|e| format!("socket gauge map: {e}"))
    }

    /// Stop counting in namespace `inum` (about to be deleted).
    pub fn unwatch(&mut self, inum: u32) {
        let _ = self.gauges.remove(&inum);
        self.reset_peers(inum);
    }

    /// How many state changes neither program counted since the gauge was
    /// loaded (all namespaces): the kernel's count of changes it skipped
    /// `set_state` for, less those `set_state_nested` counted instead.
    /// While it stays put, the counts are exact.
    pub fn lost(&self) -> Result<u64, String> {
        let program = self
            .ebpf
            .program("set_state")
            .ok_or_else(|| "the socket gauge has no program set_state".to_string())?;
        let fd = program
            .fd()
            .map_err(|e| format!("set_state: {e}"))?
            .as_fd()
            .as_raw_fd();
        let misses = recursion_misses(fd).map_err(|e| format!("set_state's info: {e}"))?;
        let rescued = self
            .rescued
            .get(&0, 0)
            .map_err(|e| format!("map rescued: {e}"))?;
        Ok(misses.saturating_sub(rescued))
    }

    /// How many distinct client addresses the server side of namespace
    /// `inum` has seen established since it was watched (or reset).
    pub fn peers_seen(&self, inum: u32) -> u64 {
        self.peers
            .keys()
            .filter_map(|k| k.ok())
            .filter(|k| k.inum == inum)
            .count() as u64
    }

    /// Forget the peers seen in namespace `inum` (a new run).
    pub fn reset_peers(&mut self, inum: u32) {
        let gone: Vec<Peer> = self
            .peers
            .keys()
            .filter_map(|k| k.ok())
            .filter(|k| k.inum == inum)
            .collect();
        for k in gone {
            let _ = self.peers.remove(&k);
        }
    }
}

/// The kernel's count of the times it skipped the program `fd` because it
/// was already running on that CPU (`bpf_prog_info.recursion_misses`,
/// Linux 5.12+; 0 before).
fn recursion_misses(fd: std::os::fd::RawFd) -> std::io::Result<u64> {
    use aya_obj::generated::bpf_prog_info;
    /// `union bpf_attr` for BPF_OBJ_GET_INFO_BY_FD.
    #[repr(C)]
    struct InfoByFd {
        bpf_fd: u32,
        info_len: u32,
        info: u64,
    }
    const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
    // SAFETY: `bpf_prog_info` is plain integers and pointers; zero is valid.
    let mut info: bpf_prog_info = unsafe { std::mem::zeroed() };
    let mut attr = InfoByFd {
        bpf_fd: u32::try_from(fd).map_err(|_| std::io::Error::other("bad fd"))?,
        info_len: std::mem::size_of::<bpf_prog_info>() as u32,
        info: std::ptr::addr_of_mut!(info) as u64,
    };
    // SAFETY: the kernel writes at most `info_len` bytes into `info`, which
    // lives until the call returns; `attr` is the union's layout for this
    // command and its size is passed.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_OBJ_GET_INFO_BY_FD,
            std::ptr::addr_of_mut!(attr),
            std::mem::size_of::<InfoByFd>(),
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(info.recursion_misses)
}

/// An error and its sources, one line (aya keeps the verifier's log in a source).
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn program<'a, T>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut T, String>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    ebpf.program_mut(name)
        .ok_or_else(|| format!("the socket gauge object has no program {name}"))?
        .try_into()
        .map_err(|e| format!("program {name}: {e}"))
}

fn take_map<K: aya::Pod, V: aya::Pod>(
    ebpf: &mut Ebpf,
    name: &str,
) -> Result<BpfHashMap<MapData, K, V>, String> {
    let map = ebpf
        .take_map(name)
        .ok_or_else(|| format!("the socket gauge object has no map {name}"))?;
    BpfHashMap::try_from(map).map_err(|e| format!("map {name}: {e}"))
}

/// One side's counts from a namespace's entry and its time-wait sockets.
fn counts_of(g: &Gauge, side: Side, time_wait: u64) -> Counts {
    let role = role(side);
    let mut counts = Counts::new();
    for state in 1..STATES {
        if state == TCP_CLOSE || state == TCP_TIME_WAIT {
            continue;
        }
        let n = g.live[role][state];
        if n > 0 {
            let name = u8::try_from(state).map_or("UNKNOWN", socket_state_name);
            counts.insert(name.to_string(), n as u64);
        }
    }
    if time_wait > 0 {
        counts.insert(
            socket_state_name(TCP_TIME_WAIT as u8).to_string(),
            time_wait,
        );
    }
    counts
}

/// The inode number of the network namespace at `path` (`/run/netns/NAME`,
/// `/proc/self/ns/net`): how the kernel's programs tell namespaces apart.
pub fn netns_inode(path: &Path) -> std::io::Result<u32> {
    use std::os::unix::fs::MetadataExt;
    let ino = std::fs::metadata(path)?.ino();
    u32::try_from(ino).map_err(|_| std::io::Error::other(format!("namespace inode {ino}")))
}

/// The process's gauge, loaded at the first [`shared`] call and kept for
/// every lab of the process (one set of programs, one entry per watched
/// namespace); `Err` keeps what the kernel said when it refused.
pub type Shared = Arc<Mutex<SockGauge>>;

/// The process's one gauge, loaded on first use. Every later call gets the
/// same gauge, or the same refusal.
pub fn shared() -> Result<Shared, String> {
    static GAUGE: std::sync::OnceLock<Result<Shared, String>> = std::sync::OnceLock::new();
    GAUGE
        .get_or_init(|| SockGauge::load().map(|g| Arc::new(Mutex::new(g))))
        .clone()
}

/// One side of an embedded lab, counted by the gauge: the namespace's
/// entry in the process's gauge and its sockstat file, opened once.
///
/// How often a count walks once to check the gauge, lost changes or not.
pub const RECHECK: std::time::Duration = std::time::Duration::from_secs(10);

/// When the gauge reports lost changes ([`SockGauge::lost`] grew), the
/// next counts come from a walk of the namespace's full sockets until one
/// walk finds the gauge holding still across it; the difference between
/// that walk and the gauge is then kept as an offset, and counts are exact
/// map reads again. The same recount runs every [`RECHECK`] whatever the
/// kernel reports: one CI run saw 500 changes go missing with no
/// recursion miss counted (a cause not found yet), and a periodic walk
/// bounds any such drift in time for a walk's cost every 10 s.
pub struct NetnsGauge {
    gauge: Shared,
    inum: u32,
    side: Side,
    endpoint: Endpoint,
    sockstat: File,
    path: std::path::PathBuf,
    /// The walk for recounts, opened at the first.
    walk: Option<crate::measure::sockdiag::SockDiag>,
    /// Added to the map's counts, by state: what the last recount found
    /// beyond them.
    offset: [i64; STATES],
    /// The gauge's [`SockGauge::lost`] when the counts were last exact;
    /// `None` until a recount has set them right.
    exact_at: Option<u64>,
    /// How many counts were recounted by walking.
    recounts: u64,
    /// When a walk last found the gauge exact.
    checked: std::time::Instant,
}

impl NetnsGauge {
    /// Watch the namespace at `path` (`/run/netns/NAME`), which holds only
    /// `side`'s connections to `endpoint` and none yet, with the process's
    /// gauge. The error says why the gauge cannot count there.
    pub fn watch(path: &Path, side: Side, endpoint: &Endpoint) -> Result<NetnsGauge, String> {
        let gauge = shared()?;
        let inum = netns_inode(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let sockstat = crate::measure::sockdiag::open_sockstat_in_netns(path)
            .map_err(|e| format!("/proc/net/sockstat in {}: {e}", path.display()))?;
        let exact_at = {
            let mut g = gauge
                .lock()
                .map_err(|_| "socket gauge lock poisoned".to_string())?;
            g.watch(inum, endpoint)?;
            g.lost()?
        };
        Ok(NetnsGauge {
            gauge,
            inum,
            side,
            endpoint: *endpoint,
            sockstat,
            path: path.to_path_buf(),
            walk: None,
            offset: [0; STATES],
            exact_at: Some(exact_at),
            recounts: 0,
            checked: std::time::Instant::now(),
        })
    }

    /// The endpoint's sockets in the namespace by state (as
    /// [`crate::measure::sockdiag::SockDiag::count`] keys them, but for
    /// orphans in FIN_WAIT2 kept as time-wait sockets: TIME_WAIT here).
    pub fn count(&mut self) -> std::io::Result<Counts> {
        let poisoned = || std::io::Error::other("socket gauge lock poisoned");
        let (raw, lost) = {
            let g = self.gauge.lock().map_err(|_| poisoned())?;
            (self.raw(&g)?, g.lost().map_err(std::io::Error::other)?)
        };
        let live = if self.exact_at == Some(lost) && self.checked.elapsed() < RECHECK {
            let mut live = raw;
            for (n, o) in live.iter_mut().zip(self.offset) {
                *n += o;
            }
            live
        } else {
            self.recount(raw, lost)?
        };
        let tw = crate::measure::sockdiag::read_sockstat_tw(&mut self.sockstat)?;
        let mut g = Gauge::default();
        g.live[0] = live;
        Ok(counts_of(&g, Side::Server, tw))
    }

    /// Count the next time by walking and set the gauge right from that
    /// walk, as after lost changes (what the tests use to check that path).
    pub fn recount_next(&mut self) {
        self.exact_at = None;
    }

    /// How many counts came from a walk because the gauge had lost changes.
    pub fn recounts(&self) -> u64 {
        self.recounts
    }

    /// This side's row of the map, by state.
    fn raw(&self, g: &SockGauge) -> std::io::Result<[i64; STATES]> {
        let entry = g.gauges.get(&self.inum, 0).map_err(|e| {
            std::io::Error::other(format!("socket gauge of namespace {}: {e}", self.inum))
        })?;
        Ok(entry.live[role(self.side)])
    }

    /// Count the full sockets by walking; if the gauge held still across
    /// the walk, keep the difference as the offset from now on.
    fn recount(&mut self, before: [i64; STATES], lost: u64) -> std::io::Result<[i64; STATES]> {
        self.recounts += 1;
        let walk = match &mut self.walk {
            Some(w) => w,
            None => self
                .walk
                .insert(crate::measure::sockdiag::SockDiag::open_in_netns(
                    &self.path,
                )?),
        };
        let counts = walk.count_full_sockets(&self.endpoint, self.side)?;
        let mut walked = [0i64; STATES];
        for (state, n) in walked.iter_mut().enumerate().skip(1) {
            let name = u8::try_from(state).map_or("UNKNOWN", socket_state_name);
            *n = counts.get(name).map_or(0, |&c| c as i64);
        }
        let (after, lost_after) = {
            let g = self
                .gauge
                .lock()
                .map_err(|_| std::io::Error::other("socket gauge lock poisoned"))?;
            (self.raw(&g)?, g.lost().map_err(std::io::Error::other)?)
        };
        if before == after && lost_after == lost {
            self.checked = std::time::Instant::now();
            for ((o, w), a) in self.offset.iter_mut().zip(walked).zip(after) {
                *o = w - a;
            }
            self.exact_at = Some(lost);
        } else {
            self.exact_at = None;
        }
        Ok(walked)
    }

    /// The distinct client addresses the server side saw established.
    pub fn peers_seen(&self) -> u64 {
        self.gauge.lock().map_or(0, |g| g.peers_seen(self.inum))
    }

    /// Forget the peers seen so far (a new run in the same namespace).
    pub fn reset_peers(&self) {
        if let Ok(mut g) = self.gauge.lock() {
            g.reset_peers(self.inum);
        }
    }
}

/// The row of the map a side's sockets are counted in.
fn role(side: Side) -> usize {
    match side {
        Side::Server => 0,
        Side::Client => 1,
    }
}

impl Drop for NetnsGauge {
    fn drop(&mut self) {
        if let Ok(mut g) = self.gauge.lock() {
            g.unwatch(self.inum);
        }
    }
}

#[cfg(test)]
mod tests;
