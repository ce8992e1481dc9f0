//! The veth pair between two namespaces, its addresses and links, with
//! rtnetlink messages from netlink-packet-route.

use super::*;

/// An interface name the kernel accepts (`dev_valid_name`).
pub(super) fn check_ifname(name: &str) -> io::Result<()> {
    if name.is_empty()
        || name.len() >= libc::IFNAMSIZ
        || name == "."
        || name == ".."
        || name.contains(['/', ':', '\0'])
        || name.chars().any(char::is_whitespace)
    {
        return Err(invalid(format!("invalid interface name {name:?}")));
    }
    Ok(())
}
// ---------------------------------------------------------------------------
// rtnetlink: veth, addresses, link state
// ---------------------------------------------------------------------------

/// Send one rtnetlink request with `NLM_F_REQUEST | NLM_F_ACK | extra_flags`
/// and wait for its ack.
pub(super) fn rtnl(
    sock: &Socket,
    msg: RouteNetlinkMessage,
    extra_flags: u16,
    what: &str,
) -> io::Result<()> {
    let seq = next_seq();
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_ACK | extra_flags;
    header.sequence_number = seq;
    let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
    packet.finalize();
    let mut bytes = vec![0u8; packet.buffer_len()];
    packet.serialize(&mut bytes);
    transact(sock, &bytes, &[(seq, what.to_string())], &[], what)
}
/// Interface index of `name` in the calling thread's namespace.
pub(super) fn ifindex(name: &str) -> io::Result<u32> {
    let c = CString::new(name).map_err(|_| invalid(format!("invalid interface name {name:?}")))?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        return Err(ctx(
            io::Error::last_os_error(),
            format!("no interface {name}"),
        ));
    }
    Ok(idx)
}
pub(super) fn create_veth(
    sock: &Socket,
    a_if: &str,
    b_if: &str,
    b_ns_fd: RawFd,
    b_ns: &str,
) -> io::Result<()> {
    let mut peer = LinkMessage::default();
    peer.attributes = vec![
        LinkAttribute::IfName(b_if.to_string()),
        LinkAttribute::NetNsFd(b_ns_fd),
    ];
    let mut link = LinkMessage::default();
    link.attributes = vec![
        LinkAttribute::IfName(a_if.to_string()),
        LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
        ]),
    ];
    rtnl(
        sock,
        RouteNetlinkMessage::NewLink(link),
        NLM_F_CREATE | NLM_F_EXCL,
        &format!("create veth {a_if} <-> {b_if} (peer in netns {b_ns})"),
    )
}
pub(super) fn delete_link(sock: &Socket, index: u32, name: &str) -> io::Result<()> {
    let mut link = LinkMessage::default();
    link.header.index = index;
    rtnl(
        sock,
        RouteNetlinkMessage::DelLink(link),
        0,
        &format!("delete link {name}"),
    )
}
pub(super) fn set_link_up(sock: &Socket, index: u32, name: &str) -> io::Result<()> {
    let mut link = LinkMessage::default();
    link.header.index = index;
    link.header.flags = LinkFlags::Up;
    link.header.change_mask = LinkFlags::Up;
    rtnl(
        sock,
        RouteNetlinkMessage::SetLink(link),
        0,
        &format!("set link {name} up"),
    )
}
/// How the two ends of a veth pair are addressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addressing {
    /// Both ends in one subnet of this prefix length (`ip addr add A/24`).
    Subnet(u8),
    /// Each end has its address with the other end as its peer (`ip addr
    /// add A peer B`): a /32 route to the peer and nothing else, so several
    /// pairs in one namespace can share that namespace's address (the
    /// embedded lab's server end towards each of several clients).
    PointToPoint,
}

