//! What a load client reports, whichever client ran.
//!
//! The builtin generator prints a [`ClientStats`] as JSON on stdout when it
//! ends (`twlab load --json`), and the wrk parser produces the same struct from
//! wrk's text, so the report compares variants without caring which tool ran.
//! Fields a tool cannot know are `None` (wrk does not split responses by
//! status class) rather than a made-up zero.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Counts by name (a TCP state such as `TIME_WAIT`, a status class, an errno).
pub type Counts = BTreeMap<String, u64>;

/// The outcome of one load run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClientStats {
    /// `builtin` or `wrk`.
    pub tool: String,
    /// Wall time the load ran, in seconds.
    pub duration_secs: f64,
    /// Completed requests (responses received).
    pub requests: u64,
    pub requests_per_sec: f64,
    /// Responses by status class (`2xx`, `4xx`, ...), when the tool says.
    pub responses_by_class: Option<Counts>,
    /// Responses that were neither 2xx nor 3xx.
    pub non_2xx_3xx: u64,
    /// TCP connections opened during the run, when the tool says.
    pub connections_opened: Option<u64>,
    pub errors: ErrorCounts,
    pub latency: Latency,
    /// CPU time the load generator used (user + system), in seconds, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_secs: Option<f64>,
    /// Things the reader must know about this run (e.g. wrk losing slots).
    #[serde(default)]
    pub notes: Vec<String>,
}

/// Socket-level errors, split as wrk splits them, plus connect errors by errno.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorCounts {
    pub connect: u64,
    /// Connect errors by errno name (`EADDRNOTAVAIL`, `ECONNREFUSED`, ...), when known.
    pub connect_by_errno: Option<Counts>,
    pub read: u64,
    pub write: u64,
    pub timeout: u64,
}

impl ErrorCounts {
    pub fn total(&self) -> u64 {
        self.connect + self.read + self.write + self.timeout
    }
}

/// Latency of completed requests, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p75_ms: Option<f64>,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Where a count comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// TCP sockets by kernel state (sock_diag).
    Sockets,
    /// conntrack entries by TCP state.
    Conntrack,
}

impl Source {
    pub fn as_str(&self) -> &'static str {
        match self {
            Source::Sockets => "sockets",
            Source::Conntrack => "conntrack",
        }
    }
}
