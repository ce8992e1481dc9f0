//! The server endpoint under test and the two sides that look at it.
//!
//! Every count twlab takes is "for the server endpoint": on the server side
//! the sockets whose local end is it, on the client side those whose remote
//! end is it. A dual-stack server (Tomcat is one) holds its IPv4 connections
//! on AF_INET6 sockets as `::ffff:a.b.c.d`, so matching treats an IPv4
//! address and its v4-mapped IPv6 form as the same endpoint.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// The address and port the client targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub addr: IpAddr,
    pub port: u16,
}

impl Endpoint {
    pub fn new(addr: IpAddr, port: u16) -> Self {
        Endpoint { addr, port }
    }

    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::new(self.addr, self.port)
    }

    /// Does `other` name this endpoint, counting `::ffff:a.b.c.d` as `a.b.c.d`?
    /// An unspecified endpoint address (0.0.0.0 or ::) matches any address.
    pub fn matches(&self, other: SocketAddr) -> bool {
        other.port() == self.port
            && (self.addr.is_unspecified() || canonical(self.addr) == canonical(other.ip()))
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.socket_addr())
    }
}

/// IPv4-mapped IPv6 addresses as plain IPv4, everything else unchanged.
pub fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// Which host of the lab a count or a sysctl belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Server,
    Client,
}

impl Side {
    pub const BOTH: [Side; 2] = [Side::Server, Side::Client];

    pub fn as_str(&self) -> &'static str {
        match self {
            Side::Server => "server",
            Side::Client => "client",
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which host of a lab: the server, or client host `index` (0-based, in
/// `hosts.clients` order; 0 is `hosts.client`). The restore journal keys
/// each sysctl and process by it, so `twlab clean` reconnects to the very
/// host a change was made on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct HostRole {
    pub side: Side,
    pub index: usize,
}

impl HostRole {
    pub const SERVER: HostRole = HostRole {
        side: Side::Server,
        index: 0,
    };

    pub fn client(index: usize) -> HostRole {
        HostRole {
            side: Side::Client,
            index,
        }
    }
}

impl std::fmt::Display for HostRole {
    /// `server`, `client`, `client 2` (1-based past the first).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.side, self.index) {
            (Side::Client, i) if i > 0 => write!(f, "client {}", i + 1),
            (side, _) => write!(f, "{side}"),
        }
    }
}

impl From<Side> for HostRole {
    /// The server, or the first (only) client host.
    fn from(side: Side) -> HostRole {
        HostRole { side, index: 0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v4_mapped_addresses_match_their_ipv4_endpoint() {
        let ep = Endpoint::new("198.18.0.1".parse().unwrap(), 8080);
        assert!(ep.matches("[::ffff:198.18.0.1]:8080".parse().unwrap()));
        assert!(ep.matches("198.18.0.1:8080".parse().unwrap()));
        assert!(!ep.matches("198.18.0.1:8081".parse().unwrap()));
        assert!(!ep.matches("198.18.0.2:8080".parse().unwrap()));
        assert!(!ep.matches("[::1]:8080".parse().unwrap()));
    }
}
