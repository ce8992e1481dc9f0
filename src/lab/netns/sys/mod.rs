//! Network-namespace lab plumbing done with system calls and netlink only.
//!
//! # Why
//!
//! twlab's embedded lab used to shell out to `ip`, `sysctl` and `nft`. This
//! module does the same work in-process so that twlab runs on a machine that
//! has none of iproute2, procps or nftables installed: the only things it
//! needs are the kernel (network namespaces, veth, nf_tables, conntrack), a
//! mounted `/proc`, and root.
//!
//! # How namespaces are made
//!
//! [`add_netns`] follows iproute2's `ip netns add` (`netns_add` in
//! `ip/ipnetns.c`) step by step, so `ip netns list`, `ip netns exec` and
//! `ip netns del` treat our namespaces exactly like their own:
//!
//! 1. `mkdir /run/netns` (mode 0755) if it is missing;
//! 2. under an exclusive `flock` on that directory, `mount --make-rshared
//!    /run/netns`; if that fails with `EINVAL` (the directory is not a mount
//!    point yet) bind-mount the directory on itself, make it `rprivate`, and
//!    retry the `rshared` step (which then puts it in a peer group of its
//!    own), so the namespace mounts propagate between mount namespaces;
//! 3. create the empty file `/run/netns/NAME` (`O_CREAT|O_EXCL`, mode 0);
//! 4. in a fresh std thread, `unshare(CLONE_NEWNET)` and bind-mount that
//!    thread's namespace, `/proc/thread-self/ns/net`, onto the file. iproute2
//!    uses `/proc/self/ns/net`, which is right for its single-threaded
//!    process but would name the *main* thread's namespace here. The bind
//!    mount keeps the namespace alive after the thread exits. Where the
//!    kernel has `tcp_child_ehash_entries` (Linux ≥ 6.1) the thread first
//!    unshares into a throwaway namespace, sets it there to the size of the
//!    machine's TCP hash table, and unshares again: the lab namespace gets a
//!    table of its own, so a socket count in it walks its own sockets only,
//!    not every namespace's (`private_tcp_hash` in `namespace.rs`).
//!
//! Everything that must happen *inside* a namespace (netlink requests,
//! sysctls, opening sockets) runs in a short-lived std thread that entered
//! it with `setns(CLONE_NEWNET)` ([`in_netns`]). Network namespaces are a
//! per-thread attribute, so the caller's threads (and a tokio runtime, if the
//! caller uses `spawn_blocking`) are never moved; the thread is never
//! reused, so no other code ever runs in a namespace it did not ask for.
//!
//! Links and addresses are set with rtnetlink messages from
//! `netlink-packet-route`, sent synchronously over a `netlink_sys::Socket`
//! opened by a thread inside the namespace (a netlink socket acts on the
//! namespace it was created in). The veth pair is created from inside
//! namespace A with the peer's `IFLA_NET_NS_FD` set to namespace B, so
//! neither end ever appears in the caller's namespace.
//!
//! # Sysctls
//!
//! `/proc/sys/net/...` is resolved against the network namespace of the task
//! (thread) that opens the file (`net_ctl_header_lookup` uses
//! `current->nsproxy->net_ns`), not the namespace of the thread-group
//! leader, so a thread that `setns`'d into a namespace reads and writes that
//! namespace's values through plain `/proc/sys/net/...`. (`/proc/net` is the
//! different case: it is a link to `/proc/self/net`, which follows the
//! *process*.) The tests check both the namespace's and the machine's
//! values.
//!
//! # Conntrack activation
//!
//! Since Linux 4.10 a network namespace registers the conntrack hooks only
//! while something holds a reference taken with `nf_ct_netns_get()`; until
//! then no connection in it is tracked. The users that take that reference
//! are conntrack-dependent firewall features: iptables' `state`,
//! `conntrack` and `CT` matches/targets, NAT, synproxy, flow offload, and
//! nf_tables' `ct` expression (`nft_ct_get_init` calls `nf_ct_netns_get` for
//! every `ct` load, whatever the key). [`enable_conntrack`] therefore loads
//! the same ruleset twlab used to give `nft`, but sends it itself as one
//! nf_tables netlink transaction over `NETLINK_NETFILTER`:
//!
//! ```text
//! table inet twlab_ct {
//!     chain pre { type filter hook prerouting priority -150; ct state established,related,new,invalid counter; }
//!     chain out { type filter hook output priority -150; ct state established,related,new,invalid counter; }
//! }
//! ```
//!
//! The expressions are the ones `nft` itself compiles that rule to
//! (`ct load state => reg 1; bitwise reg 1 & 0xf; cmp neq reg 1 0;
//! counter`), so `nft list ruleset` in the namespace prints the rule back.
//! The `inet` family makes the kernel register conntrack for IPv4 and IPv6.
//! This was chosen over the other `nf_ct_netns_get` callers because it is
//! the mechanism twlab already relied on (same behaviour, and the same
//! table a user recognises in `nft list ruleset`, counters included) and
//! nf_tables is the kernel's maintained interface. The alternatives are
//! worse fits: iptables' `conntrack`/`state` match needs the legacy
//! `ip_tables` setsockopt blob ABI (and `CONFIG_IP_NF_IPTABLES`), NAT and
//! synproxy change packets, and tc's `act_ct` tracks only on the qdiscs it
//! is attached to. The `rustables` crate (pure-Rust nftables over netlink)
//! was not used: it is GPL-3.0-or-later, runs bindgen at build time (needs
//! libclang) and pulls a second `nix` (0.31), while the whole transaction
//! is a few hundred bytes of hand-built attributes.
//!
//! The batch first creates the table (if missing), deletes it and then
//! creates it afresh with its chains and rules, so calling
//! [`enable_conntrack`] twice leaves exactly one copy of the ruleset; the
//! whole batch is one atomic transaction and conntrack stays registered
//! throughout (the new rules take their reference before the old ones drop
//! theirs).

mod namespace;
pub use namespace::*;

mod link;
mod netlink;
pub use link::*;

mod sysctl;
pub use sysctl::*;

mod ct_table;
pub use ct_table::*;

use netlink::*;

use std::ffi::CString;
use std::fs::{self, File};
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST, NLMSG_ERROR,
    NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg, OFlag};
use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;

/// Where named network namespaces live (the same directory as iproute2's
/// `/var/run/netns`, which is a link to `/run` on current distributions).
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// Name of the nf_tables table [`enable_conntrack`] installs.
pub const CONNTRACK_TABLE: &str = "twlab_ct";

/// How long to wait for the kernel to answer one netlink request.
const NETLINK_TIMEOUT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------
// Names and small helpers
// ---------------------------------------------------------------------------

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// Wrap `e` with a description of what failed, keeping its kind.
fn ctx(e: io::Error, what: impl std::fmt::Display) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

fn errno(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

#[cfg(test)]
mod tests;
