//! What ran: the warning about invalid runs, the run's header (scenario,
//! lab, kernel, server, client, endpoint), the variants and their sysctls,
//! and the command that reproduces it all.

use super::*;

/// Why a run is invalid, on one line.
pub(super) fn reasons(r: &RunSummary) -> String {
    r.invalid
        .iter()
        .map(|s| inline(s))
        .collect::<Vec<_>>()
        .join("; ")
}
/// The runs that did not happen as planned (failed, stopped by a signal,
/// or incomplete: see [`crate::analysis::completeness`]), in a caution at
/// the very top: they are left out of every figure, comparison and
/// expectation below, and the scenario's result is not complete.
pub(super) fn not_complete_warning(out: &mut String, view: &View) {
    let runs: Vec<_> = view.runs().filter(|(_, r)| !r.is_complete()).collect();
    if runs.is_empty() && view.summary.info.complete {
        return;
    }
    let _ = writeln!(
        out,
        "> [!CAUTION]\n> **Not complete**: {} The figures below rest on the runs that happened as planned only.\n>",
        match runs.len() {
            0 => "not every planned run ran.".to_string(),
            1 => "1 run did not happen as planned and is left out of the comparisons and expectations.".to_string(),
            n => format!("{n} runs did not happen as planned and are left out of the comparisons and expectations."),
        }
    );
    for (v, r) in runs {
        let mut why: Vec<String> = r.incomplete.iter().map(|s| inline(s)).collect();
        if let Some(e) = &r.error {
            why.insert(
                0,
                format!("failed: {}", inline(e.lines().next().unwrap_or(""))),
            );
        }
        if r.interrupted {
            why.insert(0, "stopped by a signal".to_string());
        }
        let _ = writeln!(
            out,
            "> - {} repeat {} ({}): {}",
            code(&v.name),
            r.repeat,
            code(&r.run_id),
            why.join("; ")
        );
    }
    for note in &view.summary.info.notes {
        if note.starts_with("Stopped") {
            let _ = writeln!(out, "> - {}", inline(note));
        }
    }
    out.push('\n');
}

/// The runs flagged invalid, in a warning at the very top: every figure
/// below that includes them is suspect.
pub(super) fn invalid_warning(out: &mut String, view: &View) {
    let runs: Vec<_> = view.invalid_runs().collect();
    if runs.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "> [!WARNING]\n> **{} invalid**: {} figures cannot be trusted, nor the means below that include them.\n>",
        match runs.len() {
            1 => "1 run is".to_string(),
            n => format!("{n} runs are"),
        },
        if runs.len() == 1 { "its" } else { "their" }
    );
    for (v, r) in runs {
        let _ = writeln!(
            out,
            "> - {} repeat {} ({}): {}",
            code(&v.name),
            r.repeat,
            code(&r.run_id),
            reasons(r)
        );
    }
    out.push('\n');
}
pub(super) fn what_ran(out: &mut String, view: &View) {
    let info = &view.summary.info;
    out.push_str("## What ran\n\n");
    if let Some(d) = info.description.as_deref().filter(|d| !d.trim().is_empty()) {
        for line in d.trim().lines() {
            let _ = writeln!(out, "> {}", line.trim_end());
        }
        out.push('\n');
    }
    let repeats: BTreeSet<usize> = view.variants.iter().map(|v| v.runs.len()).collect();
    let runs = match (repeats.len(), repeats.iter().next()) {
        (1, Some(n)) => format!("{n} run{} each", if *n == 1 { "" } else { "s" }),
        _ => "runs per variant differ, see Runs".to_string(),
    };
    let mut fields = vec![
        ("Scenario file", code(&info.scenario_file)),
        ("Started", inline(&info.started_at)),
        ("Finished", inline(&info.finished_at)),
        ("Kernel", inline(&info.kernel)),
        ("twlab", inline(&info.twlab_version)),
        ("Lab", inline(&info.lab)),
        ("Server", inline(&info.server)),
        ("Client", inline(&info.client)),
        ("Endpoint", code(&info.endpoint)),
        (
            "Variants",
            format!(
                "{} ({runs}); baseline {}",
                view.variants.len(),
                code(view.baseline_name())
            ),
        ),
    ];
    if !info.order.trim().is_empty() {
        fields.push(("Order", inline(&info.order)));
    }
    fields.push((
        "Complete",
        if info.complete {
            "yes".to_string()
        } else {
            "**no**: not every planned run completed (see Runs)".to_string()
        },
    ));
    let invalid = view.invalid_runs().count();
    if invalid > 0 {
        fields.push((
            "Invalid runs",
            format!("**{invalid}** (see the warning above)"),
        ));
    }
    let expectations = &view.summary.expectations;
    if !expectations.is_empty() {
        let failed = expectations.iter().filter(|e| !e.passed).count();
        fields.push((
            "Expectations",
            if failed == 0 {
                format!("all {} held", expectations.len())
            } else {
                format!(
                    "**{failed} of {} failed** (see Expectations)",
                    expectations.len()
                )
            },
        ));
    }
    for (name, value) in fields {
        let _ = writeln!(out, "- **{name}:** {value}");
    }
    out.push('\n');
    if !info.notes.is_empty() {
        out.push_str("Notes:\n\n");
        for note in &info.notes {
            let _ = writeln!(out, "- {}", inline(note));
        }
        out.push('\n');
    }
}
pub(super) fn variants_table(out: &mut String, view: &View) {
    out.push_str("## Variants\n\nThe sysctls each variant set before its runs; the first variant is the baseline.\n\n");
    let mut rows = Vec::new();
    for (i, v) in view.variants.iter().enumerate() {
        let name = variant_label(v, i);
        let mut any = false;
        for side in Side::BOTH {
            for (sysctl, value) in v.sysctls.for_side(side) {
                any = true;
                rows.push(vec![
                    name.clone(),
                    side.to_string(),
                    code(sysctl.as_str()),
                    code(&value.normalized()),
                ]);
            }
        }
        if !any {
            rows.push(vec![
                name,
                "—".into(),
                "(kernel defaults)".into(),
                "—".into(),
            ]);
        }
    }
    out.push_str(&markdown::table(
        &["variant", "role", "sysctl", "value"],
        rows,
        &[0, 1, 2, 3],
    ));
}
pub(super) fn variant_label(v: &VariantSummary, i: usize) -> String {
    if i == 0 {
        format!("{} (baseline)", code(&v.name))
    } else {
        code(&v.name)
    }
}
pub(super) fn reproduce(out: &mut String, command: &str) {
    out.push_str("## Reproduce\n\n");
    if command.trim().is_empty() {
        out.push_str("The command was not recorded.\n");
    } else {
        out.push_str(&fenced("sh", command));
    }
}
