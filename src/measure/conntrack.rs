//! conntrack entries towards the server endpoint, by TCP state.
//!
//! conntrack keeps its own TIME_WAIT (120 s by default, twice the socket's),
//! which is what fills `nf_conntrack_max` on busy hosts; the seed counted it
//! with `conntrack -L | awk | sort | uniq -c`. A network namespace tracks
//! nothing until a rule there uses conntrack; the embedded lab installs a
//! minimal nftables table for that ([`crate::lab::netns::sys`]).
//!
//! This module counts from the `conntrack` tool's text (conntrack-tools),
//! with the endpoint as a filter and the original tuple checked again here:
//! it is what an SSH host has. On this machine and in the embedded lab,
//! [`crate::measure::ctnetlink`] counts in-process instead.

use crate::common::counts::Counts;
use crate::common::endpoint::{Endpoint, canonical};
use std::net::IpAddr;

/// `conntrack -L` for TCP entries whose original destination is the endpoint.
pub fn list_argv(endpoint: Endpoint) -> Vec<String> {
    let family = match endpoint.addr {
        IpAddr::V4(_) => "ipv4",
        IpAddr::V6(_) => "ipv6",
    };
    vec![
        "conntrack".into(),
        "-L".into(),
        "-f".into(),
        family.into(),
        "-p".into(),
        "tcp".into(),
        "--orig-dst".into(),
        canonical(endpoint.addr).to_string(),
        "--orig-port-dst".into(),
        endpoint.port.to_string(),
    ]
}

/// Count `conntrack -L` lines by TCP state, keeping only entries whose
/// original destination is the endpoint. Lines look like
/// `tcp      6 117 TIME_WAIT src=198.18.0.2 dst=198.18.0.1 sport=45678 dport=8080 src=... [ASSURED] mark=0 use=1`
/// (with `-o extended` a `ipv4     2 ` prefix comes first; both are accepted).
pub fn count_states(output: &str, endpoint: Endpoint) -> Counts {
    let mut counts = Counts::new();
    for line in output.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let Some(tcp_at) = fields.iter().position(|f| *f == "tcp") else {
            continue;
        };
        // tcp, protonum, timeout, STATE
        let Some(state) = fields.get(tcp_at + 3) else {
            continue;
        };
        if state.contains('=') {
            continue;
        }
        // The first dst=/dport= are the original tuple.
        let dst = fields
            .iter()
            .find_map(|f| f.strip_prefix("dst="))
            .and_then(|d| d.parse::<IpAddr>().ok());
        let dport = fields
            .iter()
            .find_map(|f| f.strip_prefix("dport="))
            .and_then(|p| p.parse::<u16>().ok());
        let matches = match (dst, dport) {
            (Some(d), Some(p)) => endpoint.matches(std::net::SocketAddr::new(d, p)),
            _ => false,
        };
        if matches {
            *counts.entry((*state).to_string()).or_insert(0) += 1;
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured from `conntrack -L` in a twlab client namespace right after a
    // short run (155 TCP entries, awk-counted: 147 TIME_WAIT, 8 CLOSE, towards 198.18.0.1:8080).
    const CAPTURED: &str = include_str!("../../tests/fixtures/conntrack/client_list.txt");

    #[test]
    fn counts_tcp_entries_for_the_endpoint_by_state() {
        let ep = Endpoint::new("198.18.0.1".parse().unwrap(), 8080);
        let counts = count_states(CAPTURED, ep);
        assert_eq!(counts.get("TIME_WAIT"), Some(&147));
        assert_eq!(counts.get("CLOSE"), Some(&8));
        assert_eq!(counts.len(), 2);
    }

    #[test]
    fn entries_for_another_endpoint_are_not_counted() {
        let other_port = Endpoint::new("198.18.0.1".parse().unwrap(), 9090);
        assert!(count_states(CAPTURED, other_port).is_empty());
        let other_addr = Endpoint::new("198.18.0.9".parse().unwrap(), 8080);
        assert!(count_states(CAPTURED, other_addr).is_empty());
    }

    #[test]
    fn the_extended_format_is_read_too() {
        let extended = "ipv4     2 tcp      6 118 TIME_WAIT src=198.18.0.2 dst=198.18.0.1 sport=43628 dport=8080 src=198.18.0.1 dst=198.18.0.2 sport=8080 dport=43628 [ASSURED] mark=0 use=1\n";
        let ep = Endpoint::new("198.18.0.1".parse().unwrap(), 8080);
        assert_eq!(count_states(extended, ep).get("TIME_WAIT"), Some(&1));
    }

    #[test]
    fn the_listing_is_filtered_by_the_endpoint() {
        let ep = Endpoint::new("198.18.0.1".parse().unwrap(), 8080);
        let argv = list_argv(ep).join(" ");
        assert_eq!(
            argv,
            "conntrack -L -f ipv4 -p tcp --orig-dst 198.18.0.1 --orig-port-dst 8080"
        );
    }
}
