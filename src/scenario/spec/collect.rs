//! The `collect:` block: what is sampled during the load and how often,
//! with its defaults and the checks of its values (state names as the
//! collectors spell them, the shortest interval). Apart from `spec.rs`
//! because it is read on its own, with none of the server's or the
//! client's cross-key checks.

use crate::scenario::values::*;
use schemars::JsonSchema;
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What is sampled during the load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CollectSpec {
    /// Time between samples (default 1s, at least 50ms).
    #[serde(default = "default_interval", deserialize_with = "interval")]
    pub interval: HumanDuration,
    /// From when counts are steady (default: 60s when the load runs longer
    /// than 70s, else the second half): TIME_WAIT grows for its first minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steady_after: Option<HumanDuration>,
    /// The states charted over time (default TIME_WAIT).
    #[serde(default = "default_states", deserialize_with = "state_list")]
    pub states: Vec<String>,
    /// TCP states for the server endpoint, both sides.
    #[serde(default = "yes")]
    pub sockets: bool,
    /// conntrack entries by TCP state for the endpoint, both sides.
    #[serde(default = "yes")]
    pub conntrack: bool,
    /// In the embedded lab, keep conntrack counts from the kernel's events
    /// (default; a count costs a lookup) rather than a dump of the table per
    /// sample (a cost per entry: about half a second of kernel CPU at 200k).
    /// `false` is for measuring the difference.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub conntrack_events: bool,
    /// In the embedded lab, count sockets with the socket gauge (default): a
    /// BPF program keeps the endpoint's sockets by state as the kernel
    /// changes them, so a count reads a map and the namespace's TIME_WAIT
    /// figure instead of walking the kernel's socket table (a cost per
    /// socket, and ~2 ms per walk on the load's cores). One difference: an
    /// orphan in FIN_WAIT2 that Linux keeps as a time-wait socket counts as
    /// TIME_WAIT (as sockstat counts it), where a walk and `ss` say
    /// FIN_WAIT2; `false` walks, for a scenario that studies those orphans.
    /// Where the kernel refuses BPF, sockets are walked and env.json says why.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub socket_gauge: bool,
    /// The kernel's TCP and conntrack counters of both sides (netstat,
    /// snmp, conntrack statistics), read with every sample into
    /// `kernel.jsonl` and the report's "What the kernel did" (default on;
    /// `false` is for measuring what reading them costs).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub kernel_counters: bool,
    /// The lines of the client-side charts when the client runs on several
    /// hosts (`client.hosts`): `total` (default), one line per run, the
    /// hosts' sum; `per_host`, one line per client host of each run, to see
    /// how the states spread over the clients (and whether one runs out of
    /// ports while the others do not). The tables show both either way.
    #[serde(default, skip_serializing_if = "ClientLines::is_total")]
    pub client_lines: ClientLines,
}
/// What a client-side chart draws for a run on several client hosts
/// (`collect.client_lines`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClientLines {
    /// One line per run: the client hosts' sum.
    #[default]
    Total,
    /// One line per client host of each run.
    PerHost,
}
impl ClientLines {
    pub fn is_total(&self) -> bool {
        *self == ClientLines::Total
    }
}
impl Default for CollectSpec {
    fn default() -> Self {
        CollectSpec {
            interval: default_interval(),
            steady_after: None,
            states: default_states(),
            sockets: true,
            conntrack: true,
            conntrack_events: true,
            socket_gauge: true,
            kernel_counters: true,
            client_lines: ClientLines::Total,
        }
    }
}
pub(crate) fn default_interval() -> HumanDuration {
    HumanDuration(Duration::from_secs(1))
}
fn is_true(b: &bool) -> bool {
    *b
}

pub(crate) fn yes() -> bool {
    true
}
pub(crate) fn default_states() -> Vec<String> {
    vec!["TIME_WAIT".to_string()]
}
pub(crate) fn state_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    /// One state name, checked where it stands.
    struct State(String);
    impl<'de> Deserialize<'de> for State {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            checked_str(d, |s| {
                let known =
                    crate::common::names::known_state(crate::common::counts::Source::Sockets, s)
                        || crate::common::names::known_state(
                            crate::common::counts::Source::Conntrack,
                            s,
                        );
                if known {
                    Ok(State(s.to_string()))
                } else {
                    Err(format!(
                        "unknown TCP state `{s}` (use netstat's spelling: TIME_WAIT, ESTABLISHED, CLOSE_WAIT, FIN_WAIT2, ...)"
                    ))
                }
            })
        }
    }
    Ok(Vec::<State>::deserialize(d)?
        .into_iter()
        .map(|s| s.0)
        .collect())
}
/// The shortest sampling interval: `collect.interval` of a scenario and
/// `twlab states --watch`. One sample of a large table takes milliseconds
/// of kernel time; sampling faster measures mostly the sampler.
pub const MIN_SAMPLE_INTERVAL: Duration = Duration::from_millis(50);
pub(crate) fn interval<'de, D: Deserializer<'de>>(d: D) -> Result<HumanDuration, D::Error> {
    let value = HumanDuration::deserialize(d)?;
    if value.0 < MIN_SAMPLE_INTERVAL {
        return Err(de::Error::custom(format!(
            "collect.interval `{value}` is too short: at least {}",
            HumanDuration(MIN_SAMPLE_INTERVAL)
        )));
    }
    Ok(value)
}
