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
    /// The tool's `client.tool` name (`builtin`, `wrk`, `httperf`, …).
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
    /// How an open-loop load (`client.rate`) kept its schedule; absent for
    /// a closed-loop one. Its `latency` above is then measured from each
    /// request's *scheduled* time (coordinated omission corrected, as
    /// wrk2 does), and the service time is here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,
    /// The metrics (`client.latency.p99_ms`, …) this tool does not report:
    /// their fields above are 0 by necessity, not measured as 0, so the
    /// report shows n/a and no comparison or expectation uses them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_measured: Vec<String>,
}

impl ClientStats {
    /// Whether the tool reported `metric` (a `client.…` metric name).
    pub fn measured(&self, metric: &str) -> bool {
        !self.not_measured.iter().any(|m| m == metric)
    }
}

/// An open-loop load's schedule and how it was kept.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// The requests per second asked for (`client.rate`).
    pub rate: f64,
    /// Requests whose time came during the run (each sent, or its
    /// connect tried, once due).
    pub scheduled: u64,
    /// Of those, sent more than [`LATE_AFTER_MS`] after their time: the
    /// connection was still busy with an earlier one, or the client fell
    /// behind.
    pub late: u64,
    /// The longest a request waited past its time, in milliseconds.
    pub max_lag_ms: f64,
    /// From writing the request to the end of its response (what
    /// closed-loop tools report as latency).
    pub service_latency: Latency,
}

/// A request sent later than this after its scheduled time counts as late
/// (the timer itself wakes up to a millisecond or so late).
pub const LATE_AFTER_MS: f64 = 5.0;

impl ClientStats {
    /// The achieved rate against the asked one (1.0 = kept), for an
    /// open-loop load.
    pub fn rate_kept(&self) -> Option<f64> {
        let s = self.schedule.as_ref()?;
        (s.rate > 0.0).then(|| self.requests_per_sec / s.rate)
    }
}

/// Several counts added up, key by key.
pub fn sum_counts<'a>(all: impl IntoIterator<Item = &'a Counts>) -> Counts {
    let mut total = Counts::new();
    for counts in all {
        for (key, n) in counts {
            *total.entry(key.clone()).or_insert(0) += n;
        }
    }
    total
}

impl ClientStats {
    /// The figures of several client hosts as one load: requests, rates,
    /// errors, connections and CPU add up; the duration is the longest;
    /// the mean latency is weighted by requests. Percentiles do not add up,
    /// so the total's are the highest of any client (the worst client), and
    /// a note says so. `None` for no clients.
    pub fn merged(all: &[ClientStats]) -> Option<ClientStats> {
        let first = all.first()?;
        if all.len() == 1 {
            return Some(first.clone());
        }
        let sum_opt = |f: fn(&ClientStats) -> Option<u64>| -> Option<u64> {
            all.iter().map(f).sum::<Option<u64>>()
        };
        let add_counts = |f: fn(&ClientStats) -> Option<&Counts>| -> Option<Counts> {
            let present: Vec<&Counts> = all.iter().filter_map(f).collect();
            (!present.is_empty()).then(|| sum_counts(present))
        };
        let requests: u64 = all.iter().map(|c| c.requests).sum();
        let max = |f: fn(&Latency) -> f64| all.iter().map(|c| f(&c.latency)).fold(0.0, f64::max);
        let schedules: Vec<&Schedule> = all.iter().filter_map(|c| c.schedule.as_ref()).collect();
        let schedule = (schedules.len() == all.len()).then(|| Schedule {
            rate: schedules.iter().map(|s| s.rate).sum(),
            scheduled: schedules.iter().map(|s| s.scheduled).sum(),
            late: schedules.iter().map(|s| s.late).sum(),
            max_lag_ms: schedules.iter().map(|s| s.max_lag_ms).fold(0.0, f64::max),
            service_latency: worst_latency(schedules.iter().map(|s| &s.service_latency)),
        });
        let mean_ms = if requests > 0 {
            all.iter()
                .map(|c| c.latency.mean_ms * c.requests as f64)
                .sum::<f64>()
                / requests as f64
        } else {
            0.0
        };
        let mut notes = vec![format!(
            "{} client hosts: requests and errors are their sums; latency percentiles are the highest of any client (percentiles do not add up)",
            all.len()
        )];
        for (i, c) in all.iter().enumerate() {
            notes.extend(c.notes.iter().map(|n| format!("client {}: {n}", i + 1)));
        }
        Some(ClientStats {
            tool: first.tool.clone(),
            duration_secs: all.iter().map(|c| c.duration_secs).fold(0.0, f64::max),
            requests,
            requests_per_sec: all.iter().map(|c| c.requests_per_sec).sum(),
            responses_by_class: if all.iter().all(|c| c.responses_by_class.is_some()) {
                add_counts(|c| c.responses_by_class.as_ref())
            } else {
                None
            },
            non_2xx_3xx: all.iter().map(|c| c.non_2xx_3xx).sum(),
            connections_opened: sum_opt(|c| c.connections_opened),
            errors: ErrorCounts {
                connect: all.iter().map(|c| c.errors.connect).sum(),
                connect_by_errno: add_counts(|c| c.errors.connect_by_errno.as_ref()),
                read: all.iter().map(|c| c.errors.read).sum(),
                write: all.iter().map(|c| c.errors.write).sum(),
                timeout: all.iter().map(|c| c.errors.timeout).sum(),
            },
            latency: Latency {
                mean_ms,
                p50_ms: max(|l| l.p50_ms),
                p75_ms: if all.iter().all(|c| c.latency.p75_ms.is_some()) {
                    Some(max(|l| l.p75_ms.unwrap_or(0.0)))
                } else {
                    None
                },
                p90_ms: max(|l| l.p90_ms),
                p99_ms: max(|l| l.p99_ms),
                max_ms: max(|l| l.max_ms),
            },
            cpu_secs: all.iter().map(|c| c.cpu_secs).sum::<Option<f64>>(),
            notes,
            schedule,
            // What one host's tool does not report, the sum does not have.
            not_measured: all.iter().fold(Vec::new(), |mut out, c| {
                for m in &c.not_measured {
                    if !out.contains(m) {
                        out.push(m.clone());
                    }
                }
                out
            }),
        })
    }
}

