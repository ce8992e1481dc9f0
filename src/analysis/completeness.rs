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
//! - the periodic samples cover at least [`MIN_SAMPLE_COVERAGE`] (75%) of
//!   the ticks that fell inside the load (the last tick is not counted:
//!   it races the load's end).

use crate::common::counts::ClientStats;
use std::time::Duration;

/// The share of the planned duration a load may fall short by (a client's
/// own clock starts after its connections are made).
pub const DURATION_TOLERANCE: f64 = 0.05;
/// …and never less than this, for short loads.
pub const MIN_DURATION_SLACK_SECS: f64 = 0.5;
/// The share of the planned sampling ticks that must have been sampled.
pub const MIN_SAMPLE_COVERAGE: f64 = 0.75;

/// What a run was meant to be.
#[derive(Debug, Clone, Copy)]
pub struct Planned {
    /// The load's duration (`client.duration`, after the variant's `set:`).
    pub duration: Duration,
    /// `collect.interval`.
    pub interval: Duration,
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
    /// Periodic samples taken (of one side and source).
    pub samples: u64,
    /// Ticks skipped because a sample overran them.
    pub missed_ticks: u64,
}

/// The shortest load that still counts as the planned one.
pub fn shortest_load(planned: Duration) -> f64 {
    let secs = planned.as_secs_f64();
    secs - (secs * DURATION_TOLERANCE).max(MIN_DURATION_SLACK_SECS)
}

/// How many periodic samples a load of `load_secs` should have given: the
/// ticks inside it but the last (which races the load's end).
pub fn planned_samples(load_secs: f64, interval: Duration) -> u64 {
    let interval = interval.as_secs_f64();
    if interval <= 0.0 {
        return 0;
    }
    ((load_secs / interval).floor() as u64).saturating_sub(1)
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
    {
        let expected = planned_samples(secs, planned.interval);
        if expected > 0 && (observed.samples as f64) < MIN_SAMPLE_COVERAGE * expected as f64 {
            out.push(format!(
                "the samples have gaps: {} of the {expected} planned ticks of {} were sampled ({:.0}%, at least {:.0}% needed){}",
                observed.samples,
                humantime::format_duration(planned.interval),
                100.0 * observed.samples as f64 / expected as f64,
                100.0 * MIN_SAMPLE_COVERAGE,
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
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planned(secs: u64) -> Planned {
        Planned {
            duration: Duration::from_secs(secs),
            interval: Duration::from_secs(1),
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
            samples: 9,
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
            samples: 4,
            ..Default::default()
        };
        let p = problems(&planned(5), &by_client);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("reported a load of 1.9 s of the planned 5.0 s"));
        let by_twlab = Observed {
            load_secs: Some(2.0),
            samples: 1,
            ..Default::default()
        };
        let p = problems(&planned(5), &by_twlab);
        assert!(p[0].starts_with("the load ended after 2.0 s"), "{p:?}");
    }

    #[test]
    fn gaps_in_the_samples_beyond_a_quarter_are_not_complete() {
        let with = |samples, missed| Observed {
            load_secs: Some(10.1),
            samples,
            missed_ticks: missed,
            ..Default::default()
        };
        // 9 planned ticks (1 s … 9 s; 10 s races the end).
        assert_eq!(planned_samples(10.1, Duration::from_secs(1)), 9);
        assert!(problems(&planned(10), &with(7, 2)).is_empty());
        let p = problems(&planned(10), &with(1, 8));
        assert!(
            p[0].contains("1 of the 9 planned ticks") && p[0].contains("8 ticks were skipped"),
            "{p:?}"
        );
        // Nothing sampled periodically: no gap to speak of.
        let unsampled = Planned {
            sampled: false,
            ..planned(10)
        };
        assert!(problems(&unsampled, &with(0, 0)).is_empty());
        // A load too short for a tick has none to miss.
        assert_eq!(planned_samples(1.2, Duration::from_secs(1)), 0);
    }

    #[test]
    fn a_vanished_lab_is_named() {
        let o = Observed {
            load_secs: Some(10.0),
            vanished: vec!["twlab-x-server".into()],
            samples: 9,
            ..Default::default()
        };
        let p = problems(&planned(10), &o);
        assert!(p[0].contains("twlab-x-server"), "{p:?}");
    }
}
