//! STUB (being written): TCP socket counts from `ss` or `netstat` text.
use crate::endpoint::{Endpoint, Side};
use crate::stats::Counts;

/// The `ss` command that lists the TCP sockets of `endpoint` as seen from `side`.
pub fn ss_argv(_endpoint: Endpoint, _side: Side) -> Vec<String> {
    vec!["ss".into(), "-Htan".into()]
}

/// Count `ss` output lines by state (netstat spelling) for the endpoint.
pub fn parse_ss(_output: &str, _endpoint: Endpoint, _side: Side) -> Counts {
    Counts::new()
}

/// The `netstat` fallback command.
pub fn netstat_argv() -> Vec<String> {
    vec!["netstat".into(), "-tan".into()]
}

/// Count `netstat -tan` output by state for the endpoint.
pub fn parse_netstat(_output: &str, _endpoint: Endpoint, _side: Side) -> Counts {
    Counts::new()
}
