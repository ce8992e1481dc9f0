//! The names twlab gives what it counts, in one place: TCP socket states
//! as netstat spells them, conntrack's TCP states as conntrack-tools spells
//! them, and metric names (`side.source.STATE.stat`, `client.<load metric>`).
//!
//! The collectors produce these names and the scenario checks expectations
//! against them, so both import them from here rather than from each other.
//! A state metric's name is built by [`state_metric_name`] and read back by
//! [`state_metric`], side by side, so the two cannot drift apart; a load
//! metric is a [`LoadMetric`], its name written once in [`LoadMetric::name`].

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

/// conntrack's TCP states by their number (`TCP_CONNTRACK_*`, 0 is
/// `NONE`), as conntrack-tools prints them.
const CONNTRACK_BY_NUMBER: [&str; 10] = [
    "NONE",
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

/// How many TCP state numbers conntrack has (`NONE` included): the numbers
/// [`conntrack_state_name`] names are below it.
pub const CONNTRACK_STATE_NUMBERS: usize = CONNTRACK_BY_NUMBER.len();

/// conntrack's TCP states an entry can be in (all but `NONE`).
pub const CONNTRACK_STATES: &[&str] = CONNTRACK_BY_NUMBER.split_at(1).1;

/// conntrack TCP state number (`CTA_PROTOINFO_TCP_STATE`) -> name as
/// conntrack-tools prints it; `UNKNOWN` for any other number.
pub fn conntrack_state_name(state: u8) -> &'static str {
    CONNTRACK_BY_NUMBER
        .get(usize::from(state))
        .copied()
        .unwrap_or("UNKNOWN")
}

/// Is `state` a state name that `source` reports (netstat's spelling for
/// sockets, conntrack's for conntrack)?
pub fn known_state(source: Source, state: &str) -> bool {
    match source {
        Source::Sockets => (1..=12).any(|n| socket_state_name(n) == state),
        Source::Conntrack => CONNTRACK_STATES.contains(&state),
    }
}

/// A figure of the load (`client.<name>`), as a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadMetric {
    Requests,
    RequestsPerSec,
    Errors,
    ErrorsConnect,
    LatencyP50,
    LatencyP90,
    LatencyP99,
    LatencyMax,
    ConnectionsOpened,
}

impl LoadMetric {
    /// Every load metric, in the order a run's metrics list them.
    pub const ALL: [LoadMetric; 9] = [
        LoadMetric::Requests,
        LoadMetric::RequestsPerSec,
        LoadMetric::Errors,
        LoadMetric::ErrorsConnect,
        LoadMetric::LatencyP50,
        LoadMetric::LatencyP90,
        LoadMetric::LatencyP99,
        LoadMetric::LatencyMax,
        LoadMetric::ConnectionsOpened,
    ];

    /// The metric's name.
    pub const fn name(self) -> &'static str {
        match self {
            LoadMetric::Requests => "client.requests",
            LoadMetric::RequestsPerSec => "client.requests_per_sec",
            LoadMetric::Errors => "client.errors",
            LoadMetric::ErrorsConnect => "client.errors.connect",
            LoadMetric::LatencyP50 => "client.latency.p50_ms",
            LoadMetric::LatencyP90 => "client.latency.p90_ms",
            LoadMetric::LatencyP99 => "client.latency.p99_ms",
            LoadMetric::LatencyMax => "client.latency.max_ms",
            LoadMetric::ConnectionsOpened => "client.connections_opened",
        }
    }

    /// The load metric named `name`, if it is one.
    pub fn parse(name: &str) -> Option<LoadMetric> {
        LoadMetric::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// The names of `metrics`, in their order.
pub const fn load_metric_names<const N: usize>(metrics: [LoadMetric; N]) -> [&'static str; N] {
    let mut names = [""; N];
    let mut i = 0;
    while i < N {
        names[i] = metrics[i].name();
        i += 1;
    }
    names
}

/// The load metrics an expectation can name.
pub const LOAD_METRICS: [&str; 9] = load_metric_names(LoadMetric::ALL);

/// The statistics of a state count over a run, as its metric names end.
pub const STATE_STATS: [&str; 3] = ["final", "peak", "steady_mean"];

/// The name of a state count's metric: `side.source.STATE.stat`
/// (`server.sockets.TIME_WAIT.steady_mean`); [`state_metric`] reads it back.
pub fn state_metric_name(side: Side, source: Source, state: &str, stat: &str) -> String {
    format!("{side}.{}.{state}.{stat}", source.as_str())
}

/// Is `metric` a state count (`side.source.STATE.stat`)? Returns its parts.
pub fn state_metric(metric: &str) -> Option<(Side, Source, &str, &str)> {
    let (prefix, stat) = metric.rsplit_once('.')?;
    let (side, source, state) = state_count(prefix)?;
    Some((side, source, state, stat))
}

/// Is `name` a state count without its statistic (`side.source.STATE`, as
/// an expectation names it)? Returns its parts.
pub fn state_count(name: &str) -> Option<(Side, Source, &str)> {
    let mut parts = name.splitn(3, '.');
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
    let state = parts.next()?;
    Some((side, source, state))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_metric_name_reads_back_as_its_parts() {
        for side in Side::BOTH {
            for source in [Source::Sockets, Source::Conntrack] {
                for stat in STATE_STATS {
                    let name = state_metric_name(side, source, "TIME_WAIT", stat);
                    assert_eq!(state_metric(&name), Some((side, source, "TIME_WAIT", stat)));
                }
            }
        }
        assert_eq!(
            state_metric("server.sockets.TIME_WAIT.steady_mean"),
            Some((Side::Server, Source::Sockets, "TIME_WAIT", "steady_mean"))
        );
        assert_eq!(state_metric("client.requests_per_sec"), None);
        assert_eq!(state_metric("server.sockets"), None);
        assert_eq!(
            state_count("client.conntrack.TIME_WAIT"),
            Some((Side::Client, Source::Conntrack, "TIME_WAIT"))
        );
    }

    #[test]
    fn load_metrics_are_named_once_and_read_back() {
        for m in LoadMetric::ALL {
            assert_eq!(LoadMetric::parse(m.name()), Some(m));
            assert!(state_metric(m.name()).is_none(), "{}", m.name());
        }
        assert_eq!(LOAD_METRICS[8], "client.connections_opened");
        assert_eq!(LoadMetric::parse("client.nonsense"), None);
    }

    #[test]
    fn conntrack_states_by_number_as_conntrack_tools_prints_them() {
        assert_eq!(conntrack_state_name(7), "TIME_WAIT");
        assert_eq!(conntrack_state_name(9), "SYN_SENT2");
        assert_eq!(conntrack_state_name(0), "NONE");
        assert_eq!(conntrack_state_name(10), "UNKNOWN");
        assert_eq!(CONNTRACK_STATES.len(), 9);
        assert!(!CONNTRACK_STATES.contains(&"NONE"));
    }
}
