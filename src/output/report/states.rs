//! Every state of every side and source, one table each, with every
//! statistic (steady mean, peak, final).

use super::*;

pub(super) fn state_tables(out: &mut String, view: &View) {
    let steady: BTreeSet<String> = view
        .runs()
        .filter(|(_, r)| r.is_complete())
        .map(|(_, r)| num(r.steady_from_secs))
        .collect();
    let steady = match (steady.len(), steady.iter().next()) {
        (1, Some(s)) => format!("from {s} s into the load"),
        _ => "over the steady part of each run".to_string(),
    };
    let _ = write!(
        out,
        "## TCP states for the server endpoint\n\n\
         TCP sockets and conntrack entries whose endpoint is the server's, \
         per side and state. *steady mean* is the mean count {steady}, *peak* the highest \
         sample, *final* the snapshot taken right after the client stopped. A variant's \
         value is the mean over its completed runs. *change* is against the baseline {} \
         (absolute, then percent of the baseline",
        code(view.baseline_name())
    );
    if view.any_verdict() {
        out.push_str(", with the 95% interval of the percent change in brackets");
    }
    out.push_str(").");
    let all_metrics: Vec<String> = view
        .metrics
        .iter()
        .flat_map(|m| m.keys().cloned())
        .filter(|k| names::state_metric(k).is_some())
        .collect();
    if view.any_spread(&all_metrics) {
        out.push_str(
            " With two or more runs, *median*, *min*, *max* and *sd* (sample standard \
             deviation) describe the spread of a variant's runs.",
        );
    }
    out.push_str("\n\n");
    let verdicts = view.any_verdict();
    let mut missing = Vec::new();
    for source in SOURCES {
        for side in Side::BOTH {
            if !view.sampled(source, side) {
                missing.push(format!("{} on the {side}", source.as_str()));
                continue;
            }
            for state in view.states(source, side) {
                let metrics: Vec<String> = STATS
                    .iter()
                    .map(|(s, _)| names::state_metric_name(side, source, &state, s))
                    .collect();
                let shown = ALWAYS_SHOWN.contains(&state.as_str())
                    || metrics.iter().any(|m| view.any_nonzero(m));
                if !shown {
                    continue;
                }
                let _ = writeln!(out, "### {} on the {side}: {state}\n", source_title(source));
                let spread = view.any_spread(&metrics);
                let mut header = vec!["statistic", "variant"];
                header.push(if spread { "mean" } else { "value" });
                if spread {
                    header.extend(["median", "min", "max", "sd"]);
                }
                header.push("change");
                if verdicts {
                    header.push("verdict");
                }
                let mut rows = Vec::new();
                for ((_, label), metric) in STATS.iter().zip(&metrics) {
                    for (i, v) in view.variants.iter().enumerate() {
                        let mut row = vec![label.to_string(), variant_label(v, i)];
                        row.push(view.value_cell(i, metric));
                        if spread {
                            row.extend(view.spread_cells(i, metric));
                        }
                        row.push(view.change_cell(i, metric, true));
                        if verdicts {
                            row.push(view.verdict_cell(i, metric));
                        }
                        rows.push(row);
                    }
                }
                let left = if verdicts {
                    vec![0, 1, header.len() - 1]
                } else {
                    vec![0, 1]
                };
                out.push_str(&markdown::table(&header, rows, &left));
            }
        }
    }
    if !missing.is_empty() {
        let _ = writeln!(
            out,
            "No counts were recorded for {} (not collected, or nothing seen for the endpoint).\n",
            missing.join(", ")
        );
    }
}
pub(super) fn source_title(source: Source) -> &'static str {
    match source {
        Source::Sockets => "Sockets",
        Source::Conntrack => "conntrack",
    }
}