/// `ip addr replace LOCAL/PREFIX dev NAME`, or with `peer` set
/// `ip addr replace LOCAL peer PEER dev NAME` (a /32 route to the peer).
pub(super) fn add_ipv4(
    sock: &Socket,
    index: u32,
    name: &str,
    local: Ipv4Addr,
    peer: Option<Ipv4Addr>,
    prefix: u8,
) -> io::Result<()> {
    let mut msg = AddressMessage::default();
    msg.header.family = AddressFamily::Inet;
    msg.header.prefix_len = if peer.is_some() { 32 } else { prefix };
    msg.header.index = index;
    msg.attributes = vec![
        AddressAttribute::Local(IpAddr::V4(local)),
        AddressAttribute::Address(IpAddr::V4(peer.unwrap_or(local))),
    ];
    let what = match peer {
        Some(p) => format!("add address {local} peer {p} to {name}"),
        None => format!("add address {local}/{prefix} to {name}"),
    };
    rtnl(
        sock,
        RouteNetlinkMessage::NewAddress(msg),
        NLM_F_CREATE | NLM_F_REPLACE,
        &what,
    )
}
/// Give `ifname` its address (with `peer`: point to point) and bring it and
/// `lo` up, in the calling thread's namespace.
pub(super) fn configure_end(
    sock: &Socket,
    ifname: &str,
    addr: Ipv4Addr,
    peer: Option<Ipv4Addr>,
    prefix: u8,
) -> io::Result<()> {
    let idx = ifindex(ifname)?;
    add_ipv4(sock, idx, ifname, addr, peer, prefix)?;
    set_link_up(sock, idx, ifname)?;
    let lo = ifindex("lo")?;
    set_link_up(sock, lo, "lo")
}
/// Create a veth pair with end `a_if` inside namespace `a_ns` and `b_if`
/// inside `b_ns`, give each end its address with `prefix`, and bring both
/// ends and `lo` of both namespaces up. [`veth_pair_with`] with
/// [`Addressing::Subnet`].
pub fn veth_pair(
    a_ns: &str,
    a_if: &str,
    a_addr: Ipv4Addr,
    b_ns: &str,
    b_if: &str,
    b_addr: Ipv4Addr,
    prefix: u8,
) -> io::Result<()> {
    veth_pair_with(
        (a_ns, a_if, a_addr),
        (b_ns, b_if, b_addr),
        Addressing::Subnet(prefix),
    )
}

/// Create a veth pair between the ends `(namespace, interface, address)`
/// `a` and `b`, addressed as `addressing` says, and bring both ends and
/// `lo` of both namespaces up.
///
/// The pair is created by a thread inside `a_ns` with the peer's
/// `IFLA_NET_NS_FD` pointing at `b_ns`, so it never appears in the caller's
/// namespace. If configuring fails after the pair was made, the pair is
/// deleted again (best effort) before the error is returned.
pub fn veth_pair_with(
    (a_ns, a_if, a_addr): (&str, &str, Ipv4Addr),
    (b_ns, b_if, b_addr): (&str, &str, Ipv4Addr),
    addressing: Addressing,
) -> io::Result<()> {
    let (prefix, a_peer, b_peer) = match addressing {
        Addressing::Subnet(p) => (p, None, None),
        Addressing::PointToPoint => (32, Some(b_addr), Some(a_addr)),
    };
    check_ns_name(a_ns)?;
    check_ns_name(b_ns)?;
    check_ifname(a_if)?;
    check_ifname(b_if)?;
    if prefix > 32 {
        return Err(invalid(format!("invalid IPv4 prefix length {prefix}")));
    }
    let b_path = netns_path(b_ns)?;
    let b_file = File::open(&b_path).map_err(|e| {
        ctx(
            e,
            format!("cannot open network namespace {}", b_path.display()),
        )
    })?;

    let (a_if_s, b_if_s, b_ns_s) = (a_if.to_string(), b_if.to_string(), b_ns.to_string());
    in_named_netns(a_ns, move || {
        let sock = netlink_socket(protocols::NETLINK_ROUTE)?;
        create_veth(&sock, &a_if_s, &b_if_s, b_file.as_raw_fd(), &b_ns_s)?;
        drop(b_file);
        if let Err(e) = configure_end(&sock, &a_if_s, a_addr, a_peer, prefix) {
            if let Ok(idx) = ifindex(&a_if_s) {
                let _ = delete_link(&sock, idx, &a_if_s);
            }
            return Err(e);
        }
        Ok(())
    })
    .map_err(|e| ctx(e, format!("netns {a_ns}")))?;

    let b_if_s = b_if.to_string();
    let configured_b = in_named_netns(b_ns, move || {
        let sock = netlink_socket(protocols::NETLINK_ROUTE)?;
        configure_end(&sock, &b_if_s, b_addr, b_peer, prefix)
    });
    if let Err(e) = configured_b {
        // Deleting one end of a veth pair deletes both.
        let a_if_s = a_if.to_string();
        let _ = in_named_netns(a_ns, move || {
            let sock = netlink_socket(protocols::NETLINK_ROUTE)?;
            delete_link(&sock, ifindex(&a_if_s)?, &a_if_s)
        });
        return Err(ctx(e, format!("netns {b_ns}")));
    }
    Ok(())
}
