//! The values of a lab file's keys, each refused as it is read, at its
//! `file:line:column`: SSH destinations, endpoint addresses, remote paths
//! and Swarm placement constraints.

use schemars::JsonSchema;
use serde::de::Deserializer;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

pub(super) fn yes() -> bool {
    true
}

/// A placement constraint: `key==value` or `key!=value`, of printable
/// characters without spaces around nothing else.
pub(super) fn swarm_constraint<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<String>, D::Error> {
    crate::scenario::checked_str(d, |s| {
        let ok_char = |c: char| c.is_ascii_alphanumeric() || "._-=!/:".contains(c);
        if s.len() > 256 || !s.chars().all(ok_char) || !(s.contains("==") || s.contains("!=")) {
            return Err(format!(
                "`{s}` is not a Swarm placement constraint: write `KEY==VALUE` or `KEY!=VALUE`, e.g. node.labels.twlab.role==client"
            ));
        }
        Ok(s.to_string())
    })
    .map(Some)
}

/// An address a host can be reached at (or, for a client, sends from):
/// not `0.0.0.0` or `::` (they mean "any address" to a listener, and as a
/// destination Linux quietly turns them into this machine's loopback), not
/// multicast or broadcast (TCP cannot connect to them). An IPv4-mapped IPv6
/// address (`::ffff:a.b.c.d`) is refused, not rewritten: its traffic is
/// IPv4 on the wire and in conntrack while the sockets on the client are
/// IPv6 ones, so the file would say IPv6 where twlab measures IPv4; the
/// message gives the IPv4 address to write instead.
pub(super) fn endpoint_address<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<IpAddr>, D::Error> {
    crate::scenario::checked_str(d, |s| {
        let addr: IpAddr = s
            .trim()
            .parse()
            .map_err(|_| "invalid IP address syntax".to_string())?;
        if let IpAddr::V6(v6) = addr
            && let Some(v4) = v6.to_ipv4_mapped()
        {
            return Err(format!(
                "`{s}` is an IPv4-mapped IPv6 address: the traffic and conntrack's entries are IPv4; write {v4}"
            ));
        }
        let broadcast = matches!(addr, IpAddr::V4(v4) if v4.is_broadcast());
        if addr.is_unspecified() || addr.is_multicast() || broadcast {
            return Err(format!(
                "`{s}` is not the address of one host ({}): write the address the client connects to, e.g. 192.168.100.12",
                if addr.is_unspecified() {
                    "it means any address"
                } else {
                    "it is a multicast or broadcast address"
                }
            ));
        }
        Ok(Some(addr))
    })
}

/// A path on an SSH host: absolute, without `.` or `..` parts, one line
/// of at most 4096 printable characters (PATH_MAX). It runs through
/// `sudo` in a quoted command line, where the working directory is not
/// known: an absolute path names one file whatever it is.
pub(super) fn remote_path<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<String>, D::Error> {
    crate::scenario::checked_str(d, |s| {
        let ok = s.starts_with('/')
            && s.len() <= 4096
            && !s.chars().any(char::is_control)
            && !s.split('/').any(|part| part == "." || part == "..");
        if !ok {
            return Err(format!(
                "`{}` is not an absolute path on the host: start with `/`, no `.` or `..` parts, one line of at most 4096 printable characters",
                s.escape_default()
            ));
        }
        Ok(Some(s.to_string()))
    })
}

/// `[user@]host` for SSH: no spaces, no leading `-` (it would be read as an
/// option by ssh), nothing a shell would interpret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(transparent)]
pub struct SshDestination(pub String);

impl<'de> Deserialize<'de> for SshDestination {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        crate::scenario::checked_str(d, |s| {
            let ok = !s.is_empty()
                && !s.starts_with('-')
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "@.-_:[]%".contains(c))
                && s.matches('@').count() <= 1
                && !s.ends_with('@');
            if ok {
                Ok(SshDestination(s.to_string()))
            } else {
                Err(format!(
                    "`{s}` is not an SSH destination: write [user@]host, e.g. admin@192.168.100.12"
                ))
            }
        })
    }
}
