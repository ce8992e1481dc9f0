//! Report snapshots (insta) and the rules the report keeps.

use super::*;
use crate::common::counts::{ClientStats, ErrorCounts, Latency};
use crate::results;
use crate::results::{BySide, RunInfo, StateStats};
use crate::scenario::{RoleSysctls, SysctlName, SysctlValue};

mod summaries;
use summaries::*;

/// For each summary, a test of its markdown and one of its terminal
/// rendering, each against the snapshot named after the test.
macro_rules! snapshot_tests {
    ($($summary:ident: $markdown:ident, $terminal:ident;)*) => {$(
        #[test]
        fn $markdown() {
            insta::assert_snapshot!(render_markdown(&$summary()));
        }

        #[test]
        fn $terminal() {
            insta::assert_snapshot!(render_terminal(&$summary()));
        }
    )*};
}

snapshot_tests! {
    two_variants: two_variants_markdown, two_variants_terminal;
    with_failed_run: failed_run_markdown, failed_run_terminal;
    zero_baseline: zero_baseline_markdown, zero_baseline_terminal;
    repeat_three: repeat_three_markdown, repeat_three_terminal;
    flagged: flagged_markdown, flagged_terminal;
}

#[test]
fn the_change_against_the_baseline_is_in_the_state_table() {
    let md = render_markdown(&two_variants());
    assert!(md.contains("| `reuse-on`"), "{md}");
    assert!(md.contains("-4848 (-40.4%)"), "{md}");
    // FIN_WAIT2 is non-zero somewhere, SYN_RECV never is.
    assert!(md.contains("### Sockets on the server: FIN_WAIT2"), "{md}");
    assert!(!md.contains("SYN_RECV"), "{md}");
}

#[test]
fn a_zero_baseline_has_a_change_without_a_percent() {
    let md = render_markdown(&zero_baseline());
    assert!(md.contains("+4011.5 (n/a)"), "{md}");
}

#[test]
fn a_variant_without_completed_runs_has_no_figures() {
    let mut s = two_variants();
    s.variants[1].runs[0].error = Some("the lab could not be built".into());
    s.info.complete = false;
    s.comparisons = metrics::compare(&s.variants);
    let md = render_markdown(&s);
    assert!(
        // Server TIME_WAIT of `reuse-on`: no value, no change.
        md.contains("| steady mean | `reuse-on`             |        — |        — |"),
        "{md}"
    );
    assert!(
        md.contains("| `reuse-on`             | no completed run |"),
        "{md}"
    );
    assert!(
        md.contains("```text\nthe lab could not be built\n```"),
        "{md}"
    );
    let term = render_terminal(&s);
    assert!(term.contains("1 run failed"), "{term}");
}

#[test]
fn one_run_each_says_needs_repeats_once() {
    let md = render_markdown(&two_variants());
    assert_eq!(md.matches("needs repeats").count(), 1, "{md}");
    assert!(!md.contains("verdict |"), "{md}");
    assert!(!md.contains('['), "no interval without repeats: {md}");
    let term = render_terminal(&two_variants());
    assert_eq!(term.matches("needs repeats").count(), 1, "{term}");
}

#[test]
fn repeats_give_intervals_verdicts_and_spread() {
    let md = render_markdown(&repeat_three());
    assert!(!md.contains("repeat ≥ 2 gives verdicts"), "{md}");
    let glance = md
        .lines()
        .find(|l| l.starts_with("| server sockets TIME_WAIT (steady mean)"))
        .unwrap_or_default();
    assert!(glance.contains("(-40.8% ["), "{glance}");
    assert!(glance.contains("| better"), "{glance}");
    let rps = md
        .lines()
        .find(|l| l.starts_with("| requests/s"))
        .unwrap_or_default();
    assert!(rps.contains("no clear change"), "{rps}");
    assert!(md.contains("| statistic   | variant"), "{md}");
    assert!(md.contains("| median |"), "{md}");
    assert!(md.contains("Spread over the runs"), "{md}");
    let term = render_terminal(&repeat_three());
    assert!(term.contains("verdict"), "{term}");
    assert!(
        !term.contains('['),
        "the terminal keeps changes short: {term}"
    );
}

/// Charts of each client host say what their lines are; without any, the
/// charts' sentence is the one it always was.
#[test]
fn per_host_charts_say_a_line_is_a_client_host() {
    const SENTENCE: &str = "On the charts of each client host a line is one client host of a run";
    let mut s = flagged();
    assert!(!render_markdown(&s).contains(SENTENCE));
    s.charts.push(results::Chart {
        title: "TIME_WAIT sockets on each client host".into(),
        path: "charts/client-sockets-TIME_WAIT.svg".into(),
        per_host: true,
        counter: None,
    });
    let md = render_markdown(&s);
    assert!(
        md.contains(&format!(
            "the repeats of a variant share its colour. {SENTENCE}, each host in a colour of its own (its repeats share it).\n\n"
        )),
        "{md}"
    );
    assert!(
        md.contains(
            "![TIME_WAIT sockets on each client host](charts/client-sockets-TIME_WAIT.svg)\n"
        ),
        "{md}"
    );
}

