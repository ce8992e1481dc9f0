//! Did a run happen as planned? A run whose load stopped early, whose lab
//! vanished under it, or whose samples have large gaps is **not complete**:
//! its figures describe some other experiment than the scenario's (a load
//! that died after 2 s of 5 leaves a TIME_WAIT peak that says nothing of
//! the variant). Such a run is marked in `summary.json`
//! (`runs[].incomplete`, `info.complete: false`), flagged at the top of
//! the report, left out of the comparisons and the expectations, and makes
//! `twlab run` exit 3 (130 when a signal stopped it).
//!
//! This is distinct from [`super::validity`]: an *invalid* run happened as
//! planned, but the load generator, not the server, set its pace; an
//! *incomplete* one did not happen as planned at all.
//!
//! The rule, with its tolerances (README, "What twlab guarantees"):
//! - the load lasted at least its planned duration less
//!   [`DURATION_TOLERANCE`] (5%, and never less than 0.5 s): as twlab timed
//!   it, and as each load client reported it;
//! - every namespace of an embedded lab still existed when the load ended;
//! - at most [`MAX_GAP_SHARE`] (25%) of the load fell in *gaps*: stretches
//!   without a sample longer than four intervals (at least 2 s; see
//!   [`crate::run::sampler::gap_threshold`]). A sampler that is merely
//!   slower than its interval (counting over SSH at 250 ms) still covers
//!   the load evenly and is not a gap; twlab stopped for 8 s of 10 is.

use crate::common::counts::ClientStats;
use std::time::Duration;

/// The share of the planned duration a load may fall short by (a client's
/// own clock starts after its connections are made).
pub const DURATION_TOLERANCE: f64 = 0.05;
/// …and never less than this, for short loads.
pub const MIN_DURATION_SLACK_SECS: f64 = 0.5;
/// The largest share of the load that may fall in gaps between samples.
pub const MAX_GAP_SHARE: f64 = 0.25;

/// What a run was meant to be.
#[derive(Debug, Clone, Copy)]
pub struct Planned {
    /// The load's duration (`client.duration`, after the variant's `set:`).
    pub duration: Duration,
    /// The longest stretch without a sample that is not a gap.
    pub gap_threshold: Duration,
    /// Whether anything was to be sampled periodically.
    pub sampled: bool,
}

/// What a run turned out to be.
#[derive(Debug, Clone, Default)]
pub struct Observed<'a> {
    /// From the load's start until every client had ended, by twlab's
    /// clock; `None` when the load never started.
    pub load_secs: Option<f64>,
    /// Each load client's own figures (one per client host), as reported.
    pub clients: Vec<(String, &'a ClientStats)>,
    /// The lab's namespaces that were gone when the load ended.
    pub vanished: Vec<String>,
    /// Ticks skipped because a sample overran them.
    pub missed_ticks: u64,
    /// Seconds of the load in gaps between samples.
    pub gap_secs: f64,
}

/// The shortest load that still counts as the planned one.
pub fn shortest_load(planned: Duration) -> f64 {
    let secs = planned.as_secs_f64();
    secs - (secs * DURATION_TOLERANCE).max(MIN_DURATION_SLACK_SECS)
}

/// Why the run did not happen as planned; empty when it did.
pub fn problems(planned: &Planned, observed: &Observed<'_>) -> Vec<String> {
    let mut out = Vec::new();
    let want = planned.duration.as_secs_f64();
    let shortest = shortest_load(planned.duration);
    if let Some(secs) = observed.load_secs
        && secs < shortest
    {
        out.push(format!(
            "the load ended after {secs:.1} s of the planned {want:.1} s (at least {shortest:.1} s counts as the planned load)"
        ));
    }
    for (who, stats) in &observed.clients {
        if stats.duration_secs < shortest {
            out.push(format!(
                "{who} reported a load of {:.1} s of the planned {want:.1} s (at least {shortest:.1} s counts as the planned load)",
                stats.duration_secs
            ));
        }
    }
    if !observed.vanished.is_empty() {
        out.push(format!(
            "the lab vanished during the run: the namespace(s) {} no longer existed when the load ended (removed by someone else, e.g. `twlab clean --force`)",
            observed.vanished.join(", ")
        ));
    }
    if planned.sampled
        && let Some(secs) = observed.load_secs
        && secs > 0.0
        && observed.gap_secs > MAX_GAP_SHARE * secs
    {
        out.push(format!(
            "the samples have gaps: for {:.1} s of the {secs:.1} s load no sample was taken ({:.0}%, at most {:.0}% allowed; a gap is a stretch of over {} without a sample){}",
            observed.gap_secs,
            100.0 * observed.gap_secs / secs,
            100.0 * MAX_GAP_SHARE,
            humantime::format_duration(planned.gap_threshold),
            if observed.missed_ticks > 0 {
                format!(
                    "; {} ticks were skipped because a sample overran them or twlab was not scheduled",
                    observed.missed_ticks
                )
            } else {
                String::new()
            }
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planned(secs: u64) -> Planned {
        Planned {
            duration: Duration::from_secs(secs),
            gap_threshold: Duration::from_secs(4),
            sampled: true,
        }
    }

    fn client(secs: f64) -> ClientStats {
        ClientStats {
            duration_secs: secs,
            ..Default::default()
        }
    }

    #[test]
    fn a_run_as_planned_has_no_problem() {
        let c = client(9.98);
        let o = Observed {
            load_secs: Some(10.2),
            clients: vec![("the load client".into(), &c)],
            ..Default::default()
        };
        assert!(problems(&planned(10), &o).is_empty());
        // The tolerance: 5% of 90 s, at least 0.5 s of 5 s.
        assert_eq!(shortest_load(Duration::from_secs(90)), 85.5);
        assert_eq!(shortest_load(Duration::from_secs(5)), 4.5);
    }

    #[test]
    fn a_load_that_ended_early_is_not_complete_by_either_clock() {
        let c = client(1.9);
        let by_client = Observed {
            load_secs: Some(5.1),
            clients: vec![("the load client".into(), &c)],
            ..Default::default()
        };
        let p = problems(&planned(5), &by_client);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("reported a load of 1.9 s of the planned 5.0 s"));
        let by_twlab = Observed {
            load_secs: Some(2.0),
            ..Default::default()
        };
        let p = problems(&planned(5), &by_twlab);
        assert!(p[0].starts_with("the load ended after 2.0 s"), "{p:?}");
    }

    #[test]
    fn gaps_in_the_samples_beyond_a_quarter_are_not_complete() {
        let with = |gap_secs, missed| Observed {
            load_secs: Some(10.1),
            gap_secs,
            missed_ticks: missed,
            ..Default::default()
        };
        assert!(problems(&planned(10), &with(0.0, 20)).is_empty());
        assert!(problems(&planned(10), &with(2.5, 2)).is_empty());
        let p = problems(&planned(10), &with(8.2, 8));
        assert!(
            p[0].contains("for 8.2 s of the 10.1 s load no sample was taken")
                && p[0].contains("8 ticks were skipped"),
            "{p:?}"
        );
        // Nothing sampled periodically: no gap to speak of.
        let unsampled = Planned {
            sampled: false,
            ..planned(10)
        };
        assert!(problems(&unsampled, &with(10.0, 0)).is_empty());
    }

    #[test]
    fn a_vanished_lab_is_named() {
        let o = Observed {
            load_secs: Some(10.0),
            vanished: vec!["twlab-x-server".into()],
            ..Default::default()
        };
        let p = problems(&planned(10), &o);
        assert!(p[0].contains("twlab-x-server"), "{p:?}");
    }
}
