//! Unit tests of the parent module (sys).

use super::*;

#[test]
fn resolve_names_and_paths() {
    assert_eq!(
        resolve_ns(Path::new("abc")).unwrap(),
        Path::new("/run/netns/abc")
    );
    assert_eq!(
        resolve_ns(Path::new("/proc/1/ns/net")).unwrap(),
        Path::new("/proc/1/ns/net")
    );
    assert_eq!(resolve_ns(Path::new("./x")).unwrap(), Path::new("./x"));
    assert!(resolve_ns(Path::new("")).is_err());
    assert!(resolve_ns(Path::new("..")).unwrap() == Path::new(".."));
}

#[test]
fn sysctl_paths() {
    assert_eq!(
        sysctl_path("net.ipv4.tcp_tw_reuse").unwrap(),
        Path::new("/proc/sys/net/ipv4/tcp_tw_reuse")
    );
    assert_eq!(
        sysctl_path("net.netfilter.nf_conntrack_tcp_timeout_time_wait").unwrap(),
        Path::new("/proc/sys/net/netfilter/nf_conntrack_tcp_timeout_time_wait")
    );
    for bad in [
        "net", "net.", "net..x", "x.net", "net.a/b", "net.A", "net.a..b",
    ] {
        assert!(sysctl_path(bad).is_err(), "{bad}");
    }
}

#[test]
fn extack_is_parsed() {
    // error -95, capped request header, then NLMSGERR_ATTR_MSG.
    let mut p = Vec::new();
    p.extend_from_slice(&(-95i32).to_ne_bytes());
    p.extend_from_slice(&[0u8; 16]);
    let msg = b"Unknown device type\0";
    p.extend_from_slice(&((4 + msg.len()) as u16).to_ne_bytes());
    p.extend_from_slice(&1u16.to_ne_bytes());
    p.extend_from_slice(msg);
    assert_eq!(
        extack_message(0x100 | 0x200, &p).as_deref(),
        Some("Unknown device type")
    );
    assert_eq!(extack_message(0x100, &p), None);
    assert_eq!(extack_message(0x100 | 0x200, &p[..22]), None);
}

/// Every message of the batch is a well-formed netlink message, and
/// they tile the buffer exactly.
#[test]
fn conntrack_batch_is_well_formed() {
    let (buf, header, awaited) = conntrack_batch();
    let mut at = 0;
    let mut types = Vec::new();
    while at < buf.len() {
        let len = u32_at(&buf, at).unwrap() as usize;
        assert!(len >= 20 && len.is_multiple_of(4) && at + len <= buf.len());
        types.push(u16_at(&buf, at + 4).unwrap());
        at += len;
    }
    assert_eq!(at, buf.len());
    let t = |m: u16| (nft::NFNL_SUBSYS_NFTABLES << 8) | m;
    assert_eq!(
        types,
        vec![
            nft::NFNL_MSG_BATCH_BEGIN,
            t(nft::NFT_MSG_NEWTABLE),
            t(nft::NFT_MSG_DELTABLE),
            t(nft::NFT_MSG_NEWTABLE),
            t(nft::NFT_MSG_NEWCHAIN),
            t(nft::NFT_MSG_NEWRULE),
            t(nft::NFT_MSG_NEWCHAIN),
            t(nft::NFT_MSG_NEWRULE),
            nft::NFNL_MSG_BATCH_END,
        ]
    );
    assert_eq!(awaited.len(), 7);
    assert!(!awaited.iter().any(|(s, _)| *s == header.0));
}

/// The kernel's extack text reaches the error (needs root; runs in a
/// namespace of its own).
#[test]
fn kernel_error_text_is_reported() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(unsafe { libc::geteuid() }, 0, "needs root");
    let name = format!("twlabtest-ns-unit-{}", std::process::id());
    struct Guard(String);
    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = del_netns(&self.0);
        }
    }
    let _ = del_netns(&name);
    add_netns(&name).unwrap();
    let _guard = Guard(name.clone());
    let err = in_netns(Path::new(&name), || {
        let sock = netlink_socket(protocols::NETLINK_ROUTE)?;
        let mut link = LinkMessage::default();
        link.attributes = vec![
            LinkAttribute::IfName("bogus0".into()),
            LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Other(
                "twlab-no-such-kind".into(),
            ))]),
        ];
        rtnl(
            &sock,
            RouteNetlinkMessage::NewLink(link),
            NLM_F_CREATE | NLM_F_EXCL,
            "create bogus0",
        )
    })
    .unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("create bogus0: "), "{text}");
    assert!(text.contains("Unknown device type"), "{text}");
}
