//! Unit tests of the parent module (ctnetlink).

use super::*;
use std::net::{Ipv4Addr, Ipv6Addr};

fn nlmsg(ty: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&((NLMSG_HDRLEN + payload.len()) as u32).to_ne_bytes());
    v.extend_from_slice(&ty.to_ne_bytes());
    v.extend_from_slice(&flags.to_ne_bytes());
    v.extend_from_slice(&seq.to_ne_bytes());
    v.extend_from_slice(&0u32.to_ne_bytes());
    v.extend_from_slice(payload);
    v.resize(align4(v.len()), 0);
    v
}

fn entry(dst: IpAddr, proto: u8, port: u16, state: Option<u8>) -> Vec<u8> {
    let fam = if dst.is_ipv4() { AF_INET } else { AF_INET6 };
    let mut b = vec![fam, 0, 0, 0];
    let t = begin_nest(&mut b, CTA_TUPLE_ORIG);
    let ip = begin_nest(&mut b, CTA_TUPLE_IP);
    match dst {
        IpAddr::V4(a) => {
            put_attr(&mut b, 1, &[198, 18, 0, 2]);
            put_attr(&mut b, CTA_IP_V4_DST, &a.octets());
        }
        IpAddr::V6(a) => put_attr(&mut b, CTA_IP_V6_DST, &a.octets()),
    }
    end_nest(&mut b, ip);
    let p = begin_nest(&mut b, CTA_TUPLE_PROTO);
    put_attr(&mut b, CTA_PROTO_NUM, &[proto]);
    put_attr(&mut b, 2, &40000u16.to_be_bytes());
    put_attr(&mut b, CTA_PROTO_DST_PORT, &port.to_be_bytes());
    end_nest(&mut b, p);
    end_nest(&mut b, t);
    put_attr(&mut b, 3, &8u32.to_be_bytes()); // CTA_STATUS
    if let Some(s) = state {
        let pi = begin_nest(&mut b, CTA_PROTOINFO);
        let tcp = begin_nest(&mut b, CTA_PROTOINFO_TCP);
        put_attr(&mut b, CTA_PROTOINFO_TCP_STATE, &[s]);
        end_nest(&mut b, tcp);
        end_nest(&mut b, pi);
    }
    nlmsg(NFNL_SUBSYS_CTNETLINK << 8, NLM_F_DUMP_FILTERED, 7, &b)
}

fn ep4() -> SocketAddr {
    "198.18.0.1:8080".parse().unwrap()
}

#[test]
fn synthetic_filtering_and_states() {
    let a = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1));
    let mut buf = Vec::new();
    buf.extend(entry(a, 6, 8080, Some(7)));
    buf.extend(entry(a, 6, 8080, Some(7)));
    buf.extend(entry(a, 6, 8080, Some(3)));
    buf.extend(entry(a, 6, 8080, Some(9)));
    buf.extend(entry(a, 6, 8081, Some(7))); // other port
    buf.extend(entry(a, 17, 8080, None)); // udp
    buf.extend(entry(
        IpAddr::V4(Ipv4Addr::new(198, 18, 0, 3)),
        6,
        8080,
        Some(7),
    ));
    buf.extend(nlmsg(NLMSG_DONE, 0, 7, &0i32.to_ne_bytes()));
    let mut c = Counts::new();
    assert!(decode_dump(&buf, ep4(), &mut c).unwrap());
    assert_eq!(c.get("TIME_WAIT"), Some(&2));
    assert_eq!(c.get("ESTABLISHED"), Some(&1));
    assert_eq!(c.get("SYN_SENT2"), Some(&1));
    assert_eq!(c.len(), 3);
    // IPv4-mapped endpoint counts as IPv4.
    let mapped: SocketAddr = "[::ffff:198.18.0.1]:8080".parse().unwrap();
    let mut c2 = Counts::new();
    assert!(decode_dump(&buf, mapped, &mut c2).unwrap());
    assert_eq!(c, c2);
}

#[test]
fn ipv6_entries() {
    let a: Ipv6Addr = "fd00::1".parse().unwrap();
    let mut buf = entry(IpAddr::V6(a), 6, 443, Some(8));
    buf.extend(entry(
        IpAddr::V6("fd00::2".parse().unwrap()),
        6,
        443,
        Some(8),
    ));
    let mut c = Counts::new();
    let ep = SocketAddr::new(IpAddr::V6(a), 443);
    assert!(!decode_dump(&buf, ep, &mut c).unwrap());
    assert_eq!(c.get("CLOSE"), Some(&1));
    // v4 endpoint does not match v6 entries
    let mut c = Counts::new();
    decode_dump(&buf, ep4(), &mut c).unwrap();
    assert!(c.is_empty());
}