/// The highest of each percentile of several latencies (percentiles do not
/// add up), the mean of their means.
fn worst_latency<'a>(all: impl Iterator<Item = &'a Latency>) -> Latency {
    let all: Vec<&Latency> = all.collect();
    let max = |f: fn(&Latency) -> f64| all.iter().map(|l| f(l)).fold(0.0, f64::max);
    Latency {
        mean_ms: all.iter().map(|l| l.mean_ms).sum::<f64>() / all.len().max(1) as f64,
        p50_ms: max(|l| l.p50_ms),
        p75_ms: all
            .iter()
            .map(|l| l.p75_ms)
            .collect::<Option<Vec<f64>>>()
            .map(|v| v.into_iter().fold(0.0, f64::max)),
        p90_ms: max(|l| l.p90_ms),
        p99_ms: max(|l| l.p99_ms),
        max_ms: max(|l| l.max_ms),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn client(requests: u64, rps: f64, mean: f64, p99: f64, eaddr: u64) -> ClientStats {
        ClientStats {
            tool: "builtin".into(),
            duration_secs: 10.0,
            requests,
            requests_per_sec: rps,
            connections_opened: Some(requests / 100),
            errors: ErrorCounts {
                connect: eaddr,
                connect_by_errno: Some([("EADDRNOTAVAIL".to_string(), eaddr)].into()),
                ..Default::default()
            },
            latency: Latency {
                mean_ms: mean,
                p50_ms: mean,
                p90_ms: p99,
                p99_ms: p99,
                max_ms: p99,
                p75_ms: None,
            },
            cpu_secs: Some(1.0),
            ..Default::default()
        }
    }

    #[test]
    fn several_clients_add_up_and_keep_the_worst_percentile() {
        let total = ClientStats::merged(&[
            client(1000, 100.0, 1.0, 5.0, 3),
            client(3000, 300.0, 2.0, 9.0, 0),
        ])
        .unwrap();
        assert_eq!(total.requests, 4000);
        assert_eq!(total.requests_per_sec, 400.0);
        assert_eq!(total.connections_opened, Some(40));
        assert_eq!(total.errors.connect, 3);
        assert_eq!(
            total.errors.connect_by_errno,
            Some([("EADDRNOTAVAIL".to_string(), 3)].into())
        );
        // Weighted by requests: (1000×1 + 3000×2) / 4000.
        assert!((total.latency.mean_ms - 1.75).abs() < 1e-9);
        assert_eq!(total.latency.p99_ms, 9.0);
        assert_eq!(total.cpu_secs, Some(2.0));
        assert!(total.notes[0].contains("2 client hosts"));
    }

    #[test]
    fn one_client_is_its_own_total_and_none_is_none() {
        let one = client(10, 1.0, 1.0, 1.0, 0);
        assert_eq!(ClientStats::merged(std::slice::from_ref(&one)), Some(one));
        assert_eq!(ClientStats::merged(&[]), None);
    }
}
