//! The names twlab gives what it counts, in one place: TCP socket states
//! as netstat spells them, conntrack's TCP states as conntrack-tools spells
//! them, and metric names (`side.source.STATE.stat`, `client.<load metric>`).
//!
//! The collectors produce these names and the scenario checks expectations
//! against them, so both import them from here rather than from each other.

use crate::common::counts::Source;
use crate::common::endpoint::Side;

/// Kernel TCP state number -> name as netstat spells it: ESTABLISHED,
/// SYN_SENT, SYN_RECV, FIN_WAIT1, FIN_WAIT2, TIME_WAIT, CLOSE, CLOSE_WAIT,
/// LAST_ACK, LISTEN, CLOSING, NEW_SYN_RECV; `UNKNOWN` for any other number.
pub fn socket_state_name(state: u8) -> &'static str {
    match state {
        1 => "ESTABLISHED",
        2 => "SYN_SENT",
        3 => "SYN_RECV",
        4 => "FIN_WAIT1",
        5 => "FIN_WAIT2",
        6 => "TIME_WAIT",
        7 => "CLOSE",
        8 => "CLOSE_WAIT",
        9 => "LAST_ACK",
        10 => "LISTEN",
        11 => "CLOSING",
        12 => "NEW_SYN_RECV",
        _ => "UNKNOWN",
    }
}

/// conntrack's TCP states (`TCP_CONNTRACK_*`), as conntrack-tools prints them.
pub const CONNTRACK_STATES: [&str; 9] = [
    "SYN_SENT",
    "SYN_RECV",
    "ESTABLISHED",
    "FIN_WAIT",
    "CLOSE_WAIT",
    "LAST_ACK",
    "TIME_WAIT",
    "CLOSE",
    "SYN_SENT2",
];

/// Is `state` a state name that `source` reports (netstat's spelling for
/// sockets, conntrack's for conntrack)?
pub fn known_state(source: Source, state: &str) -> bool {
    match source {
        Source::Sockets => (1..=12).any(|n| socket_state_name(n) == state),
        Source::Conntrack => CONNTRACK_STATES.contains(&state),
    }
}

/// The load metrics an expectation can name.
pub const LOAD_METRICS: [&str; 9] = [
    "client.requests",
    "client.requests_per_sec",
    "client.errors",
    "client.errors.connect",
    "client.latency.p50_ms",
    "client.latency.p90_ms",
    "client.latency.p99_ms",
    "client.latency.max_ms",
    "client.connections_opened",
];

/// Is `metric` a state count (`side.source.STATE.stat`)? Returns its parts.
pub fn state_metric(metric: &str) -> Option<(Side, Source, &str, &str)> {
    let mut parts = metric.splitn(3, '.');
    let side = match parts.next()? {
        "server" => Side::Server,
        "client" => Side::Client,
        _ => return None,
    };
    let source = match parts.next()? {
        "sockets" => Source::Sockets,
        "conntrack" => Source::Conntrack,
        _ => return None,
    };
    let (state, stat) = parts.next()?.rsplit_once('.')?;
    Some((side, source, state, stat))
}