#[test]
fn error_and_done_with_errno() {
    let mut payload = (-libc::EOPNOTSUPP).to_ne_bytes().to_vec();
    payload.extend_from_slice(&[0; 16]);
    let buf = nlmsg(NLMSG_ERROR, 0, 1, &payload);
    let e = decode_dump(&buf, ep4(), &mut Counts::new()).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EOPNOTSUPP));
    let ack = nlmsg(NLMSG_ERROR, 0, 1, &[0; 20]);
    assert!(!decode_dump(&ack, ep4(), &mut Counts::new()).unwrap());
    let done = nlmsg(NLMSG_DONE, 0, 1, &(-libc::ENOMEM).to_ne_bytes());
    let e = decode_dump(&done, ep4(), &mut Counts::new()).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENOMEM));
    let weird = nlmsg(NLMSG_ERROR, 0, 1, &i32::MIN.to_ne_bytes());
    let e = decode_dump(&weird, ep4(), &mut Counts::new()).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidData);
}

#[test]
fn stale_sequence_is_skipped_and_leak_detected() {
    let a = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1));
    let mut buf = entry(a, 6, 8081, Some(7));
    buf.extend(entry(a, 6, 8080, Some(7)));
    let ep = Endpoint::new(ep4());
    let kf = KernelFilter {
        flags: ep.default_flags(),
        ep,
    };
    let mut c = Counts::new();
    let s = scan(&buf, &ep, Some(7), Some(kf), &mut c).unwrap();
    assert_eq!((s.entries, s.leaked), (2, 1));
    let mut c = Counts::new();
    let s = scan(&buf, &ep, Some(8), Some(kf), &mut c).unwrap();
    assert_eq!(s.entries, 0);
    assert!(c.is_empty());
}

#[test]
fn request_layout() {
    let mut req = Vec::new();
    let ep = Endpoint::new(ep4());
    build_request(&mut req, 42, &ep, Some(ep.default_flags()));
    assert_eq!(
        u32::from_ne_bytes(req[0..4].try_into().unwrap()) as usize,
        req.len()
    );
    assert_eq!(u16::from_ne_bytes([req[4], req[5]]), 0x101);
    assert_eq!(
        u16::from_ne_bytes([req[6], req[7]]),
        NLM_F_REQUEST | NLM_F_DUMP
    );
    assert_eq!(req[16], AF_INET);
    // Top-level attributes: CTA_TUPLE_ORIG then CTA_FILTER, both nested.
    let tops: Vec<u16> = attrs(&req[20..]).map(|a| a.unwrap().0).collect();
    assert_eq!(tops, vec![CTA_TUPLE_ORIG, CTA_FILTER]);
    // The request decodes like an entry (same tuple layout).
    let e = parse_entry(&req[16..]).unwrap();
    assert_eq!(e.v4_dst, Some([198, 18, 0, 1]));
    assert_eq!(e.proto, Some(6));
    assert_eq!(e.dst_port, Some(8080));
}

#[test]
fn garbage_never_panics() {
    let a = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1));
    let mut good = entry(a, 6, 8080, Some(7));
    good.extend(nlmsg(NLMSG_DONE, 0, 7, &0i32.to_ne_bytes()));
    for n in 0..good.len() {
        let _ = decode_dump(&good[..n], ep4(), &mut Counts::new());
    }
    // Bit flips everywhere.
    for i in 0..good.len() {
        for bit in 0..8 {
            let mut g = good.clone();
            g[i] ^= 1 << bit;
            let _ = decode_dump(&g, ep4(), &mut Counts::new());
        }
    }
    // xorshift random buffers
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for len in 0..2000usize {
        let mut v = Vec::with_capacity(len);
        for _ in 0..len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v.push(x as u8);
        }
        let _ = decode_dump(&v, ep4(), &mut Counts::new());
    }
}

/// Replies captured from a real kernel (`capture_ctnetlink_fixtures` in
/// tests/netns_sys): 7 connections closed by the server, 2 reset.
#[test]
fn captured_kernel_replies_decode_to_what_the_kernel_had() {
    let ep: SocketAddr = "198.18.0.1:18095".parse().expect("addr");
    for raw in [
        &include_bytes!("../../../tests/fixtures/ctnetlink/dump_v4_all.bin")[..],
        &include_bytes!("../../../tests/fixtures/ctnetlink/dump_v4_filtered.bin")[..],
    ] {
        let mut counts = Counts::new();
        assert!(
            decode_dump(raw, ep, &mut counts).expect("decode"),
            "ends with DONE"
        );
        assert_eq!(counts.get("TIME_WAIT"), Some(&7), "{counts:?}");
        assert_eq!(counts.get("CLOSE"), Some(&2), "{counts:?}");
        assert_eq!(counts.len(), 2, "{counts:?}");
        // Another port of the same address: none of these entries.
        let mut other = Counts::new();
        decode_dump(raw, "198.18.0.1:18096".parse().expect("addr"), &mut other).expect("decode");
        assert!(other.is_empty(), "{other:?}");
        // Every truncation is an error or a partial count, never a panic.
        for cut in 0..raw.len() {
            let mut c = Counts::new();
            let _ = decode_dump(&raw[..cut], ep, &mut c);
        }
    }
}