#[test]
fn flags_come_first_and_charts_are_embedded() {
    let md = render_markdown(&flagged());
    let at = |needle: &str| {
        md.find(needle)
            .unwrap_or_else(|| panic!("no {needle:?} in\n{md}"))
    };
    assert!(at("> [!WARNING]") < at("## What ran"), "{md}");
    assert!(md.contains("**1 run is invalid**"), "{md}");
    assert!(md.contains("- **Expectations:** **2 of 3 failed**"), "{md}");
    assert!(md.contains("- **Order:** randomized (seed 42)"), "{md}");
    assert!(at("## At a glance") < at("## Expectations"), "{md}");
    assert!(at("## Expectations") < at("## Charts"), "{md}");
    assert!(at("## Charts") < at("## TCP states"), "{md}");
    assert!(
        md.contains("- ❌ `client.requests_per_sec of reuse-on: value >= 25000`: value +20208.9"),
        "{md}"
    );
    assert!(md.contains("- ✅ `server.sockets.TIME_WAIT"), "{md}");
    assert!(
        md.contains("![TIME_WAIT sockets on the server](charts/server-sockets-TIME_WAIT.svg)\n"),
        "{md}"
    );
    assert!(
        md.contains("| `reuse-on`  | 2      | `reuse-on-2`  | **invalid** |"),
        "{md}"
    );
    let term = render_terminal(&flagged());
    assert!(
        term.contains("INVALID: reuse-on repeat 2: the load generator was CPU-bound"),
        "{term}"
    );
    assert!(term.contains("expectations: 2 of 3 failed"), "{term}");
    assert_eq!(term.matches("FAILED: ").count(), 2, "{term}");
}

#[test]
fn chart_links_survive_odd_paths_and_titles() {
    assert_eq!(link_target("charts/a b.svg"), "<charts/a b.svg>");
    assert_eq!(link_target("charts/x.svg"), "charts/x.svg");
    assert_eq!(alt_text("a [b]\nc"), "a \\[b\\] c");
}

#[test]
fn an_empty_summary_still_renders() {
    let s = summary(vec![], false);
    let md = render_markdown(&s);
    assert!(md.contains("No variant ran"), "{md}");
    assert!(render_terminal(&s).contains("no variant ran"));
}

#[test]
fn a_run_that_is_not_complete_is_flagged_first_and_left_out() {
    let mut s = repeat_three();
    let before = metrics::compare(&s.variants);
    s.variants[1].runs[2].incomplete =
        vec!["the load ended after 1.9 s of the planned 90.0 s (at least 85.5 s counts as the planned load)".into()];
    s.info.complete = false;
    s.comparisons = metrics::compare(&s.variants);
    assert_ne!(
        before, s.comparisons,
        "the run is left out of the comparisons"
    );
    let md = render_markdown(&s);
    let at = |needle: &str| {
        md.find(needle)
            .unwrap_or_else(|| panic!("no {needle:?} in\n{md}"))
    };
    assert!(at("> [!CAUTION]") < at("## What ran"), "{md}");
    assert!(
        md.contains("**Not complete**: 1 run did not happen as planned"),
        "{md}"
    );
    assert!(
        md.contains("> - `reuse-on` repeat 3 (`reuse-on-3`): the load ended after 1.9 s"),
        "{md}"
    );
    assert!(md.contains("**not complete**"), "{md}");
    let term = render_terminal(&s);
    assert!(
        term.contains("NOT COMPLETE: reuse-on repeat 3: the load ended after 1.9 s"),
        "{term}"
    );
}

#[test]
fn a_scenario_stopped_before_any_run_says_so() {
    let mut s = summary(vec![], false);
    s.info
        .notes
        .push("Stopped by a signal before any run started: nothing was measured.".into());
    let md = render_markdown(&s);
    assert!(
        md.contains("> - Stopped by a signal before any run started"),
        "{md}"
    );
    assert!(!md.contains("cover only the time it ran"), "{md}");
}

/// A tool that reports no percentiles (httperf, h2load) shows n/a there,
/// not a latency of 0, and gives no latency comparison.
#[test]
fn latency_a_tool_does_not_report_is_na_not_zero() {
    let mut s = two_variants();
    for r in &mut s.variants[1].runs {
        if let Some(c) = r.client.as_mut() {
            c.not_measured = ["p50", "p90", "p99", "max"]
                .iter()
                .map(|p| format!("client.latency.{p}_ms"))
                .collect();
        }
    }
    let md = render_markdown(&s);
    let row = md
        .lines()
        .find(|l| l.contains("| `reuse-on`") && l.contains("builtin"))
        .unwrap_or_else(|| panic!("no client row for reuse-on in:\n{md}"));
    assert_eq!(row.matches("n/a").count(), 4, "{row}");
}
